/**
 * business_date of the aggregate sink (src/runtime/sinks/aggregate.ts, validate.ts) through the
 * runtime's batch transaction on the real PostgreSQL: the rows written, never a shifted day.
 */
import {describe, expect, it} from 'vitest'
import {commitBatch} from '../../src/runtime/batch.js'
import {batchFixture} from './stream-support.js'

type Rec = {id: string} & Record<string, unknown>

async function run(prefix: string, spec: string, recs: Rec[]) {
  const f = await batchFixture({
    prefix,
    tables: (s) => [`CREATE TABLE "${s}".agg (acct text, business_date date, n bigint NOT NULL DEFAULT 0, PRIMARY KEY (acct, business_date))`],
    spec,
  })
  const b = await f.batch(0, 0, recs.length - 1, (o) => recs[o]!)
  const out = await commitBatch(f.deps, b, 1)
  const rows = (await f.pool.query(`SELECT acct, business_date::text AS d, n::int FROM "${f.schema}".agg ORDER BY 1, 2`)).rows
  return {out, rows, items: b.items}
}

describe('business_date', () => {
  it('timezone Z (accepted by the spec check as UTC) gives the UTC date', async () => {
    const spec = `fields:\n  id: {type: string, required: true}\n  acct: {type: string, required: true}\n  at: {type: timestamp, required: true, formats: [iso], timezone: Z}\nkey: id\nevent_time: at\nsinks:\n  - table: agg\n    group_by: [acct, business_date]\n    aggregates: {n: count}\n`
    const {rows} = await run('rt-bd-z', spec, [{id: '1', acct: 'A', at: '2026-11-20T23:59:59.999Z'}, {id: '2', acct: 'A', at: '2026-11-21T00:00:00Z'}])
    expect(rows).toEqual([{acct: 'A', d: '2026-11-20', n: 1}, {acct: 'A', d: '2026-11-21', n: 1}])
  })

  it('a field named business_date is the group value, not replaced by the date of event_time', async () => {
    const spec = `fields:\n  id: {type: string, required: true}\n  acct: {type: string, required: true}\n  business_date: {type: date, required: true, formats: [dd.MM.yyyy]}\n  at: {type: timestamp, required: true, formats: [iso], timezone: Europe/Moscow}\nkey: id\nevent_time: at\nsinks:\n  - table: agg\n    group_by: [acct, business_date]\n    aggregates: {n: count}\n`
    // booked after the cut-off: the legacy system's business day is the next one
    const {rows} = await run('rt-bd-field', spec, [{id: '1', acct: 'A', at: '2026-11-20T16:30:00Z', business_date: '21.11.2026'}])
    expect(rows).toEqual([{acct: 'A', d: '2026-11-21', n: 1}])
  })

  it('a business_date field without a value is dead-lettered naming it, not grouped under the date of event_time', async () => {
    const spec = `fields:\n  id: {type: string, required: true}\n  acct: {type: string, required: true}\n  business_date: {type: date, formats: [dd.MM.yyyy]}\n  at: {type: timestamp, required: true, formats: [iso], timezone: Europe/Moscow}\nkey: id\nevent_time: at\nsinks:\n  - table: agg\n    group_by: [acct, business_date]\n    aggregates: {n: count}\n`
    const {rows, items} = await run('rt-bd-null', spec, [
      {id: '1', acct: 'A', at: '2026-11-20T10:00:00Z', business_date: '20.11.2026'},
      {id: '2', acct: 'A', at: '2026-11-20T10:00:00Z'},
    ])
    expect(rows).toEqual([{acct: 'A', d: '2026-11-20', n: 1}])
    expect(items.map((i) => [i.status, i.dead?.code, i.dead?.field])).toEqual([
      ['ok', undefined, undefined],
      ['dead', 'SCHEMA_VIOLATION', 'business_date'],
    ])
  })

  it('a business_date field needs no event_time', async () => {
    const spec = `fields:\n  id: {type: string, required: true}\n  acct: {type: string, required: true}\n  business_date: {type: date, required: true, formats: [iso]}\nkey: id\nsinks:\n  - table: agg\n    group_by: [acct, business_date]\n    aggregates: {n: count}\n`
    const {rows} = await run('rt-bd-noet', spec, [{id: '1', acct: 'A', business_date: '2026-11-20'}, {id: '2', acct: 'A', business_date: '2026-11-20'}])
    expect(rows).toEqual([{acct: 'A', d: '2026-11-20', n: 2}])
  })

  it('without such a field: the date of event_time in its zone, near midnight, across DST and at half- and quarter-hour offsets', async () => {
    const zones = {moscow: 'Europe/Moscow', kolkata: 'Asia/Kolkata', adelaide: 'Australia/Adelaide', ny: 'America/New_York', kathmandu: 'Asia/Kathmandu'}
    const fields = Object.entries(zones).map(([k, z]) => `  ${k}: {type: timestamp, formats: [iso, dd.MM.yyyy HH:mm:ss], timezone: ${z}}\n`).join('')
    const cases: [zone: keyof typeof zones, at: string, day: string][] = [
      ['moscow', '20.11.2026 23:59:59', '2026-11-20'],
      ['moscow', '21.11.2026 00:00:00', '2026-11-21'],
      ['moscow', '2026-11-20T21:00:00Z', '2026-11-21'],
      ['kolkata', '2026-11-20T18:29:59.999Z', '2026-11-20'],
      ['kolkata', '2026-11-20T18:30:00Z', '2026-11-21'],
      // Adelaide leaves summer time (+10:30 -> +9:30) at 03:00 on 2026-04-05
      ['adelaide', '2026-04-04T13:29:59.999Z', '2026-04-04'],
      ['adelaide', '2026-04-04T13:30:00Z', '2026-04-05'],
      ['adelaide', '2026-04-05T14:29:59Z', '2026-04-05'],
      ['adelaide', '2026-04-05T14:30:00Z', '2026-04-06'],
      // New York springs forward 2026-03-08 02:00 (-5 -> -4)
      ['ny', '2026-03-08T04:59:59Z', '2026-03-07'],
      ['ny', '2026-03-08T05:00:00Z', '2026-03-08'],
      ['ny', '2026-03-09T03:59:59Z', '2026-03-08'],
      ['ny', '2026-03-09T04:00:00Z', '2026-03-09'],
      ['kathmandu', '2026-11-20T18:14:59Z', '2026-11-20'],
      ['kathmandu', '2026-11-20T18:15:00Z', '2026-11-21'],
    ]
    for (const [i, [zone, at, day]] of cases.entries()) {
      const spec = `fields:\n  id: {type: string, required: true}\n  acct: {type: string, required: true}\n${fields}key: id\nevent_time: ${zone}\nsinks:\n  - table: agg\n    group_by: [acct, business_date]\n    aggregates: {n: count}\n`
      const {rows} = await run(`rt-bd-${i}`, spec, [{id: '1', acct: 'A', [zone]: at}])
      expect(rows, `${zone} ${at}`).toEqual([{acct: 'A', d: day, n: 1}])
    }
  })
})
