/**
 * `backfill --resume` and the file it reads, against the real broker and PostgreSQL.
 *
 * A resume skips the records its checkpoint covers by their number. Was: the file of a csv: or
 * fixed: --from was not checked at all, so another file at that path (tonight's export), or the
 * same relative path from another working directory, resumed silently, exit 0, at record N of
 * another file. Now the checkpoint keeps options.file (resolved path, size, SHA-256 of the first
 * and last MiB) and, with each checkpoint, position.last_sha256 (the digest of the last record it
 * covers); a resume compares the first before it touches the row, and the second when it reads
 * that record again, before it sends anything: exit 2, the file, what differs, the fix.
 *
 * A checkpoint as a stop after record 8 leaves it is made by a first run over the file's first 8
 * records (its last_sha256 is then the real one of record 8), with options.file set to the
 * fingerprint of the whole file, computed here.
 */
import {createHash} from 'node:crypto'
import {mkdirSync, readFileSync, realpathSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'
import {describe, expect, it, onTestFinished} from 'vitest'
import {createTestTopic, kcatConsume, runCli, tempDir, testPool, uniqueName, type CliResult} from '../helpers.js'

const MIB = 1 << 20
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex')

/** options.file of a backfill that started from `path` (computed independently of the code under test). */
function fingerprint(path: string): {path: string; size: number; head_sha256: string; tail_sha256: string; sample_bytes: number} {
  const b = readFileSync(path)
  return {path, size: b.length, head_sha256: sha(b.subarray(0, MIB)), tail_sha256: sha(b.subarray(Math.max(0, b.length - MIB))), sample_bytes: MIB}
}

function csv(rows: string[]): string {
  return ['id,amt', ...rows, ''].join('\n')
}

function events(r: CliResult): {event: string; level: string; [k: string]: unknown}[] {
  return r.stderr
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as {event: string; level: string})
}

/** Folders (real paths, as the CLI's process.cwd() gives them) with data/tx.csv. */
function workDir(content: string): string {
  const dir = realpathSync(tempDir('cutover-bf-resume-file-'))
  mkdirSync(join(dir, 'data'))
  writeFileSync(join(dir, 'data', 'tx.csv'), content)
  return dir
}

describe('backfill --resume: the source file by its content', () => {
  it('a relative csv: path: another file there, or the path from another folder, is refused (exit 2, the file, what differs, the fix), nothing sent; the same content elsewhere resumes', async () => {
    const topic = await createTestTopic({partitions: 1, prefix: 'bf-resume-file'})
    const pool = testPool()
    const id = uniqueName('bf-resume-file')
    onTestFinished(async () => {
      await pool.query('DELETE FROM cutover.backfills WHERE id = $1', [id])
    })
    const row = async (id: string) => (await pool.query<{status: string; runs: number; options: Record<string, unknown>; position: Record<string, unknown>}>('SELECT status, runs, options, position FROM cutover.backfills WHERE id = $1', [id])).rows[0]!
    const rows = Array.from({length: 20}, (_, i) => `A${String(i + 1).padStart(2, '0')},${i + 1}.00`)
    const dir = workDir(csv(rows.slice(0, 8)))
    const file = join(dir, 'data', 'tx.csv')

    // the checkpoint a stop after record 8 of the 20-record file leaves
    const first = await runCli(['backfill', '--from', 'csv:data/tx.csv', '--to', topic, '--key', 'id', '--id', id, '--json'], {cwd: dir})
    expect(first.code, first.stderr).toBe(0)
    expect(first.json).toMatchObject({status: 'completed', read: 8, sent: 8})
    expect((await row(id)).options.file).toEqual(fingerprint(file))
    expect((await row(id)).position).toMatchObject({records: 8, last: {line: 9, record: 8}, last_sha256: expect.stringMatching(/^[0-9a-f]{64}$/)})
    writeFileSync(file, csv(rows))
    await pool.query(`UPDATE cutover.backfills SET status = 'stopped', options = jsonb_set(options, '{file}', $2) WHERE id = $1`, [id, JSON.stringify(fingerprint(file))])
    const started = fingerprint(file)

    // the same relative path from another folder: another file (30 records), refused, named, with the fix
    const other = workDir(csv(Array.from({length: 30}, (_, i) => `B${i + 1},${i + 1}.50`)))
    const elsewhere = await runCli(['backfill', '--resume', id, '--json'], {cwd: other})
    expect(elsewhere.code, elsewhere.stdout + elsewhere.stderr).toBe(2)
    expect(elsewhere.json.error.message).toBe(
      `the file ${join(other, 'data', 'tx.csv')} (--from csv:data/tx.csv) is not the one backfill ${id} started from (${file}): it holds ${readFileSync(join(other, 'data', 'tx.csv')).length} bytes, the file it started from ${started.size}; resumed, the backfill would go on after the wrong record of another file`,
    )
    expect(elsewhere.json.error.hint).toMatch(/^start a new backfill .*, or restore .*tx\.csv to what it held .* resume from the one the backfill started in\)$/)
    expect(elsewhere.json.error).toMatchObject({file: join(other, 'data', 'tx.csv'), file_started: file, size_started: started.size})

    // another file at the path itself, of the same size (A01 became X01): its first bytes differ
    writeFileSync(file, csv(rows).replace('A01,', 'X01,'))
    const replaced = await runCli(['backfill', '--resume', id, '--json'], {cwd: dir})
    expect(replaced.code, replaced.stdout + replaced.stderr).toBe(2)
    expect(replaced.json.error.message).toContain(`the file ${file} (--from csv:data/tx.csv) is not the one backfill ${id} started from: its first ${started.size} bytes differ (sha256 ${started.head_sha256} then, ${sha(readFileSync(file))} now)`)
    expect(replaced.json.error.hint).toMatch(/start a new backfill .* or restore .*tx\.csv to what it held when the backfill started and resume$/)
    // nothing sent, the row as it was
    expect(kcatConsume(topic)).toHaveLength(8)
    expect(await row(id)).toMatchObject({status: 'stopped', runs: 1})

    // the same content in another folder: resumes after record 8 (a debug log says the path differs)
    writeFileSync(file, csv(rows))
    const copy = workDir(csv(rows))
    const resumed = await runCli(['backfill', '--resume', id, '--log-level', 'debug', '--json'], {cwd: copy})
    expect(resumed.code, resumed.stderr).toBe(0)
    expect(resumed.json).toMatchObject({status: 'completed', read: 20, sent: 20, runs: 2, resumed_from: {records: 8}})
    expect(events(resumed).filter((e) => e.event === 'backfill.file_moved')).toEqual([expect.objectContaining({level: 'debug', file: join(copy, 'data', 'tx.csv'), file_started: file})])
    expect(kcatConsume(topic).map((m) => m.key)).toEqual(rows.map((r) => r.split(',')[0]))
  })

  it('an absolute path, a file of the same size and the same first and last MiB whose middle moved: the record at the resume point is not the one, refused before anything is sent (worker and in-thread reader); restored, resumed', async () => {
    const topic = await createTestTopic({partitions: 1, prefix: 'bf-resume-file-mid'})
    const pool = testPool()
    const id = uniqueName('bf-resume-file-mid')
    onTestFinished(async () => {
      await pool.query('DELETE FROM cutover.backfills WHERE id = $1', [id])
    })
    // 2,600 records of 1,000 bytes: the first MiB ends near record 1,048, the last MiB starts near record 1,553
    const n = 2600
    const at = 1300
    const rows = Array.from({length: n}, (_, i) => `R${String(i + 1).padStart(5, '0')},${'x'.repeat(992)}`)
    const dir = workDir(csv(rows.slice(0, at)))
    const file = join(dir, 'data', 'tx.csv')
    const first = await runCli(['backfill', '--from', `csv:${file}`, '--to', topic, '--key', 'id', '--id', id, '--json'])
    expect(first.code, first.stderr).toBe(0)
    expect(first.json).toMatchObject({read: at, sent: at})
    writeFileSync(file, csv(rows))
    const started = fingerprint(file)
    await pool.query(`UPDATE cutover.backfills SET status = 'stopped', options = jsonb_set(options, '{file}', $2) WHERE id = $1`, [id, JSON.stringify(started)])

    // record 1,100 moved after record 1,400: same size, same ends, record 1,300 is now R01301
    const moved = [...rows.slice(0, 1099), ...rows.slice(1100, 1400), rows[1099]!, ...rows.slice(1400)]
    writeFileSync(file, csv(moved))
    expect(fingerprint(file)).toEqual(started)
    const readers: Record<string, string>[] = [{}, {CUTOVER_BACKFILL_WORKER: '0'}]
    for (const env of readers) {
      const r = await runCli(['backfill', '--resume', id, '--json'], {env})
      expect(r.code, `${JSON.stringify(env)}: ${r.stdout}${r.stderr}`).toBe(2)
      expect(r.json.error.message).toBe(
        `the file ${file} (--from csv:${file}) is not the one backfill ${id} started from: its record ${at} (${file}:${at + 1}), the last one the checkpoint covers, is not the record read there when the checkpoint was taken; resumed, the backfill would go on after the wrong record of another file`,
      )
      expect(r.json.error).toMatchObject({file, resume_record: at})
    }
    expect(kcatConsume(topic)).toHaveLength(at)
    // the refusal leaves the checkpoint where it was
    expect((await pool.query('SELECT position FROM cutover.backfills WHERE id = $1', [id])).rows[0].position).toMatchObject({records: at, last: {line: at + 1}})

    writeFileSync(file, csv(rows))
    const resumed = await runCli(['backfill', '--resume', id, '--json'])
    expect(resumed.code, resumed.stderr).toBe(0)
    expect(resumed.json).toMatchObject({status: 'completed', read: n, sent: n, resumed_from: {records: at}})
    const keys = kcatConsume(topic).map((m) => m.key)
    expect(keys).toHaveLength(n)
    expect(keys[at]).toBe('R01301')
    expect(new Set(keys).size).toBe(n)
  })
})
