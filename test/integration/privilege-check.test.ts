/**
 * The start check of a role's privileges on cutover's own tables (src/pg/privileges.ts), with the
 * built CLI against the real broker and PostgreSQL (the test database, migrated): a role with
 * README's grants ("A least-privilege role") less one privilege is refused at start by each
 * command that writes cutover's tables - exit 2, PREREQUISITE_MISSING naming the role, the
 * privilege and the table, and the GRANT that fixes it in --json - with nothing consumed, sent
 * or written (stream run does not even join its group); granted, it runs. A role with only
 * SELECT still runs the read-only commands. Each test has a login role of its own, its sessions
 * ended, its privileges revoked and the role dropped when it finishes.
 */
import {mkdtempSync, readFileSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import type pg from 'pg'
import {describe, expect, it, onTestFinished} from 'vitest'
import {forgetReplays, sendDeadLetters} from '../../fixtures/dlq/cleanup.js'
import type {MissingPrivilege} from '../../src/pg/privileges.js'
import {runtimeGrants} from '../../src/pg/migrations.js'
import {databaseUrl, kafka, kcatConsume, runCli, uniqueName} from '../helpers.js'
import {produce, startStream, streamFixture, type StreamFixture} from './stream-support.js'

interface ErrorDocument {
  error: {code: string; message: string; hint: string; role: string; missing: MissingPrivilege[]; grants: string[]}
}

/** A login role of its own with `grants(quoted role)` run by the administrator (`admin`); dropped when the test finishes. */
async function role(admin: pg.Pool, prefix: string, grants: (role: string) => string[]) {
  const name = uniqueName(prefix).replace(/-/g, '_')
  const quoted = `"${name}"`
  await admin.query(`CREATE ROLE ${quoted} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS`)
  onTestFinished(async () => {
    await admin.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1', [name])
    await admin.query(`DROP OWNED BY ${quoted}`)
    await admin.query(`DROP ROLE ${quoted}`)
  })
  for (const sql of grants(quoted)) await admin.query(sql)
  return {name, url: databaseUrl(undefined, name)}
}

/** README's grants on cutover's schema (runtimeGrants: what every command needs), and on the stream fixture's sink tables. */
function readmeGrants(f: StreamFixture, role: string): string[] {
  return [
    runtimeGrants(role.slice(1, -1)),
    `GRANT USAGE ON SCHEMA "${f.schema}" TO ${role}`,
    `GRANT SELECT, INSERT, UPDATE ON "${f.schema}".txn_clean, "${f.schema}".account_daily_totals TO ${role}`,
  ]
}

const record = (id: string) => ({key: id, value: Buffer.from(JSON.stringify({id, acct: 'A1', amt: '1.50', ts: '2026-11-20T10:00:00+03:00'}))})

describe('the start check of the privileges on cutover tables', () => {
  it('stream run: a role without DELETE on cutover.stream_dedupe and USAGE on the outbox sequence is refused at start, nothing consumed; granted, it runs', async () => {
    const f = await streamFixture({partitions: 1, prefix: 'pc-run'})
    const svc = await role(f.pool, 'pc_run', (r) => [
      ...readmeGrants(f, r),
      `REVOKE DELETE ON cutover.stream_dedupe FROM ${r}`,
      `REVOKE USAGE ON SEQUENCE cutover.outbox_id_seq FROM ${r}`,
    ])
    await produce(f.topic, [record('PC-1'), record('PC-2')])

    const refused = await startStream(f, ['--until-idle', '--idle-ms', '500', '--json'], {DATABASE_URL: svc.url}).exited
    expect(refused.code, refused.stderr).toBe(2)
    const {error} = JSON.parse(refused.stdout) as ErrorDocument
    expect(error).toMatchObject({code: 'PREREQUISITE_MISSING', role: svc.name})
    expect(error.missing).toEqual([
      {privilege: 'DELETE', table: 'cutover.stream_dedupe'},
      {privilege: 'USAGE', table: 'cutover.outbox', sequence: 'cutover.outbox_id_seq'},
    ])
    const grants = [`GRANT DELETE ON "cutover"."stream_dedupe" TO "${svc.name}";`, `GRANT USAGE ON SEQUENCE "cutover"."outbox_id_seq" TO "${svc.name}";`]
    expect(error.grants).toEqual(grants)
    expect(error.message).toMatch(
      new RegExp(`^the role ${svc.name} lacks DELETE on cutover\\.stream_dedupe, USAGE on sequence cutover\\.outbox_id_seq \\(of cutover\\.outbox\\), which cutover stream run needs in the database 127\\.0\\.0\\.1:5432/`),
    )
    expect(error.hint).toBe(`as the owner of cutover's tables (postgres) or a superuser: ${grants.join(' ')} Or grant what every command needs (README, a least-privilege role): ${runtimeGrants(svc.name)}`)
    // nothing consumed or written: no offsets stored, no rows, no DLQ topic created, the group never joined
    expect((await f.pool.query('SELECT count(*)::int AS n FROM cutover.stream_offsets WHERE pipeline = $1', [f.name])).rows[0]).toEqual({n: 0})
    expect((await f.pool.query(`SELECT count(*)::int AS n FROM "${f.schema}".txn_clean`)).rows[0]).toEqual({n: 0})
    const admin = kafka().admin()
    await admin.connect()
    try {
      expect(await admin.listTopics()).not.toContain(f.dlqTopic)
      const group = `${f.name}-group`
      expect((await admin.fetchOffsets({groupId: group, topics: [f.topic]}))[0]!.partitions).toEqual([{partition: 0, offset: '-1', metadata: null}])
      expect((await admin.describeGroups([group])).groups[0]).toMatchObject({state: 'Dead', members: []})
    } finally {
      await admin.disconnect()
    }

    // the GRANTs of the hint: the same run passes the check and writes
    for (const sql of grants) await f.pool.query(sql)
    const r = await startStream(f, ['--until-idle', '--idle-ms', '500', '--json'], {DATABASE_URL: svc.url}).exited
    expect(r.code, r.stderr).toBe(0)
    expect(JSON.parse(r.stdout)).toMatchObject({read: 2, written: 2})
    expect((await f.pool.query('SELECT sum(next_offset)::int AS n FROM cutover.stream_offsets WHERE pipeline = $1', [f.name])).rows[0]).toEqual({n: 2})
  })

  it('stream run without dedupe: a role with no privilege on cutover.stream_dedupe runs, and its start does not try to prune that table', async () => {
    const f = await streamFixture({partitions: 1, prefix: 'pc-nodd'})
    const spec = readFileSync(f.specFile, 'utf8')
    expect(spec).toMatch(/^dedupe: .*\n/m)
    writeFileSync(f.specFile, spec.replace(/^dedupe: .*\n/m, ''))
    const svc = await role(f.pool, 'pc_nodd', (r) => [...readmeGrants(f, r), `REVOKE ALL ON cutover.stream_dedupe FROM ${r}`])
    await produce(f.topic, [record('ND-1'), record('ND-2')])
    const r = await startStream(f, ['--until-idle', '--idle-ms', '500', '--json'], {DATABASE_URL: svc.url, CUTOVER_LOG_LEVEL: 'info'}).exited
    expect(r.code, r.stderr).toBe(0)
    expect(JSON.parse(r.stdout)).toMatchObject({read: 2, written: 2, duplicates: 0})
    // the hourly housekeeping ran at start (the outbox's prune) but left the key table alone: no "permission denied" warning
    expect(r.stderr).toContain('"event":"consumer.assigned"')
    expect(r.stderr).not.toMatch(/dedupe\.prune|stream_dedupe/)
  })

  it('stream run with windows and a rule over one: a role without UPDATE on cutover.window_watermarks and DELETE on cutover.rule_firings is refused at start, naming both', async () => {
    const f = await streamFixture({partitions: 1, prefix: 'pc-win'})
    const spec = readFileSync(f.specFile, 'utf8')
    expect(spec).toMatch(/^sinks:\n/m)
    const alerts = `${f.name}.alerts`
    const windows = `windows:\n  - {name: velocity, by: account_id, size: 10m, aggregates: {txn_count: count}}\nrules:\n  - {name: busy, when: "velocity.txn_count > 5", emit: ${alerts}}\n`
    writeFileSync(f.specFile, spec.replace(/^sinks:\n/m, `${windows}sinks:\n`))
    const svc = await role(f.pool, 'pc_win', (r) => [...readmeGrants(f, r), `REVOKE UPDATE ON cutover.window_watermarks FROM ${r}`, `REVOKE DELETE ON cutover.rule_firings FROM ${r}`])
    await produce(f.topic, [record('PW-1')])
    const refused = await startStream(f, ['--until-idle', '--idle-ms', '500', '--json'], {DATABASE_URL: svc.url}).exited
    expect(refused.code, refused.stderr).toBe(2)
    const {error} = JSON.parse(refused.stdout) as ErrorDocument
    expect(error).toMatchObject({code: 'PREREQUISITE_MISSING', role: svc.name})
    expect(error.missing).toEqual([
      {privilege: 'UPDATE', table: 'cutover.window_watermarks'},
      {privilege: 'DELETE', table: 'cutover.rule_firings'},
    ])
    expect((await f.pool.query('SELECT count(*)::int AS n FROM cutover.stream_offsets WHERE pipeline = $1', [f.name])).rows[0]).toEqual({n: 0})
    // granted: it runs, and counts the record in its window
    for (const sql of error.grants) await f.pool.query(sql)
    const r = await startStream(f, ['--until-idle', '--idle-ms', '500', '--json'], {DATABASE_URL: svc.url}).exited
    expect(r.code, r.stderr).toBe(0)
    expect(JSON.parse(r.stdout)).toMatchObject({read: 1, written: 1, alerts: 0})
    expect((await f.pool.query(`SELECT aggs->>'txn_count' AS n FROM cutover.window_state WHERE pipeline = $1`, [f.name])).rows).toEqual([{n: '1'}])
    await f.pool.query('DELETE FROM cutover.window_state WHERE pipeline = $1', [f.name])
    await f.pool.query('DELETE FROM cutover.window_watermarks WHERE pipeline = $1', [f.name])
  })

  it('backfill, dlq replay and parity check: each refused at start naming the privilege it lacks, nothing sent or written', async () => {
    const f = await streamFixture({partitions: 1, prefix: 'pc-cmds'})
    onTestFinished(() => forgetReplays(f.pool, f.dlqTopic))
    const svc = await role(f.pool, 'pc_cmds', (r) => [
      ...readmeGrants(f, r),
      `REVOKE UPDATE ON cutover.backfills FROM ${r}`,
      `REVOKE INSERT ON cutover.replays FROM ${r}`,
      `REVOKE USAGE ON SEQUENCE cutover.parity_runs_id_seq FROM ${r}`,
    ])
    await sendDeadLetters(f.dlqTopic, f.topic, 2, f.name)
    const dir = mkdtempSync(join(tmpdir(), 'cutover-pc-'))
    const legacy = `${uniqueName('legacy')}.csv`
    writeFileSync(join(dir, legacy), 'id,amount\nT1,1.00\nT2,2.00\n')
    const env = {DATABASE_URL: svc.url}
    const backfillId = uniqueName('pc-backfill')

    const [backfill, replay, parity] = await Promise.all([
      runCli(['backfill', '--from', `csv:${legacy}`, '--to', f.topic, '--key', 'id', '--id', backfillId, '--json'], {cwd: dir, env}),
      runCli(['dlq', 'replay', '--topic', f.dlqTopic, '--spec', f.specFile, '--json'], {env}),
      runCli(['parity', 'check', '--left', `csv:${legacy}`, '--right', `csv:${legacy}`, '--key', 'id', '--json'], {cwd: dir, env}),
    ])
    const refusals = [
      [backfill, 'backfill', {privilege: 'UPDATE', table: 'cutover.backfills'}, `GRANT UPDATE ON "cutover"."backfills" TO "${svc.name}";`],
      [replay, 'dlq replay', {privilege: 'INSERT', table: 'cutover.replays'}, `GRANT INSERT ON "cutover"."replays" TO "${svc.name}";`],
      [parity, 'parity check', {privilege: 'USAGE', table: 'cutover.parity_runs', sequence: 'cutover.parity_runs_id_seq'}, `GRANT USAGE ON SEQUENCE "cutover"."parity_runs_id_seq" TO "${svc.name}";`],
    ] as const
    for (const [r, command, missing, grant] of refusals) {
      expect(r.code, `${command}: ${r.stderr}`).toBe(2)
      const {error} = r.json as ErrorDocument
      expect(error).toMatchObject({code: 'PREREQUISITE_MISSING', role: svc.name, missing: [missing], grants: [grant]})
      expect(error.message).toContain(`which cutover ${command} needs`)
      expect(error.hint).toContain(grant)
    }
    // nothing sent (the backfill's target and the replay's: the source topic) and nothing written
    expect(kcatConsume(f.topic)).toEqual([])
    expect((await f.pool.query('SELECT count(*)::int AS n FROM cutover.backfills WHERE id = $1', [backfillId])).rows[0]).toEqual({n: 0})
    expect((await f.pool.query('SELECT count(*)::int AS n FROM cutover.replays WHERE dlq_topic = $1', [f.dlqTopic])).rows[0]).toEqual({n: 0})
    expect((await f.pool.query('SELECT count(*)::int AS n FROM cutover.parity_runs WHERE left_source = $1', [`csv:${legacy}`])).rows[0]).toEqual({n: 0})
  })

  it('a role with only SELECT on cutover tables runs the read-only commands: parity report, dlq replay --dry-run, parity check --no-ledger', async () => {
    const f = await streamFixture({partitions: 1, prefix: 'pc-read'})
    const reader = await role(f.pool, 'pc_read', (r) => [`GRANT USAGE ON SCHEMA cutover TO ${r}`, `GRANT SELECT ON ALL TABLES IN SCHEMA cutover TO ${r}`])
    await sendDeadLetters(f.dlqTopic, f.topic, 2, f.name)
    const dir = mkdtempSync(join(tmpdir(), 'cutover-pc-'))
    writeFileSync(join(dir, 'legacy.csv'), 'id,amount\nT1,1.00\nT2,2.00\n')
    const env = {DATABASE_URL: reader.url}

    const [report, dry, parity] = await Promise.all([
      runCli(['parity', 'report', '--days', '1', '--json'], {env}),
      runCli(['dlq', 'replay', '--topic', f.dlqTopic, '--spec', f.specFile, '--dry-run', '--json'], {env}),
      runCli(['parity', 'check', '--left', 'csv:legacy.csv', '--right', 'csv:legacy.csv', '--key', 'id', '--no-ledger', '--json'], {cwd: dir, env}),
    ])
    expect(report.code, report.stderr).toBe(0)
    expect(report.json.per_day).toHaveLength(1)
    expect(dry.code, dry.stderr).toBe(0)
    expect(dry.json).toMatchObject({dry_run: true, scanned: 2, selected: 2})
    expect(parity.code, parity.stderr).toBe(0)
    expect(parity.json).toMatchObject({matched: 2, unexplained: 0})
    expect(parity.json.run_id).toBeUndefined()
  })
})
