/**
 * A value too large for an index of the sink table, against the real broker and PostgreSQL: a
 * btree index on a column the spec's key does not cover (an index a legacy table keeps for its
 * reports) refuses a row whose value exceeds its maximum (SQLSTATE 54000 program_limit_exceeded,
 * "index row size ... exceeds btree version 4 maximum 2704", raised by _bt_check_third_page), and
 * any index past 8191 bytes ("index row requires ...", index_form_tuple_context). Such a record is
 * dead-lettered as SINK_REJECTED with PostgreSQL's message and the rest of its batch commits. Was:
 * class 54 is not a row's error, so the batch was retried forever and its partition stalled
 * behind one record (issue 4: a poison record never stops the partition).
 */
import {randomBytes} from 'node:crypto'
import {describe, expect, it} from 'vitest'
import type {StreamRunResult} from '../../src/runtime/run.js'
import {kcatConsume} from '../helpers.js'
import {produce, startStream, streamFixture, type ProducedMessage} from './stream-support.js'

describe('stream run: a value larger than an index of the sink can hold', () => {
  it('dead-letters the record as SINK_REJECTED with the index named, writes the others, and counts conserve', async () => {
    const f = await streamFixture({partitions: 2, prefix: 'stream-idx-size'})
    const s = `"${f.schema}"`
    await f.pool.query(`CREATE INDEX txn_clean_merchant ON ${s}.txn_clean (merchant)`)
    // four copies, none within pglz's 4,095-byte reach of an equal one (the copy beside each is
    // reversed): a 2,100-byte value makes 8,400 bytes that do not compress (with four plain copies
    // pglz sometimes found the repeats, and one record in a CI run was written)
    await f.pool.query(`CREATE INDEX txn_clean_merchant_x4 ON ${s}.txn_clean ((merchant || reverse(merchant) || merchant || reverse(merchant)))`)
    // incompressible text: an index tuple is compressed before its size is checked
    const noise = (bytes: number) => randomBytes(bytes).toString('base64').slice(0, bytes)
    const name = (i: number) => `IDX-${String(i).padStart(4, '0')}`
    // 3,000 bytes: over btree's 2,704; 2,100: under it, but 8,400 in the expression index, over any index's 8,191
    const merchantOf = (i: number) => (i % 40 === 0 ? noise(3000) : i % 40 === 10 ? noise(2100) : i % 40 === 20 ? '0123456789'.repeat(100) : `M${i % 13}`)
    const ids = Array.from({length: 400}, (_, k) => k + 1)
    const merchants = new Map(ids.map((i) => [i, merchantOf(i)]))
    const record = (i: number): ProducedMessage => ({
      key: name(i),
      value: Buffer.from(JSON.stringify({id: name(i), acct: `A0000${i % 7}`, amt: `${i}.10`, ts: '2026-11-20T10:00:00+03:00', merchant: merchants.get(i)})),
    })
    await produce(f.topic, ids.map(record))
    const refused = ids.filter((i) => i % 40 === 0 || i % 40 === 10)
    const written = ids.filter((i) => !refused.includes(i))

    const r = await startStream(f, ['--until-idle', '--idle-ms', '1500', '--json']).exited
    expect(r.code, r.stderr).toBe(0)
    const out = JSON.parse(r.stdout) as StreamRunResult
    expect(out).toMatchObject({read: 400, written: written.length, duplicates: 0, dead_lettered: {SINK_REJECTED: refused.length}})
    expect(out.read).toBe(out.written + Object.values(out.dead_lettered).reduce((a, b) => a + (b ?? 0), 0) + out.duplicates)

    const rows = await f.pool.query<{txn_id: string; merchant: string}>(`SELECT txn_id, merchant FROM ${s}.txn_clean ORDER BY txn_id`)
    expect(rows.rows.map((x) => x.txn_id)).toEqual(written.map(name))
    // the 1,000-character merchants (compressible: under the limit) are written whole
    expect(rows.rows.filter((x) => x.merchant.length === 1000).length).toBe(written.filter((i) => i % 40 === 20).length)
    const totals = await f.pool.query<{n: string}>(`SELECT sum(txn_count)::text AS n FROM ${s}.account_daily_totals`)
    expect(totals.rows[0]).toEqual({n: String(written.length)})
    const offsets = await f.pool.query<{n: string}>('SELECT sum(next_offset)::text AS n FROM cutover.stream_offsets WHERE pipeline = $1', [f.name])
    expect(offsets.rows[0]).toEqual({n: '400'})

    // the DLQ, read back with kcat: the refused records, their values as sent, PostgreSQL's message naming the index
    const letters = kcatConsume(f.dlqTopic)
    expect(letters.map((l) => l.key).sort()).toEqual(refused.map(name))
    for (const l of letters) {
      expect(l.headers['cutover.error.code']).toBe('SINK_REJECTED')
      expect(l.headers['cutover.error.stage']).toBe('sink')
      const i = Number(l.key!.slice(4))
      const why = i % 40 === 0 ? 'index row size 3016 exceeds btree version 4 maximum 2704 for index "txn_clean_merchant"' : 'index row requires 8416 bytes, maximum size is 8191'
      // (btree's detail names the heap tuple the entry would have pointed at, rolled back since)
      const message = l.headers['cutover.error.message']!.replace(/ \(Index row references tuple \(\d+,\d+\) in relation "txn_clean"\.\)$/, '')
      expect(message).toBe(`PostgreSQL rejected the row for ${f.schema}.txn_clean: ${why}`)
      expect((JSON.parse(l.payload!) as {merchant: string}).merchant).toBe(merchants.get(Number(l.key!.slice(4))))
    }
  })
})
