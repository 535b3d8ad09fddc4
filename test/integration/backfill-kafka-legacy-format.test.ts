/**
 * A kafka: source backfilled with a spec whose source.format is csv or fixed: the topic holds what
 * `stream run` with that spec consumes (one windows-1251 CSV line, or one cp037 copybook record,
 * per message), as an archive of the pipeline's own topic does. Was: the kafka: reader took each
 * value for JSON and every record became a DECODE_ERROR dead letter, exit 0 (sent 0). Now each
 * message is decoded as `stream run` decodes it: the records the spec accepts go to --to with their
 * bytes unchanged and the spec's key; one that stream run's decoder rejects is a dead letter with
 * that decoder's code and its bytes as they were.
 *
 * The source topic is made by backfilling the golden legacy file with the same spec (which sends
 * each accepted record in the spec's source.format); topics are read back with kcat, byte for byte.
 */
import {spawnSync} from 'node:child_process'
import {mkdtempSync, readFileSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {describe, expect, it} from 'vitest'
import {createTestTopic, kafka, kafkaSettings, ROOT, runCli, testPool, uniqueName} from '../helpers.js'

interface RawMessage {
  partition: number
  offset: number
  key: string | null
  /** the value's bytes, hex */
  value: string
  headers: string
}

/** A topic's messages with their exact bytes (kcat: a line of lengths, then the key and value bytes). */
function kcatRaw(topic: string): RawMessage[] {
  const brokers = kafkaSettings().brokers.join(',')
  const r = spawnSync('kcat', ['-b', brokers, '-C', '-t', topic, '-o', 'beginning', '-e', '-q', '-f', '%p %o %K %S %h\n%k%s'], {maxBuffer: 64 * 1024 * 1024})
  if (r.status !== 0) throw new Error(`kcat failed (${r.status}): ${r.stderr.toString()}`)
  const buf = r.stdout
  const out: RawMessage[] = []
  let at = 0
  while (at < buf.length) {
    const nl = buf.indexOf(10, at)
    const [p, o, k, s, ...h] = buf.subarray(at, nl).toString('utf8').split(' ')
    const keyLen = Number(k)
    const size = Number(s)
    at = nl + 1
    const key = keyLen < 0 ? null : buf.subarray(at, at + keyLen).toString('utf8')
    at += Math.max(0, keyLen)
    out.push({partition: Number(p), offset: Number(o), key, value: buf.subarray(at, at + Math.max(0, size)).toString('hex'), headers: h.join(' ')})
    at += Math.max(0, size)
  }
  return out
}

function header(m: RawMessage, name: string): string | undefined {
  return m.headers
    .split(',')
    .map((kv) => kv.split('='))
    .find(([k]) => k === name)?.[1]
}

const CASES = [
  {
    name: 'csv (windows-1251 lines)',
    golden: 'csv-windows-1251',
    from: 'csv:fixtures/legacy/txn-2026-11-20.csv?delimiter=;&encoding=windows-1251',
    source: 'format: csv, encoding: windows-1251, delimiter: ";", columns: [id, acct, amt, ts, currency, merchant]',
    // a line with two fields: stream run's csv decoder calls it SCHEMA_VIOLATION
    bad: Buffer.from('X1;A1', 'latin1'),
    badCode: 'SCHEMA_VIOLATION',
  },
  {
    name: 'fixed (cp037 copybook records)',
    golden: 'fixed-ebcdic-cp037',
    from: 'fixed:fixtures/legacy/TXN.DAT?copybook=fixtures/legacy/txn.cpy&encoding=cp037',
    source: `format: fixed, encoding: cp037, copybook: ${join(ROOT, 'fixtures/legacy/txn.cpy')}`,
    // shorter than the copybook's record: SCHEMA_VIOLATION
    bad: Buffer.from([0xc1, 0xc2, 0xc3]),
    badCode: 'SCHEMA_VIOLATION',
  },
]

describe('backfill: a kafka: source with a csv or fixed spec', () => {
  it.each(CASES)('$name: the records the spec accepts are sent, bytes unchanged (was: all DECODE_ERROR, sent 0)', async (c) => {
    const pool = testPool()
    const archive = await createTestTopic({partitions: 2, prefix: 'bf-kfmt-archive'})
    const target = await createTestTopic({partitions: 2, prefix: 'bf-kfmt-target'})
    const dlq = await createTestTopic({partitions: 1, prefix: 'bf-kfmt-dlq'})
    const dir = mkdtempSync(join(tmpdir(), 'cutover-bf-kfmt-'))
    const spec = join(dir, 'spec.yaml')
    writeFileSync(
      spec,
      readFileSync(join(ROOT, `fixtures/golden/${c.golden}/spec.yaml`), 'utf8')
        .replace(/^source: .*$/m, `source: { topic: ${archive}, group: ${uniqueName('g')}, ${c.source} }`)
        .replace('dlq: { topic: txn.dlq }', `dlq: { topic: ${dlq} }`),
    )
    const ids: string[] = []
    try {
      // the archive: the legacy file as the pipeline's topic holds it, plus one message its decoder rejects
      const file = await runCli(['backfill', '--from', c.from, '--to', archive, '--spec', spec, '--json'])
      expect(file.code, file.stderr).toBe(0)
      ids.push(file.json.id)
      const accepted = file.json.sent as number
      expect(accepted).toBeGreaterThan(0)
      const producer = kafka().producer()
      await producer.connect()
      await producer.send({topic: archive, messages: [{key: 'X1', value: c.bad, partition: 0}]})
      await producer.disconnect()
      const source = kcatRaw(archive)
      expect(source).toHaveLength(accepted + 1)

      const r = await runCli(['backfill', '--from', `kafka:${archive}`, '--to', target, '--spec', spec, '--json'])
      expect(r.code, r.stderr).toBe(0)
      ids.push(r.json.id)
      expect(r.json).toMatchObject({status: 'completed', read: accepted + 1, sent: accepted, rejected: 1, rejected_by_code: {[c.badCode]: 1}})

      // every accepted archive message on the target: same key, same bytes, its position in the header
      const byPosition = new Map(source.map((m) => [`${archive}/${m.partition}@${m.offset}`, m]))
      const sent = kcatRaw(target)
      expect(sent).toHaveLength(accepted)
      const seen = new Set<string>()
      for (const m of sent) {
        const pos = header(m, 'cutover.backfill.position')!
        const s = byPosition.get(pos)
        expect(s, pos).toBeDefined()
        expect(m.value).toBe(s!.value)
        expect(m.key).toBe(s!.key)
        seen.add(pos)
      }
      expect(seen.size).toBe(accepted)

      // the rejected message: a dead letter with its bytes as they were and stream run's code
      const dead = kcatRaw(dlq).filter((m) => header(m, 'cutover.backfill.id') === r.json.id)
      expect(dead).toHaveLength(1)
      expect(dead[0]!.value).toBe(c.bad.toString('hex'))
      expect(header(dead[0]!, 'cutover.error.code')).toBe(c.badCode)
    } finally {
      for (const id of ids) await pool.query('DELETE FROM cutover.backfills WHERE id = $1', [id])
    }
  })
})

describe('backfill: a kafka: source with a json spec in another encoding', () => {
  it("reads each value in the spec's source.encoding, as stream run does (was: DECODE_ERROR as not UTF-8, sent 0)", async () => {
    const pool = testPool()
    const archive = await createTestTopic({partitions: 1, prefix: 'bf-kenc-archive'})
    const target = await createTestTopic({partitions: 1, prefix: 'bf-kenc-target'})
    const dlq = await createTestTopic({partitions: 1, prefix: 'bf-kenc-dlq'})
    const dir = mkdtempSync(join(tmpdir(), 'cutover-bf-kenc-'))
    const spec = join(dir, 'spec.yaml')
    writeFileSync(
      spec,
      readFileSync(join(ROOT, 'fixtures/golden/csv-windows-1251/spec.yaml'), 'utf8')
        .replace(/^source: .*$/m, `source: { topic: ${archive}, format: json, encoding: windows-1251 }`)
        .replace('dlq: { topic: txn.dlq }', `dlq: { topic: ${dlq} }`),
    )
    // "Пятёрочка" in windows-1251: not UTF-8
    const merchant = Buffer.from([0xcf, 0xff, 0xf2, 0xb8, 0xf0, 0xee, 0xf7, 0xea, 0xe0])
    const value = Buffer.concat([Buffer.from('{"id":"U1","acct":"A1","amt":"1.00","ts":"2026-11-20T10:00:00Z","merchant":"'), merchant, Buffer.from('"}')])
    const producer = kafka().producer()
    await producer.connect()
    await producer.send({topic: archive, messages: [{key: 'U1', value}]})
    await producer.disconnect()
    const r = await runCli(['backfill', '--from', `kafka:${archive}`, '--to', target, '--spec', spec, '--json'])
    try {
      expect(r.code, r.stderr).toBe(0)
      expect(r.json).toMatchObject({status: 'completed', read: 1, sent: 1, rejected: 0})
      const sent = kcatRaw(target)
      expect(sent.map((m) => ({key: m.key, value: m.value}))).toEqual([{key: 'U1', value: value.toString('hex')}])
    } finally {
      await pool.query('DELETE FROM cutover.backfills WHERE id = $1', [r.json?.id ?? ''])
    }
  })
})
