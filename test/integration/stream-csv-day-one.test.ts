/**
 * `stream run` on a day-one windows-1251 CSV topic (one `;` line per message, 3 partitions), as a
 * bank's file-to-Kafka bridge sends it: decimal commas, the dates in four formats, a quoted
 * delimiter, CRLF, a name with quotes left unquoted (`ООО "Ромашка"`: was a DECODE_ERROR, the csv:
 * file reader reads it), a UTF-8 BOM on the first line (was "п»ї" at the start of the key), a
 * UTF-8 line behind a BOM, a wrong field count, a malformed quote and an identical repeat. Checked
 * in PostgreSQL (the upsert and the aggregate sink, exact), in the DLQ topic read back with kcat
 * (original key and bytes, DESIGN.md headers) and in `--json` (read = written + dead-lettered +
 * duplicates). And a spec whose field reads no CSV column: exit 2 before anything is read (it was
 * null in every row, exit 0).
 */
import {spawnSync} from 'node:child_process'
import {readFileSync, writeFileSync} from 'node:fs'
import iconv from 'iconv-lite'
import {describe, expect, it} from 'vitest'
import {kafkaSettings, kcatConsume, runCli} from '../helpers.js'
import {exitedWithoutRetry, produce, startStream, streamFixture, type ProducedMessage} from './stream-support.js'

const w1251 = (s: string) => iconv.encode(s, 'win1251')
const BOM = Buffer.from([0xef, 0xbb, 0xbf])

/** Each message of a topic, its exact value bytes by partition and offset (kcat: lengths, then key and value). */
function kcatValues(topic: string): Map<string, Buffer> {
  const r = spawnSync('kcat', ['-b', kafkaSettings().brokers.join(','), '-C', '-t', topic, '-o', 'beginning', '-e', '-q', '-f', '%p %o %K %S\n%k%s'], {maxBuffer: 64 * 1024 * 1024})
  if (r.status !== 0) throw new Error(`kcat failed (${r.status}): ${r.stderr.toString()}`)
  const buf = r.stdout
  const out = new Map<string, Buffer>()
  let at = 0
  while (at < buf.length) {
    const nl = buf.indexOf(10, at)
    const [p, o, k, s] = buf.subarray(at, nl).toString('utf8').split(' ')
    at = nl + 1 + Math.max(0, Number(k))
    out.set(`${p}/${o}`, Buffer.from(buf.subarray(at, at + Math.max(0, Number(s)))))
    at += Math.max(0, Number(s))
  }
  return out
}

describe('stream run: windows-1251 CSV lines, one per message', () => {
  it('writes exact rows and aggregates, dead-letters the bad lines with their bytes, counts every record', async () => {
    const f = await streamFixture({partitions: 3, prefix: 'stream-csv-day-one'})
    const spec = readFileSync(f.specFile, 'utf8')
    const csvSource = '  format: csv\n  encoding: windows-1251\n  delimiter: ";"\n  columns: [id, acct, amt, currency, ts, merchant]\n'
    expect(spec).toContain('  format: json\n  encoding: utf-8\n')
    writeFileSync(f.specFile, spec.replace('  format: json\n  encoding: utf-8\n', csvSource))

    const messages: ProducedMessage[] = [
      {key: 'Q1', value: Buffer.concat([BOM, w1251('Q1;A1;1 234,56;RUB;20.11.2026 23:30:00;Магазин №5')])},
      {key: 'Q2', value: w1251('Q2;A1;-0,01;RUB;2026-11-21T01:30:00;ООО "Ромашка"')},
      {key: 'Q3', value: w1251('Q3;A1;(12,50);;11/21/2026 00:10;')},
      {key: 'Q4', value: w1251('Q4;A1;"1 000,00";USD;20261121001000;"ИП Иванов; филиал ""Юг"""\r\n')},
      {key: 'Q5', value: w1251(`Q5;A1;1\u00a0234\u00a0567,89;EUR;${Date.UTC(2026, 10, 20, 21, 0, 0)};Щука`)},
      {key: 'Q3', value: w1251('Q3;A1;(12,50);;11/21/2026 00:10;')},
      {key: 'X1', value: w1251('X1;A1;1,00;RUB')},
      {key: 'X2', value: w1251('X2;A1;"2,00"x;RUB;20.11.2026 10:00:00;y')},
      {key: 'X3', value: Buffer.concat([BOM, Buffer.from('X3;A1;3,00;RUB;20.11.2026 10:00:00;Щука', 'utf8')])},
    ]
    await produce(f.topic, messages.map((m) => ({...m, headers: {'x-trace': `trace-${m.key}`}})))

    const r = await exitedWithoutRetry(startStream(f, ['--until-idle', '--idle-ms', '500', '--json']))
    expect(r.code, r.stderr).toBe(0)
    const out = JSON.parse(r.stdout) as {read: number; written: number; duplicates: number; dead_lettered: Record<string, number>}
    expect(out).toMatchObject({read: 9, written: 5, duplicates: 1, dead_lettered: {SCHEMA_VIOLATION: 1, DECODE_ERROR: 2}})
    expect(out.written + out.duplicates + Object.values(out.dead_lettered).reduce((a, b) => a + b, 0)).toBe(out.read)

    const rows = await f.pool.query(
      `SELECT txn_id, account_id, amount::text, currency, to_char(event_time AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS') AS event_time, merchant
         FROM "${f.schema}".txn_clean ORDER BY txn_id`,
    )
    expect(rows.rows).toEqual([
      {txn_id: 'Q1', account_id: 'A1', amount: '1234.56', currency: 'RUB', event_time: '2026-11-20T20:30:00', merchant: 'Магазин №5'},
      {txn_id: 'Q2', account_id: 'A1', amount: '-0.01', currency: 'RUB', event_time: '2026-11-20T22:30:00', merchant: 'ООО "Ромашка"'},
      {txn_id: 'Q3', account_id: 'A1', amount: '-12.50', currency: 'RUB', event_time: '2026-11-20T21:10:00', merchant: null},
      {txn_id: 'Q4', account_id: 'A1', amount: '1000.00', currency: 'USD', event_time: '2026-11-20T21:10:00', merchant: 'ИП Иванов; филиал "Юг"'},
      {txn_id: 'Q5', account_id: 'A1', amount: '1234567.89', currency: 'EUR', event_time: '2026-11-20T21:00:00', merchant: 'Щука'},
    ])
    // business_date: the Moscow date of event_time
    const totals = await f.pool.query(`SELECT business_date::text, txn_count::int, amount_sum::text FROM "${f.schema}".account_daily_totals ORDER BY 1`)
    expect(totals.rows).toEqual([
      {business_date: '2026-11-20', txn_count: 1, amount_sum: '1234.56'},
      {business_date: '2026-11-21', txn_count: 4, amount_sum: '1235555.38'},
    ])

    const dead = kcatConsume(f.dlqTopic)
    const bytes = kcatValues(f.dlqTopic)
    expect(dead.map((d) => [d.key, d.headers['cutover.error.code'], d.headers['cutover.error.stage']]).sort()).toEqual([
      ['X1', 'SCHEMA_VIOLATION', 'decode'],
      ['X2', 'DECODE_ERROR', 'decode'],
      ['X3', 'DECODE_ERROR', 'decode'],
    ])
    for (const d of dead) {
      const sent = messages.find((m) => m.key === d.key)!
      expect(bytes.get(`${d.partition}/${d.offset}`)?.equals(sent.value), d.key!).toBe(true)
      expect(d.headers).toMatchObject({
        'x-trace': `trace-${d.key}`,
        'cutover.source.topic': f.topic,
        'cutover.pipeline': f.name,
        'cutover.attempts': '1',
        'cutover.replay.count': '0',
      })
      for (const h of ['cutover.error.message', 'cutover.source.partition', 'cutover.source.offset', 'cutover.source.timestamp', 'cutover.pipeline.version', 'cutover.failed.at']) {
        expect(d.headers[h], `${d.key} ${h}`).toBeTruthy()
      }
    }
    expect(dead.find((d) => d.key === 'X3')!.headers['cutover.error.message']).toBe('the value starts with a UTF-8 byte order mark (EF BB BF) and is UTF-8 text, not windows-1251 (the source.encoding)')

    // a field reading a column the spec does not list: refused at start, nothing read
    writeFileSync(f.specFile, spec.replace('  format: json\n  encoding: utf-8\n', csvSource.replace('merchant]', 'merch]')))
    const bad = await runCli(['stream', 'run', '--spec', f.specFile, '--schema', f.schema, '--until-idle', '--json'])
    expect(bad.code, bad.stdout + bad.stderr).toBe(2)
    expect(bad.json.error).toMatchObject({code: 'SPEC_INVALID', message: expect.stringContaining('source.columns has no column merchant; it has: id, acct, amt, currency, ts, merch')})
  })
})
