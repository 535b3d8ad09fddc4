/**
 * A view with WITH CHECK OPTION as an upsert sink, against the real broker and PostgreSQL: a row
 * the view's check refuses (SQLSTATE 44000 with_check_option_violation, raised by
 * ExecWithCheckOptions as a row-level security policy's refusal is), a new row or an update of an
 * existing one, is dead-lettered as SINK_REJECTED with PostgreSQL's message and the rest of its
 * batch commits (it was retried forever); the aggregate counts only the records whose rows were
 * written, and every record read is written, dead-lettered or a duplicate.
 */
import {describe, expect, it} from 'vitest'
import type {StreamRunResult} from '../../src/runtime/run.js'
import {kcatConsume} from '../helpers.js'
import {produce, startStream, streamFixture, type ProducedMessage} from './stream-support.js'

const CHECK_MESSAGE = 'new row violates check option for view "txn_clean"'

describe('stream run: a view WITH CHECK OPTION as the sink', () => {
  it('dead-letters the rows its check refuses as SINK_REJECTED, writes the others through it, and counts conserve', async () => {
    const f = await streamFixture({partitions: 2, prefix: 'stream-wco'})
    const s = `"${f.schema}"`
    for (const sql of [
      `ALTER TABLE ${s}.txn_clean RENAME TO txn_base`,
      `CREATE VIEW ${s}.txn_clean AS SELECT * FROM ${s}.txn_base WHERE amount <= 1000 WITH CHECK OPTION`,
      // a row the view shows, which a record would update beyond the check
      `INSERT INTO ${s}.txn_base VALUES ('OLD-1', 'A00001', 10.00, 'RUB', '2026-11-19T10:00:00Z', 'M')`,
    ]) {
      await f.pool.query(sql)
    }
    // 600 records over 2 partitions, every 30th above the view's limit; and one updating OLD-1 beyond it
    const amountOf = (i: number) => (i % 30 === 0 ? `${1000 + i}.50` : `${(i % 900) + 1}.25`)
    const ids = Array.from({length: 600}, (_, k) => k + 1)
    const name = (i: number) => `WCO-${String(i).padStart(4, '0')}`
    const record = (id: string, acct: string, amount: string): ProducedMessage => ({
      key: id,
      value: Buffer.from(JSON.stringify({id, acct, amt: amount, ts: '2026-11-20T10:00:00+03:00', merchant: 'M'})),
    })
    await produce(f.topic, [...ids.map((i) => record(name(i), `A0000${i % 7}`, amountOf(i))), record('OLD-1', 'A00001', '5000.00')])
    const refused = [...ids.filter((i) => i % 30 === 0).map(name), 'OLD-1'].sort()
    const allowed = ids.filter((i) => i % 30 !== 0)

    const r = await startStream(f, ['--until-idle', '--idle-ms', '1500', '--json']).exited
    expect(r.code, r.stderr).toBe(0)
    const out = JSON.parse(r.stdout) as StreamRunResult
    expect(out).toMatchObject({read: 601, written: allowed.length, duplicates: 0, dead_lettered: {SINK_REJECTED: refused.length}})
    expect(out.read).toBe(out.written + Object.values(out.dead_lettered).reduce((a, b) => a + (b ?? 0), 0) + out.duplicates)

    // the base table holds exactly the allowed records, and OLD-1 as it was
    const rows = await f.pool.query<{txn_id: string; amount: string}>(`SELECT txn_id, amount::text FROM ${s}.txn_base ORDER BY txn_id`)
    expect(rows.rows.map((x) => x.txn_id)).toEqual(['OLD-1', ...allowed.map(name)].sort())
    expect(rows.rows.find((x) => x.txn_id === 'OLD-1')!.amount).toBe('10.00')
    const cents = allowed.reduce((a, i) => a + Math.round(Number(amountOf(i)) * 100), 0)
    const written = await f.pool.query<{sum: string}>(`SELECT sum(amount)::text AS sum FROM ${s}.txn_base WHERE txn_id <> 'OLD-1'`)
    expect(written.rows[0]).toEqual({sum: (cents / 100).toFixed(2)})
    // the aggregate counts only the records whose rows were written
    const totals = await f.pool.query<{n: string; sum: string}>(`SELECT sum(txn_count)::text AS n, sum(amount_sum)::text AS sum FROM ${s}.account_daily_totals`)
    expect(totals.rows[0]).toEqual({n: String(allowed.length), sum: (cents / 100).toFixed(2)})
    // offsets: every record is accounted for
    const offsets = await f.pool.query<{n: string}>('SELECT sum(next_offset)::text AS n FROM cutover.stream_offsets WHERE pipeline = $1', [f.name])
    expect(offsets.rows[0]).toEqual({n: '601'})

    // the DLQ, read back with kcat, holds the refused records with the view's message
    const letters = kcatConsume(f.dlqTopic)
    expect(letters.map((l) => l.key).sort()).toEqual(refused)
    for (const l of letters) {
      expect(l.headers['cutover.error.code']).toBe('SINK_REJECTED')
      expect(l.headers['cutover.error.stage']).toBe('sink')
      // with the row the check refused (its detail; masked where a field is sensitive, stream-sensitive-rejections)
      const amount = l.key === 'OLD-1' ? '5000.00' : amountOf(Number(l.key!.slice(4)))
      expect(l.headers['cutover.error.message']).toMatch(new RegExp(`^PostgreSQL rejected the row for ${f.schema}\\.txn_clean: ${CHECK_MESSAGE} \\(Failing row contains \\(${l.key}, A\\d+, ${amount.replace('.', '\\.')}, RUB, .*, M\\)\\.\\)$`))
    }
  })
})
