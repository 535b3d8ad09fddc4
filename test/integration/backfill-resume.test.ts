/**
 * Kill -9 mid-backfill, then `--resume`: generated card transactions (fixtures/generator) on a
 * source topic are backfilled (kafka: source, no spec: value bytes, key and headers kept) into
 * the card-transactions pipeline's topic at --rate 4000; the CLI is SIGKILLed after its first
 * checkpoint and resumed. The topic then holds every source record (records resent after the last
 * checkpoint are byte-identical copies: same key, value and headers), and `stream run
 * --until-idle` over it leaves exactly the state of a correct single run: each record written once.
 */
import {spawn} from 'node:child_process'
import {mkdtempSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {describe, expect, it} from 'vitest'
import {compareWithExpected, readSinkState} from '../../fixtures/generator/pipeline.js'
import {DIRT_KINDS, expectedState, generateTransactions} from '../../fixtures/generator/transactions.js'
import {BIN, ROOT, createTestTopic, kcatConsume, runCli, testPool, uniqueName} from '../helpers.js'
import {fromGenerated, produce, sleep, startStream, streamFixture, testRecords} from './stream-support.js'

describe('backfill: kill -9 and --resume', () => {
  it('every source record lands on the topic; stream run writes each exactly once', async () => {
    const n = testRecords(Number(process.env.CUTOVER_BACKFILL_TEST_RECORDS ?? 16_000))
    const f = await streamFixture({partitions: 6, prefix: 'bf-resume'})
    const source = await createTestTopic({partitions: 3, prefix: 'bf-resume-src'})
    // every kind of dirt a JSON source can carry (undecodable values are dead letters of the backfill itself)
    const txns = generateTransactions(n, {seed: 11, dirty: 0.05, kinds: DIRT_KINDS.filter((k) => k !== 'not_json' && k !== 'invalid_utf8')})
    await produce(source, fromGenerated(txns))
    const id = uniqueName('bf-resume-id')
    const rate = 4000

    // first run: SIGKILLed after its first checkpoint
    const child = spawn(process.execPath, [BIN, 'backfill', '--from', `kafka:${source}`, '--to', f.topic, '--rate', String(rate), '--id', id, '--json'], {cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe']})
    let stderr = ''
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
    const exited = new Promise<{code: number | null; signal: NodeJS.Signals | null}>((resolve) => child.on('close', (code, signal) => resolve({code, signal})))
    let checkpointed = 0
    while (checkpointed === 0 && child.exitCode === null) {
      const r = await f.pool.query<{n: number}>(`SELECT (position->>'records')::int AS n FROM cutover.backfills WHERE id = $1`, [id])
      checkpointed = r.rows[0]?.n ?? 0
      await sleep(50)
    }
    await sleep(Math.floor(Math.random() * 700))
    child.kill('SIGKILL')
    const first = await exited
    expect(first.signal, stderr).toBe('SIGKILL')
    const onTopicAtKill = kcatConsume(f.topic).length
    expect(onTopicAtKill).toBeLessThan(n)

    // resumed (faster)
    const resumed = await runCli(['backfill', '--resume', id, '--rate', '20000', '--json'])
    expect(resumed.code, resumed.stderr).toBe(0)
    const out = resumed.json
    expect(out).toMatchObject({id, status: 'completed', read: n, sent: n, rejected: 0, runs: 2})
    expect(out.resumed_from.records).toBeGreaterThan(0)
    expect(out.resumed_from.records).toBeLessThan(n)
    expect(Object.keys(out.resumed_from.partitions)).not.toHaveLength(0)

    // the topic: every source record, and repeats only as identical copies
    const src = kcatConsume(source)
    const want = new Map(src.map((m) => [`${source}/${m.partition}@${m.offset}`, m]))
    const got = kcatConsume(f.topic)
    const seen = new Map<string, (typeof got)[number]>()
    let repeats = 0
    for (const m of got) {
      const pos = m.headers['cutover.backfill.position']!
      const s = want.get(pos)
      expect(s, pos).toBeDefined()
      expect(m.key).toBe(s!.key)
      expect(m.payload).toBe(s!.payload)
      expect(m.headers['cutover.backfill.id']).toBe(id)
      expect(m.headers['x-trace']).toBe(s!.headers['x-trace'])
      const before = seen.get(pos)
      if (before) {
        repeats++
        expect({key: m.key, payload: m.payload, headers: m.headers}).toEqual({key: before.key, payload: before.payload, headers: before.headers})
      } else seen.set(pos, m)
    }
    expect(seen.size).toBe(n)
    // nothing resent beyond what was sent after the last checkpoint (at most ~2 s of --rate plus the batches in flight)
    expect(repeats).toBeLessThanOrEqual(onTopicAtKill - out.resumed_from.records)
    console.info(`backfill-resume: killed with ${onTopicAtKill} on the topic, checkpoint at ${out.resumed_from.records}, ${repeats} resent`)

    // the pipeline: each record written exactly once
    const s = startStream(f, ['--until-idle', '--idle-ms', '1000', '--json'])
    const r = await s.exited
    expect(r.code, r.stderr.slice(-3000)).toBe(0)
    const run = JSON.parse(r.stdout) as {read: number; written: number; duplicates: number}
    expect(run.read).toBe(n + repeats)
    expect(compareWithExpected(await readSinkState(f.pool, f.schema), expectedState(txns))).toEqual([])
    await f.pool.query('DELETE FROM cutover.backfills WHERE id = $1', [id])
  })

  it('SIGTERM stops cleanly with a checkpoint (exit 143: not finished) and --resume sends the rest, nothing twice (csv: source)', async () => {
    const n = 8000
    const topic = await createTestTopic({partitions: 3, prefix: 'bf-sigterm'})
    const dir = mkdtempSync(join(tmpdir(), 'cutover-bf-term-'))
    const lines = ['id;acct;amt']
    for (let i = 0; i < n; i++) lines.push(`T${String(i).padStart(8, '0')};A${i % 97};${i},50`)
    writeFileSync(join(dir, 'src.csv'), lines.join('\n') + '\n')
    const id = uniqueName('bf-term-id')
    const child = spawn(process.execPath, [BIN, 'backfill', '--from', `csv:${join(dir, 'src.csv')}?delimiter=;`, '--to', topic, '--key', 'id', '--rate', '2000', '--id', id, '--json'], {cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe']})
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()))
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
    const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)))
    const f = {pool: testPool()}
    let checkpointed = 0
    while (checkpointed === 0 && child.exitCode === null) {
      const r = await f.pool.query<{n: number}>(`SELECT (position->>'records')::int AS n FROM cutover.backfills WHERE id = $1`, [id])
      checkpointed = r.rows[0]?.n ?? 0
      await sleep(50)
    }
    child.kill('SIGTERM')
    // 143, not 0: a scheduler that sent SIGTERM (a Kubernetes Job evicted) must not take it for done
    expect(await exited, stderr).toBe(143)
    const stopped = JSON.parse(stdout) as {status: string; sent: number; read: number}
    expect(stopped.status).toBe('stopped')
    expect(stopped.sent).toBeGreaterThan(0)
    expect(stopped.sent).toBeLessThan(n)
    // the checkpoint taken at the stop is exactly what the topic holds
    expect(kcatConsume(topic)).toHaveLength(stopped.sent)
    const row = await f.pool.query<{status: string; n: number}>(`SELECT status, (position->>'records')::int AS n FROM cutover.backfills WHERE id = $1`, [id])
    expect(row.rows[0]).toEqual({status: 'stopped', n: stopped.read})

    const resumed = await runCli(['backfill', '--resume', id, '--rate', '10000', '--json'])
    expect(resumed.code, resumed.stderr).toBe(0)
    expect(resumed.json).toMatchObject({status: 'completed', read: n, sent: n, runs: 2, resumed_from: {records: stopped.read}})
    const all = kcatConsume(topic)
    expect(all).toHaveLength(n)
    expect(new Set(all.map((m) => m.headers['cutover.backfill.position'])).size).toBe(n)
    await f.pool.query('DELETE FROM cutover.backfills WHERE id = $1', [id])
  })
})
