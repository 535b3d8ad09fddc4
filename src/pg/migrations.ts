/**
 * Versioned, idempotent migrations of `cutover`'s own schema (`cutover`).
 *
 * Each migration runs once, in order, inside a transaction, under a transaction-scoped
 * advisory lock so that two processes starting together do not race. Applied versions are
 * recorded in `cutover.schema_migrations`. Append new migrations; never edit a shipped one.
 *
 * A schema already at this version is only read (the catalogs, then the history table): no lock,
 * no DDL, so a least-privilege role (USAGE on the schema and the rows of its tables, README) runs
 * every command once an administrator has migrated (`cutover db migrate`, whose `--dry-run` prints
 * what `pendingMigrations()` finds pending, for review). `CREATE SCHEMA IF NOT EXISTS` would not do:
 * PostgreSQL checks CREATE on the database before it looks whether the schema exists, and CREATE
 * TABLE IF NOT EXISTS checks CREATE on the schema first. A role that may not apply what is
 * missing gets exit 2 naming it, the role that may, and the grants. A schema at a version above
 * every migration here (a newer cutover migrated it) is refused with exit 2: this build would not
 * know what the newer migrations changed; the fix is a newer cutover, never a downgraded schema.
 */
import type pg from 'pg'
import {describeDatabaseUrl} from '../config/env.js'
import {CutoverError, ExitCode} from '../errors.js'
import {silentLogger, type Logger} from '../log.js'
import {quoteIdent} from './ident.js'

export interface Migration {
  version: number
  name: string
  sql: string
}

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'schema_migrations',
    sql: `SELECT 1`, // the history table itself is created by migrate(); this marks the baseline
  },
  {
    version: 2,
    name: 'stream_offsets_dedupe_outbox',
    // stream run (src/runtime): the next offset of each partition, committed in the same
    // transaction as the sink rows; dedupe keys with a retention; the outbox of dead letters
    // (and later alerts) published to Kafka by the relay. Headers are kept as a JSON array of
    // [name, base64 value] pairs so that original header bytes survive byte for byte.
    sql: `
      CREATE TABLE cutover.stream_offsets (
        pipeline    text    NOT NULL,
        topic       text    NOT NULL,
        partition   integer NOT NULL,
        next_offset bigint  NOT NULL,
        updated_at  timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (pipeline, topic, partition)
      );
      CREATE TABLE cutover.stream_dedupe (
        pipeline       text  NOT NULL,
        key            text  NOT NULL,
        payload_sha256 bytea NOT NULL,
        seen_at        timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (pipeline, key)
      );
      CREATE INDEX stream_dedupe_seen_at ON cutover.stream_dedupe (pipeline, seen_at);
      CREATE TABLE cutover.outbox (
        id         bigserial PRIMARY KEY,
        pipeline   text  NOT NULL,
        topic      text  NOT NULL,
        key        bytea,
        value      bytea,
        headers    jsonb NOT NULL DEFAULT '[]',
        created_at timestamptz NOT NULL DEFAULT now(),
        sent_at    timestamptz
      );
      CREATE INDEX outbox_unsent ON cutover.outbox (pipeline, id) WHERE sent_at IS NULL;
    `,
  },
  {
    version: 3,
    name: 'parity_runs',
    // parity check (src/parity/ledger.ts): one row per `cutover parity check`, the evidence
    // `parity report` summarizes. Counts and the result document are kept as they were
    // printed; the report's SHA-256 lets an auditor verify a kept report file.
    sql: `
      CREATE TABLE cutover.parity_runs (
        id               bigserial PRIMARY KEY,
        business_date    date,
        left_source      text    NOT NULL,
        right_source     text    NOT NULL,
        options          jsonb   NOT NULL,
        strategy         text    NOT NULL,
        left_rows        bigint  NOT NULL,
        right_rows       bigint  NOT NULL,
        matched          bigint  NOT NULL,
        mismatched       bigint  NOT NULL,
        missing_in_right bigint  NOT NULL,
        extra_in_right   bigint  NOT NULL,
        duplicate_keys_left  bigint NOT NULL,
        duplicate_keys_right bigint NOT NULL,
        explained        bigint  NOT NULL,
        unexplained      bigint  NOT NULL,
        parity_pct       numeric(9, 4) NOT NULL,
        left_digest      text    NOT NULL,
        right_digest     text    NOT NULL,
        report_sha256    text    NOT NULL,
        report_path      text,
        result           jsonb   NOT NULL,
        run_by           text    NOT NULL,
        started_at       timestamptz NOT NULL,
        finished_at      timestamptz NOT NULL DEFAULT now()
      );
      CREATE INDEX parity_runs_date ON cutover.parity_runs (business_date, id);
    `,
  },
  {
    version: 4,
    name: 'replays',
    // dlq replay (src/dlq/ledger.ts): one row per replay (its id is derived from the
    // selection, so the same replay run again finds its row). `targets` are the DLQ offsets
    // it covers, fixed when it was first started ([{partition, start, end}]); `progress` the
    // next DLQ offset counted per partition (the Kafka side of the checkpoint is the replay's
    // consumer group, committed in the same Kafka transaction as the records it sent).
    sql: `
      CREATE TABLE cutover.replays (
        id            text PRIMARY KEY,
        dlq_topic     text   NOT NULL,
        pipeline      text   NOT NULL,
        spec_sha256   text   NOT NULL,
        selection     jsonb  NOT NULL,
        group_id      text   NOT NULL,
        targets       jsonb  NOT NULL,
        progress      jsonb  NOT NULL DEFAULT '{}',
        scanned       bigint NOT NULL DEFAULT 0,
        selected      bigint NOT NULL DEFAULT 0,
        sent          bigint NOT NULL DEFAULT 0,
        parked        bigint NOT NULL DEFAULT 0,
        sent_by_topic jsonb  NOT NULL DEFAULT '{}',
        status        text   NOT NULL DEFAULT 'running' CHECK (status IN ('running', 'completed', 'failed')),
        runs          integer NOT NULL DEFAULT 1,
        run_by        text   NOT NULL,
        started_at    timestamptz NOT NULL DEFAULT now(),
        updated_at    timestamptz NOT NULL DEFAULT now(),
        finished_at   timestamptz
      );
      CREATE INDEX replays_topic ON cutover.replays (dlq_topic, started_at);
    `,
  },
  {
    version: 5,
    name: 'backfills',
    // backfill (src/backfill/checkpoint.ts): one row per backfill. `position` is the source
    // position the broker acknowledged ({records, partitions?, last?}), `counts` the
    // read/sent/rejected totals up to it; `--resume <id>` continues after it.
    sql: `
      CREATE TABLE cutover.backfills (
        id          text PRIMARY KEY,
        source      text   NOT NULL,
        target      text   NOT NULL,
        options     jsonb  NOT NULL,
        position    jsonb  NOT NULL DEFAULT '{"records": 0}',
        counts      jsonb  NOT NULL DEFAULT '{}',
        status      text   NOT NULL DEFAULT 'running' CHECK (status IN ('running', 'stopped', 'completed', 'failed')),
        runs        integer NOT NULL DEFAULT 1,
        paused_ms   bigint NOT NULL DEFAULT 0,
        elapsed_ms  bigint NOT NULL DEFAULT 0,
        error       text,
        run_by      text   NOT NULL,
        started_at  timestamptz NOT NULL DEFAULT now(),
        updated_at  timestamptz NOT NULL DEFAULT now(),
        finished_at timestamptz
      );
      CREATE INDEX backfills_target ON cutover.backfills (target, started_at);
    `,
  },
  {
    version: 6,
    name: 'stream_dedupe_seen_at_alone',
    // The retention index (pipeline, seen_at) also matched the dedupe lookup's
    // `pipeline = $1 AND key = ANY($2)`: with statistics that did not know the pipeline yet (a
    // new pipeline, or autovacuum behind), the planner scanned all of the pipeline's keys in it
    // and filtered on key, at a cost that grew with every batch (bench/stream at 5,000/s: one
    // backend at 80% CPU). On seen_at alone it can only serve the retention prune (oldest
    // first), and the lookup always takes the primary key.
    sql: `
      DROP INDEX IF EXISTS cutover.stream_dedupe_seen_at;
      CREATE INDEX stream_dedupe_seen_at_alone ON cutover.stream_dedupe (seen_at);
    `,
  },
  {
    version: 7,
    name: 'stream_dedupe_c_collation',
    // The dedupe keys are only ever compared for equality, which is byte equality in every
    // deterministic collation, so their order may as well be the bytes' ("C"): each probe and
    // insert then compares with memcmp instead of the database's collation. Measured on 1M
    // stored keys and 6,000-key batches: the per-key probe 1.6 -> 1.3 us and the insert ~17%
    // cheaper against C.UTF-8; against an ICU en-US database (common in banks) the probe was
    // 2.7-3.4 us. The index is also immune to collation changes of OS upgrades (no REINDEX
    // after a glibc or ICU update). The heap is not rewritten; the primary key is rebuilt, under
    // an exclusive lock, which takes a while on a table holding days of keys: plan the upgrade.
    sql: `
      ALTER TABLE cutover.stream_dedupe
        ALTER COLUMN pipeline TYPE text COLLATE "C",
        ALTER COLUMN key TYPE text COLLATE "C";
    `,
  },
  {
    version: 8,
    name: 'replays_deleted',
    // dlq replay (src/dlq/replay.ts): dead letters of a replay's range that retention deleted
    // before the replay reached them, passed over and counted (scanned + deleted = the range).
    sql: `ALTER TABLE cutover.replays ADD COLUMN deleted bigint NOT NULL DEFAULT 0`,
  },
  {
    version: 9,
    name: 'replays_key_digest',
    // dlq replay --key (a card number, an account id) is kept as `sha256:<64 hex>` of its UTF-8
    // bytes (src/dlq/mask.ts keyDigest) since this version; rows written before kept the key
    // itself, and now keep its digest too (their replay resumes as before: it compares digests).
    sql: `
      UPDATE cutover.replays
         SET selection = jsonb_set(selection, '{key}', to_jsonb('sha256:' || encode(sha256(convert_to(selection ->> 'key', 'UTF8')), 'hex')))
       WHERE jsonb_typeof(selection -> 'key') = 'string' AND selection ->> 'key' !~ '^sha256:[0-9a-f]{64}$';
    `,
  },
  {
    version: 10,
    name: 'parity_runs_chain',
    // parity check (src/parity/ledger.ts recordRun): each run's row holds the SHA-256 of its
    // content chained to the row before it (row_hash, prev_hash), so that `parity report` sees a
    // row edited afterwards (even with its columns and result document kept in step) and a row
    // deleted from between others. Rows recorded before this version have none: the chain
    // starts after them.
    sql: `ALTER TABLE cutover.parity_runs ADD COLUMN prev_hash text, ADD COLUMN row_hash text`,
  },
  {
    version: 11,
    name: 'window_state',
    // stream run's event-time windows (src/runtime/stages/window.ts), written in the batch
    // transaction: one row per (pipeline, window, key, window start), its aggregates as a JSON
    // object of exact texts (output name -> "12" | "1234.50" | the min/max value's normalized
    // text | null); `aggs_before`, the aggregates before the last batch's update, is what that
    // batch's RETURNING reads (the running value of each of its records starts from it: PostgreSQL
    // 15 has no RETURNING OLD). The watermark of each partition (the largest event time it
    // committed) is stored with its offset, so a restart resumes with the watermark of that
    // offset. Keys and names compare as bytes ("C"), as the dedupe keys. The window_end index
    // serves the retention prune.
    sql: `
      CREATE TABLE cutover.window_state (
        pipeline     text COLLATE "C" NOT NULL,
        window_name  text COLLATE "C" NOT NULL,
        key          text COLLATE "C" NOT NULL,
        window_start timestamptz NOT NULL,
        window_end   timestamptz NOT NULL,
        aggs         jsonb NOT NULL,
        aggs_before  jsonb,
        updated_at   timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (pipeline, window_name, key, window_start)
      );
      CREATE INDEX window_state_end ON cutover.window_state (pipeline, window_name, window_end);
      CREATE TABLE cutover.window_watermarks (
        pipeline   text COLLATE "C" NOT NULL,
        topic      text COLLATE "C" NOT NULL,
        partition  integer NOT NULL,
        watermark  timestamptz NOT NULL,
        updated_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (pipeline, topic, partition)
      );
    `,
  },
  {
    version: 12,
    name: 'rule_firings',
    // stream run's alert rules (src/runtime/stages/rules.ts): a rule that reads a window aggregate
    // fires at most once per window instance (the windows' starts and keys it reads, as JSON
    // text), claimed in the batch transaction by INSERT ... ON CONFLICT DO NOTHING RETURNING with
    // the alert's outbox row. Pruned after 8 days (fired_at; the index serves the prune).
    sql: `
      CREATE TABLE cutover.rule_firings (
        pipeline text COLLATE "C" NOT NULL,
        rule     text COLLATE "C" NOT NULL,
        instance text COLLATE "C" NOT NULL,
        fired_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (pipeline, rule, instance)
      );
      CREATE INDEX rule_firings_fired_at ON cutover.rule_firings (pipeline, fired_at);
    `,
  },
]

const LOCK_KEY = 0x637574 // "cut"

/** What a session can see of cutover's schema before it migrates, from the catalogs (any role may read them). */
interface SchemaState {
  /** schema cutover exists */
  schema: boolean
  /** this role has USAGE on it */
  usage: boolean
  /** cutover.schema_migrations exists */
  history: boolean
  /** this role may read it */
  readable: boolean
  /** the schema's owner (when it exists) and the database's */
  schemaOwner: string | null
  databaseOwner: string
  user: string
  database: string
}

const STATE_SQL = `
  SELECT n.oid IS NOT NULL AS schema,
         coalesce(has_schema_privilege(n.oid, 'USAGE'), false) AS usage,
         c.oid IS NOT NULL AS history,
         coalesce(has_table_privilege(c.oid, 'SELECT'), false) AS readable,
         pg_get_userbyid(n.nspowner) AS "schemaOwner",
         (SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = current_database()) AS "databaseOwner",
         current_user AS user,
         current_database() AS database
    FROM (SELECT 1) AS one
    LEFT JOIN pg_namespace n ON n.nspname = 'cutover'
    LEFT JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = 'schema_migrations'`

async function schemaState(client: pg.PoolClient): Promise<SchemaState> {
  return (await client.query<SchemaState>(STATE_SQL)).rows[0]!
}

async function appliedVersions(client: pg.PoolClient): Promise<Set<number>> {
  return new Set((await client.query<{version: number}>('SELECT version FROM cutover.schema_migrations')).rows.map((r) => r.version))
}

/** What migrate() runs before the first migration when cutover's schema, or its history table, does not exist yet. */
const CREATE_SCHEMA_SQL = 'CREATE SCHEMA cutover'
const CREATE_HISTORY_SQL = `CREATE TABLE cutover.schema_migrations (
  version integer PRIMARY KEY,
  name text NOT NULL,
  applied_at timestamptz NOT NULL DEFAULT now()
)`

/** Where a database's cutover schema stands against this cutover's migrations (`cutover db migrate --dry-run`). */
export interface MigrationStatus {
  /** the role of the session that read it (current_user); undefined when there was no database to read */
  role: string | undefined
  /** the highest migration applied (0: none, or no schema) */
  schemaVersion: number
  /** the highest migration of this cutover */
  requiredVersion: number
  /** the migrations not applied yet, in the order migrate() applies them */
  pending: Migration[]
  /** what migrate() runs before them: CREATE SCHEMA cutover and the history table, where missing */
  setup: string[]
}

function statusOf(state: Pick<SchemaState, 'schema' | 'history'> & {user?: string}, seen: ReadonlySet<number>, sorted: readonly Migration[]): MigrationStatus {
  const pending = sorted.filter((m) => !seen.has(m.version))
  return {
    role: state.user,
    schemaVersion: Math.max(0, ...seen),
    requiredVersion: sorted.at(-1)?.version ?? 0,
    pending,
    setup: pending.length === 0 ? [] : [...(state.schema ? [] : [CREATE_SCHEMA_SQL]), ...(state.history ? [] : [CREATE_HISTORY_SQL])],
  }
}

/** The schema as this session sees it, read only (the catalogs, then the history table); exit 2 when the role may not read it, or when it is newer than this cutover. */
async function readStatus(client: pg.PoolClient, sorted: readonly Migration[], pool: pg.Pool): Promise<{state: SchemaState; seen: Set<number>; status: MigrationStatus}> {
  const state = await schemaState(client)
  if (state.schema && (!state.usage || (state.history && !state.readable))) throw unreadableSchema(state, pool)
  const seen = state.history ? await appliedVersions(client) : new Set<number>()
  const status = statusOf(state, seen, sorted)
  await refuseNewer(client, state, status, pool)
  return {state, seen, status}
}

/**
 * A schema migrated by a newer cutover (its version above every migration this one knows) may have
 * changed what its tables mean (a column's unit, a status, a key's form) in ways this build would
 * misread or miswrite: exit 2, naming both versions and the fix, before anything reads or writes it.
 * Nothing pending is not "up to date" then: the newer migrations are unknown, not applied by us.
 */
async function refuseNewer(client: pg.PoolClient, state: SchemaState, status: MigrationStatus, pool: pg.Pool): Promise<void> {
  if (status.schemaVersion <= status.requiredVersion) return
  const newer = (await client.query<{version: number; name: string}>('SELECT version, name FROM cutover.schema_migrations WHERE version > $1 ORDER BY version', [status.requiredVersion])).rows
  throw new CutoverError(
    'PREREQUISITE_MISSING',
    `cutover's schema in ${where(state, pool)} is at version ${status.schemaVersion}, newer than this cutover knows (version ${status.requiredVersion}): a newer cutover applied ${newer.length === 1 ? 'migration' : 'migrations'} ${newer.map((m) => `${m.version} ${m.name}`).join(', ')}, and this one could misread or miswrite the tables ${newer.length === 1 ? 'it' : 'they'} changed`,
    {
      exitCode: ExitCode.USAGE,
      hint: `run a cutover that knows schema version ${status.schemaVersion}: upgrade this one to the release that migrated it (or a later one); never downgrade the schema (do not delete rows of cutover.schema_migrations or undo its migrations)`,
      details: {role: state.user, schema_version: status.schemaVersion, required_version: status.requiredVersion, unknown_migrations: newer},
    },
  )
}

/**
 * For a pool opened without migrating (`openDatabase(url, {migrate: false})`: dry runs, `dlq
 * republish`, `parity report` before its ledger check): refuses, as migrate() does, a schema a newer
 * cutover migrated. Reads only; a schema that does not exist, or that this role may not read, is
 * left to the command (it reports what it needs).
 */
export async function refuseNewerSchema(pool: pg.Pool, migrations: readonly Migration[] = MIGRATIONS): Promise<void> {
  const client = await pool.connect()
  try {
    const state = await schemaState(client)
    if (!state.schema || !state.usage || !state.history || !state.readable) return
    const sorted = [...migrations].sort((a, b) => a.version - b.version)
    await refuseNewer(client, state, statusOf(state, await appliedVersions(client), sorted), pool)
  } finally {
    client.release()
  }
}

/**
 * The migrations `migrate()` would apply to the pool's database, and the statements it would run
 * before them, read as it reads them (the catalogs and the history table: no lock, no DDL, so
 * USAGE on the schema and SELECT on its history suffice). `null`: a database that does not exist
 * yet, to which every migration is pending.
 */
export async function pendingMigrations(pool: pg.Pool | null, migrations: readonly Migration[] = MIGRATIONS): Promise<MigrationStatus> {
  const sorted = [...migrations].sort((a, b) => a.version - b.version)
  if (pool === null) return statusOf({schema: false, history: false}, new Set(), sorted)
  const client = await pool.connect()
  try {
    return (await readStatus(client, sorted, pool)).status
  } finally {
    client.release()
  }
}

export async function migrate(pool: pg.Pool, logger: Logger = silentLogger, migrations: readonly Migration[] = MIGRATIONS): Promise<number[]> {
  const client = await pool.connect()
  const applied: number[] = []
  const sorted = [...migrations].sort((a, b) => a.version - b.version)
  try {
    // up to date: read, nothing more (no lock, no CREATE ... IF NOT EXISTS: see the top)
    const {state, seen, status} = await readStatus(client, sorted, pool)
    if (status.pending.length === 0) return applied
    try {
      await client.query('BEGIN')
      await client.query('SELECT pg_advisory_xact_lock($1)', [LOCK_KEY])
      // as it is now that this session holds the lock (another may have migrated meanwhile)
      const locked = await schemaState(client)
      const plan = statusOf(locked, locked.history ? await appliedVersions(client) : new Set<number>(), sorted)
      await refuseNewer(client, locked, plan, pool) // a newer cutover migrated meanwhile
      for (const sql of plan.setup) await client.query(sql)
      for (const m of plan.pending) {
        await client.query(m.sql)
        await client.query('INSERT INTO cutover.schema_migrations (version, name) VALUES ($1, $2)', [m.version, m.name])
        applied.push(m.version)
        logger.info('pg.migration.applied', {version: m.version, name: m.name})
      }
      await client.query('COMMIT')
      return applied
    } catch (e) {
      await client.query('ROLLBACK').catch(() => {})
      // 42501 insufficient_privilege: no CREATE on the database or the schema, not the owner of a
      // table a migration alters, no EXECUTE on the advisory lock function
      if ((e as {code?: unknown})?.code === '42501') throw notMigrated(state, seen, status.pending, status.requiredVersion, e, pool)
      throw e
    }
  } finally {
    client.release()
  }
}

/** Where: the address and database of the pool's URL, else the database's name. */
function where(state: SchemaState, pool: pg.Pool): string {
  const url = pool.options?.connectionString
  return url ? `the database ${describeDatabaseUrl(url)}` : `the database ${state.database}`
}

/** The grants a role needs of cutover's schema to run every command once it is migrated (README: a least-privilege role). */
export function runtimeGrants(role: string): string {
  const r = quoteIdent(role)
  return [
    `GRANT USAGE ON SCHEMA cutover TO ${r};`,
    `GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA cutover TO ${r};`,
    `GRANT USAGE ON ALL SEQUENCES IN SCHEMA cutover TO ${r};`,
  ].join(' ')
}

function unreadableSchema(state: SchemaState, pool: pg.Pool): CutoverError {
  const missing = !state.usage ? 'no USAGE on schema cutover' : 'no SELECT on cutover.schema_migrations'
  return new CutoverError(
    'PREREQUISITE_MISSING',
    `the role ${state.user} may not read cutover's schema in ${where(state, pool)} (${missing}), so it cannot tell whether the schema is migrated`,
    {
      exitCode: ExitCode.USAGE,
      // the grants cover the tables that exist: migrate first (nothing to do when it is current)
      hint: `as the schema's owner (${state.schemaOwner ?? 'unknown'}): run cutover db migrate with DATABASE_URL naming that role (it applies this cutover's migrations, if any are missing; --dry-run shows their SQL first), then ${runtimeGrants(state.user)}`,
      details: {role: state.user},
    },
  )
}

function notMigrated(state: SchemaState, seen: Set<number>, pending: readonly Migration[], latest: number, cause: unknown, pool: pg.Pool): CutoverError {
  const reason = (cause as {message?: unknown})?.message
  const what = !state.schema
    ? `cutover's schema does not exist in ${where(state, pool)}`
    : !state.history
      ? `cutover's schema in ${where(state, pool)} has no migration history (cutover.schema_migrations)`
      : `cutover's schema in ${where(state, pool)} lacks ${pending.length === 1 ? 'migration' : 'migrations'} ${pending.map((m) => `${m.version} ${m.name}`).join(', ')} of this cutover (version ${latest})`
  const who = !state.schema
    ? `a role with CREATE on the database (its owner ${state.databaseOwner}, or a superuser)`
    : `the owner of schema cutover and its tables (${state.schemaOwner ?? 'unknown'}, or a superuser)`
  return new CutoverError('PREREQUISITE_MISSING', `${what}, and the role ${state.user} may not ${state.schema && state.history ? 'apply the missing migrations' : 'create it'}: ${typeof reason === 'string' ? reason : String(cause)}`, {
    cause,
    exitCode: ExitCode.USAGE,
    hint:
      `migrate as ${who}: run cutover db migrate with DATABASE_URL naming that role (cutover db migrate --dry-run shows the SQL it would run, for review); ` +
      `then grant ${state.user} what it needs, as that role: ${runtimeGrants(state.user)}`,
    details: {role: state.user, sqlstate: '42501', ...(state.history ? {schema_version: Math.max(0, ...seen)} : {}), required_version: latest},
  })
}
