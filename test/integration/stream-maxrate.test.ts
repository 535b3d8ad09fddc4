/**
 * `--max-rate` and the consumer group: a process that joins while another one is working
 * through fetched batches at the capped rate gets its share of the partitions, instead of
 * waiting for the first one to finish everything it fetched (kafkajs rebalances only once every
 * member's eachBatch has returned; a batch waiting for rate tokens is dropped, uncommitted, on a
 * rebalance and fetched again by the partition's next owner).
 *
 * Outcomes asserted: the process that joined late read a real share of the records, and the
 * final state is exactly the expected one (each row once, aggregates counted once).
 */
import {mkdtempSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {describe, expect, it, onTestFinished} from 'vitest'
import {createTestSchema, createTestTopic, kafka, testPool, uniqueName} from '../helpers.js'
import {expectedState, generateTransactions} from '../../fixtures/generator/transactions.js'
import {cardTransactionSpec, compareWithExpected, createSinkTables, forgetPipeline, readSinkState} from '../../fixtures/generator/pipeline.js'
import {produceTransactions, startStreamRun, tail, until} from '../../fixtures/generator/stream-harness.js'

const N = 12_000
const RATE = 1_000

describe('stream run --max-rate in a consumer group', () => {
  it('a process joining late gets partitions while the first waits for rate tokens', async () => {
    const txns = generateTransactions(N, {seed: 7711, idPrefix: 'MR', dirty: 0})
    const expected = expectedState(txns)
    const topic = await createTestTopic({partitions: 6, prefix: 'maxrate'})
    const dlqTopic = await createTestTopic({prefix: 'maxrate-dlq'})
    const pool = testPool()
    const schema = await createTestSchema(pool)
    await createSinkTables(pool, schema)
    const name = uniqueName('maxrate')
    onTestFinished(() => forgetPipeline(pool, name))
    const dir = mkdtempSync(join(tmpdir(), 'cutover-maxrate-'))
    onTestFinished(() => rmSync(dir, {recursive: true, force: true}))
    const spec = join(dir, 'spec.yaml')
    writeFileSync(spec, cardTransactionSpec({name, topic, group: `${name}-group`, dlqTopic}))
    await produceTransactions(kafka(), topic, txns)

    const args = ['--spec', spec, '--schema', schema, '--until-idle', '--idle-ms', '3000', '--max-rate', String(RATE), '--json']
    const a = startStreamRun(args)
    onTestFinished(() => a.kill('SIGKILL'))
    const rows = async () => Number((await pool.query<{n: string}>(`SELECT count(*) AS n FROM "${schema}".txn_clean`)).rows[0]!.n)
    // A has fetched the whole topic and works through it at RATE/s; B joins once A has written some
    await until(async () => (await rows()) >= RATE, () => !a.exited, 'the first process wrote some rows')
    const b = startStreamRun(args)
    onTestFinished(() => b.kill('SIGKILL'))

    const [ra, rb] = await Promise.all([a.done, b.done])
    expect(ra.code, tail(ra.stderr)).toBe(0)
    expect(rb.code, tail(rb.stderr)).toBe(0)
    // Without the fix B reads nothing: A keeps every partition until it has written all N. With
    // it, B's share depends on how long B takes to start and join (a loaded CI machine: ~2,000).
    expect(rb.json!.read, `A read ${ra.json!.read}, B read ${rb.json!.read}`).toBeGreaterThanOrEqual(N / 10)
    expect(ra.json!.read + rb.json!.read).toBe(N)
    expect(compareWithExpected(await readSinkState(pool, schema), expected)).toEqual([])
  })
})
