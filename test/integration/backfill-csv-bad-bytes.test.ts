/**
 * `backfill --from csv:...` on the real broker: the dead letter of a row the reader cannot read
 * holds that row's bytes as they are in the file (DESIGN.md: dead letters keep the original
 * bytes). Was: a DECODE_ERROR row (a malformed quote, a byte with no character in windows-1251)
 * was dead-lettered with a null value, only its position left; a ragged row's value was its
 * fields re-joined and re-encoded as UTF-8.
 *
 * Both ways a csv: backfill reads: with --spec (the reader in the main thread, normalizing) and
 * without (the reader in a worker thread, sending the fields as JSON). The DLQ is read back
 * with kcat, one record at a time, as bytes. A quote never closed is its own line's dead letter, the
 * lines after it sent.
 */
import {spawnSync} from 'node:child_process'
import {mkdtempSync, realpathSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {describe, expect, it, onTestFinished} from 'vitest'
import {encodeString} from '../../src/normalize/encoding.js'
import {createTestTopic, kafkaSettings, kcatConsume, runCli, testPool, uniqueName, writeBackfillSpec} from '../helpers.js'

const cp1251 = (s: string) => encodeString(s, 'windows-1251')

/** The value bytes of `topic`'s record at `offset` (partition 0), read by kcat as they are. */
function kcatValue(topic: string, offset: number): Buffer {
  const r = spawnSync('kcat', ['-b', kafkaSettings().brokers.join(','), '-C', '-t', topic, '-p', '0', '-o', String(offset), '-c', '1', '-e', '-q', '-f', '%s'], {maxBuffer: 64 * 1024 * 1024})
  if (r.status !== 0) throw new Error(`kcat failed (${r.status}): ${r.stderr.toString()}`)
  return r.stdout
}

describe('backfill csv: dead letters keep the bad line as it is in the file', () => {
  it('windows-1251: an invalid byte, a malformed quote and a ragged row; with --spec and without', async () => {
    const lines = [
      cp1251('id;acct;amt;name'), // header
      cp1251('T1;A1;10,50;Ёлка'),
      Buffer.concat([cp1251('T2;A2;11,00;Щ'), Buffer.from([0x98]), cp1251('ука')]), // line 3: 0x98 has no character in windows-1251
      cp1251('T3;A3;12,00;"Пятёрочка "№12"'), // line 4: a closing quote followed by other characters
      cp1251('T4;A4;13,00;Юла'),
      cp1251('T5;A5;14,00'), // line 6: ragged
      cp1251('T6;A6;15,00;"ООО ""Ромашка"""'),
    ]
    const dir = realpathSync(mkdtempSync(join(tmpdir(), 'cutover-bf-bad-bytes-')))
    writeFileSync(join(dir, 'bad.csv'), Buffer.concat(lines.flatMap((l) => [l, Buffer.from('\r\n')])))
    const pool = testPool()
    const ids: string[] = []
    onTestFinished(async () => {
      await pool.query('DELETE FROM cutover.backfills WHERE id = ANY($1)', [ids])
    })
    const expected = [
      {line: 3, code: 'DECODE_ERROR', message: 'bad.csv:3: field name holds bytes that are not valid windows-1251'},
      {line: 4, code: 'DECODE_ERROR', message: 'bad.csv:4: malformed quote: a closing quote followed by other characters'},
      {line: 6, code: 'SCHEMA_VIOLATION', message: 'bad.csv:6: expected 4 fields (id;acct;amt;name), got 3'},
    ]

    for (const withSpec of [true, false]) {
      const topic = await createTestTopic({prefix: 'bf-bad-bytes'})
      const dlq = await createTestTopic({prefix: 'bf-bad-bytes-dlq'})
      const id = uniqueName('bf-bad-bytes-id')
      ids.push(id)
      const spec = writeBackfillSpec(dir, {prefix: 'bf-bad-bytes', topic, dlq, text: 'name'})
      const args = ['backfill', '--from', 'csv:bad.csv?delimiter=;&encoding=windows-1251', '--to', topic, '--id', id, '--json', ...(withSpec ? ['--spec', spec] : ['--dlq', dlq])]
      const run = await runCli(args, {cwd: dir})
      const how = withSpec ? 'with --spec' : 'without --spec'
      expect(run.code, `${how}: ${run.stderr}`).toBe(0)
      expect(run.json, how).toMatchObject({status: 'completed', read: 6, sent: 3, rejected: 3, rejected_by_code: {DECODE_ERROR: 2, SCHEMA_VIOLATION: 1}})
      expect(run.json.read).toBe(run.json.sent + run.json.rejected)
      expect(kcatConsume(topic).map((r) => r.key ?? JSON.parse(r.payload!).id), how).toEqual(['T1', 'T4', 'T6'])

      const dead = kcatConsume(dlq)
      expect(dead.map((d) => d.headers['cutover.error.code']), how).toEqual(expected.map((e) => e.code))
      expect(dead.map((d) => d.headers['cutover.error.message']), how).toEqual(expected.map((e) => e.message))
      expect(dead.map((d) => d.headers['cutover.backfill.position']), how).toEqual(expected.map((e) => `bad.csv:${e.line}`))
      for (const [i, e] of expected.entries()) {
        // the line as it is in the file, no CRLF: with 0x98 (no character of windows-1251) its bytes
        // themselves, the evidence; else as UTF-8 text (the stray quote included), readable as the
        // JSON dead letters beside it are
        const value = kcatValue(dlq, dead[i]!.offset)
        const line = lines[e.line - 1]!
        const want = e.line === 3 ? line : Buffer.from(new TextDecoder('windows-1251').decode(line), 'utf8')
        expect(value.toString('hex'), `${how}: line ${e.line}`).toBe(want.toString('hex'))
      }
      expect(kcatValue(dlq, dead[1]!.offset).toString('utf8')).toBe('T3;A3;12,00;"Пятёрочка "№12"')
    }
  })

  it('a quote never closed on line 3: that line is the one dead letter, every line after it is sent (was: one dead letter holding the rest of the file); with --spec and without', async () => {
    const rows = Array.from({length: 8}, (_, i) => `T${i + 4};A${i + 4};${i + 4},00;Магазин ${i + 4}`)
    const lines = ['id;acct;amt;name', 'T1;A1;10,50;Ёлка', 'T2;A2;11,00;"Ромашка', 'T3;A3;12,00;""', ...rows].map(cp1251)
    const dir = realpathSync(mkdtempSync(join(tmpdir(), 'cutover-bf-open-quote-')))
    writeFileSync(join(dir, 'open.csv'), Buffer.concat(lines.flatMap((l) => [l, Buffer.from('\r\n')])))
    const pool = testPool()
    const ids: string[] = []
    onTestFinished(async () => {
      await pool.query('DELETE FROM cutover.backfills WHERE id = ANY($1)', [ids])
    })
    for (const withSpec of [true, false]) {
      const topic = await createTestTopic({prefix: 'bf-open-quote'})
      const dlq = await createTestTopic({prefix: 'bf-open-quote-dlq'})
      const id = uniqueName('bf-open-quote-id')
      ids.push(id)
      const spec = writeBackfillSpec(dir, {prefix: 'bf-bad-bytes', topic, dlq, text: 'name'})
      const args = ['backfill', '--from', 'csv:open.csv?delimiter=;&encoding=windows-1251', '--to', topic, '--id', id, '--json', ...(withSpec ? ['--spec', spec] : ['--dlq', dlq])]
      const run = await runCli(args, {cwd: dir})
      const how = withSpec ? 'with --spec' : 'without --spec'
      expect(run.code, `${how}: ${run.stderr}`).toBe(0)
      expect(run.json, how).toMatchObject({status: 'completed', read: 11, sent: 10, rejected: 1, rejected_by_code: {DECODE_ERROR: 1}})
      const sent = kcatConsume(topic).map((r) => JSON.parse(r.payload!) as Record<string, unknown>)
      expect(sent.map((r) => r.txn_id ?? r.id), how).toEqual(['T1', 'T3', ...rows.map((r) => r.split(';')[0])])
      // the doubled quote after the stray one is read as the empty quoted field it is
      expect(sent[1]!.name, how).toBe('')
      const dead = kcatConsume(dlq)
      expect(dead.map((d) => d.headers['cutover.error.code']), how).toEqual(['DECODE_ERROR'])
      expect(dead[0]!.headers['cutover.backfill.position'], how).toBe('open.csv:3')
      expect(dead[0]!.headers['cutover.error.message'], how).toMatch(/^open\.csv:3: malformed quote: the file ends inside a quoted field: a quote opened on line 3 \(byte \d+\) is never closed; this record is line 3; the lines after it were read on as records, from line 4$/)
      expect(kcatValue(dlq, dead[0]!.offset).toString('utf8'), how).toBe('T2;A2;11,00;"Ромашка')
    }
  })
})
