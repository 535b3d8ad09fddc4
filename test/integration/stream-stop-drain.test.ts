/**
 * `stream run` stopped (SIGTERM) while its dead letters cannot be published: the DLQ topic
 * deleted, or the broker gone. It exits 0 with the batches in hand committed; the relay publishes
 * for at most STOP_DRAIN_MS (relay.ts) and the dead letters it could not publish stay unsent in
 * `cutover.outbox`, counted in the `relay.drain` and `outbox.not_drained` lines; the next run
 * publishes them, each once on the DLQ topic (read back with kcat, an independent client).
 * And the relay itself (against PostgreSQL, with a stand-in producer): a send that never answers
 * is given up at the stop's limit, its rows rolled back to unsent.
 *
 * No wall-clock limits here: how long a stop takes was measured by hand (the report of the change).
 * A stop with the broker itself gone takes the same path (the send given up at the limit); it was
 * checked by hand on a private broker (exit 0 in 7.4-8.8 s, the next run publishing each dead
 * letter once) and is not in the suite: a private broker's start and restart cost ~60 s of it.
 */
import type {Producer} from 'kafkajs'
import type pg from 'pg'
import {describe, expect, it, onTestFinished} from 'vitest'
import {kcatRead, tail, type DlqRecord} from '../../fixtures/generator/stream-harness.js'
import {generateTransactions} from '../../fixtures/generator/transactions.js'
import {silentLogger} from '../../src/log.js'
import {OutboxRelay, STOP_DRAIN_MS} from '../../src/runtime/relay.js'
import {kafka, kafkaSettings, testPool, uniqueName} from '../helpers.js'
import {committedOffsets, fromGenerated, produce, sleep, startStream, streamFixture, type StreamFixture} from './stream-support.js'

async function unsent(pool: pg.Pool, pipeline: string): Promise<number> {
  const r = await pool.query<{n: number}>('SELECT count(*)::int AS n FROM cutover.outbox WHERE pipeline = $1 AND sent_at IS NULL', [pipeline])
  return r.rows[0]!.n
}

/** polls `probe` until it returns true (0.25 s apart, at most `tries`), then returns its last answer */
async function until(probe: () => Promise<boolean>, tries = 240): Promise<boolean> {
  for (let i = 0; i < tries; i++) {
    if (await probe()) return true
    await sleep(250)
  }
  return probe()
}

/** The structured log lines of `event` in a run's stderr. */
function events(stderr: string, event: string): Record<string, unknown>[] {
  return stderr
    .split('\n')
    .filter((l) => l.includes(`"event":"${event}"`))
    .map((l) => JSON.parse(l) as Record<string, unknown>)
}

const BAD = Array.from({length: 20}, (_, i) => ({key: `bad-${i}`, value: Buffer.from(`not json ${i}`)}))

/** What a stopped run left: exit 0, the 120 records committed, the 20 dead letters unsent and said so. */
async function expectStoppedLeavingTwenty(f: StreamFixture, exit: {code: number | null; stderr: string}) {
  expect(exit.code, tail(exit.stderr, 40)).toBe(0)
  expect(await committedOffsets(f), 'the batches in hand committed').toBe(120)
  const drain = events(exit.stderr, 'relay.drain')
  expect(drain, tail(exit.stderr, 40)).toHaveLength(1)
  expect(drain[0]).toMatchObject({published: 0, left: 20, limit_ms: STOP_DRAIN_MS})
  const notDrained = events(exit.stderr, 'outbox.not_drained')
  expect(notDrained, tail(exit.stderr, 40)).toHaveLength(1)
  expect(notDrained[0]).toMatchObject({rows: 20, limit_ms: STOP_DRAIN_MS})
  expect(await unsent(f.pool, f.name)).toBe(20)
}

/** The DLQ topic holds the 20 dead letters, each once (by its source partition/offset and by key). */
function expectEachDeadLetterOnce(dlq: DlqRecord[]) {
  const sources = dlq.map((r) => `${r.headers['cutover.source.partition']}/${r.headers['cutover.source.offset']}`)
  expect(new Set(sources).size, `each dead letter once: ${sources.join(' ')}`).toBe(sources.length)
  expect(dlq.map((r) => r.key).sort()).toEqual(BAD.map((b) => b.key).sort())
  expect(dlq.every((r) => r.headers['cutover.error.code'] === 'DECODE_ERROR')).toBe(true)
}

describe('stream run: stopped while its dead letters cannot be published', () => {
  it('the DLQ topic deleted: exits 0, the unpublished dead letters stay in the outbox (counted); the next run publishes each once', async () => {
    const f = await streamFixture({partitions: 2, prefix: 'stop-drain'})
    const logs = {CUTOVER_LOG_LEVEL: 'info'}
    const first = startStream(f, [], logs)
    await produce(f.topic, fromGenerated(generateTransactions(100, {seed: 9311, dirty: 0})))
    expect(await until(async () => (await committedOffsets(f)) === 100)).toBe(true)

    // the DLQ topic gone: the dead letters of the next batches commit into the outbox and wait there
    const admin = kafka().admin()
    await admin.connect()
    await admin.deleteTopics({topics: [f.dlqTopic]})
    await admin.disconnect()
    await produce(f.topic, BAD)
    expect(await until(async () => (await committedOffsets(f)) === 120)).toBe(true)
    expect(await unsent(f.pool, f.name)).toBe(20)

    first.child.kill('SIGTERM')
    const exit = await first.exited
    await expectStoppedLeavingTwenty(f, exit)
    // the sends it gave up ended, and the producer's disconnect closed what kafkajs reopened for them
    expect(events(exit.stderr, 'stream.exit.forced'), tail(exit.stderr, 20)).toEqual([])

    // the next run creates the DLQ topic again and publishes what the first one left, once
    const second = startStream(f, ['--until-idle', '--idle-ms', '500', '--json'], logs)
    const done = await second.exited
    expect(done.code, tail(done.stderr, 40)).toBe(0)
    expect(JSON.parse(done.stdout)).toMatchObject({read: 0, lag_end: 0})
    expect(await unsent(f.pool, f.name)).toBe(0)
    expectEachDeadLetterOnce(kcatRead(kafkaSettings().brokers.join(','), f.dlqTopic))
  })

  it('OutboxRelay.stop: a send that never answers is given up at the limit, its rows rolled back to unsent and counted; a broker that answers gets the backlog', async () => {
    const pool = testPool()
    const pipeline = uniqueName('relay-stop')
    onTestFinished(async () => {
      await pool.query('DELETE FROM cutover.outbox WHERE pipeline = $1', [pipeline])
    })
    await pool.query(
      `INSERT INTO cutover.outbox (pipeline, topic, key, value, headers)
       SELECT $1, $2, convert_to('k' || i, 'UTF8'), convert_to('v' || i, 'UTF8'), '[]'::jsonb FROM generate_series(1, 3) AS i`,
      [pipeline, `${pipeline}.dlq`],
    )

    // a broker that takes the request and never answers (kafkajs would retry for ~10 s and more)
    let answer: (() => void) | undefined
    let calls = 0
    const hung = {
      sendBatch: () => {
        calls++
        return new Promise<void>((resolve) => (answer = resolve))
      },
      send: () => new Promise(() => {}),
    } as unknown as Producer
    const relay = new OutboxRelay({pool, producer: hung, pipeline, logger: silentLogger, pollMs: 50})
    relay.start()
    expect(await until(async () => calls > 0)).toBe(true)
    const r = await relay.stop(300)
    expect(r).toMatchObject({published: 0, left: 3, gaveUp: true})
    expect(await unsent(pool, pipeline)).toBe(3)
    // rolled back: the rows are not held (a relay that kept its transaction open would hold them FOR UPDATE)
    const c = await pool.connect()
    try {
      await c.query('BEGIN')
      const locked = await c.query(`SELECT id FROM cutover.outbox WHERE pipeline = $1 FOR UPDATE NOWAIT`, [pipeline])
      expect(locked.rowCount).toBe(3)
      await c.query('ROLLBACK')
    } finally {
      c.release()
    }
    // the broker answers after all: the relay gave those rows up, they stay unsent (the next run publishes them again: at-least-once)
    answer!()
    await sleep(50)
    expect(await unsent(pool, pipeline)).toBe(3)
    expect(await relay.stop(300), 'a second stop returns the first one').toBe(r)

    // the next relay, with a broker that answers: the stop publishes the backlog, each row once
    const sent: string[] = []
    const ok = {
      sendBatch: async ({topicMessages}: {topicMessages: {messages: {key: Buffer}[]}[]}) => {
        for (const t of topicMessages) for (const m of t.messages) sent.push(m.key.toString())
        return []
      },
    } as unknown as Producer
    const next = new OutboxRelay({pool, producer: ok, pipeline, logger: silentLogger, pollMs: 60_000})
    const s = await next.stop(STOP_DRAIN_MS)
    expect(s).toMatchObject({published: 3, left: 0, gaveUp: false})
    expect(sent.sort()).toEqual(['k1', 'k2', 'k3'])
    expect(await unsent(pool, pipeline)).toBe(0)
  })
})
