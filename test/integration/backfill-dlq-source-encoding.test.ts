/**
 * A backfill's dead letter whose value is the file's bytes in its own encoding (a windows-1251
 * line holding the invalid byte 0x98, an EBCDIC record with a bad packed field) carries
 * `cutover.source.encoding`, and `dlq inspect` shows the value decoded from it, the invalid byte
 * as \x98. Was: no header, and inspect showed the bytes as UTF-8: U+FFFD for every Cyrillic letter
 * (or, for D0 98, an "И" the file never held). A line whose every byte is a character of the
 * encoding is UTF-8 text and has no such header. The bytes stay as they are on the DLQ (kcat)
 * and through `dlq replay`.
 *
 * Both ways a file backfill reads: with --spec (the reader in the main thread) and without (the
 * reader in a worker thread).
 */
import {spawnSync} from 'node:child_process'
import {mkdtempSync, realpathSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {describe, expect, it, onTestFinished} from 'vitest'
import {forgetReplays} from '../../fixtures/dlq/cleanup.js'
import type {DlqInspectResult} from '../../src/dlq/inspect.js'
import {encodeString} from '../../src/normalize/encoding.js'
import {createTestTopic, kafkaSettings, kcatConsume, runCli, testPool, uniqueName} from '../helpers.js'

const HEADER = 'cutover.source.encoding'

/** The value bytes of `topic`'s record at `offset` (partition 0), read by kcat as they are. */
function kcatValue(topic: string, offset: number): Buffer {
  const r = spawnSync('kcat', ['-b', kafkaSettings().brokers.join(','), '-C', '-t', topic, '-p', '0', '-o', String(offset), '-c', '1', '-e', '-q', '-f', '%s'], {maxBuffer: 16 * 1024 * 1024})
  if (r.status !== 0) throw new Error(`kcat failed (${r.status}): ${r.stderr.toString()}`)
  return r.stdout
}

function specFile(dir: string, topic: string, dlq: string): string {
  const spec = join(dir, `${uniqueName('spec')}.yaml`)
  writeFileSync(
    spec,
    [
      'version: 1',
      `name: ${uniqueName('bf-encoding')}`,
      `source: { topic: ${topic}, group: ${uniqueName('g')}, format: json }`,
      'fields:',
      '  txn_id: { from: id, type: string, required: true }',
      '  acct:   { type: string }',
      '  amount: { from: amt, type: decimal, scale: 2 }',
      'key: txn_id',
      'sinks:',
      '  - table: txn_clean',
      `dlq: { topic: ${dlq} }`,
      '',
    ].join('\n'),
  )
  return spec
}

async function backfill(dir: string, from: string, topic: string, dlq: string, spec: string | undefined): Promise<void> {
  const id = uniqueName('bf-encoding-id')
  onTestFinished(async () => {
    await testPool().query('DELETE FROM cutover.backfills WHERE id = $1', [id])
  })
  const run = await runCli(['backfill', '--from', from, '--to', topic, '--id', id, '--json', ...(spec ? ['--spec', spec] : ['--dlq', dlq])], {cwd: dir})
  expect(run.code, run.stderr).toBe(0)
  expect(run.json).toMatchObject({status: 'completed'})
}

async function inspect(dlq: string, spec: string): Promise<DlqInspectResult> {
  const r = await runCli(['dlq', 'inspect', '--topic', dlq, '--spec', spec, '--json'])
  expect(r.code, r.stderr).toBe(0)
  return r.json as DlqInspectResult
}

describe('backfill: a dead letter holding the file bytes names their encoding, and dlq inspect decodes them', () => {
  it('windows-1251 csv, with --spec and without; the bytes unchanged on the DLQ and through dlq replay', async () => {
    const dir = realpathSync(mkdtempSync(join(tmpdir(), 'cutover-bf-encoding-')))
    const cp = (s: string) => encodeString(s, 'windows-1251')
    const badByte = Buffer.concat([cp('T2;'), Buffer.from([0xd0, 0x98]), cp(';2,00')]) // Р, then 0x98: no windows-1251 character (and valid UTF-8, "И")
    const lines = [cp('id;acct;amt'), cp('T1;Счёт;1,00'), badByte, cp('T3;Щука;3,00;лишнее')]
    writeFileSync(join(dir, 'bad.csv'), Buffer.concat(lines.flatMap((l) => [l, Buffer.from('\r\n')])))
    const from = 'csv:bad.csv?delimiter=;&encoding=windows-1251'

    // the two ways side by side (each on its own topics): a CLI run is mostly its start-up
    const way = async (withSpec: boolean): Promise<void> => {
      const how = withSpec ? 'with --spec' : 'without --spec'
      const topic = await createTestTopic({prefix: 'bf-encoding'})
      const dlq = await createTestTopic({prefix: 'bf-encoding-dlq'})
      const spec = specFile(dir, topic, dlq)
      await backfill(dir, from, topic, dlq, withSpec ? spec : undefined)

      const dead = kcatConsume(dlq)
      expect(dead.map((d) => [d.headers['cutover.error.code'], d.headers['cutover.backfill.position'], d.headers[HEADER]]), how).toEqual([
        ['DECODE_ERROR', 'bad.csv:3', 'windows-1251'],
        ['SCHEMA_VIOLATION', 'bad.csv:4', undefined], // UTF-8 text: every byte a character of windows-1251
      ])
      expect(kcatValue(dlq, dead[0]!.offset).toString('hex'), how).toBe(badByte.toString('hex'))
      expect(kcatValue(dlq, dead[1]!.offset).toString('utf8'), how).toBe('T3;Щука;3,00;лишнее')

      const seen = await inspect(dlq, spec)
      expect(seen.samples.DECODE_ERROR, how).toEqual([
        expect.objectContaining({value: 'T2;Р\\x98;2,00', value_encoding: 'windows-1251', value_note: expect.stringContaining('decoded from windows-1251')}),
      ])
      expect(seen.samples.SCHEMA_VIOLATION![0]!.value, how).toBe('T3;Щука;3,00;лишнее')
      expect(seen.samples.SCHEMA_VIOLATION![0]!.value_encoding, how).toBeUndefined()

      if (withSpec) {
        // replayed, the bytes are still the file's
        const to = await createTestTopic({prefix: 'bf-encoding-replayed'})
        onTestFinished(() => forgetReplays(testPool(), dlq))
        const replay = await runCli(['dlq', 'replay', '--topic', dlq, '--spec', spec, '--to', to, '--code', 'DECODE_ERROR', '--json'])
        expect(replay.code, replay.stderr).toBe(0)
        expect(replay.json).toMatchObject({status: 'completed', sent: 1})
        expect(kcatValue(to, 0).toString('hex')).toBe(badByte.toString('hex'))
        // the header is dead-letter bookkeeping: the replayed record goes without it
        expect(kcatConsume(to).map((m) => Object.keys(m.headers))).toEqual([expect.not.arrayContaining([HEADER])])
      }
    }
    await Promise.all([way(true), way(false)])
  })

  it('fixed cp037: the record of a bad packed field, and of one a fixed spec rejects, with its encoding; inspect shows its text', async () => {
    const dir = realpathSync(mkdtempSync(join(tmpdir(), 'cutover-bf-encoding-')))
    writeFileSync(join(dir, 'rec.cpy'), '       01 REC.\n          05 ID   PIC X(4).\n          05 ACCT PIC X(4).\n          05 AMT  PIC S9(5)V99 COMP-3.\n')
    const record = (text: string, amt: number[]) => Buffer.concat([encodeString(text, 'cp037'), Buffer.from(amt)])
    const good = record('T001Acc1', [0x00, 0x01, 0x23, 0x4c])
    const bad = record('T002Acc2', [0x00, 0x3a, 0x30, 0x0c]) // 0x3A: no packed digit
    const refused = record('T003Ac$3', [0x00, 0x00, 0x10, 0x0c]) // read, but the spec's pattern refuses its acct
    writeFileSync(join(dir, 'TXN.DAT'), Buffer.concat([good, bad, refused]))
    const from = 'fixed:TXN.DAT?copybook=rec.cpy&encoding=cp037'
    const topic = await createTestTopic({prefix: 'bf-encoding'})
    const dlq = await createTestTopic({prefix: 'bf-encoding-dlq'})
    const specTopic = await createTestTopic({prefix: 'bf-encoding'})
    const specDlq = await createTestTopic({prefix: 'bf-encoding-dlq'})
    // a fixed spec: records are sent (and dead-lettered) as their copybook bytes, as stream run reads them
    const fixedSpec = join(dir, 'fixed.yaml')
    writeFileSync(
      fixedSpec,
      [
        'version: 1',
        `name: ${uniqueName('bf-encoding-fixed')}`,
        `source: { topic: ${specTopic}, group: ${uniqueName('g')}, format: fixed, encoding: cp037, copybook: rec.cpy }`,
        'fields:',
        '  txn_id: { from: id, type: string, required: true }',
        '  acct:   { type: string, pattern: "^Acc[0-9]$" }',
        '  amount: { from: amt, type: decimal, scale: 2 }',
        'key: txn_id',
        `dlq: { topic: ${specDlq} }`,
        '',
      ].join('\n'),
    )
    await Promise.all([backfill(dir, from, topic, dlq, undefined), backfill(dir, from, specTopic, specDlq, fixedSpec)])

    const dead = kcatConsume(dlq)
    expect(dead.map((d) => [d.headers['cutover.error.code'], d.headers[HEADER]])).toEqual([['DECODE_ERROR', 'cp037']])
    expect(kcatValue(dlq, dead[0]!.offset).toString('hex')).toBe(bad.toString('hex'))
    const specDead = kcatConsume(specDlq)
    expect(specDead.map((d) => [d.headers['cutover.error.code'], d.headers['cutover.error.stage'], d.headers[HEADER]])).toEqual([
      ['DECODE_ERROR', 'decode', 'cp037'],
      ['PATTERN_MISMATCH', 'normalize', 'cp037'],
    ])
    expect(kcatValue(specDlq, specDead[0]!.offset).toString('hex')).toBe(bad.toString('hex'))
    expect(kcatValue(specDlq, specDead[1]!.offset).toString('hex')).toBe(refused.toString('hex'))

    const seen = await inspect(dlq, specFile(dir, topic, dlq))
    const sample = seen.samples.DECODE_ERROR![0]!
    expect(sample.value_encoding).toBe('cp037')
    expect(sample.value).toMatch(/^T002Acc2/)
    expect(sample.value).not.toContain('\uFFFD')
  })
})
