/**
 * A key longer than a PostgreSQL B-tree entry can hold (~2,700 bytes), through `stream run`
 * against the real broker and PostgreSQL: it used to fail its batch's dedupe claim (or the
 * sink's primary key, or an aggregate's) with 54000 on every retry, holding its partition back
 * for ever; it is one SCHEMA_VIOLATION dead letter now, and the rest of the partition is written.
 */
import {randomBytes} from 'node:crypto'
import {describe, expect, it} from 'vitest'
import type {StreamRunResult} from '../../src/runtime/run.js'
import {kcatConsume, runCli} from '../helpers.js'
import {produce, streamFixture} from './stream-support.js'

/** `n` characters that do not compress (an index entry is compressed before its size is checked). */
const noise = (n: number) => randomBytes(n).toString('base64').slice(0, n)
const value = (id: string, acct: string) => Buffer.from(JSON.stringify({id, acct, amt: '10.00', ts: '2026-11-20T10:00:00+03:00', currency: 'RUB', merchant: 'm'}))

describe('stream run: keys too long for an index', () => {
  it('dead-letters a record whose key or group_by is too long as SCHEMA_VIOLATION, and writes the rest', async () => {
    const f = await streamFixture({partitions: 1, prefix: 'stream-long-keys'})
    const longId = `T-${noise(3000)}`
    await produce(f.topic, [
      {key: 'T1', value: value('T1', 'A1')},
      {key: 'T-long', value: value(longId, 'A1')},
      {key: 'T2', value: value('T2', `A-${noise(2500)}`)},
      {key: 'T3', value: value('T3', 'A1')},
    ])
    const r = await runCli(['stream', 'run', '--spec', f.specFile, '--schema', f.schema, '--until-idle', '--idle-ms', '500', '--json'])
    expect(r.code, r.stderr).toBe(0)
    expect(r.json as StreamRunResult).toMatchObject({read: 4, written: 2, duplicates: 0, dead_lettered: {SCHEMA_VIOLATION: 2}})
    const rows = await f.pool.query<{txn_id: string}>(`SELECT txn_id FROM "${f.schema}".txn_clean ORDER BY txn_id`)
    expect(rows.rows.map((x) => x.txn_id)).toEqual(['T1', 'T3'])
    const agg = await f.pool.query(`SELECT account_id, txn_count::int AS n FROM "${f.schema}".account_daily_totals`)
    expect(agg.rows).toEqual([{account_id: 'A1', n: 2}])
    const dead = kcatConsume(f.dlqTopic)
    expect(dead.map((d) => [d.key, d.headers['cutover.error.code'], d.headers['cutover.error.stage']])).toEqual([
      ['T-long', 'SCHEMA_VIOLATION', 'validate'],
      ['T2', 'SCHEMA_VIOLATION', 'validate'],
    ])
    expect(dead[0]!.headers['cutover.error.message']).toMatch(/^field txn_id is 3002 bytes long, over the 2000 a key may be/)
    expect(dead[1]!.headers['cutover.error.message']).toMatch(/^field account_id is 2502 bytes long/)
  })
})
