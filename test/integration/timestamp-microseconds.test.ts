/**
 * Microseconds of legacy timestamps (DB2 2026-11-20-09.15.00.123456, ISO .123456+03:00,
 * PostgreSQL .123456+00) kept end to end: `normalize` to NDJSON, and `stream run` into a
 * timestamptz column as psql shows it, against the real broker and PostgreSQL. Two records that
 * differ only in the microseconds are not identical to the dedupe; the business date of an
 * instant a microsecond either side of local midnight is its own day; a fraction finer than a
 * microsecond (.NET's 7 digits, Java's 9: timestamptz cannot hold them) is rounded to it as
 * PostgreSQL rounds it on input, half to even.
 */
import {execFileSync} from 'node:child_process'
import {readFileSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'
import {describe, expect, it} from 'vitest'
import type {StreamRunResult} from '../../src/runtime/run.js'
import {kcatConsume, runCli, settings, tempDir} from '../helpers.js'
import {produce, streamFixture} from './stream-support.js'

/** What psql prints for `sql` (unaligned, tuples only), in the UTC session time zone. */
function psql(sql: string): string {
  return execFileSync('psql', ['-qAtX', '-v', 'ON_ERROR_STOP=1', '-c', "SET TIME ZONE 'UTC'", '-c', sql, settings().databaseUrl], {encoding: 'utf8'}).trim()
}

const rest = '"acct": "A1", "amt": "10.00", "currency": "RUB", "merchant": "m"'

describe('timestamps with microseconds', () => {
  it('stream run: kept to the µs in timestamptz (psql shows .123456), the dedupe tells µs apart, the business date is unchanged, finer fractions are rounded as PostgreSQL rounds them', async () => {
    const f = await streamFixture({partitions: 1, prefix: 'stream-us'})
    const values: [string, string][] = [
      ['U1', `{"id": "U1", "ts": "2026-11-20T09:15:00.123456+03:00", ${rest}}`],
      // the same instant written another way: identical, a duplicate
      ['U1', `{"id": "U1", "ts": "2026-11-20 06:15:00.123456+00", ${rest}}`],
      // one microsecond later: not identical
      ['U1', `{"id": "U1", "ts": "2026-11-20T09:15:00.123457+03:00", ${rest}}`],
      // a microsecond before and after local midnight in Moscow (UTC+3)
      ['U2', `{"id": "U2", "ts": "2026-11-20 23:59:59.999999", ${rest.replace('A1', 'A2')}}`],
      ['U3', `{"id": "U3", "ts": "2026-11-21T00:00:00.000001+03:00", ${rest.replace('A1', 'A2')}}`],
      ['N1', `{"id": "N1", "ts": "2026-11-20T09:15:00.123456789Z", ${rest}}`],
      // .NET's "o" format: 7 digits, half to even as PostgreSQL (.1234565 is .123456)
      ['N2', `{"id": "N2", "ts": "2026-11-20T09:15:00.1234565Z", ${rest}}`],
    ]
    await produce(f.topic, values.map(([key, v]) => ({key, value: Buffer.from(v)})))
    const r = await runCli(['stream', 'run', '--spec', f.specFile, '--schema', f.schema, '--until-idle', '--idle-ms', '500', '--json'])
    expect(r.code, r.stderr).toBe(0)
    expect(r.json as StreamRunResult).toMatchObject({read: 7, written: 5, duplicates: 1, dead_lettered: {DUPLICATE_CONFLICT: 1}})

    expect(psql(`SELECT txn_id, event_time, event_time = '2026-11-20T09:15:00.123456789Z'::timestamptz FROM "${f.schema}".txn_clean WHERE txn_id LIKE 'N%' ORDER BY txn_id`).split('\n')).toEqual([
      // as PostgreSQL itself stores the text given
      'N1|2026-11-20 09:15:00.123457+00|t',
      'N2|2026-11-20 09:15:00.123456+00|f',
    ])
    expect(psql(`SELECT txn_id, event_time FROM "${f.schema}".txn_clean WHERE txn_id LIKE 'U%' ORDER BY txn_id`).split('\n')).toEqual([
      'U1|2026-11-20 06:15:00.123456+00',
      'U2|2026-11-20 20:59:59.999999+00',
      'U3|2026-11-20 21:00:00.000001+00',
    ])
    expect(psql(`SELECT account_id, business_date, txn_count FROM "${f.schema}".account_daily_totals ORDER BY 1, 2`).split('\n')).toEqual([
      'A1|2026-11-20|3',
      'A2|2026-11-20|1',
      'A2|2026-11-21|1',
    ])

    const dead = kcatConsume(f.dlqTopic)
    expect(dead.map((d) => [d.key, d.headers['cutover.error.code'], d.headers['cutover.error.stage']])).toEqual([
      ['U1', 'DUPLICATE_CONFLICT', 'dedupe'],
    ])
    expect(r.stderr).not.toContain('sink.timestamp_rounded')

    // a timestamptz(3) column: PostgreSQL rounds the microseconds; said at start, once, not refused
    await f.pool.query(`ALTER TABLE "${f.schema}".txn_clean ALTER COLUMN event_time TYPE timestamptz(3)`)
    const again = await runCli(['stream', 'run', '--spec', f.specFile, '--schema', f.schema, '--until-idle', '--idle-ms', '300', '--json'])
    expect(again.code, again.stderr).toBe(0)
    const warned = again.stderr.split('\n').filter((l) => l.includes('sink.timestamp_rounded'))
    expect(warned).toHaveLength(1)
    expect(JSON.parse(warned[0]!)).toMatchObject({column: 'event_time', note: expect.stringContaining('is timestamptz(3): a value with more than 3 digits after the second')})
  })

  it('normalize: DB2, ISO and PostgreSQL forms keep their microseconds in the NDJSON', async () => {
    const dir = tempDir('normalize-us-')
    const spec = join(dir, 'spec.yaml')
    writeFileSync(
      spec,
      'version: 1\nname: us\nsource: { topic: us.raw, format: json }\nfields:\n  id: { type: string, required: true }\n' +
        '  ts: { type: timestamp, required: true, timezone: Europe/Moscow, formats: ["iso", "yyyy-MM-dd-HH.mm.ss.SSSSSS"] }\n' +
        'key: id\nsinks:\n  - table: t\ndlq: { topic: us.dlq }\n',
    )
    const csv = join(dir, 'in.csv')
    writeFileSync(csv, 'id,ts\ndb2,2026-11-20-09.15.00.123456\niso,2026-11-20T09:15:00.123456+03:00\npg,2026-11-20 06:15:00.000456+00\nms,2026-11-20T09:15:00.123+03:00\n')
    const out = join(dir, 'out.ndjson')
    const r = await runCli(['normalize', `csv:${csv}`, '--spec', spec, '--out', out, '--json'])
    expect(r.code, r.stderr).toBe(0)
    expect(readFileSync(out, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as unknown)).toEqual([
      {id: 'db2', ts: '2026-11-20T06:15:00.123456Z'},
      {id: 'iso', ts: '2026-11-20T06:15:00.123456Z'},
      {id: 'pg', ts: '2026-11-20T06:15:00.000456Z'},
      {id: 'ms', ts: '2026-11-20T06:15:00.123Z'},
    ])
  })
})
