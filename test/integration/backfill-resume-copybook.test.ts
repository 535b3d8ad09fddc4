/**
 * `backfill --resume` and the copybooks it reads, against the real broker and PostgreSQL.
 *
 * The checkpoint keeps the resolved path and the SHA-256 of every copybook the backfill reads, in
 * options.copybooks: `from` (copybook= of a fixed: --from, relative to the working directory) and
 * `spec` (the spec's source.copybook, relative to the spec's folder, with which a kafka: source
 * read with a fixed spec decodes each message). Was: only the spec's digest was kept, and
 * --from compared as text, so a copybook edited since the backfill started (a field one byte
 * shorter, the next one byte longer) resumed silently, exit 0, and the rest was sent with every
 * field after it shifted. A checkpoint from before the digests resumes as before, with a debug log.
 */
import {createHash} from 'node:crypto'
import {mkdirSync, mkdtempSync, readFileSync, realpathSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {describe, expect, it, onTestFinished} from 'vitest'
import {createTestTopic, kcatConsume, runCli, testPool, uniqueName, type CliResult} from '../helpers.js'

/** 17-byte records (ASCII characters, read as latin1), no line ends. */
const COPYBOOK = ['       01  TXN.', '           05  TXN-ID      PIC X(6).', '           05  ACCT-ID     PIC X(4).', '           05  AMT         PIC X(7).', ''].join('\n')
/** the same length, TXN-ID a byte shorter and ACCT-ID a byte longer: every field after TXN-ID moves */
const SHIFTED = COPYBOOK.replace('TXN-ID      PIC X(6)', 'TXN-ID      PIC X(5)').replace('ACCT-ID     PIC X(4)', 'ACCT-ID     PIC X(5)')

const sha256 = (path: string) => createHash('sha256').update(readFileSync(path)).digest('hex')

/** A folder (its real path: the CLI's cwd as process.cwd() gives it) with TXN.DAT (n records) and txn.cpy. */
function workDir(n: number): string {
  const dir = realpathSync(mkdtempSync(join(tmpdir(), 'cutover-bf-resume-cpy-')))
  const records: string[] = []
  for (let i = 0; i < n; i++) records.push(`T${String(i).padStart(5, '0')}A${String(i % 97).padStart(3, '0')}${String(i * 125).padStart(7, '0')}`)
  writeFileSync(join(dir, 'TXN.DAT'), records.join(''), 'ascii')
  writeFileSync(join(dir, 'txn.cpy'), COPYBOOK)
  return dir
}

function events(r: CliResult): {event: string; level: string; [k: string]: unknown}[] {
  return r.stderr
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as {event: string; level: string})
}

const FROM = 'fixed:TXN.DAT?copybook=txn.cpy&encoding=latin1'

describe('backfill --resume: the copybooks by their content', () => {
  it("copybook= of a fixed: source: an edited copybook is refused (exit 2, its path, both digests, the fix); another folder's is named as not the one; restored, the rest is read with the same layout", async () => {
    const n = 20
    const topic = await createTestTopic({partitions: 1, prefix: 'bf-resume-cpy'})
    const dir = workDir(n)
    const copybook = join(dir, 'txn.cpy')
    const pool = testPool()
    const id = uniqueName('bf-resume-cpy-id')
    onTestFinished(async () => {
      await pool.query('DELETE FROM cutover.backfills WHERE id = $1', [id])
    })
    const row = async () => (await pool.query<{status: string; runs: number; options: Record<string, unknown>}>('SELECT status, runs, options FROM cutover.backfills WHERE id = $1', [id])).rows[0]

    const first = await runCli(['backfill', '--from', FROM, '--to', topic, '--key', 'txn_id', '--id', id, '--json'], {cwd: dir})
    expect(first.code, first.stderr).toBe(0)
    expect(first.json).toMatchObject({status: 'completed', read: n, sent: n})
    const started = sha256(copybook)
    // the copybook's resolved path and digest, by where its path comes from
    expect((await row())!.options).toMatchObject({copybooks: {from: {path: copybook, sha256: started}}})
    expect((await row())!.options.copybooks).not.toHaveProperty('spec')
    // as a stop after 8 records leaves it
    await pool.query(
      `UPDATE cutover.backfills SET status = 'stopped', position = '{"records": 8}', counts = '{"read": 8, "sent": 8, "rejected": 0, "rejected_by_code": {}, "out_of_range": 0}' WHERE id = $1`,
      [id],
    )

    // the copybook edited: refused, with or without --from, nothing sent, the row as it was
    writeFileSync(copybook, SHIFTED)
    const edited = sha256(copybook)
    for (const args of [[], ['--from', FROM]]) {
      const r = await runCli(['backfill', '--resume', id, ...args, '--json'], {cwd: dir})
      expect(r.code, `${args.join(' ')}: ${r.stdout}${r.stderr}`).toBe(2)
      expect(r.json.error.code).toBe('USAGE')
      expect(r.json.error.message).toBe(
        `the copybook ${copybook} (copybook= of --from) changed since backfill ${id} started (sha256 ${started} then, ${edited} now): the rest would be read with another record layout than the records already sent`,
      )
      expect(r.json.error.hint).toMatch(/start a new backfill .* or restore the copybook to what it held/)
      expect(r.json.error).toMatchObject({copybook, copybook_of: 'from', copybook_started: copybook, copybook_sha256_started: started, copybook_sha256_now: edited})
    }
    expect(kcatConsume(topic)).toHaveLength(n)
    expect(await row()).toMatchObject({status: 'stopped', runs: 1})

    // restored here, but resumed from another folder whose txn.cpy is the edited one: named as not the one it started with
    writeFileSync(copybook, COPYBOOK)
    const elsewhere = realpathSync(mkdtempSync(join(tmpdir(), 'cutover-bf-resume-cpy-other-')))
    writeFileSync(join(elsewhere, 'TXN.DAT'), readFileSync(join(dir, 'TXN.DAT')))
    writeFileSync(join(elsewhere, 'txn.cpy'), SHIFTED)
    const other = await runCli(['backfill', '--resume', id, '--json'], {cwd: elsewhere})
    expect(other.code, other.stdout + other.stderr).toBe(2)
    expect(other.json.error.message).toContain(`the copybook ${join(elsewhere, 'txn.cpy')} (copybook= of --from, sha256 ${edited}) is not the one backfill ${id} started with (${copybook}, sha256 ${started})`)
    expect(other.json.error.hint).toMatch(/resume from the one the backfill started in/)
    expect(await row()).toMatchObject({status: 'stopped', runs: 1})

    // the same content in the other folder: resumes (a debug log says the path differs); the rest as the first run read it
    writeFileSync(join(elsewhere, 'txn.cpy'), COPYBOOK)
    const resumed = await runCli(['backfill', '--resume', id, '--log-level', 'debug', '--json'], {cwd: elsewhere})
    expect(resumed.code, resumed.stderr).toBe(0)
    expect(resumed.json).toMatchObject({id, status: 'completed', read: n, sent: n, runs: 2, resumed_from: {records: 8}})
    expect(events(resumed).filter((e) => e.event === 'backfill.copybook_moved')).toEqual([expect.objectContaining({level: 'debug', copybook: join(elsewhere, 'txn.cpy'), copybook_started: copybook})])
    const got = kcatConsume(topic)
    expect(got).toHaveLength(n + n - 8)
    // each record of the resumed part is the one the first run sent from the same position: same key, same fields
    const byPosition = new Map<string, string>()
    for (const m of got.slice(0, n)) byPosition.set(m.headers['cutover.backfill.position']!, `${m.key} ${m.payload}`)
    for (const m of got.slice(n)) expect(`${m.key} ${m.payload}`, m.headers['cutover.backfill.position']).toBe(byPosition.get(m.headers['cutover.backfill.position']!))
    expect(JSON.parse(got[n]!.payload!)).toEqual({txn_id: 'T00008', acct_id: 'A008', amt: '0001000'})
  })

  it("the spec's source.copybook for a kafka: source: an edited one is refused (exit 2, the fix); a checkpoint from before the digests resumes with a debug log", async () => {
    const n = 20
    const archive = await createTestTopic({partitions: 1, prefix: 'bf-resume-cpy-archive'})
    const target = await createTestTopic({partitions: 1, prefix: 'bf-resume-cpy-target'})
    const dlq = await createTestTopic({partitions: 1, prefix: 'bf-resume-cpy-dlq'})
    const dir = workDir(n)
    // the spec in a folder of its own, with its copybook beside it (source.copybook: relative to the spec's folder)
    mkdirSync(join(dir, 'spec'))
    const specCopybook = join(dir, 'spec', 'txn.cpy')
    writeFileSync(specCopybook, COPYBOOK)
    writeFileSync(
      join(dir, 'spec', 'p.yaml'),
      [
        'version: 1',
        `name: ${uniqueName('bf-resume-cpy')}`,
        `source: { topic: ${archive}, group: ${uniqueName('g')}, format: fixed, encoding: latin1, copybook: txn.cpy }`,
        'fields:',
        '  txn_id:     { type: string, required: true, pattern: "^T[0-9]{5}$" }',
        '  account_id: { from: acct_id, type: string, required: true, pattern: "^A[0-9]{3}$" }',
        '  amount:     { from: amt, type: decimal, scale: 2, required: true }',
        'key: txn_id',
        'sinks:',
        '  - table: txn_clean',
        `dlq: { topic: ${dlq} }`,
        '',
      ].join('\n'),
    )
    const pool = testPool()
    const ids = [uniqueName('bf-resume-cpy-file'), uniqueName('bf-resume-cpy-kafka')]
    onTestFinished(async () => {
      await pool.query('DELETE FROM cutover.backfills WHERE id = ANY($1)', [ids])
    })
    const row = async (id: string) => (await pool.query<{status: string; runs: number; options: Record<string, unknown>}>('SELECT status, runs, options FROM cutover.backfills WHERE id = $1', [id])).rows[0]

    // the archive: the file's records as the pipeline's topic holds them (one copybook record per message);
    // a fixed: source is read with its copybook= alone, not the spec's
    const file = await runCli(['backfill', '--from', FROM, '--to', archive, '--spec', 'spec/p.yaml', '--id', ids[0]!, '--json'], {cwd: dir})
    expect(file.code, file.stderr).toBe(0)
    expect(file.json).toMatchObject({read: n, sent: n, rejected: 0})
    expect((await row(ids[0]!))!.options.copybooks).toEqual({from: {path: join(dir, 'txn.cpy'), sha256: sha256(join(dir, 'txn.cpy'))}})

    const kafkaRun = await runCli(['backfill', '--from', `kafka:${archive}`, '--to', target, '--spec', 'spec/p.yaml', '--id', ids[1]!, '--json'], {cwd: dir})
    expect(kafkaRun.code, kafkaRun.stderr).toBe(0)
    expect(kafkaRun.json).toMatchObject({read: n, sent: n, rejected: 0})
    const started = sha256(specCopybook)
    expect((await row(ids[1]!))!.options.copybooks).toEqual({spec: {path: specCopybook, sha256: started}})
    const stopAt8 = () =>
      pool.query(
        `UPDATE cutover.backfills SET status = 'stopped', position = '{"records": 8, "partitions": {"0": "7"}}', counts = '{"read": 8, "sent": 8, "rejected": 0, "rejected_by_code": {}, "out_of_range": 0}' WHERE id = $1`,
        [ids[1]],
      )
    await stopAt8()

    // the spec's copybook edited (the spec itself unchanged): refused, nothing sent, nothing dead-lettered
    writeFileSync(specCopybook, SHIFTED)
    const edited = sha256(specCopybook)
    const refused = await runCli(['backfill', '--resume', ids[1]!, '--json'], {cwd: dir})
    expect(refused.code, refused.stdout + refused.stderr).toBe(2)
    expect(refused.json.error.message).toBe(
      `the copybook ${specCopybook} (the spec's source.copybook) changed since backfill ${ids[1]} started (sha256 ${started} then, ${edited} now): the rest would be read with another record layout than the records already sent`,
    )
    expect(refused.json.error).toMatchObject({copybook_of: 'spec', copybook_sha256_started: started, copybook_sha256_now: edited})
    expect(kcatConsume(target)).toHaveLength(n)
    expect(kcatConsume(dlq)).toHaveLength(0)
    expect(await row(ids[1]!)).toMatchObject({status: 'stopped', runs: 1})

    // restored: resumes, the rest sent as before
    writeFileSync(specCopybook, COPYBOOK)
    const resumed = await runCli(['backfill', '--resume', ids[1]!, '--json'], {cwd: dir})
    expect(resumed.code, resumed.stderr).toBe(0)
    expect(resumed.json).toMatchObject({status: 'completed', read: n, sent: n, rejected: 0, runs: 2, resumed_from: {records: 8}})
    expect(kcatConsume(target)).toHaveLength(n + n - 8)

    // a checkpoint from before the digests: resumes as before, a debug log says an edit is not noticed
    await stopAt8()
    await pool.query(`UPDATE cutover.backfills SET options = options - 'copybooks' WHERE id = $1`, [ids[1]])
    const old = await runCli(['backfill', '--resume', ids[1]!, '--log-level', 'debug', '--json'], {cwd: dir})
    expect(old.code, old.stderr).toBe(0)
    expect(old.json).toMatchObject({status: 'completed', read: n, sent: n, runs: 3})
    expect(events(old).filter((e) => e.event === 'backfill.copybook_unverified')).toEqual([expect.objectContaining({level: 'debug', copybook: specCopybook, copybook_of: 'spec'})])
    expect(kcatConsume(target)).toHaveLength(n + (n - 8) * 2)
    expect(kcatConsume(dlq)).toHaveLength(0)
  })
})
