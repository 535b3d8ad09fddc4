/**
 * `dlq replay --key`: the key may be a card number or an account id. The replay ledger
 * (`cutover.replays.selection`) used to keep it as it is, and the "started with another
 * selection" error printed it. It keeps `sha256:<64 hex>` of it now, messages show `sha256:`
 * and 12 hex digits; two keys are still told apart, the same key still resumes its replay.
 * A row an earlier version wrote (the key itself) resumes with the same --key under the same id
 * (the id is derived from the selection as given, as it always was), and keeps only the digest after.
 */
import {createHash} from 'node:crypto'
import {mkdtempSync, readFileSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {describe, expect, it, onTestFinished} from 'vitest'
import {forgetReplays} from '../../fixtures/dlq/cleanup.js'
import type {DlqReplayResult} from '../../src/dlq/replay.js'
import {createTestTopic, kafka, kcatConsume, runCli, testPool} from '../helpers.js'

const PAN = '4111111111111111'
const ACCOUNT = 'ACC-7700042'
const PIPELINE = 'replay-key-mask'
const hex = (s: string) => createHash('sha256').update(s, 'utf8').digest('hex')

/** Dead letters on `dlq`: 3 keyed by the card number, 2 by the account id, 4 others. */
async function deadLetters(dlq: string, source: string): Promise<void> {
  const keys = [PAN, 'k1', PAN, ACCOUNT, 'k4', PAN, ACCOUNT, 'k7', 'k8']
  const producer = kafka().producer()
  await producer.connect()
  await producer.send({
    topic: dlq,
    messages: keys.map((key, i) => ({
      key,
      value: JSON.stringify({id: `id${i}`, amt: '1.00', ts: '2026-11-20T10:00:00Z'}),
      headers: {'cutover.error.code': 'UNPARSEABLE_DATE', 'cutover.error.message': 'x', 'cutover.error.stage': 'normalize', 'cutover.source.topic': source, 'cutover.source.partition': '0', 'cutover.source.offset': String(i), 'cutover.pipeline': PIPELINE},
    })),
  })
  await producer.disconnect()
}

async function fixture(prefix: string): Promise<{dlq: string; source: string; spec: string}> {
  const dlq = await createTestTopic({partitions: 1, prefix: `${prefix}-dlq`})
  const source = await createTestTopic({partitions: 1, prefix: `${prefix}-src`})
  onTestFinished(() => forgetReplays(testPool(), dlq))
  await deadLetters(dlq, source)
  const spec = join(mkdtempSync(join(tmpdir(), 'cutover-replay-key-')), 'spec.yaml')
  writeFileSync(spec, `version: 1\nname: ${PIPELINE}\nsource: { topic: ${source}, format: json }\nfields:\n  id: { type: string, required: true }\n  amt: { type: decimal, scale: 2 }\n  ts: { type: timestamp, formats: [iso] }\nkey: id\nsinks:\n  - table: t\ndlq: { topic: ${dlq} }\n`)
  return {dlq, source, spec}
}

async function rowOf(id: string): Promise<{selection: {key: string | null}; text: string; status: string}> {
  const r = await testPool().query<{selection: {key: string | null}; text: string; status: string}>('SELECT selection, r::text AS text, status FROM cutover.replays r WHERE id = $1', [id])
  expect(r.rows, `no ledger row ${id}`).toHaveLength(1)
  return r.rows[0]!
}

describe('dlq replay --key: the ledger and the messages keep a digest, not the key', () => {
  it('stores sha256 of --key, tells two keys apart, resumes the same key, and prints neither key', async () => {
    const {dlq, source, spec} = await fixture('replay-keymask')
    const base = ['dlq', 'replay', '--topic', dlq, '--spec', spec]
    const idPan = `km-pan-${dlq.slice(-8)}`
    const idAccount = `km-acct-${dlq.slice(-8)}`

    const pan = await runCli([...base, '--key', PAN, '--replay-id', idPan, '--json', '--log-level', 'debug'])
    expect(pan.code, pan.stderr).toBe(0)
    expect(pan.json as DlqReplayResult).toMatchObject({status: 'completed', selected: 3, sent: 3})
    expect(pan.stdout + pan.stderr).not.toContain(PAN)
    const panRow = await rowOf(idPan)
    expect(panRow.selection.key).toBe(`sha256:${hex(PAN)}`)
    expect(panRow.text).not.toContain(PAN)

    const account = await runCli([...base, '--key', ACCOUNT, '--replay-id', idAccount, '--json'])
    expect(account.code, account.stderr).toBe(0)
    expect(account.json as DlqReplayResult).toMatchObject({status: 'completed', selected: 2, sent: 2})
    const accountRow = await rowOf(idAccount)
    expect(accountRow.selection.key).toBe(`sha256:${hex(ACCOUNT)}`)
    expect(accountRow.text).not.toContain(ACCOUNT)

    // the same key: the same selection (a finished replay: nothing sent again)
    const again = await runCli([...base, '--key', PAN, '--replay-id', idPan, '--json'])
    expect(again.code, again.stderr).toBe(0)
    expect(again.json as DlqReplayResult).toMatchObject({replay_id: idPan, already_completed: true, sent: 3, sent_now: 0})

    // another key under that name: refused, the message shows both digests, neither key
    const other = await runCli([...base, '--key', ACCOUNT, '--replay-id', idPan, '--json'])
    expect(other.code, other.stdout + other.stderr).toBe(2)
    expect(other.json.error.code).toBe('USAGE')
    expect(other.json.error.message).toContain('was started with another selection')
    expect(other.json.error.message).toContain(`sha256:${hex(PAN).slice(0, 12)}`)
    expect(other.json.error.message).toContain(`sha256:${hex(ACCOUNT).slice(0, 12)}`)
    expect(other.stdout + other.stderr).not.toContain(PAN)
    expect(other.stdout + other.stderr).not.toContain(ACCOUNT)
    const plain = await runCli([...base, '--key', ACCOUNT, '--replay-id', idPan, '--log-level', 'debug'])
    expect(plain.code).toBe(2)
    expect(plain.stderr).toContain(`sha256:${hex(PAN).slice(0, 12)}`)
    expect(plain.stdout + plain.stderr).not.toContain(PAN)
    expect(plain.stdout + plain.stderr).not.toContain(ACCOUNT)

    // what went out: each selected record once, with its key (the replay only keeps it out of its own records)
    const sent = kcatConsume(source)
    expect(sent.map((m) => m.key).sort()).toEqual([ACCOUNT, ACCOUNT, PAN, PAN, PAN].sort())
  })

  it('resumes a row an earlier version wrote with the key itself: same id, same selection; the key is digested then', async () => {
    const {dlq, source, spec} = await fixture('replay-keylegacy')
    // the id as every version derived it: from the selection as given (topic, pipeline, --key as it is, ...)
    const given = {codes: [], since: null, until: null, key: PAN, to: 'source', max_replays: 3}
    const id = `r-${hex(JSON.stringify({topic: dlq, pipeline: PIPELINE, ...given})).slice(0, 16)}`
    const admin = kafka().admin()
    await admin.connect()
    const [w] = await admin.fetchTopicOffsets(dlq)
    await admin.disconnect()
    // the row an earlier version left when it was killed before sending anything
    await testPool().query(
      `INSERT INTO cutover.replays (id, dlq_topic, pipeline, spec_sha256, selection, group_id, targets, run_by) VALUES ($1, $2, $3, $4, $5, $6, $7, 'older-version')`,
      [id, dlq, PIPELINE, hex(readFileSync(spec, 'utf8')), JSON.stringify(given), `cutover-replay-${id}`, JSON.stringify([{partition: 0, start: '0', end: w!.high}])],
    )

    // a named one of an earlier version, asked with another selection: refused without showing its key
    const named = `km-legacy-${dlq.slice(-8)}`
    await testPool().query(
      `INSERT INTO cutover.replays (id, dlq_topic, pipeline, spec_sha256, selection, group_id, targets, run_by) VALUES ($1, $2, $3, $4, $5, $6, $7, 'older-version')`,
      [named, dlq, PIPELINE, hex(readFileSync(spec, 'utf8')), JSON.stringify(given), `cutover-replay-${named}`, JSON.stringify([{partition: 0, start: '0', end: w!.high}])],
    )
    const refused = await runCli(['dlq', 'replay', '--topic', dlq, '--spec', spec, '--key', PAN, '--code', 'SCHEMA_VIOLATION', '--replay-id', named, '--json'])
    expect(refused.code, refused.stdout + refused.stderr).toBe(2)
    expect(refused.json.error.message).toMatch(new RegExp(`another selection \\(\\{[^)]*"key":"sha256:${hex(PAN).slice(0, 12)}"`))
    expect(refused.stdout + refused.stderr).not.toContain(PAN)
    expect((await rowOf(named)).selection.key).toBe(PAN) // another selection: the row is left as it was

    const r = await runCli(['dlq', 'replay', '--topic', dlq, '--spec', spec, '--key', PAN, '--json'])
    expect(r.code, r.stderr).toBe(0)
    expect(r.json as DlqReplayResult).toMatchObject({replay_id: id, resumed: true, status: 'completed', selected: 3, sent: 3})
    expect(r.stdout + r.stderr).not.toContain(PAN)
    const row = await rowOf(id)
    expect(row.status).toBe('completed')
    expect(row.selection.key).toBe(`sha256:${hex(PAN)}`)
    expect(row.text).not.toContain(PAN)
    expect(kcatConsume(source).map((m) => m.key)).toEqual([PAN, PAN, PAN])

    // and the digested row is still that replay: the same command is a no-op
    const again = await runCli(['dlq', 'replay', '--topic', dlq, '--spec', spec, '--key', PAN, '--json'])
    expect(again.code, again.stderr).toBe(0)
    expect(again.json as DlqReplayResult).toMatchObject({replay_id: id, already_completed: true, sent_now: 0})
  })
})
