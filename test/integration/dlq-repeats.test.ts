/**
 * Relay repeats (the outbox relay publishes at least once: after a crash between its send and its
 * COMMIT, the same dead letter is in the DLQ twice, with the same headers). `dlq inspect` counts
 * them once; `dlq replay` must send the record once too, also when the repeat comes after where a
 * stopped run left off, or a pipeline without `dedupe` adds its amount to the totals twice.
 */
import {spawn} from 'node:child_process'
import {readFileSync, writeFileSync} from 'node:fs'
import {describe, expect, it, onTestFinished} from 'vitest'
import type {DlqReplayResult} from '../../src/dlq/replay.js'
import {BIN, ROOT, kcatConsume, runCli} from '../helpers.js'
import {forgetReplays} from '../../fixtures/dlq/cleanup.js'
import {produce, sleep, startStream, streamFixture, type ProducedMessage} from './stream-support.js'

describe('dlq replay: relay repeats', () => {
  it('sends a dead letter the relay published twice once, across a stop and resume; the totals are exact', async () => {
    const f = await streamFixture({partitions: 1, prefix: 'dlqrep'})
    onTestFinished(() => forgetReplays(f.pool, f.dlqTopic))
    // a pipeline without dedupe: only the replay stands between a repeat and a doubled amount
    const spec = readFileSync(f.specFile, 'utf8')
    expect(spec).toMatch(/^dedupe:.*$/m)
    writeFileSync(f.specFile, spec.replace(/^dedupe:.*$/m, ''))

    const deadLetter = (i: number): ProducedMessage => ({
      key: `R${i}`,
      value: Buffer.from(JSON.stringify({id: `R${i}`, acct: 'A1', amt: `${100 + i}.01`, ts: '2026-11-20T09:15:00+03:00', currency: 'RUB'})),
      headers: {
        'x-trace': `trace-${i}`,
        'cutover.error.code': 'UNPARSEABLE_DATE',
        'cutover.error.message': 'Field event_time value "x" matches none of the formats.',
        'cutover.error.stage': 'normalize',
        'cutover.source.topic': f.topic,
        'cutover.source.partition': '0',
        'cutover.source.offset': String(i),
        'cutover.source.timestamp': '1795414500000',
        'cutover.pipeline': f.name,
        'cutover.pipeline.version': 'a'.repeat(64),
        'cutover.attempts': '1',
        'cutover.replay.count': '0',
        'cutover.failed.at': `2026-11-20T06:15:${String(i).padStart(2, '0')}.000Z`,
      },
    })
    // R0, its repeat at once; R1; 16 others; then R1's repeat (after where the stopped run stops)
    const unique = Array.from({length: 18}, (_, i) => deadLetter(i))
    const dlq = [unique[0]!, deadLetter(0), ...unique.slice(1), deadLetter(1)]
    await produce(f.dlqTopic, dlq)

    const inspect = await runCli(['dlq', 'inspect', '--topic', f.dlqTopic, '--limit', '0', '--json'])
    expect(inspect.json).toMatchObject({scanned: 20, total: 18, repeats: 2})
    const dry = await runCli(['dlq', 'replay', '--topic', f.dlqTopic, '--spec', f.specFile, '--dry-run', '--json'])
    expect(dry.code, dry.stderr).toBe(0)
    expect(dry.json).toMatchObject({scanned: 20, selected: 18, repeats_now: 2})
    expect(dry.json.prediction).toEqual({UNPARSEABLE_DATE: {selected: 18, would_pass: 18, duplicates: 0, still_failing: {}, would_park: 0}})

    // a rate-limited run (one record per transaction), stopped with SIGINT before it reaches R1's repeat
    const args = ['dlq', 'replay', '--topic', f.dlqTopic, '--spec', f.specFile, '--json']
    const child = spawn(process.execPath, [BIN, ...args, '--rate', '4'], {cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe']})
    let out = ''
    child.stdout.on('data', (d: Buffer) => (out += d.toString()))
    const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)))
    onTestFinished(() => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
    })
    for (;;) {
      const r = await f.pool.query<{sent: string}>('SELECT sent::text AS sent FROM cutover.replays WHERE dlq_topic = $1', [f.dlqTopic]).catch(() => ({rows: []}))
      if (Number(r.rows[0]?.sent ?? 0) >= 3) break
      if (child.exitCode !== null) throw new Error(`the replay ended before it was stopped: ${out}`)
      await sleep(25)
    }
    child.kill('SIGINT')
    // 130, not 0: stopped before it was done (a scheduler must not take it for finished); the result is printed
    expect(await exited).toBe(130)
    const stopped = JSON.parse(out) as DlqReplayResult
    expect(stopped.status).toBe('stopped')
    expect(stopped.repeats_now).toBe(1) // R0's repeat
    const left = await f.pool.query<{at: string}>(`SELECT progress ->> '0' AS at FROM cutover.replays WHERE dlq_topic = $1`, [f.dlqTopic])
    expect(Number(left.rows[0]!.at)).toBeLessThan(dlq.length - 1) // R1's repeat was not reached

    const again = await runCli(args)
    expect(again.code, again.stderr).toBe(0)
    const rr = again.json as DlqReplayResult
    expect(rr).toMatchObject({status: 'completed', resumed: true, scanned: 20, selected: 18, sent: 18, parked: 0, repeats_now: 1})

    // in the source topic (read committed): every dead letter once
    const traces = kcatConsume(f.topic).map((r) => r.headers['x-trace'])
    expect(traces.sort()).toEqual(unique.map((m) => m.headers!['x-trace']).sort())

    // the pipeline writes each amount once
    const run = await startStream(f, ['--until-idle', '--idle-ms', '1500', '--json']).exited
    expect(run.code, run.stderr).toBe(0)
    const totals = await f.pool.query<{txn_count: string; amount_sum: string}>(`SELECT txn_count::text, amount_sum::text FROM "${f.schema}".account_daily_totals`)
    expect(totals.rows).toEqual([{txn_count: '18', amount_sum: (Array.from({length: 18}, (_, i) => 100 + i).reduce((a, b) => a + b, 0) + 0.18).toFixed(2)}])
  })
})
