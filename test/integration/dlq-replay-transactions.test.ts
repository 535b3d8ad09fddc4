/**
 * `dlq replay` of a DLQ written one Kafka transaction per dead letter (as Spring's transactional
 * DLTs and the replay's own `<dlq>.parked` are), where a commit marker or an aborted record sits
 * where a fetch begins:
 *
 * - a range that begins with an aborted record counted it (and its marker) as "deleted by
 *   retention", after a wait;
 * - values big enough that a fetch ends on a commit marker: the ledger row stopped counting (its
 *   compare-and-set began where the marker was), so `sent`/`scanned` said 6 of 60;
 * - a range ending on a commit marker (--until) never completed: every record sent, then the run
 *   waited for ever.
 *
 * Each dead letter must be sent once (kcat, read committed), and the ledger's numbers be exact.
 */
import {mkdtempSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {describe, expect, it, onTestFinished} from 'vitest'
import {forgetReplays} from '../../fixtures/dlq/cleanup.js'
import type {DlqReplayResult} from '../../src/dlq/replay.js'
import {createTestTopic, kafka, kcatConsume, runCli, testPool} from '../helpers.js'

const PIPELINE = 'replay-transactions'

function specFor(dlq: string, source: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'cutover-replay-transactions-'))
  const spec = join(dir, 'spec.yaml')
  writeFileSync(spec, `version: 1\nname: ${PIPELINE}\nsource: { topic: ${source}, format: json }\nfields:\n  id: { type: string, required: true }\n  pad: { type: string }\nkey: id\nsinks:\n  - table: t\ndlq: { topic: ${dlq} }\n`)
  return spec
}

/** `n` dead letters, one transaction each (those whose index `aborted` picks are aborted), timestamps base + i s. */
async function transactionalDeadLetters(dlq: string, source: string, n: number, o: {padding: number; aborted: (i: number) => boolean; base: number}): Promise<string[]> {
  const producer = kafka().producer({transactionalId: `${dlq}-writer`, idempotent: true, maxInFlightRequests: 1})
  await producer.connect()
  const committed: string[] = []
  try {
    for (let i = 0; i < n; i++) {
      const t = await producer.transaction()
      await t.send({
        topic: dlq,
        messages: [
          {
            key: `k${i}`,
            value: JSON.stringify({id: `k${i}`, pad: 'x'.repeat(o.padding)}),
            timestamp: String(o.base + i * 1000),
            headers: {'cutover.error.code': 'PATTERN_MISMATCH', 'cutover.error.stage': 'validate', 'cutover.source.topic': source, 'cutover.source.partition': '0', 'cutover.source.offset': String(i), 'cutover.pipeline': PIPELINE},
          },
        ],
      })
      if (o.aborted(i)) await t.abort()
      else {
        await t.commit()
        committed.push(`k${i}`)
      }
    }
  } finally {
    await producer.disconnect()
  }
  return committed
}

async function setUp(prefix: string) {
  const dlq = await createTestTopic({partitions: 1, prefix: `${prefix}-dlq`})
  const source = await createTestTopic({partitions: 1, prefix: `${prefix}-src`})
  const pool = testPool()
  onTestFinished(() => forgetReplays(pool, dlq))
  return {dlq, source, pool, spec: specFor(dlq, source)}
}

describe('dlq replay: a DLQ written one transaction per dead letter', () => {
  it('counts exactly across fetches that end on a marker and a range that begins with an aborted record; nothing "deleted"', async () => {
    const {dlq, source, pool, spec} = await setUp('replay-tx-fetch')
    // 150 KB each: a fetch (1 MB a partition) ends after a few of them, on a record or a marker
    const committed = await transactionalDeadLetters(dlq, source, 40, {padding: 150_000, aborted: (i) => i % 4 === 0, base: Date.UTC(2026, 10, 20, 6)})
    expect(committed).toHaveLength(30)
    const r = await runCli(['dlq', 'replay', '--topic', dlq, '--spec', spec, '--json'])
    expect(r.code, r.stdout + r.stderr).toBe(0)
    expect(r.json as DlqReplayResult).toMatchObject({status: 'completed', scanned: 30, selected: 30, sent: 30, parked: 0, deleted: 0, sent_now: 30, sent_by_topic: {[source]: 30}})
    expect(r.stderr).not.toContain('replay.gap')
    expect(r.stderr).not.toContain('replay.ledger_moved')
    const row = await pool.query<{scanned: number; sent: number; deleted: number}>('SELECT scanned::int AS scanned, sent::int AS sent, deleted::int AS deleted FROM cutover.replays WHERE dlq_topic = $1', [dlq])
    expect(row.rows).toEqual([{scanned: 30, sent: 30, deleted: 0}])
    const sent = kcatConsume(source)
    expect(sent.map((m) => m.key).sort()).toEqual([...committed].sort())
  })

  it('completes a --until range that ends on a commit marker, having sent each dead letter in it once', async () => {
    const {dlq, source, spec} = await setUp('replay-tx-until')
    // a commit marker is stamped when it is written: dead letters a second apart from now on, so
    // that each marker falls between its record and the next one, as in a live DLQ
    const base = Date.now()
    await transactionalDeadLetters(dlq, source, 10, {padding: 0, aborted: () => false, base})
    // k0..k4 at offsets 0, 2, 4, 6, 8; their commit markers at 1, 3, ...: the range is [0, 10), ending on the marker at 9
    const until = new Date(base + 5000).toISOString()
    const r = await runCli(['dlq', 'replay', '--topic', dlq, '--spec', spec, '--until', until, '--json'])
    expect(r.code, r.stdout + r.stderr).toBe(0)
    const out = r.json as DlqReplayResult
    expect(out.targets).toEqual([{partition: 0, start: '0', end: '10'}])
    expect(out).toMatchObject({status: 'completed', scanned: 5, selected: 5, sent: 5, deleted: 0})
    expect(kcatConsume(source).map((m) => m.key)).toEqual(['k0', 'k1', 'k2', 'k3', 'k4'])
  })
})
