/**
 * Amounts and account numbers sent as JSON numbers of 16 digits or more, through `stream run`
 * against the real broker and PostgreSQL: JSON.parse would round them to a double (1234567890123456.7
 * to ...456.8, two 20-digit accounts to the same 40817810099910000000) without a trace; they are
 * read as written (src/normalize/json.ts), or dead-lettered when not exact at the field's scale.
 */
import {describe, expect, it} from 'vitest'
import type {StreamRunResult} from '../../src/runtime/run.js'
import {kcatConsume, runCli} from '../helpers.js'
import {produce, streamFixture} from './stream-support.js'

const TS = '"ts": "2026-11-20T10:00:00+03:00", "currency": "RUB", "merchant": "m"'

describe('stream run: long JSON numbers', () => {
  it('writes amounts and 20-digit account numbers exactly as sent, aggregates them apart, and dead-letters what a double would have rounded into scale', async () => {
    const f = await streamFixture({partitions: 1, prefix: 'stream-json-numbers'})
    const values: [string, string][] = [
      ['N1', `{"id": "N1", "acct": 40817810099910004312, "amt": 1234567890123456.7, ${TS}}`],
      ['N2', `{"id": "N2", "acct": 40817810099910004313, "amt": 4503599627370497.5, ${TS}}`],
      ['N3', `{"id": "N3", "acct": "A1", "amt": 0.30000000000000001, ${TS}}`],
      ['N4', `{"id": "N4", "acct": "A1", "amt": 12.5, "pan": "4111111111111111", ${TS}}`],
    ]
    await produce(f.topic, values.map(([key, v]) => ({key, value: Buffer.from(v)})))
    const r = await runCli(['stream', 'run', '--spec', f.specFile, '--schema', f.schema, '--until-idle', '--idle-ms', '500', '--json'])
    expect(r.code, r.stderr).toBe(0)
    const out = r.json as StreamRunResult
    expect(out).toMatchObject({read: 4, written: 3, duplicates: 0, dead_lettered: {UNPARSEABLE_AMOUNT: 1}})

    const rows = await f.pool.query<{txn_id: string; account_id: string; amount: string}>(`SELECT txn_id, account_id, amount::text FROM "${f.schema}".txn_clean ORDER BY txn_id`)
    expect(rows.rows).toEqual([
      {txn_id: 'N1', account_id: '40817810099910004312', amount: '1234567890123456.70'},
      {txn_id: 'N2', account_id: '40817810099910004313', amount: '4503599627370497.50'},
      {txn_id: 'N4', account_id: 'A1', amount: '12.50'},
    ])
    const agg = await f.pool.query<{account_id: string; txn_count: string; amount_sum: string}>(`SELECT account_id, txn_count::text, amount_sum::text FROM "${f.schema}".account_daily_totals ORDER BY account_id`)
    expect(agg.rows).toEqual([
      {account_id: '40817810099910004312', txn_count: '1', amount_sum: '1234567890123456.70'},
      {account_id: '40817810099910004313', txn_count: '1', amount_sum: '4503599627370497.50'},
      {account_id: 'A1', txn_count: '1', amount_sum: '12.50'},
    ])

    const dead = kcatConsume(f.dlqTopic)
    expect(dead.map((d) => [d.key, d.headers['cutover.error.code'], d.headers['cutover.error.stage']])).toEqual([['N3', 'UNPARSEABLE_AMOUNT', 'normalize']])
    expect(dead[0]!.headers['cutover.error.message']).toContain('0.30000000000000001')
    expect(dead[0]!.payload).toBe(values[2]![1]) // the value as it was sent
  })
})
