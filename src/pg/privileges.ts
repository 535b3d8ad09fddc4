/**
 * The start check of what a command does with cutover's own tables (schema `cutover`): the
 * privileges of the role on them, asked of the catalogs in one query before anything is read
 * from Kafka or written anywhere.
 *
 * Without it, a service role that lacks one privilege (DELETE on cutover.stream_dedupe, INSERT on
 * cutover.outbox, USAGE on the outbox's sequence) finds out when a statement first needs it, deep
 * inside the run: `stream run`'s batch fails with 42501 and is retried without end, a backfill
 * fails at its first checkpoint, a parity check after its whole comparison. Each command that
 * writes cutover's tables asks instead, at start, for what its statements use (the NEEDS below,
 * read off src/runtime, src/dlq/ledger.ts, src/backfill/checkpoint.ts, src/parity/ledger.ts), and
 * refuses with exit 2 (PREREQUISITE_MISSING) naming the role, each privilege it lacks and the
 * GRANT statements that fix it. Read-only commands (`parity report`, `dlq inspect`, `dlq replay
 * --dry-run`, `db migrate --dry-run`, ...) are not checked: SELECT is all they need.
 *
 * What the check leaves to migrations.ts: a schema that is missing, behind, or that the role may
 * not use (no USAGE): the check passes over tables that do not exist and over a schema the role
 * cannot use, and the migrations' own start check says what is wrong and who may fix it. A
 * superuser and the tables' owner hold every privilege; the query reads only the catalogs
 * (pg_namespace, pg_class, pg_depend), which any role may read, and changes nothing.
 *
 * SELECT, INSERT and UPDATE count when granted on the table or on any of its columns (a DBA who
 * narrowed a grant to columns on purpose is not refused; PostgreSQL checks `SELECT ... FOR
 * UPDATE` so too); DELETE is table-wide. USAGE is on the sequences of the table's serial columns
 * (nextval: USAGE or UPDATE on the sequence).
 */
import pg from 'pg'
import {describeDatabaseUrl} from '../config/env.js'
import {CutoverError, ExitCode} from '../errors.js'
import {quoteIdent} from './ident.js'
import {runtimeGrants} from './migrations.js'
import {mapPgError, pgConnectionString, type Pool} from './pool.js'

export type TablePrivilege = 'SELECT' | 'INSERT' | 'UPDATE' | 'DELETE'

/** What a command does with one table of schema cutover. */
export interface TableNeed {
  /** its name in schema cutover */
  table: string
  privileges: readonly TablePrivilege[]
  /** USAGE on the sequences of its serial columns (it inserts rows that draw an id) */
  sequences?: boolean
}

/**
 * `stream run`: offsets.ts (SELECT ... FOR UPDATE, INSERT of a partition's first row, UPDATE of
 * next_offset), outbox.ts and relay.ts (dead letters INSERTed in the batch, their id a bigserial;
 * the relay's SELECT ... FOR UPDATE SKIP LOCKED, UPDATE of sent_at, hourly DELETE of sent rows),
 * and with `dedupe:` stages/dedupe.ts (lookup, INSERT or COPY of new keys, DELETE of the keys a
 * refused row released and of those past the retention); with `windows:` stages/window.ts (the
 * state's upsert and bounded prune, the watermarks read and raised); with rules over windows
 * stages/rules.ts (the instances claimed by INSERT ... ON CONFLICT DO NOTHING RETURNING, pruned).
 */
export function streamRunNeeds(uses: {dedupe: boolean; windows?: boolean; windowRules?: boolean}): TableNeed[] {
  return [
    {table: 'stream_offsets', privileges: ['SELECT', 'INSERT', 'UPDATE']},
    {table: 'outbox', privileges: ['SELECT', 'INSERT', 'UPDATE', 'DELETE'], sequences: true},
    ...(uses.dedupe ? [{table: 'stream_dedupe', privileges: ['SELECT', 'INSERT', 'DELETE'] as const}] : []),
    ...(uses.windows
      ? [
          {table: 'window_state', privileges: ['SELECT', 'INSERT', 'UPDATE', 'DELETE'] as const},
          {table: 'window_watermarks', privileges: ['SELECT', 'INSERT', 'UPDATE'] as const},
        ]
      : []),
    ...(uses.windowRules ? [{table: 'rule_firings', privileges: ['SELECT', 'INSERT', 'DELETE'] as const}] : []),
  ]
}

/** `dlq replay` (not --dry-run): its ledger row, dlq/ledger.ts (INSERT ... ON CONFLICT DO NOTHING, read back, UPDATEd with its progress). */
export const DLQ_REPLAY_NEEDS: readonly TableNeed[] = [{table: 'replays', privileges: ['SELECT', 'INSERT', 'UPDATE']}]

/** `backfill` (not --dry-run): its checkpoint, backfill/checkpoint.ts (read, INSERTed, UPDATEd every 2 s). */
export const BACKFILL_NEEDS: readonly TableNeed[] = [{table: 'backfills', privileges: ['SELECT', 'INSERT', 'UPDATE']}]

/** `parity check` (with its ledger, the default): parity/ledger.ts recordRun (INSERT ... RETURNING id, a bigserial). */
export const PARITY_CHECK_NEEDS: readonly TableNeed[] = [{table: 'parity_runs', privileges: ['SELECT', 'INSERT'], sequences: true}]

/** One privilege the role lacks. */
export interface MissingPrivilege {
  privilege: TablePrivilege | 'USAGE'
  /** the table, `cutover.<name>` */
  table: string
  /** the sequence (of the table's serial column), `cutover.<name>`, when the privilege is USAGE on it */
  sequence?: string
}

/**
 * The needs the role lacks, with the role, its database and the tables' owner: only what is
 * missing comes back (nothing for a schema the role may not use, nor for tables not created
 * yet). `USAGE` in $2 stands for the sequences of the table's serial and identity columns. The
 * CASE keeps has_any_column_privilege from ever being asked about DELETE (it has no column form).
 */
const MISSING_SQL = `
  WITH need AS (SELECT * FROM unnest($1::text[], $2::text[]) AS x(relname, privilege))
  SELECT current_user::text AS role,
         pg_get_userbyid(c.relowner)::text AS owner,
         need.relname AS "table",
         need.privilege,
         s.relname::text AS sequence
    FROM pg_namespace n
    CROSS JOIN need
    JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = need.relname AND c.relkind IN ('r', 'p')
    LEFT JOIN LATERAL (
      SELECT q.oid, q.relname FROM pg_depend d JOIN pg_class q ON q.oid = d.objid AND q.relkind = 'S'
       WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass AND d.refobjid = c.oid AND d.deptype IN ('a', 'i')
    ) s ON need.privilege = 'USAGE'
   WHERE n.nspname = 'cutover'
     AND has_schema_privilege(n.oid, 'USAGE')
     AND NOT CASE need.privilege
               WHEN 'USAGE' THEN has_sequence_privilege(s.oid, 'USAGE, UPDATE')
               WHEN 'DELETE' THEN has_table_privilege(c.oid, 'DELETE')
               ELSE has_any_column_privilege(c.oid, need.privilege)
             END
   ORDER BY need.privilege = 'USAGE', array_position($1::text[], need.relname::text), array_position(ARRAY['SELECT', 'INSERT', 'UPDATE', 'DELETE', 'USAGE'], need.privilege), 5`

interface MissingRow {
  role: string
  owner: string
  table: string
  privilege: TablePrivilege | 'USAGE'
  sequence: string | null
}

/**
 * Refuses (exit 2, PREREQUISITE_MISSING) when the role of `db` lacks a privilege of `needs` on
 * cutover's tables; `command` names it in the message ("stream run"). `db`: the command's pool
 * (one query on it), or a database URL, on which one session is opened for the query and closed
 * (a database that does not exist yet passes: the command creates it, as its owner).
 */
export async function requirePrivileges(db: Pool | string, command: string, needs: readonly TableNeed[]): Promise<void> {
  const tables: string[] = []
  const privileges: string[] = []
  for (const n of needs) {
    for (const p of [...n.privileges, ...(n.sequences ? ['USAGE'] : [])]) {
      tables.push(n.table)
      privileges.push(p)
    }
  }
  if (tables.length === 0) return
  const url = typeof db === 'string' ? db : db.options?.connectionString
  let rows: MissingRow[]
  if (typeof db === 'string') {
    const client = new pg.Client({connectionString: pgConnectionString(db), connectionTimeoutMillis: 5000, application_name: `cutover ${command}`})
    try {
      await client.connect()
      rows = (await client.query<MissingRow>(MISSING_SQL, [tables, privileges])).rows
    } catch (e) {
      if ((e as {code?: unknown})?.code === '3D000') return // created by the command, which then owns it
      throw mapPgError(e, db)
    } finally {
      await client.end().catch(() => {})
    }
  } else {
    rows = (
      await db.query<MissingRow>(MISSING_SQL, [tables, privileges]).catch((e: unknown) => {
        throw mapPgError(e, url ?? '')
      })
    ).rows
  }
  if (rows.length > 0) throw missingPrivileges(command, rows, url)
}

function missingPrivileges(command: string, rows: MissingRow[], url: string | undefined): CutoverError {
  const role = rows[0]!.role
  const r = quoteIdent(role)
  const missing: MissingPrivilege[] = rows.map((x) => ({
    privilege: x.privilege,
    table: `cutover.${x.table}`,
    ...(x.sequence !== null ? {sequence: `cutover.${x.sequence}`} : {}),
  }))
  const said = missing.map((m) => (m.sequence ? `USAGE on sequence ${m.sequence} (of ${m.table})` : `${m.privilege} on ${m.table}`))
  // one GRANT per table (its privileges together), one per sequence, in the order of the needs
  const grants: string[] = []
  const byTable = new Map<string, string[]>()
  for (const x of rows) {
    if (x.sequence !== null) continue
    const list = byTable.get(x.table) ?? []
    list.push(x.privilege)
    byTable.set(x.table, list)
  }
  for (const [table, privs] of byTable) grants.push(`GRANT ${privs.join(', ')} ON ${quoteIdent('cutover')}.${quoteIdent(table)} TO ${r};`)
  for (const x of rows) if (x.sequence !== null) grants.push(`GRANT USAGE ON SEQUENCE ${quoteIdent('cutover')}.${quoteIdent(x.sequence)} TO ${r};`)
  const owners = [...new Set(rows.map((x) => x.owner))].join(', ')
  return new CutoverError(
    'PREREQUISITE_MISSING',
    `the role ${role} lacks ${said.join(', ')}, which cutover ${command} needs${url ? ` in the database ${describeDatabaseUrl(url)}` : ''} (it would fail with "permission denied" where it first uses ${said.length === 1 ? 'it' : 'them'}); stopped at start: nothing consumed, sent or written`,
    {
      exitCode: ExitCode.USAGE,
      hint: `as the owner of cutover's tables (${owners}) or a superuser: ${grants.join(' ')} Or grant what every command needs (README, a least-privilege role): ${runtimeGrants(role)}`,
      details: {role, missing, grants},
    },
  )
}
