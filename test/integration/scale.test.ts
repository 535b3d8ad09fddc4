/**
 * Horizontal scale (issue 4, acceptance): two `stream run` processes with the same spec share
 * one 6-partition topic through the consumer group, fed live for about 8 s; one is killed with
 * SIGKILL mid-feed (no chance to flush or commit anything); the survivor, and a restart when the
 * survivor finished its own partitions before the group (after the dead member's session
 * timeout) gave it the dead one's, complete with --until-idle.
 * The final state is identical to a single uninterrupted run: the same rows, the same
 * aggregates (each record counted once), the same dead letters.
 *
 * Through the built CLI against the real broker and PostgreSQL; size with CUTOVER_TEST_RECORDS
 * (default 20,000).
 */
import {mkdtempSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {describe, expect, it, onTestFinished} from 'vitest'
import {createTestSchema, createTestTopic, kafka, kafkaSettings, testPool, uniqueName} from '../helpers.js'
import {expectedState, generateTransactions} from '../../fixtures/generator/transactions.js'
import {cardTransactionSpec, compareWithExpected, createSinkTables, forgetPipeline, readSinkState} from '../../fixtures/generator/pipeline.js'
import {deadLettersByCode, kcatRead, producePaced, sortedCounts, startStreamRun, tail, until} from '../../fixtures/generator/stream-harness.js'
import {groupAssignments} from './stream-support.js'

const N = Number(process.env.CUTOVER_TEST_RECORDS ?? 20_000)
const FEED_SECONDS = 8

describe('two stream run processes share one topic', () => {
  it('one is killed -9 mid-run; the final state equals a single-process run', async () => {
    const txns = generateTransactions(N, {seed: 5303, idPrefix: 'SC'})
    const expected = expectedState(txns)
    const topic = await createTestTopic({partitions: 6, prefix: 'scale'})
    const dlqTopic = await createTestTopic({prefix: 'scale-dlq'})
    const pool = testPool()
    const schema = await createTestSchema(pool)
    await createSinkTables(pool, schema)
    const name = uniqueName('scale')
    onTestFinished(() => forgetPipeline(pool, name))
    const dir = mkdtempSync(join(tmpdir(), 'cutover-scale-'))
    onTestFinished(() => rmSync(dir, {recursive: true, force: true}))
    const spec = join(dir, 'spec.yaml')
    writeFileSync(spec, cardTransactionSpec({name, topic, group: `${name}-group`, dlqTopic}))
    const args = ['--spec', spec, '--schema', schema, '--until-idle', '--json']
    // idle long enough not to leave before the feed starts (the topic is empty at first)
    const a = startStreamRun([...args, '--idle-ms', '10000'])
    const b = startStreamRun([...args, '--idle-ms', '10000'])
    onTestFinished(() => {
      a.kill('SIGKILL')
      b.kill('SIGKILL')
    })
    // both processes are members of the group, each consumer (two per process) with its share of the partitions
    await until(async () => (await groupAssignments(`${name}-group`)).filter((p) => p.length > 0).length === 4, () => !a.exited && !b.exited, 'both processes shared the partitions', 250)

    // a live feed of about FEED_SECONDS; process A is killed -9 once a third of it is in PostgreSQL
    // its failure is kept and asserted below, not left as an unhandled rejection if a wait fails first
    const feed = producePaced(kafka(), topic, txns, FEED_SECONDS).then(
      () => null,
      (e: unknown) => e,
    )
    const rows = async () => Number((await pool.query<{n: string}>(`SELECT count(*) AS n FROM "${schema}".txn_clean`)).rows[0]!.n)
    await until(async () => (await rows()) >= expected.written / 3, () => !a.exited && !b.exited, 'a third of the rows were written')
    a.kill('SIGKILL')
    const killed = await a.done
    expect(killed.signal).toBe('SIGKILL')
    const rowsAtKill = await rows()
    expect(await feed).toBeNull()
    expect(rowsAtKill, 'the kill must land before the end of the run').toBeLessThan(expected.written)

    const survivor = await b.done
    expect(survivor.code, `survivor exited ${survivor.code}:\n${tail(survivor.stderr)}`).toBe(0)
    const runs = [survivor.json!]

    // The survivor may finish its own partitions and go idle before the group (after the dead
    // member's session timeout) hands it the others: then a restart finishes them.
    const lagLeft = async () => {
      const admin = kafka().admin()
      await admin.connect()
      try {
        const ends = await admin.fetchTopicOffsets(topic)
        const stored = await pool.query<{partition: number; next_offset: string}>(`SELECT partition, next_offset::text FROM cutover.stream_offsets WHERE pipeline = $1 AND topic = $2`, [name, topic])
        const at = new Map(stored.rows.map((r) => [r.partition, BigInt(r.next_offset)]))
        return ends.reduce((sum, e) => sum + Number(BigInt(e.high) - (at.get(e.partition) ?? 0n)), 0)
      } finally {
        await admin.disconnect()
      }
    }
    const leftAfterSurvivor = await lagLeft()
    if (leftAfterSurvivor > 0) {
      const c = startStreamRun([...args, '--idle-ms', '3000'])
      onTestFinished(() => c.kill('SIGKILL'))
      const restart = await c.done
      expect(restart.code, `restart exited ${restart.code}:\n${tail(restart.stderr)}`).toBe(0)
      runs.push(restart.json!)
    }
    console.info(`scale: ${rowsAtKill} rows at the kill; survivor read ${survivor.json?.read}; ${leftAfterSurvivor} records left after it${runs.length > 1 ? `, read by a restart (${runs[1]!.read})` : ''}`)
    expect(await lagLeft()).toBe(0)
    for (const r of runs) {
      const dead = Object.values(r.dead_lettered).reduce((x, y) => x + y, 0)
      expect(r.written + dead + r.duplicates, 'read = written + dead-lettered + duplicates').toBe(r.read)
    }

    // identical to a single-process run: every row once, every aggregate counted once
    expect(compareWithExpected(await readSinkState(pool, schema), expected)).toEqual([])
    // the dead letters: exactly the dirty records, each source record once (a repeat
    // published by the relay after the kill is recognised by its cutover.source.* headers)
    const dlq = deadLettersByCode(kcatRead(kafkaSettings().brokers.join(','), dlqTopic))
    expect(sortedCounts(dlq.byCode)).toEqual(sortedCounts(expected.deadLettered))
    // the dedupe table holds each valid key once (no record was taken as new twice)
    const keys = await pool.query<{n: string}>(`SELECT count(*) AS n FROM cutover.stream_dedupe WHERE pipeline = $1`, [name])
    expect(Number(keys.rows[0]!.n)).toBe(expected.written)
  })
})
