/**
 * `dlq inspect --spec` of `stream run`'s dead letters from a topic in another encoding than UTF-8
 * (the spec's source.encoding): the relay publishes them without cutover.source.encoding (the
 * original headers and DESIGN's), and the value is the message as the topic held it. Inspect reads
 * a dead letter of the spec's pipeline in that encoding and says so (`value_encoding`, the note).
 * Was: a windows-1251 CSV line shown as UTF-8, U+FFFD for every Cyrillic letter; an EBCDIC record
 * the same. A dead letter backfill wrote itself (UTF-8 text, no header) is still read as UTF-8.
 * `dlq replay --dry-run` already decoded with the spec (the runtime's own decode stage).
 */
import {mkdtempSync, readFileSync, realpathSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {describe, expect, it, onTestFinished} from 'vitest'
import type {DlqInspectResult} from '../../src/dlq/inspect.js'
import {encodeString} from '../../src/normalize/encoding.js'
import {createTestTopic, runCli, testPool, uniqueName} from '../helpers.js'
import {produce} from './stream-support.js'

interface Pipeline {
  name: string
  topic: string
  dlq: string
  spec: string
}

/** Topics and a spec `name: <unique>` with `source` (and the topic), fields and the DLQ topic; its rows forgotten after the test. */
async function pipeline(dir: string, source: string, fields: string[]): Promise<Pipeline> {
  const name = uniqueName('inspect-enc')
  const [topic, dlq] = await Promise.all([createTestTopic({prefix: `${name}-raw`}), createTestTopic({prefix: `${name}-dlq`})])
  const spec = join(dir, `${name}.yaml`)
  const text = (body: string[]) => ['version: 1', `name: ${name}`, `source: { topic: ${topic}, group: ${name}-g, ${source} }`, 'fields:', ...body, 'key: txn_id', `dlq: { topic: ${dlq} }`, ''].join('\n')
  writeFileSync(spec, text(fields))
  onTestFinished(async () => {
    for (const table of ['stream_offsets', 'outbox']) await testPool().query(`DELETE FROM cutover.${table} WHERE pipeline = $1`, [name])
  })
  return {name, topic, dlq, spec}
}

async function streamRun(p: Pipeline, dead: Record<string, number>): Promise<void> {
  const run = await runCli(['stream', 'run', '--spec', p.spec, '--until-idle', '--idle-ms', '300', '--json'])
  expect(run.code, run.stderr).toBe(0)
  expect(run.json).toMatchObject({dead_lettered: dead})
}

async function inspect(p: Pipeline): Promise<DlqInspectResult> {
  const r = await runCli(['dlq', 'inspect', '--topic', p.dlq, '--spec', p.spec, '--json'])
  expect(r.code, r.stderr).toBe(0)
  return r.json as DlqInspectResult
}

describe('dlq inspect --spec: a stream run dead letter of a non-UTF-8 topic', () => {
  it('windows-1251 csv and cp037 fixed: shown decoded with the spec source.encoding, and said so', async () => {
    const dir = realpathSync(mkdtempSync(join(tmpdir(), 'cutover-inspect-enc-')))

    const csv = async (): Promise<void> => {
      const p = await pipeline(dir, 'format: csv, encoding: windows-1251, delimiter: ";", columns: [id, acct, amt, merchant]', [
        '  txn_id:   { from: id, type: string, required: true }',
        '  acct:     { type: string }',
        '  amount:   { from: amt, type: decimal, scale: 2, required: true }',
        '  merchant: { type: string }',
      ])
      const cp = (s: string) => encodeString(s, 'windows-1251')
      await produce(p.topic, [
        {key: 'T1', value: cp('T1;Счёт;1,00;Пятёрочка')},
        {key: 'T2', value: cp('T2;Щука;сто;Магнит')},
      ])
      await streamRun(p, {UNPARSEABLE_AMOUNT: 1})
      // a dead letter of backfill itself, with this spec: a line of the wrong field count, UTF-8 text
      writeFileSync(join(dir, `${p.name}.csv`), Buffer.concat([cp('id;acct;amt;merchant\r\n'), cp('T3;Ёлка;3,00;Лента;лишнее\r\n')]))
      const id = uniqueName('inspect-enc-bf')
      onTestFinished(async () => {
        await testPool().query('DELETE FROM cutover.backfills WHERE id = $1', [id])
      })
      const bf = await runCli(['backfill', '--from', `csv:${p.name}.csv?delimiter=;&encoding=windows-1251`, '--to', p.topic, '--spec', p.spec, '--id', id, '--json'], {cwd: dir})
      expect(bf.code, bf.stderr).toBe(0)
      expect(bf.json).toMatchObject({status: 'completed', rejected: 1})

      const seen = await inspect(p)
      expect(seen.samples.UNPARSEABLE_AMOUNT).toEqual([
        expect.objectContaining({
          key: 'T2',
          value: 'T2;Щука;сто;Магнит',
          value_encoding: 'windows-1251',
          value_note: "decoded from windows-1251, the --spec's source.encoding: the dead letter is of its pipeline",
        }),
      ])
      expect(seen.samples.SCHEMA_VIOLATION).toEqual([expect.objectContaining({value: 'T3;Ёлка;3,00;Лента;лишнее'})])
      expect(seen.samples.SCHEMA_VIOLATION![0]!.value_encoding).toBeUndefined()

      // the dry run reads the record in the spec's encoding too: a Cyrillic pattern passes, a Latin one does not
      const dryRun = async (label: string, merchant: string) => {
        const fixedSpec = join(dir, `${p.name}-${label}.yaml`)
        writeFileSync(fixedSpec, readFileSync(p.spec, 'utf8').replace('type: decimal, scale: 2', 'type: string').replace('merchant: { type: string }', `merchant: { type: string, pattern: "${merchant}" }`))
        const r = await runCli(['dlq', 'replay', '--topic', p.dlq, '--spec', fixedSpec, '--code', 'UNPARSEABLE_AMOUNT', '--dry-run', '--json'])
        expect(r.code, r.stderr).toBe(0)
        return r.json.prediction.UNPARSEABLE_AMOUNT
      }
      const [cyrillic, latin] = await Promise.all([dryRun('cyrillic', '^[А-Яа-яЁё]+$'), dryRun('latin', '^[A-Za-z]+$')])
      expect(cyrillic).toMatchObject({would_pass: 1, still_failing: {}})
      expect(latin).toMatchObject({would_pass: 0, still_failing: {PATTERN_MISMATCH: 1}})
    }

    const fixed = async (): Promise<void> => {
      writeFileSync(join(dir, 'rec.cpy'), '       01 REC.\n          05 ID   PIC X(4).\n          05 ACCT PIC X(4).\n          05 AMT  PIC S9(5)V99 COMP-3.\n')
      const p = await pipeline(dir, 'format: fixed, encoding: cp037, copybook: rec.cpy', [
        '  txn_id: { from: id, type: string, required: true }',
        '  acct:   { type: string, pattern: "^Acc[0-9]$" }',
        '  amount: { from: amt, type: decimal, scale: 2 }',
      ])
      const record = (text: string, amt: number[]) => Buffer.concat([encodeString(text, 'cp037'), Buffer.from(amt)])
      await produce(p.topic, [
        {key: 'T001', value: record('T001Acc1', [0x00, 0x01, 0x23, 0x4c])},
        {key: 'T003', value: record('T003Ac$3', [0x00, 0x00, 0x10, 0x0c])}, // the pattern refuses its acct
      ])
      await streamRun(p, {PATTERN_MISMATCH: 1})
      const sample = (await inspect(p)).samples.PATTERN_MISMATCH![0]!
      expect(sample.value_encoding).toBe('cp037')
      expect(sample.value).toBe('T003Ac$3\u0000\u0000\u0010\f')
      expect(sample.value_note).toMatch(/^decoded from cp037, the --spec's source\.encoding/)
    }

    await Promise.all([csv(), fixed()])
  })
})
