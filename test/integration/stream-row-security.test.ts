/**
 * Row-level security on sink tables, for a role it applies to (not a superuser, not BYPASSRLS,
 * not the table's owner), against the real broker and PostgreSQL: a row a policy refuses (its
 * WITH CHECK, or for ON CONFLICT DO UPDATE the USING of the row it would update: SQLSTATE 42501
 * from ExecWithCheckOptions) is dead-lettered as SINK_REJECTED with PostgreSQL's message and the
 * rest of its batch commits, for an upsert and for an aggregate; batches of 500 rows and more go
 * by INSERT, not COPY (PostgreSQL refuses COPY FROM under row-level security); a privilege the
 * role lacks is refused at start (exit 2) and, revoked while running, fails the batch (retried)
 * without a dead letter; and a table with no policy that lets the role write is refused at start.
 */
import pg from 'pg'
import {describe, expect, it, onTestFinished} from 'vitest'
import {commitBatch} from '../../src/runtime/batch.js'
import type {StreamRunResult} from '../../src/runtime/run.js'
import type {CutoverError} from '../../src/errors.js'
import {databaseUrl, endPool, kcatConsume, uniqueName} from '../helpers.js'
import {batchFixture, produce, startStream, streamFixture, type ProducedMessage} from './stream-support.js'

/**
 * A login role of its own (trust auth lets it connect), with what `stream run` needs of cutover's
 * schema once it is migrated (README, a least-privilege role): USAGE on it, the rows of its tables
 * and its sequences. Its sessions are ended, its privileges revoked and the role dropped when the
 * test finishes.
 */
async function runtimeRole(admin: pg.Pool) {
  const name = uniqueName('rls_role').replace(/-/g, '_')
  const role = `"${name}"`
  const url = databaseUrl(undefined, name)
  const pools: pg.Pool[] = []
  await admin.query(`CREATE ROLE ${role} LOGIN NOSUPERUSER NOBYPASSRLS`)
  onTestFinished(async () => {
    for (const p of pools) await endPool(p).catch(() => {})
    await admin.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1', [name])
    await admin.query(`DROP OWNED BY ${role}`)
    await admin.query(`DROP ROLE ${role}`)
  })
  for (const sql of [
    `GRANT USAGE ON SCHEMA cutover TO ${role}`,
    `GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA cutover TO ${role}`,
    `GRANT USAGE ON ALL SEQUENCES IN SCHEMA cutover TO ${role}`,
  ]) {
    await admin.query(sql)
  }
  return {
    name,
    role,
    url,
    /** a pool connecting as the role, ended before the role is dropped */
    pool(): pg.Pool {
      const p = new pg.Pool({connectionString: url, max: 3})
      pools.push(p)
      return p
    },
  }
}

const RLS_MESSAGE = 'new row violates row-level security policy for table "txn_clean"'
const RLS_USING_MESSAGE = 'new row violates row-level security policy (USING expression) for table "txn_clean"'

describe('stream run: rows a row-level security policy refuses', () => {
  it('are dead-lettered as SINK_REJECTED with the policy message, the rest of each batch commits, and counts conserve', async () => {
    const f = await streamFixture({partitions: 2, prefix: 'stream-rls'})
    const role = await runtimeRole(f.pool)
    const t = `"${f.schema}".txn_clean`
    for (const sql of [
      `GRANT USAGE ON SCHEMA "${f.schema}" TO ${role.role}`,
      `GRANT SELECT, INSERT, UPDATE ON ${t}, "${f.schema}".account_daily_totals TO ${role.role}`,
      // a row the role's policies will not let it update (inserted by the owner, whom they do not bind)
      `INSERT INTO ${t} VALUES ('OLD-1', 'A00001', 5000.00, 'RUB', '2026-11-19T10:00:00Z', 'M')`,
      `ALTER TABLE ${t} ENABLE ROW LEVEL SECURITY`,
      `CREATE POLICY reader ON ${t} FOR SELECT USING (true)`,
      `CREATE POLICY small_inserts ON ${t} FOR INSERT TO ${role.role} WITH CHECK (amount <= 1000)`,
      `CREATE POLICY small_updates ON ${t} FOR UPDATE USING (amount <= 1000) WITH CHECK (amount <= 1000)`,
    ]) {
      await f.pool.query(sql)
    }
    // 1,200 records over 2 partitions (batches of ~600: their new rows would go by COPY), every
    // 40th above the policy's limit; and one updating OLD-1, which the UPDATE policy's USING refuses
    const amountOf = (i: number) => (i % 40 === 0 ? `${1000 + i}.50` : `${(i % 900) + 1}.25`)
    const ids = Array.from({length: 1200}, (_, k) => k + 1)
    const record = (id: string, acct: string, amount: string): ProducedMessage => ({
      key: id,
      value: Buffer.from(JSON.stringify({id, acct, amt: amount, ts: '2026-11-20T10:00:00+03:00', merchant: 'M'})),
    })
    await produce(f.topic, [...ids.map((i) => record(`RLS-${String(i).padStart(4, '0')}`, `A0000${i % 7}`, amountOf(i))), record('OLD-1', 'A00001', '10.00')])
    const refused = [...ids.filter((i) => i % 40 === 0).map((i) => `RLS-${String(i).padStart(4, '0')}`), 'OLD-1'].sort()
    const allowed = ids.filter((i) => i % 40 !== 0)

    const s = startStream(f, ['--until-idle', '--idle-ms', '1500', '--json'], {DATABASE_URL: role.url})
    const r = await s.exited
    expect(r.code, r.stderr).toBe(0)
    const out = JSON.parse(r.stdout) as StreamRunResult
    expect(out).toMatchObject({read: 1201, written: allowed.length, duplicates: 0, dead_lettered: {SINK_REJECTED: refused.length}})
    expect(out.read).toBe(out.written + Object.values(out.dead_lettered).reduce((a, b) => a + (b ?? 0), 0) + out.duplicates)

    // the sink holds exactly the allowed records, and OLD-1 as it was
    const rows = await f.pool.query<{txn_id: string; amount: string}>(`SELECT txn_id, amount::text FROM ${t} ORDER BY txn_id`)
    expect(rows.rows.map((x) => x.txn_id)).toEqual(['OLD-1', ...allowed.map((i) => `RLS-${String(i).padStart(4, '0')}`)].sort())
    expect(rows.rows.find((x) => x.txn_id === 'OLD-1')!.amount).toBe('5000.00')
    // the aggregate counts only the records whose rows were written
    const totals = await f.pool.query<{n: string; sum: string}>(`SELECT sum(txn_count)::text AS n, sum(amount_sum)::text AS sum FROM "${f.schema}".account_daily_totals`)
    const cents = allowed.reduce((a, i) => a + Math.round(Number(amountOf(i)) * 100), 0)
    expect(totals.rows[0]).toEqual({n: String(allowed.length), sum: (cents / 100).toFixed(2)})

    // the DLQ, read back with kcat, holds the refused records with the policy's message
    const letters = kcatConsume(f.dlqTopic)
    expect(letters.map((l) => l.key).sort()).toEqual(refused)
    for (const l of letters) {
      expect(l.headers['cutover.error.code']).toBe('SINK_REJECTED')
      expect(l.headers['cutover.error.stage']).toBe('sink')
      expect(l.headers['cutover.error.message']).toBe(`PostgreSQL rejected the row for ${f.schema}.txn_clean: ${l.key === 'OLD-1' ? RLS_USING_MESSAGE : RLS_MESSAGE}`)
    }
  })
})

describe('stream run: privileges of the role', () => {
  it('a privilege the role lacks on the sink table is refused at start: exit 2 with the GRANT, nothing consumed', async () => {
    const f = await streamFixture({partitions: 1, prefix: 'stream-rls-grant'})
    const role = await runtimeRole(f.pool)
    await f.pool.query(`GRANT USAGE ON SCHEMA "${f.schema}" TO ${role.role}`)
    await f.pool.query(`GRANT SELECT, INSERT, UPDATE ON "${f.schema}".account_daily_totals TO ${role.role}`)
    await f.pool.query(`GRANT SELECT ON "${f.schema}".txn_clean TO ${role.role}`)
    await produce(f.topic, [{key: 'T1', value: Buffer.from(JSON.stringify({id: 'T1', acct: 'A1', amt: '1.00', ts: '2026-11-20T10:00:00Z'}))}])
    const r = await startStream(f, ['--until-idle', '--idle-ms', '500', '--json'], {DATABASE_URL: role.url}).exited
    expect(r.code, r.stderr).toBe(2)
    const error = (JSON.parse(r.stdout) as {error: {code: string; message: string; hint: string}}).error
    expect(error.code).toBe('SPEC_INVALID')
    expect(error.message).toContain(`sink table ${f.schema}.txn_clean refuses what the sink keyed by txn_id writes: permission denied for table txn_clean (SQLSTATE 42501)`)
    expect(error.hint).toBe(`GRANT SELECT, INSERT, UPDATE ON "${f.schema}"."txn_clean" TO "${role.name}"; (run by the table's owner)`)
    const offsets = await f.pool.query('SELECT count(*)::int AS n FROM cutover.stream_offsets WHERE pipeline = $1', [f.name])
    expect(offsets.rows[0]).toEqual({n: 0})
  })
})

const SPEC = `fields:
  id: {type: string, required: true}
  acct: {type: string, required: true}
  amount: {type: decimal, scale: 2, required: true}
key: id
dedupe: {by: id}
sinks:
  - table: t
  - table: agg
    group_by: [acct]
    aggregates: {n: count, total: sum(amount)}
`

/** Tables t and agg, `extra` SQL on them (`s`: the quoted schema), and the pipeline of SPEC run by a role of its own. */
async function roleFixture(prefix: string, extra: (s: string, role: string) => string[]) {
  let role: Awaited<ReturnType<typeof runtimeRole>> | undefined
  const f = await batchFixture({
    prefix,
    tables: (schema) => [
      `CREATE TABLE "${schema}".t (id text PRIMARY KEY, acct text NOT NULL, amount numeric(8,2) NOT NULL)`,
      `CREATE TABLE "${schema}".agg (acct text PRIMARY KEY, n bigint NOT NULL, total numeric(12,2) NOT NULL)`,
    ],
    spec: SPEC,
    as: async (schema, admin) => {
      role = await runtimeRole(admin)
      for (const sql of [`GRANT USAGE ON SCHEMA "${schema}" TO ${role.role}`, `GRANT SELECT, INSERT, UPDATE ON "${schema}".t, "${schema}".agg TO ${role.role}`, ...extra(`"${schema}"`, role.role)]) {
        await admin.query(sql)
      }
      return role.pool()
    },
  })
  const id = (o: number) => `k${String(o).padStart(4, '0')}`
  const rows = async () => (await f.pool.query<{id: string}>(`SELECT id FROM "${f.schema}".t ORDER BY id`)).rows.map((r) => r.id)
  const aggregates = async () => (await f.pool.query<{acct: string; n: string; total: string}>(`SELECT acct, n::text, total::text FROM "${f.schema}".agg ORDER BY acct`)).rows
  return {...f, role: role!, id, rows, aggregates}
}

describe('row-level security in the batch transaction', () => {
  it("an aggregate's policy refusing a record: that record is dead-lettered with the policy message, neither its row nor its sum written", async () => {
    const s = await roleFixture('rls-agg', (schema) => [
      `ALTER TABLE ${schema}.agg ENABLE ROW LEVEL SECURITY`,
      `CREATE POLICY capped ON ${schema}.agg FOR ALL USING (true) WITH CHECK (total <= 1000)`,
    ])
    const accounts = (o: number) => (o === 60 ? 'BIG' : `A${o % 2}`)
    const outcome = await commitBatch(s.deps, await s.batch(0, 0, 99, (o) => ({id: s.id(o), acct: accounts(o), amount: o === 60 ? '5000.00' : '2.00'})), 1)
    expect(outcome).toMatchObject({kind: 'committed', counts: {read: 100, written: 99, dead: {SINK_REJECTED: 1}}})
    if (outcome.kind !== 'committed') throw new Error('not committed')
    const dead = outcome.items.filter((i) => i.status === 'dead')
    expect(dead.map((i) => [Number(i.offset), i.dead!.message])).toEqual([[60, `PostgreSQL rejected the row for ${s.schema}.agg: new row violates row-level security policy for table "agg"`]])
    expect(await s.rows()).toEqual(Array.from({length: 100}, (_, o) => o).filter((o) => o !== 60).map(s.id))
    expect(await s.aggregates()).toEqual([
      {acct: 'A0', n: '49', total: '98.00'},
      {acct: 'A1', n: '50', total: '100.00'},
    ])
  })

  it('a privilege revoked while running (42501 permission denied) is no refused row: the batch fails, nothing is dead-lettered, and it commits once granted again', async () => {
    const s = await roleFixture('rls-revoked', () => [])
    const first = await commitBatch(s.deps, await s.batch(0, 0, 9, (o) => ({id: s.id(o), acct: 'A1', amount: '1.00'})), 1)
    expect(first).toMatchObject({kind: 'committed', counts: {written: 10}})
    await s.pool.query(`REVOKE INSERT ON "${s.schema}".t FROM ${s.role.role}`)
    const batch = await s.batch(0, 10, 19, (o) => ({id: s.id(o), acct: 'A1', amount: '1.00'}))
    await expect(commitBatch(s.deps, batch, 1)).rejects.toMatchObject({code: '42501', message: 'permission denied for table t'})
    expect(batch.items.filter((i) => i.status === 'dead')).toEqual([])
    const outbox = await s.pool.query('SELECT count(*)::int AS n FROM cutover.outbox WHERE pipeline = $1', [s.name])
    expect(outbox.rows[0]).toEqual({n: 0})
    expect(await s.rows()).toEqual(Array.from({length: 10}, (_, o) => s.id(o)))
    // the retry, once the privilege is back
    await s.pool.query(`GRANT INSERT ON "${s.schema}".t TO ${s.role.role}`)
    const again = await commitBatch(s.deps, batch, 2)
    expect(again).toMatchObject({kind: 'committed', counts: {written: 10, dead: {}}})
    expect(await s.rows()).toEqual(Array.from({length: 20}, (_, o) => s.id(o)))
  })
})

describe('sink start checks: row-level security without a policy that lets the role write', () => {
  it('is refused at start (exit 2) naming the commands, and the CREATE POLICY it gives lets the sink start and write', async () => {
    // only an INSERT policy: INSERT ... ON CONFLICT also needs SELECT, and DO UPDATE needs UPDATE
    const only = (schema: string, role: string) => [
      `ALTER TABLE ${schema}.t ENABLE ROW LEVEL SECURITY`,
      `CREATE POLICY inserts ON ${schema}.t FOR INSERT TO ${role} WITH CHECK (amount <= 1000)`,
    ]
    const e = await roleFixture('rls-nopolicy', only).then(
      () => undefined,
      (err: unknown) => err as CutoverError,
    )
    expect(e).toMatchObject({code: 'SPEC_INVALID', exitCode: 2})
    expect(e!.message).toMatch(
      /^rls-nopolicy\.yaml:\d+:\d+: sink table t_\w+\.t has row-level security on for role rls_role_\w+, and no permissive policy for SELECT \(to read the rows it writes \(INSERT \.\.\. ON CONFLICT checks them against the SELECT policies\): every record would be refused\), UPDATE \(to update rows: every record whose key is in the table would be refused\), which the sink keyed by id needs$/,
    )
    expect(e!.hint).toMatch(/^CREATE POLICY "cutover_select" ON "t_\w+"\."t" FOR SELECT TO "rls_role_\w+" USING \(true\); CREATE POLICY "cutover_update" ON "t_\w+"\."t" FOR UPDATE TO "rls_role_\w+" USING \(true\) WITH CHECK \(true\);/)

    // the fix, for this fixture's schema and role: the sink starts, and the INSERT policy still refuses its rows
    const fixed = await roleFixture('rls-policy-fixed', (schema, role) => [
      ...only(schema, role),
      e!.hint!.slice(0, e!.hint!.lastIndexOf(';') + 1).replaceAll(/"t_\w+"/g, schema).replaceAll(/"rls_role_\w+"/g, role),
    ])
    const outcome = await commitBatch(fixed.deps, await fixed.batch(0, 0, 2, (o) => ({id: fixed.id(o), acct: 'A1', amount: o === 1 ? '1000.01' : '5.00'})), 1)
    expect(outcome).toMatchObject({kind: 'committed', counts: {written: 2, dead: {SINK_REJECTED: 1}}})
    expect(await fixed.rows()).toEqual([fixed.id(0), fixed.id(2)])
  })
})
