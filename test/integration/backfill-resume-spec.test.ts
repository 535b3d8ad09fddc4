/**
 * `backfill --resume` and its spec, and `--burst` without `--rate`, against the real broker and
 * PostgreSQL.
 *
 * The checkpoint keeps the spec's resolved path and the SHA-256 of its bytes (options.spec,
 * options.specSha256). Was: --spec compared by its path text alone, so an edited spec (another
 * normalize rule) resumed silently, exit 0, the rest normalized unlike the part already sent;
 * and `--spec ./p.yaml` for the `p.yaml` the backfill started with was refused. A checkpoint
 * from before the digest keeps working, by path, and says so in a debug log.
 *
 * --burst without --rate was ignored (no token bucket to burst from): now exit 2 with the fix.
 *
 * `--resume ID --max-lag N` without --group was exit 2 ("--max-lag and --group go together") even
 * when the backfill had a group saved: the pair was checked on the flags given, before the saved
 * options were merged. Now on the merged options: a resumed backfill's group (or --max-lag) counts.
 */
import {createHash} from 'node:crypto'
import {mkdtempSync, readFileSync, realpathSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {basename, dirname, join} from 'node:path'
import {describe, expect, it, onTestFinished} from 'vitest'
import {createTestTopic, kcatConsume, runCli, startCli, testPool, uniqueName} from '../helpers.js'

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

function specText(topic: string, dlq: string, scale: number): string {
  return [
    'version: 1',
    `name: ${uniqueName('bf-resume-spec')}`,
    `source: { topic: ${topic}, group: ${uniqueName('g')}, format: json, encoding: utf-8 }`,
    'fields:',
    '  txn_id:     { from: id, type: string, required: true, trim: true }',
    '  account_id: { from: acct, type: string, required: true }',
    `  amount:     { from: amt, type: decimal, scale: ${scale}, required: true }`,
    'key: txn_id',
    'sinks:',
    '  - table: txn_clean',
    `dlq: { topic: ${dlq} }`,
    '',
  ].join('\n')
}

/** A folder with src.csv (n rows, decimal commas) and p.yaml. */
function workDir(n: number, topic: string, dlq: string): {dir: string; csv: string; spec: string} {
  // realpath: the CLI's working directory as process.cwd() gives it (no symlinks)
  const dir = realpathSync(mkdtempSync(join(tmpdir(), 'cutover-bf-resume-spec-')))
  const lines = ['id;acct;amt']
  for (let i = 0; i < n; i++) lines.push(`T${String(i).padStart(8, '0')};A${i % 97};${i},25`)
  writeFileSync(join(dir, 'src.csv'), lines.join('\n') + '\n')
  writeFileSync(join(dir, 'p.yaml'), specText(topic, dlq, 2))
  return {dir, csv: join(dir, 'src.csv'), spec: join(dir, 'p.yaml')}
}

const sha256 = (path: string) => createHash('sha256').update(readFileSync(path)).digest('hex')

describe('backfill --resume: the spec by its content', () => {
  it('an edited spec is refused (exit 2, both digests, the fix); restored, the same file by another relative path resumes, each record sent once', async () => {
    const n = 3000
    const topic = await createTestTopic({partitions: 2, prefix: 'bf-resume-spec'})
    const dlq = await createTestTopic({partitions: 1, prefix: 'bf-resume-spec-dlq'})
    const {dir, csv, spec} = workDir(n, topic, dlq)
    const pool = testPool()
    const id = uniqueName('bf-resume-spec-id')
    onTestFinished(async () => {
      await pool.query('DELETE FROM cutover.backfills WHERE id = $1', [id])
    })
    const row = async () =>
      (await pool.query<{status: string; records: number; runs: number; options: Record<string, unknown>}>(`SELECT status, (position->>'records')::int AS records, runs, options FROM cutover.backfills WHERE id = $1`, [id])).rows[0]

    // the first part, stopped by SIGTERM after its first checkpoint
    const first = startCli(['backfill', '--from', `csv:${csv}?delimiter=;`, '--to', topic, '--spec', 'p.yaml', '--send', 'normalized', '--rate', '1000', '--id', id, '--json'], {cwd: dir})
    for (let r = await row(); (r?.records ?? 0) === 0 && first.child.exitCode === null; r = await row()) await sleep(50)
    expect(first.child.exitCode, 'the backfill ended before its first checkpoint: make the file larger').toBeNull()
    first.child.kill('SIGTERM')
    const stopped = await first.done
    expect(stopped.code, stopped.stderr).toBe(143)
    expect(stopped.json).toMatchObject({id, status: 'stopped'})
    expect(stopped.json.read).toBeLessThan(n)
    const before = await row()
    // the checkpoint keeps the spec's resolved path and its bytes' SHA-256
    expect(before!.options).toMatchObject({spec, specSha256: sha256(spec)})
    const startedSha = sha256(spec)
    const onTopicAtStop = kcatConsume(topic).length
    expect(onTopicAtStop).toBe(stopped.json.sent)

    // the spec edited (amounts to whole units): refused, with or without --spec, nothing sent, the row as it was
    const original = readFileSync(spec)
    writeFileSync(spec, specText(topic, dlq, 0).replace(/^name: .*$/m, /^name: .*$/m.exec(original.toString())![0]))
    const editedSha = sha256(spec)
    expect(editedSha).not.toBe(startedSha)
    for (const args of [[], ['--spec', 'p.yaml'], ['--spec', './p.yaml']]) {
      const r = await runCli(['backfill', '--resume', id, ...args, '--json'], {cwd: dir})
      expect(r.code, `${args.join(' ')}: ${r.stdout}${r.stderr}`).toBe(2)
      expect(r.json.error.code).toBe('USAGE')
      expect(r.json.error.message).toContain('changed since backfill')
      expect(r.json.error.message).toContain(startedSha)
      expect(r.json.error.message).toContain(editedSha)
      expect(r.json.error.hint).toMatch(/start a new backfill/)
      expect(r.json.error.hint).toMatch(/restore the spec file/)
      expect(r.json.error).toMatchObject({spec_sha256_started: startedSha, spec_sha256_now: editedSha})
    }
    expect(kcatConsume(topic)).toHaveLength(onTopicAtStop)
    expect(await row()).toMatchObject({status: 'stopped', records: before!.records, runs: 1})

    // another file with other content: refused, naming the spec the backfill started with
    const other = join(dir, 'other.yaml')
    writeFileSync(other, specText(topic, dlq, 0))
    const otherFile = await runCli(['backfill', '--resume', id, '--spec', 'other.yaml', '--json'], {cwd: dir})
    expect(otherFile.code).toBe(2)
    expect(otherFile.json.error.message).toContain(`is not the spec backfill ${id} started with (${spec}, sha256 ${startedSha})`)

    // restored: the same file by another relative path (from the parent folder) resumes
    writeFileSync(spec, original)
    const resumed = await runCli(['backfill', '--resume', id, '--spec', `./${basename(dir)}/p.yaml`, '--rate', '20000', '--json'], {cwd: dirname(dir)})
    expect(resumed.code, resumed.stderr).toBe(0)
    expect(resumed.json).toMatchObject({id, status: 'completed', read: n, sent: n, rejected: 0, runs: 2, resumed_from: {records: stopped.json.read}})
    const got = kcatConsume(topic)
    expect(got).toHaveLength(n) // a stop checkpoints everything acknowledged: nothing twice
    expect(new Set(got.map((m) => m.key)).size).toBe(n)
    // one normalization throughout: every amount with its two decimals
    for (const m of got) expect((JSON.parse(m.payload!) as {amount: string}).amount, m.key!).toMatch(/^\d+\.25$/)
  })

  it('a checkpoint from before the digest: resumes by path as before (./p.yaml is p.yaml), with a debug log saying an edit is not noticed', async () => {
    const n = 40
    const topic = await createTestTopic({partitions: 1, prefix: 'bf-resume-spec-old'})
    const dlq = await createTestTopic({partitions: 1, prefix: 'bf-resume-spec-old-dlq'})
    const {dir, csv, spec} = workDir(n, topic, dlq)
    const pool = testPool()
    const id = uniqueName('bf-resume-spec-old-id')
    onTestFinished(async () => {
      await pool.query('DELETE FROM cutover.backfills WHERE id = $1', [id])
    })
    const first = await runCli(['backfill', '--from', `csv:${csv}?delimiter=;`, '--to', topic, '--spec', 'p.yaml', '--id', id, '--json'], {cwd: dir})
    expect(first.code, first.stderr).toBe(0)
    // the row as a checkpoint before the digest held it: the spec as typed, no digest; stopped after 10 records
    await pool.query(
      `UPDATE cutover.backfills SET status = 'stopped', options = (options - 'specSha256') || '{"spec": "p.yaml"}', position = '{"records": 10}',
              counts = '{"read": 10, "sent": 10, "rejected": 0, "rejected_by_code": {}, "out_of_range": 0}' WHERE id = $1`,
      [id],
    )
    writeFileSync(spec, readFileSync(spec, 'utf8').replace('trim: true', 'trim: false'))
    const other = await runCli(['backfill', '--resume', id, '--spec', 'other.yaml', '--json'], {cwd: dir})
    expect(other.code).toBe(2)
    expect(other.json.error.message).toBe('--spec other.yaml differs from the backfill\'s p.yaml')
    const resumed = await runCli(['backfill', '--resume', id, '--spec', './p.yaml', '--log-level', 'debug', '--json'], {cwd: dir})
    expect(resumed.code, resumed.stderr).toBe(0)
    expect(resumed.json).toMatchObject({id, status: 'completed', read: n, sent: n, runs: 2, resumed_from: {records: 10}})
    const events = resumed.stderr
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as {event: string; level: string; spec?: string})
    expect(events.filter((e) => e.event === 'backfill.spec_unverified')).toEqual([expect.objectContaining({level: 'debug', spec: 'p.yaml'})])
    expect(kcatConsume(topic)).toHaveLength(n + n - 10)
  })
})

describe('backfill --burst needs --rate', () => {
  it('--burst without --rate is exit 2 with the fix, nothing recorded or sent; with --rate (given or the resumed backfill\'s) it runs', async () => {
    const n = 30
    const topic = await createTestTopic({partitions: 1, prefix: 'bf-burst'})
    const {csv} = workDir(n, topic, `${topic}.dlq`)
    const pool = testPool()
    const ids = [uniqueName('bf-burst-id'), uniqueName('bf-burst-id'), uniqueName('bf-burst-id')]
    onTestFinished(async () => {
      await pool.query('DELETE FROM cutover.backfills WHERE id = ANY($1)', [ids])
    })
    const from = `csv:${csv}?delimiter=;`
    const [alone, dry] = await Promise.all([
      runCli(['backfill', '--from', from, '--to', topic, '--key', 'id', '--burst', '100', '--id', ids[0]!, '--json']),
      runCli(['backfill', '--from', from, '--to', topic, '--key', 'id', '--burst', '100', '--dry-run', '--json']),
    ])
    for (const r of [alone, dry]) {
      expect(r.code, r.stdout + r.stderr).toBe(2)
      expect(r.json.error.code).toBe('USAGE')
      expect(r.json.error.message).toMatch(/^--burst 100 needs --rate/)
      expect(r.json.error.hint).toMatch(/add --rate N\/s .*or drop --burst/)
    }
    expect((await pool.query('SELECT 1 FROM cutover.backfills WHERE id = $1', [ids[0]])).rowCount).toBe(0)
    expect(kcatConsume(topic)).toHaveLength(0)

    const paced = await runCli(['backfill', '--from', from, '--to', topic, '--key', 'id', '--rate', '1000', '--burst', '100', '--id', ids[1]!, '--json'])
    expect(paced.code, paced.stderr).toBe(0)
    expect(paced.json).toMatchObject({status: 'completed', sent: n})
    expect((await pool.query<{options: unknown}>('SELECT options FROM cutover.backfills WHERE id = $1', [ids[1]])).rows[0]!.options).toMatchObject({rate: 1000, burst: 100})

    // resumed: the backfill's saved rate counts; a backfill without one refuses --burst alone
    const unpaced = await runCli(['backfill', '--from', from, '--to', topic, '--key', 'id', '--id', ids[2]!, '--json'])
    expect(unpaced.code, unpaced.stderr).toBe(0)
    await pool.query(`UPDATE cutover.backfills SET status = 'stopped', position = '{"records": 20}', counts = '{"read": 20, "sent": 20, "rejected": 0, "rejected_by_code": {}, "out_of_range": 0}' WHERE id = ANY($1)`, [ids.slice(1)])
    const noRate = await runCli(['backfill', '--resume', ids[2]!, '--burst', '50', '--json'])
    expect(noRate.code, noRate.stdout + noRate.stderr).toBe(2)
    expect(noRate.json.error.message).toBe(`--burst 50 needs a --rate, and backfill ${ids[2]} has none`)
    expect((await pool.query<{status: string}>('SELECT status FROM cutover.backfills WHERE id = $1', [ids[2]])).rows[0]!.status).toBe('stopped')
    const [savedRate, givenRate] = await Promise.all([
      runCli(['backfill', '--resume', ids[1]!, '--burst', '50', '--json']),
      runCli(['backfill', '--resume', ids[2]!, '--burst', '50', '--rate', '1000', '--json']),
    ])
    for (const r of [savedRate, givenRate]) {
      expect(r.code, r.stderr).toBe(0)
      expect(r.json).toMatchObject({status: 'completed', read: n, sent: n, runs: 2})
    }
    expect(kcatConsume(topic)).toHaveLength(n + n + (n - 20) * 2)
  })
})

describe('backfill --resume: --max-lag and --group by the merged options', () => {
  it("--max-lag alone resumes a backfill that has a group (was exit 2: the flags were checked before the saved options); a new one still needs both", async () => {
    const n = 30
    const topic = await createTestTopic({partitions: 1, prefix: 'bf-resume-lag'})
    const {csv} = workDir(n, topic, `${topic}.dlq`)
    const pool = testPool()
    const group = uniqueName('bf-resume-lag-group') // no member, nothing committed: the lag is the backfill's own records
    const ids = [uniqueName('bf-resume-lag-id'), uniqueName('bf-resume-lag-id')]
    onTestFinished(async () => {
      await pool.query('DELETE FROM cutover.backfills WHERE id = ANY($1)', [ids])
    })
    const from = `csv:${csv}?delimiter=;`
    const status = async (id: string) => (await pool.query<{status: string; runs: number}>('SELECT status, runs FROM cutover.backfills WHERE id = $1', [id])).rows[0]

    // a new backfill: one without the other is exit 2, nothing recorded
    for (const args of [['--max-lag', '50000'], ['--group', group]]) {
      const r = await runCli(['backfill', '--from', from, '--to', topic, '--key', 'id', ...args, '--id', ids[0]!, '--json'])
      expect(r.code, r.stdout + r.stderr).toBe(2)
      expect(r.json.error.message).toBe('--max-lag and --group go together')
    }
    expect(await status(ids[0]!)).toBeUndefined()

    // ids[0] paced by the group's lag, ids[1] without; both stopped after 20 records
    const [paced, unpaced] = await Promise.all([
      runCli(['backfill', '--from', from, '--to', topic, '--key', 'id', '--max-lag', '100000', '--group', group, '--id', ids[0]!, '--json']),
      runCli(['backfill', '--from', from, '--to', topic, '--key', 'id', '--id', ids[1]!, '--json']),
    ])
    for (const r of [paced, unpaced]) expect(r.code, r.stderr).toBe(0)
    expect((await pool.query<{options: unknown}>('SELECT options FROM cutover.backfills WHERE id = $1', [ids[0]])).rows[0]!.options).toMatchObject({maxLag: 100000, group})
    const stop = () =>
      pool.query(`UPDATE cutover.backfills SET status = 'stopped', position = '{"records": 20}', counts = '{"read": 20, "sent": 20, "rejected": 0, "rejected_by_code": {}, "out_of_range": 0}' WHERE id = ANY($1)`, [ids])
    await stop()

    // the backfill with a group: --max-lag alone resumes, paced by the saved group's lag with the new N
    const resumed = await runCli(['backfill', '--resume', ids[0]!, '--max-lag', '50000', '--log-level', 'info', '--json'])
    expect(resumed.code, resumed.stdout + resumed.stderr).toBe(0)
    expect(resumed.json).toMatchObject({id: ids[0], status: 'completed', read: n, sent: n, runs: 2, resumed_from: {records: 20}})
    const events = resumed.stderr
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as {event: string; group?: string; max_lag?: number})
    expect(events.find((e) => e.event === 'backfill.start')).toMatchObject({max_lag: 50000})
    // the group's lag was looked at: the saved group, which has no member
    expect(events.find((e) => e.event === 'backfill.group_unknown')).toMatchObject({group})

    // a backfill without a group: --max-lag alone (or --group alone) still exit 2, naming what it lacks; the row as it was
    const lagOnly = await runCli(['backfill', '--resume', ids[1]!, '--max-lag', '50000', '--json'])
    expect(lagOnly.code, lagOnly.stdout + lagOnly.stderr).toBe(2)
    expect(lagOnly.json.error.message).toBe(`--max-lag 50000 needs a --group, and backfill ${ids[1]} has none`)
    const groupOnly = await runCli(['backfill', '--resume', ids[1]!, '--group', group, '--json'])
    expect(groupOnly.code, groupOnly.stdout + groupOnly.stderr).toBe(2)
    expect(groupOnly.json.error.message).toBe(`--group ${group} needs a --max-lag, and backfill ${ids[1]} has none`)
    expect(await status(ids[1]!)).toEqual({status: 'stopped', runs: 1})

    // and --group alone (the same group) keeps the saved --max-lag: the 50000 the last resume was given (a resume saves its pace)
    await stop()
    const byGroup = await runCli(['backfill', '--resume', ids[0]!, '--group', group, '--log-level', 'info', '--json'])
    expect(byGroup.code, byGroup.stdout + byGroup.stderr).toBe(0)
    expect(byGroup.json).toMatchObject({id: ids[0], status: 'completed', read: n, runs: 3, max_lag: 50000, group})
    expect(byGroup.stderr.split('\n').find((l) => l.includes('"backfill.start"'))).toContain('"max_lag":50000')
    expect(kcatConsume(topic)).toHaveLength(n + n + (n - 20) * 2)
  })
})
