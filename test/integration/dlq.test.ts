/**
 * `dlq inspect`, `dlq replay` and `dlq stats` against the real broker and PostgreSQL, driven
 * through the built CLI (bin/run.js --json), on a DLQ filled by a real `stream run`:
 *
 * 1. generated transactions with known defects, consumed with a BROKEN spec (the
 *    "dd.MM.yyyy HH:mm:ss" event-time format missing): inspect counts match per code exactly;
 * 2. the FIXED spec: the dry run predicts exactly what passes, what is a duplicate and what
 *    still fails;
 * 3. a replay killed with -9 part-way, run again: every selected record is in the source topic
 *    exactly once (read committed, with kcat), a stream run writes exactly the predicted rows,
 *    and the sink ends up identical to a correct run over the whole input; the DLQ grew by
 *    exactly the records that failed again (with cutover.replay.count 1);
 * 4. the same replay once more: nothing sent, nothing written, the DLQ unchanged.
 */
import {spawn} from 'node:child_process'
import {readFileSync, writeFileSync} from 'node:fs'
import {createHash} from 'node:crypto'
import {dirname, join} from 'node:path'
import {describe, expect, it, onTestFinished} from 'vitest'
import {compareWithExpected, readSinkState} from '../../fixtures/generator/pipeline.js'
import {expectedState, generateTransactions, type GeneratedTransaction} from '../../fixtures/generator/transactions.js'
import type {DlqInspectResult} from '../../src/dlq/inspect.js'
import {NEXT_STEPS} from '../../src/dlq/next-steps.js'
import type {DlqReplayResult} from '../../src/dlq/replay.js'
import type {DlqStatsResult} from '../../src/dlq/stats.js'
import {BIN, ROOT, kafka, kcatConsume, runCli} from '../helpers.js'
import {forgetReplays} from '../../fixtures/dlq/cleanup.js'
import {fromGenerated, produce, sleep, startStream, streamFixture, type StreamFixture} from './stream-support.js'

const DOTTED = /^\d{2}\.\d{2}\.\d{4} \d{2}:\d{2}:\d{2}$/

/** The outcome of a generated record under the broken spec (no dotted date format). */
function brokenOutcome(t: GeneratedTransaction): string {
  if (t.record && typeof t.record.ts === 'string' && DOTTED.test(t.record.ts)) return 'UNPARSEABLE_DATE'
  return t.outcome.kind === 'dead_letter' ? t.outcome.code : t.outcome.kind
}

function isDotted(t: GeneratedTransaction): boolean {
  return t.record !== null && typeof t.record.ts === 'string' && DOTTED.test(t.record.ts)
}

async function endOffsets(topic: string): Promise<number> {
  const admin = kafka().admin()
  await admin.connect()
  try {
    return (await admin.fetchTopicOffsets(topic)).reduce((a, o) => a + Number(o.high), 0)
  } finally {
    await admin.disconnect()
  }
}

function count(list: string[]): Record<string, number> {
  const out: Record<string, number> = {}
  for (const x of list) out[x] = (out[x] ?? 0) + 1
  return out
}

/** The spec files of the test: sensitive account ids, with and without the dotted date format. */
function specs(f: StreamFixture): {fixed: string; broken: string; brokenSha: string} {
  const text = readFileSync(f.specFile, 'utf8').replace('account_id: { from: acct, type: string, required: true, trim: true }', 'account_id: { from: acct, type: string, required: true, trim: true, sensitive: true }')
  expect(text).toContain('sensitive: true')
  const broken = text.replace('"dd.MM.yyyy HH:mm:ss", ', '')
  expect(broken).not.toContain('dd.MM.yyyy')
  const dir = dirname(f.specFile)
  writeFileSync(join(dir, 'fixed.yaml'), text)
  writeFileSync(join(dir, 'broken.yaml'), broken)
  return {fixed: join(dir, 'fixed.yaml'), broken: join(dir, 'broken.yaml'), brokenSha: createHash('sha256').update(broken).digest('hex')}
}

async function streamUntilIdle(f: StreamFixture, specFile: string) {
  const run = await startStream({...f, specFile}, ['--until-idle', '--idle-ms', '1500', '--json']).exited
  expect(run.code, run.stderr).toBe(0)
  return JSON.parse(run.stdout) as {read: number; written: number; dead_lettered: Record<string, number>; duplicates: number}
}

describe('dlq inspect / replay / stats', () => {
  it('inspects a DLQ from a real stream run, predicts the replay, replays exactly once across kill -9, and a rerun adds nothing', async () => {
    const f = await streamFixture({partitions: 3, prefix: 'dlq'})
    onTestFinished(() => forgetReplays(f.pool, f.dlqTopic))
    const {fixed, broken, brokenSha} = specs(f)
    const txns = generateTransactions(3000, {seed: 11, dirty: 0.25})
    await produce(f.topic, fromGenerated(txns))

    // 1. a stream run with the broken spec fills the DLQ
    const first = await streamUntilIdle(f, broken)
    const dead = txns.map(brokenOutcome).filter((o) => o !== 'ok' && o !== 'duplicate')
    const expectedByCode = count(dead)
    expect(first.dead_lettered).toEqual(expectedByCode)
    expect(expectedByCode.UNPARSEABLE_DATE).toBeGreaterThan(40)

    const inspect = await runCli(['dlq', 'inspect', '--topic', f.dlqTopic, '--limit', '2', '--spec', fixed, '--json'])
    expect(inspect.code, inspect.stderr).toBe(0)
    const ir = inspect.json as DlqInspectResult
    expect(ir.by_code).toEqual(expectedByCode)
    expect(ir.total).toBe(dead.length)
    expect(ir.repeats).toBe(0)
    expect(ir.by_origin).toEqual({cutover: dead.length})
    // what to do, for each code seen, and nothing for a code not seen
    expect(Object.keys(ir.next_steps).sort()).toEqual(Object.keys(expectedByCode).sort())
    expect(ir.next_steps.UNPARSEABLE_DATE).toBe(NEXT_STEPS.UNPARSEABLE_DATE)
    const plain = await runCli(['dlq', 'inspect', '--topic', f.dlqTopic, '--limit', '0', '--spec', fixed])
    expect(plain.code, plain.stderr).toBe(0)
    expect(plain.stdout).toContain(`\nWHAT TO DO\n`)
    expect(plain.stdout).toContain(`\n  UNPARSEABLE_DATE: ${NEXT_STEPS.UNPARSEABLE_DATE}\n`)
    expect(ir.by_pipeline_version).toEqual([{pipeline: f.name, version: brokenSha, count: dead.length}])
    expect(ir.by_source.map((s) => s.topic)).toEqual([f.topic, f.topic, f.topic])
    expect(ir.by_source.reduce((a, s) => a + s.count, 0)).toBe(dead.length)
    expect(ir.by_hour.reduce((a, h) => a + h.count, 0)).toBe(dead.length)
    expect(ir.first!.at <= ir.last!.at).toBe(true)
    const samples = ir.samples.UNPARSEABLE_DATE!
    expect(samples).toHaveLength(2)
    const source = kcatConsume(f.topic)
    for (const s of samples) {
      // the source coordinates point at the very record in the source topic (read back with kcat)
      const seq = txns.findIndex((t) => t.key === s.key && isDotted(t))
      expect(seq).toBeGreaterThanOrEqual(0)
      expect(s.source.topic).toBe(f.topic)
      const at = source.find((r) => r.partition === s.source.partition && String(r.offset) === s.source.offset)
      expect(at, `${s.source.partition}/${s.source.offset}`).toBeDefined()
      expect(at!.key).toBe(s.key)
      expect(at!.payload).toBe(txns[seq]!.value.toString('utf8'))
      expect(s.message).toMatch(/ts|event_time/)
      const v = s.value as Record<string, unknown>
      expect(v.acct).toBe('***') // sensitive in the spec
      expect(v.id).toBe(s.key) // not sensitive: shown
    }
    // without --spec every value is masked
    const masked = await runCli(['dlq', 'inspect', '--topic', f.dlqTopic, '--code', 'UNPARSEABLE_AMOUNT', '--limit', '1', '--json'])
    expect(masked.json.total).toBe(expectedByCode.UNPARSEABLE_AMOUNT)
    expect(Object.keys(masked.json.by_code)).toEqual(['UNPARSEABLE_AMOUNT'])
    expect(masked.json.value_masking).toBe('all')
    const maskedValue = masked.json.samples.UNPARSEABLE_AMOUNT[0].value as Record<string, string>
    expect(masked.json.samples.UNPARSEABLE_AMOUNT[0].key).toBe('***') // the key too: nothing is known to be safe
    expect(Object.keys(maskedValue)).toEqual(expect.arrayContaining(['id', 'acct', 'amt']))
    expect(Object.values(maskedValue).every((x) => x === null || /^\*+$|^\d{4}\*+\d{4}$/.test(x))).toBe(true)
    // a code in lower case selects the same; a typo of a code is refused (exit 2, the nearest code named), not an empty selection
    const lower = await runCli(['dlq', 'inspect', '--topic', f.dlqTopic, '--code', 'unparseable_amount', '--limit', '0', '--json'])
    expect(lower.json.total).toBe(expectedByCode.UNPARSEABLE_AMOUNT)
    for (const args of [['inspect'], ['replay', '--spec', fixed, '--dry-run']]) {
      const typo = await runCli(['dlq', ...args, '--topic', f.dlqTopic, '--code', 'UNPARSABLE_AMOUNT', '--json'])
      expect(typo.code, typo.stdout).toBe(2)
      expect(typo.json.error).toMatchObject({code: 'USAGE', message: '--code UNPARSABLE_AMOUNT is not a dead-letter code (did you mean UNPARSEABLE_AMOUNT?)'})
    }

    // 2. the dry run with the fixed spec predicts what passes
    const selected = txns.filter((t) => brokenOutcome(t) === 'UNPARSEABLE_DATE')
    const wouldPass = selected.filter((t) => t.outcome.kind === 'ok').length
    const duplicates = selected.filter((t) => t.outcome.kind === 'duplicate').length
    const stillFailing = count(selected.filter((t) => t.outcome.kind === 'dead_letter').map((t) => (t.outcome as {code: string}).code))
    const stillFailingTotal = Object.values(stillFailing).reduce((a, b) => a + b, 0)
    expect(wouldPass).toBeGreaterThan(20)
    const dry = await runCli(['dlq', 'replay', '--topic', f.dlqTopic, '--spec', fixed, '--code', 'UNPARSEABLE_DATE', '--dry-run', '--json'])
    expect(dry.code, dry.stderr).toBe(0)
    const dr = dry.json as DlqReplayResult
    expect(dr.selected).toBe(selected.length)
    expect(dr.prediction).toEqual({UNPARSEABLE_DATE: {selected: selected.length, would_pass: wouldPass, duplicates, still_failing: stillFailing, would_park: 0}})
    const human = await runCli(['dlq', 'replay', '--topic', f.dlqTopic, '--spec', fixed, '--code', 'UNPARSEABLE_DATE', '--dry-run'])
    expect(human.stdout).toContain(`${wouldPass.toLocaleString('en-US')} of ${selected.length.toLocaleString('en-US')} UNPARSEABLE_DATE would now pass`)
    expect(await endOffsets(f.topic)).toBe(txns.length) // the dry run wrote nothing

    // 3. a replay killed part-way, then run again
    const dlqBefore = await endOffsets(f.dlqTopic)
    const replayArgs = ['dlq', 'replay', '--topic', f.dlqTopic, '--spec', fixed, '--code', 'UNPARSEABLE_DATE', '--json']
    const child = spawn(process.execPath, [BIN, ...replayArgs, '--rate', '15'], {cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: {...process.env, NODE_ENV: 'production'}})
    let childErr = ''
    let childOut = ''
    child.stderr.on('data', (d: Buffer) => (childErr += d.toString()))
    child.stdout.on('data', (d: Buffer) => (childOut += d.toString()))
    const exited = new Promise<{code: number | null; signal: NodeJS.Signals | null}>((resolve) => child.on('close', (code, signal) => resolve({code, signal})))
    onTestFinished(() => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
    })
    for (;;) {
      const r = await f.pool.query<{sent: string}>('SELECT sent::text AS sent FROM cutover.replays WHERE dlq_topic = $1', [f.dlqTopic]).catch(() => ({rows: []}))
      if (Number(r.rows[0]?.sent ?? 0) >= 8) break
      if (child.exitCode !== null) throw new Error(`the replay ended (exit ${child.exitCode}) before it was killed; ${selected.length} selected; stdout: ${childOut}; stderr: ${childErr}`)
      await sleep(50)
    }
    // a second run of the same replay while the first runs: refused (it would send again what the first sends)
    const twice = await runCli(replayArgs)
    expect(twice.code, twice.stdout).toBe(2)
    expect(twice.json.error.message).toMatch(/^replay \S+ is running in another process$/)
    child.kill('SIGKILL')
    expect((await exited).signal).toBe('SIGKILL')
    const partial = await f.pool.query<{sent: string; status: string}>('SELECT sent::text AS sent, status FROM cutover.replays WHERE dlq_topic = $1', [f.dlqTopic])
    expect(partial.rows[0]!.status).toBe('running')
    expect(Number(partial.rows[0]!.sent)).toBeLessThan(selected.length)

    const again = await runCli(replayArgs)
    expect(again.code, again.stderr).toBe(0)
    const rr = again.json as DlqReplayResult
    expect(rr.status).toBe('completed')
    expect(rr.resumed).toBe(true)
    expect(rr.already_completed).toBe(false)
    expect(rr.selected).toBe(selected.length)
    expect(rr.sent).toBe(selected.length)
    expect(rr.parked).toBe(0)
    expect(rr.sent_by_topic).toEqual({[f.topic]: selected.length})
    expect(rr.sent_now).toBeLessThan(selected.length)
    // the same replay id with another selection: refused, not run (or reported) under the old row
    const other = await runCli(['dlq', 'replay', '--topic', f.dlqTopic, '--spec', fixed, '--code', 'UNPARSEABLE_AMOUNT', '--replay-id', rr.replay_id!, '--json'])
    expect(other.code, other.stdout).toBe(2)
    expect(other.json.error.message).toMatch(/was started with another selection/)

    // every selected record is in the source topic exactly once (read committed), as it was, plus the replay headers
    const replayed = kcatConsume(f.topic).filter((r) => r.headers['cutover.replay.id'] !== undefined)
    expect(replayed).toHaveLength(selected.length)
    const traces = replayed.map((r) => r.headers['x-trace'])
    expect(new Set(traces).size).toBe(selected.length)
    expect(new Set(traces)).toEqual(new Set(selected.map((t) => `trace-${t.seq}`)))
    for (const r of replayed) {
      expect(r.headers['cutover.replay.count']).toBe('1')
      expect(r.headers['cutover.replay.id']).toBe(rr.replay_id)
      expect(Object.keys(r.headers).filter((h) => h.startsWith('cutover.error') || h.startsWith('cutover.source'))).toEqual([])
      const t = txns[Number(r.headers['x-trace']!.slice('trace-'.length))]!
      expect(r.key).toBe(t.key)
      expect(r.payload).toBe(t.value.toString('utf8'))
    }

    // the fixed pipeline consumes them: exactly the predicted rows, and a sink identical to a correct run
    const second = await streamUntilIdle(f, fixed)
    expect(second.read).toBe(selected.length)
    expect(second.written).toBe(wouldPass)
    expect(second.duplicates).toBe(duplicates)
    expect(second.dead_lettered).toEqual(stillFailing)
    expect(compareWithExpected(await readSinkState(f.pool, f.schema), expectedState(txns))).toEqual([])
    // the DLQ grew only by the records that failed again, each with its replay count
    expect(await endOffsets(f.dlqTopic)).toBe(dlqBefore + stillFailingTotal)
    const refailed = kcatConsume(f.dlqTopic).filter((r) => r.headers['cutover.replay.count'] === '1')
    expect(refailed).toHaveLength(stillFailingTotal)
    expect(refailed.every((r) => r.headers['cutover.replay.id'] === rr.replay_id)).toBe(true)

    // 4. the same replay again: nothing new
    const third = await runCli(replayArgs)
    expect(third.code, third.stderr).toBe(0)
    expect(third.json).toMatchObject({already_completed: true, sent_now: 0, sent: selected.length, status: 'completed'})
    const sourceEnd = await endOffsets(f.topic)
    const idle = await streamUntilIdle(f, fixed)
    expect(idle.read).toBe(0)
    expect(await endOffsets(f.topic)).toBe(sourceEnd)
    expect(await endOffsets(f.dlqTopic)).toBe(dlqBefore + stillFailingTotal)
    expect(compareWithExpected(await readSinkState(f.pool, f.schema), expectedState(txns))).toEqual([])

    // stats: the totals by code, the new dead letters included
    const stats = await runCli(['dlq', 'stats', '--topic', f.dlqTopic, '--json'])
    expect(stats.code, stats.stderr).toBe(0)
    const sr = stats.json as DlqStatsResult
    const all = {...expectedByCode}
    for (const [c, k] of Object.entries(stillFailing)) all[c] = (all[c] ?? 0) + k
    expect(sr.by_code).toEqual(all)
    expect(sr.total).toBe(dead.length + stillFailingTotal)
    expect(sr.records).toBe(dlqBefore + stillFailingTotal)
    expect(sr.last_hour.count).toBe(sr.total)
  })
})
