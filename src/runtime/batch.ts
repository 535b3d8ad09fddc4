/**
 * One kafkajs batch (one partition) -> ONE PostgreSQL transaction (effectively-once), in four
 * round trips:
 *
 *   BEGIN; the pipeline's advisory lock         (shared; exclusive when isolating refused rows: beginBatch)
 *   SELECT next_offset ... FOR UPDATE;           one message: the partition's stored offset (row
 *   UPDATE next_offset = last+1                  created if missing) and the compare-and-set under
 *     WHERE next_offset < last+1 AND >= first    that lock (offsets.ts beginLockAndAdvance)
 *     first offset > stored  -> ROLLBACK, 'gap'  (the caller seeks back to the stored offset)
 *     last offset < stored   -> ROLLBACK, 'behind' (all already committed)
 *     should have moved, did not -> 'fenced'
 *   records below stored  -> skipped             (already committed by an earlier run; counted nowhere)
 *   transact stages (dedupe)                     dedupe keys claimed
 *   outbox rows + sinks, one statement           dead letters and set-based upserts (joinedWrite),
 *                                                upsert sinks by plain INSERT while keys are new
 *                                                (InsertFirst; a key that exists -> ROLLBACK, and the
 *                                                batch runs again with the upserts); a row the
 *                                                database rejects (SQLSTATE class 22 or 23, a
 *                                                row-level security policy's 42501, a value too
 *                                                large for an index: isRowLevelError)
 *                                                -> ROLLBACK, and the batch runs again with SAVEPOINTs
 *                                                and one statement per sink, finding the rows by
 *                                                the row each statement stopped at (writeSinks),
 *                                                dead-lettered as SINK_REJECTED
 *   COMMIT
 *
 * Any other error rolls back and propagates: the caller retries the batch (retriable or not:
 * an outage or a dropped table never dead-letters a good record).
 */
import pg from 'pg'
import type {Pool, PoolClient} from '../pg/pool.js'
import type {RecordErrorCode} from '../errors.js'
import {namesOf} from '../config/spec.js'
import {copyIn} from '../pg/copy.js'
import {checkout} from './checkout.js'
import {applies, beginLockAndAdvance, type PartitionRef} from './offsets.js'
import {deadLetterStatement, insertDeadLetters, type DeadLetterContext} from './outbox.js'
import {foreignKeySuspects} from './sinks/foreign-keys.js'
import {isDedupeRace, releaseDedupeKeys} from './stages/dedupe.js'
import type {DeadLetter, Sink, Stage, WorkItem, WriteStatement} from './types.js'
import {inDedupeOrder, markDead, okItems, PROGRESS_SEQUENCE} from './types.js'

export interface BatchCounts {
  read: number
  written: number
  duplicates: number
  dead: Partial<Record<RecordErrorCode, number>>
}

export type BatchOutcome =
  | {kind: 'committed'; stored: bigint; next: bigint; counts: BatchCounts; committedAt: number; items: WorkItem[]}
  /** every record of the batch was below the stored offset: nothing to do */
  | {kind: 'behind'; stored: bigint}
  /** the batch starts after the stored offset: seek back to `stored` */
  | {kind: 'gap'; stored: bigint}
  /** the compare-and-set failed: another consumer moved the offset */
  | {kind: 'fenced'; stored: bigint}

export interface BatchInput {
  ref: PartitionRef
  items: WorkItem[]
  /** first offset fetched (the first item's, or the fetched offset when empty) */
  firstOffset: bigint
  /** last offset of the fetch, including records kafkajs filtered (control records) */
  lastOffset: bigint
  /** accept a batch starting after the stored offset (after one seek showed the gap is real) */
  allowGap: boolean
}

export interface BatchDeps {
  pool: Pool
  transact: readonly Stage[]
  sinks: readonly Sink[]
  dlqTopic: string
  deadLetter: Omit<DeadLetterContext, 'failedAt'>
  /** when upsert sinks try a plain INSERT first; without it they always upsert */
  insertFirst?: InsertFirst
  /** when a transaction isolates refused rows straight away; without it only after its joined write failed */
  refusedRows?: RefusedRows
  /**
   * a transaction that isolates refused rows takes the pipeline's lock shared, beside the others,
   * unless an aggregate refuses a record (isolatesInOrder); without it, always exclusively
   */
  isolateInOrder?: boolean
}

/**
 * Whether the transactions that isolate refused rows may run beside the pipeline's other
 * transactions (the advisory lock shared, beginBatch): when they lock rows in the order the
 * common transaction does, so that the two cannot deadlock. That holds with one upsert sink keyed
 * like the dedupe (its rows come in ascending key order, each try starts where the last one
 * stopped, and bisection goes left to right: every row is taken in ascending key order, as in
 * the common transaction) and at most one aggregate, written once for the batch, after the
 * upsert, as in the common transaction. If the aggregate refuses a record, writeSinks would write
 * it part by part, out of order: the transaction then runs again alone (IsolateAlone).
 */
export function isolatesInOrder(spec: {key?: string | string[]; dedupe?: {by?: string | string[]}}, sinks: readonly Sink[]): boolean {
  const key = namesOf(spec.key)
  const by = namesOf(spec.dedupe?.by)
  const own = sinks.filter((s) => !s.sharedRows).length
  const shared = sinks.length - own
  return own === 1 && shared <= 1 && key.length > 0 && key.length === by.length && key.every((k, i) => k === by[i])
}

/** An aggregate refused a record in a transaction that isolates beside the others: it runs again alone. */
class IsolateAlone extends Error {}

/**
 * A sink refused the record that claimed a dedupe key, and a later record of the same batch with
 * that key was resolved against it (a duplicate, or DUPLICATE_CONFLICT "earlier in the same
 * batch"): the key is released, so the later record must be judged as it would be in the next
 * batch, where it is the first of its key (a fixed record is written; an identical repeat is
 * tried and refused too). The transaction runs again with the refused records dead from the
 * start (`refused`), so that the dedupe stage hands the key to the next record in offset order.
 */
class RepeatsOfRefused extends Error {
  constructor(readonly refused: ReadonlyMap<WorkItem, DeadLetter>) {
    super('a refused record had repeats in its batch')
  }
}

/**
 * Whether the database refused the row for what it holds alone, whatever else is in the table or
 * the batch: a data exception (class 22: a value too long, a numeric overflow), NOT NULL or a
 * CHECK constraint (which PostgreSQL requires to be immutable) of a sink of the record's own rows.
 * An identical record is refused the same way. (A unique index, a foreign key, a policy, a trigger
 * or an aggregate's total depend on other rows: there each record is tried.)
 */
function refusedForItself(e: SinkWriteError): boolean {
  const code = sqlstateOf(e.original)
  return !e.sink.sharedRows && code !== undefined && (code.startsWith('22') || code === '23502' || code === '23514')
}

/**
 * The records to mark dead from the start when the transaction runs again (RepeatsOfRefused): the
 * refused ones, and each identical repeat of one refused for itself (refusedForItself) up to the
 * first record of its key with another payload, refused with it: that is what the repeat would be,
 * tried alone after it, so that a run of many identical repeats of a refused record (a producer
 * sending it again and again) costs one more run of the transaction, not one per repeat. The first
 * record of the key with another payload (a fix) then claims it; repeats after that are judged
 * against it.
 */
function refusedWithRepeats(work: readonly WorkItem[], rejected: readonly RefusedRow[]): Map<WorkItem, DeadLetter> {
  const out = new Map<WorkItem, DeadLetter>(rejected.map((r) => [r.item, r.item.dead!]))
  const byKey = new Map<string, SinkWriteError>()
  for (const r of rejected) if (r.item.dedupeInserted && r.item.dedupeKey !== undefined && refusedForItself(r.error)) byKey.set(r.item.dedupeKey, r.error)
  if (byKey.size === 0) return out
  for (const i of work) {
    if (i.dedupeKey === undefined) continue
    const error = byKey.get(i.dedupeKey)
    if (error === undefined) continue
    // a duplicate of the key's first record, which the sink refused: its identical repeat
    if (i.status === 'duplicate') out.set(i, sinkRejection(error, i))
    else if (i.status === 'dead' && i.dead?.code === 'DUPLICATE_CONFLICT') byKey.delete(i.dedupeKey)
  }
  return out
}

/** Whether a record of `work` was resolved against one of `refused`, which claimed its dedupe key in this transaction. */
function hasRepeatsOfRefused(work: readonly WorkItem[], refused: readonly WorkItem[]): boolean {
  const released = new Set<string>()
  for (const i of refused) if (i.dedupeInserted && i.dedupeKey !== undefined) released.add(i.dedupeKey)
  if (released.size === 0) return false
  return work.some((i) => i.dedupeKey !== undefined && released.has(i.dedupeKey) && (i.status === 'duplicate' || (i.status === 'dead' && i.dead?.code === 'DUPLICATE_CONFLICT')))
}

/**
 * Whether a batch transaction writes its upsert sinks' rows with a plain INSERT first (Sink
 * `insertFirst`): a stream of new records (the common case: new transactions, a backfill into an
 * empty table) then pays no speculative insertion. A key that exists fails the INSERT (23505)
 * and the transaction runs again at once with the upserts; after that the next `skip`
 * transactions upsert straight away, and that number doubles while the first try after it
 * fails again (a stream of updates to existing keys: one extra run in up to MAX transactions),
 * and falls back to MIN after a first try that went through.
 */
export class InsertFirst {
  static readonly MIN = 8
  static readonly MAX = 1024
  private skip = 0
  private penalty = InsertFirst.MIN

  /** `onConflict`: told of every transaction that runs again (the runtime counts them in a metric) */
  constructor(private readonly onConflict: () => void = () => {}) {}

  /** whether the next transaction tries plain INSERTs */
  take(): boolean {
    if (this.skip === 0) return true
    this.skip--
    return false
  }

  /** a first try met an existing key */
  conflict(): void {
    this.onConflict()
    this.skip = this.penalty
    this.penalty = Math.min(InsertFirst.MAX, this.penalty * 2)
  }

  /** a first try committed */
  success(): void {
    this.penalty = InsertFirst.MIN
  }

  /** the transactions that will upsert straight away (tests, logs) */
  get upsertsAhead(): number {
    return this.skip
  }
}

/**
 * Whether a batch transaction starts straight away with the statements that isolate the rows the
 * database refuses (savepoints and writeSinks) instead of the joined write. After a transaction
 * that found refused rows (a constraint of the table that the spec does not know: on day one
 * often in every batch), the next ones would each fail once and run again; they go straight to
 * isolating until one of them finds no refused row.
 */
export class RefusedRows {
  private expected = false

  /** `onIsolated`: told of every transaction that isolated (the runtime counts them in a metric) */
  constructor(private readonly onIsolated: (refused: number, alone: boolean) => void = () => {}) {}

  /** whether the next transaction isolates straight away */
  take(): boolean {
    return this.expected
  }

  /** an isolating transaction (`alone`: with the pipeline's lock exclusive) found `n` refused rows */
  found(n: number, alone: boolean): void {
    this.onIsolated(n, alone)
    this.expected = n > 0
  }
}

export const BEGIN_BATCH = "BEGIN; SET LOCAL lock_timeout = '30s'; SET LOCAL idle_in_transaction_session_timeout = '60s'"

/**
 * BEGIN of a batch transaction, with the pipeline's advisory lock: shared by the common
 * transactions, exclusive for one that isolates refused rows out of key order (`isolateRows`,
 * unless isolatesInOrder). That one writes the sinks part by part, so it may lock sink and
 * aggregate rows out of key order, and beside another transaction updating the same rows (the
 * aggregates of one account and day, from any partition) the two could deadlock. Taken first,
 * before any row lock, it waits for the pipeline's transactions in flight and holds the next ones
 * back until it commits (only batches with a row the database refuses). Processes of one
 * pipeline share it through the database.
 */
export function beginBatch(pipeline: string, exclusive: boolean): string {
  const key = `hashtext('cutover.stream.batch'), hashtext(${pg.escapeLiteral(pipeline)})`
  return `${BEGIN_BATCH}; SELECT ${exclusive ? 'pg_advisory_xact_lock' : 'pg_advisory_xact_lock_shared'}(${key})`
}

/**
 * COMMIT was sent and no answer came (the connection broke). The retry tells: if it finds the
 * stored offset exactly at this batch's end ('behind' with stored === next), this commit went
 * through, and the caller counts `outcome` (else --json would miss a committed batch).
 */
export class CommitOutcomeUnknown extends Error {
  constructor(
    readonly outcome: Extract<BatchOutcome, {kind: 'committed'}>,
    override readonly cause: unknown,
    /** the transaction's id, for transactionStatus (offsets.ts) */
    readonly xid?: string,
  ) {
    super(`COMMIT of offsets ${outcome.stored}..${outcome.next - 1n} got no answer: ${(cause as Error)?.message ?? String(cause)}`)
  }
}

/**
 * COMMIT refused by a constraint checked only then (DEFERRABLE INITIALLY DEFERRED: a foreign key
 * or unique index of a sink table), SQLSTATE class 23. The server answered: the transaction was
 * rolled back. It runs again isolating rows with the constraints checked at once (`SET
 * CONSTRAINTS ALL IMMEDIATE`), so that the refused row is found and dead-lettered.
 */
class DeferredConstraintError extends Error {
  constructor(readonly original: unknown) {
    super((original as Error)?.message ?? String(original))
  }
}

/** A SQLSTATE the server sent (five digits or capitals), not a client or socket error code. */
function sqlstateOf(e: unknown): string | undefined {
  const code = (e as {code?: unknown})?.code
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) ? code : undefined
}

/** 23505 unique_violation: with `insertFirst`, a key that exists. */
function isUniqueViolation(e: unknown): boolean {
  return (e as {code?: unknown})?.code === '23505'
}

/**
 * SQLSTATE classes that blame a row: data exception (22) and integrity constraint violation (23),
 * a row-level security policy refusing a new row (isPolicyRefusal), a view's WITH CHECK OPTION
 * refusing one (44000 with_check_option_violation, "new row violates check option for view ...",
 * raised by ExecWithCheckOptions as the policies' 42501 is: its only use), a row too large for an
 * index of the table or for a page (isRowTooLarge), and the codes a sink's spec lists
 * (`reject_sqlstates`, Sink `rejects`: a trigger's P0001) for `sinks`, the sinks the failed
 * statement wrote.
 */
export function isRowLevelError(e: unknown, sinks: readonly Pick<Sink, 'rejects'>[] = []): boolean {
  const code = (e as {code?: unknown})?.code
  if (typeof code !== 'string') return false
  return /^2[23]/.test(code) || code === '44000' || isPolicyRefusal(e) || isRowTooLarge(e) || sinks.some((s) => s.rejects?.has(code) === true)
}

/**
 * Where PostgreSQL raises 54000 program_limit_exceeded for one row's values: an index entry larger
 * than the index can hold (btree's "index row size 4016 exceeds btree version 4 maximum 2704 for
 * index ...", any index's "index row requires 12016 bytes, maximum size is 8191", and the same
 * limits of hash, GiST, SP-GiST, GIN and BRIN), and a heap row too big for a page ("row is too big:
 * size ..., maximum size 8160"). A legacy table keeps btree indexes on columns the spec's key does
 * not cover (the validate stage measures key fields only), and a record with a long enough value
 * there would fail its batch on every retry. Every other 54000 ("cannot have more than 2^32-2
 * commands in a transaction", an array too large) is about the statement, not a row, and stays an
 * error to retry. By the error's routine, as isPolicyRefusal; by its English message without one.
 */
export function isRowTooLarge(e: unknown): boolean {
  const err = e as {code?: unknown; routine?: unknown; message?: unknown}
  if (err?.code !== '54000') return false
  if (typeof err.routine === 'string' && err.routine !== '') return ROW_TOO_LARGE_ROUTINES.has(err.routine)
  return typeof err.message === 'string' && /^(index row (size|requires) |row is too big: )/.test(err.message)
}

const ROW_TOO_LARGE_ROUTINES = new Set([
  '_bt_check_third_page', // nbtutils.c
  'index_form_tuple', // indextuple.c, before PostgreSQL 15
  'index_form_tuple_context', // indextuple.c
  '_hash_doinsert', // hashinsert.c
  'gistSplit', // gist.c
  'spgdoinsert', // spgdoinsert.c
  'GinFormTuple', // ginentrypage.c
  'brin_doinsert', // brin_pageops.c
  'brin_doupdate',
  'RelationGetBufferForTuple', // hio.c: "row is too big"
])

/**
 * 42501 from a row-level security policy that refuses one new row: its WITH CHECK ("new row
 * violates row-level security policy for table ..."), or for ON CONFLICT DO UPDATE the USING of
 * the row the record would update ("... policy (USING expression) ..."). PostgreSQL raises both
 * in ExecWithCheckOptions, which the error's routine field names whatever language the server
 * speaks (lc_messages); the message is read only when no routine came. Every other 42501 is about
 * the role or the table, not a row, and stays an error to retry: "permission denied for table"
 * (a privilege revoked while running: the start check plans the statement, so a missing one is
 * exit 2 at start), "... for sequence", and "query would be affected by row-level security
 * policy" (row_security = off).
 */
export function isPolicyRefusal(e: unknown): boolean {
  const err = e as {code?: unknown; routine?: unknown; message?: unknown}
  if (err?.code !== '42501') return false
  if (typeof err.routine === 'string' && err.routine !== '') return err.routine === 'ExecWithCheckOptions'
  return typeof err.message === 'string' && err.message.startsWith('new row violates row-level security policy')
}

class SinkWriteError extends Error {
  constructor(
    readonly sink: Sink,
    readonly original: unknown,
    /** the failing statement reported its rows (PROGRESS_SEQUENCE) */
    readonly progress = false,
  ) {
    super((original as Error)?.message ?? String(original))
  }
}

/** A row-level error of a joined statement (joinedWrite): which sink, the isolating rerun finds out. */
class JoinedWriteError extends Error {
  constructor(readonly original: unknown) {
    super((original as Error)?.message ?? String(original))
  }
}

async function writeAll(tx: PoolClient, sinks: readonly Sink[], items: readonly WorkItem[], progress = false): Promise<void> {
  for (const sink of sinks) {
    const st = sink.statement(items, progress ? {progress} : undefined)
    if (!st) continue
    try {
      await tx.query(st.text(0), st.params)
    } catch (e) {
      throw isRowLevelError(e, [sink]) ? new SinkWriteError(sink, e, st.progress === true) : e
    }
  }
}

/**
 * Several write statements (outbox, sinks) in ONE round trip, as data-modifying CTEs of one
 * statement: `WITH w0 AS (<first>), w1 AS (<second>) <last>`. They share one snapshot and run in
 * no defined order, which is fine for statements on different tables that read nothing the
 * others write; two on one table run one after the other instead (a row must not be changed
 * twice by one statement). Parameters are numbered on from one statement to the next.
 */
export async function joinedWrite(tx: Pick<PoolClient, 'query'>, all: readonly WriteStatement[]): Promise<void> {
  // COPY statements (bulk plain inserts) on their own, first: the joined statement after them
  // still writes the sinks with shared rows last (see the batch transaction)
  for (const st of all) if (st.copy !== undefined) await copyIn(tx, st.text(0), st.copy)
  const statements = all.filter((st) => st.copy === undefined)
  const targets = new Set(statements.map((s) => s.target))
  if (targets.size < statements.length) {
    for (const st of statements) await tx.query(st.text(0), st.params)
    return
  }
  if (statements.length === 0) return
  const texts: string[] = []
  const params: unknown[] = []
  for (const st of statements) {
    texts.push(st.text(params.length))
    params.push(...st.params)
  }
  const last = texts.pop()!
  await tx.query(texts.length === 0 ? last : `WITH ${texts.map((t, i) => `w${i} AS (${t})`).join(', ')} ${last}`, params)
}

export interface RefusedRow {
  item: WorkItem
  /** the error of writing it alone */
  error: SinkWriteError
}

/** The last result of a simple query with several statements. */
function lastResult<T extends pg.QueryResultRow>(r: pg.QueryResult<T> | pg.QueryResult<T>[]): pg.QueryResult<T> {
  return Array.isArray(r) ? r[r.length - 1]! : r
}

/** Whether sink statements can report progress here: the session's sequence exists (created if not; false when the role may not). */
async function progressSequence(tx: PoolClient): Promise<boolean> {
  try {
    await tx.query(`SAVEPOINT cutover_progress; CREATE TEMP SEQUENCE IF NOT EXISTS ${PROGRESS_SEQUENCE.replace(/^pg_temp\./, '')} MINVALUE 0; RELEASE SAVEPOINT cutover_progress`)
    return true
  } catch (e) {
    // insufficient_privilege (no TEMP on the database), read_only_sql_transaction: bisection alone
    if (!['42501', '25006'].includes((e as {code?: string})?.code ?? '')) throw e
    await tx.query('ROLLBACK TO SAVEPOINT cutover_progress; RELEASE SAVEPOINT cutover_progress')
    return false
  }
}

/**
 * Writes `items` to every sink, in their order, in the batch transaction that isolates the rows
 * the database refuses; returns those rows, each with the error of writing it alone, and keeps
 * the others written.
 *
 * The sinks of each record's own rows (upserts) go first (findRefused); the sinks with shared rows
 * (aggregates, `sharedRows`) then take the records those did not refuse in one statement each,
 * as in the common transaction, instead of once per part of the batch (each part updates most of
 * the same account-days again). If an aggregate refuses one (a sum that overflows, a check), all
 * of that is rolled back and every sink is written together, part by part (findRefused again).
 */
export async function writeSinks(tx: PoolClient, sinks: readonly Sink[], items: readonly WorkItem[], options: {inOrder?: boolean} = {}): Promise<RefusedRow[]> {
  if (items.length === 0 || sinks.length === 0) return []
  const tracking = await progressSequence(tx)
  const own = sinks.filter((s) => !s.sharedRows)
  const shared = sinks.filter((s) => s.sharedRows)
  if (own.length === 0 || shared.length === 0) return findRefused(tx, sinks, items, tracking)
  await tx.query('SAVEPOINT cutover_sinks')
  const refused = await findRefused(tx, own, items, tracking)
  const out = new Set(refused.map((r) => r.item))
  try {
    await writeAll(tx, shared, out.size === 0 ? items : items.filter((i) => !out.has(i)))
    await tx.query('RELEASE SAVEPOINT cutover_sinks')
    return refused
  } catch (e) {
    if (!(e instanceof SinkWriteError)) throw e
    // isolating beside the pipeline's other transactions (isolatesInOrder): not part by part
    if (options.inOrder) throw new IsolateAlone()
    await tx.query('ROLLBACK TO SAVEPOINT cutover_sinks; RELEASE SAVEPOINT cutover_sinks')
    return findRefused(tx, sinks, items, tracking)
  }
}

/**
 * Writes `items` to `sinks` (together, record by record), in their order; returns the rows the
 * database refuses, each with the error of writing it alone, and keeps the others written.
 *
 * Each try runs under a savepoint, and with `tracking` (progressSequence) a sink statement that
 * can reports each row's index as it writes it (PROGRESS_SEQUENCE), which a rollback does not undo. When it fails on a row, the rows
 * before that one went through: they are written again (kept), then the row alone (refused if it
 * fails alone too, kept if not), and the next try starts after it: about four statements per
 * sink and refused row, each row written about twice, where bisection writes ~2k·log2(n/k) parts
 * of the batch (20 refused rows among 2,000: 80 upserts and 259 statements in all, against 296
 * and 906; bench/stream-ab with 1% of the rows refused: 5,986 -> 15,614 records/s). A try takes
 * at most about twice the rows between the refused rows seen so far (`window`), so that it does
 * not send the whole rest of the batch to stop after a few rows. A foreign key is checked at the
 * end of the statement, so the row reported is the last: its suspects are looked up in one
 * statement instead (foreignKeySuspects), and the rows between them are written a part at a
 * time, each suspect alone. Bisection (`bisect`) remains for what neither can tell: a sink
 * without progress (an aggregate, an upsert keyed unlike the dedupe), another check at the end
 * of the statement (a constraint trigger), an error before any row.
 */
async function findRefused(tx: PoolClient, sinks: readonly Sink[], items: readonly WorkItem[], tracking: boolean): Promise<RefusedRow[]> {
  const refused: RefusedRow[] = []
  let rest = items
  // rows per try: all at first, then about twice the distance between refused rows seen, so that
  // a try does not send (and PostgreSQL parse) the whole rest of the batch to stop after a few rows
  let window = rest.length
  while (rest.length > 0) {
    const part = rest.length <= window ? rest : rest.slice(0, window)
    await tx.query(tracking ? `SAVEPOINT cutover_sink; SELECT setval('${PROGRESS_SEQUENCE}', 0)` : 'SAVEPOINT cutover_sink')
    try {
      await writeAll(tx, sinks, part, tracking)
      await tx.query('RELEASE SAVEPOINT cutover_sink')
      rest = rest.slice(part.length)
      window *= 2
      continue
    } catch (e) {
      if (!(e instanceof SinkWriteError)) throw e
      const back = await tx.query<{last_value: string}>(`ROLLBACK TO SAVEPOINT cutover_sink; RELEASE SAVEPOINT cutover_sink${e.progress ? `; SELECT last_value FROM ${PROGRESS_SEQUENCE}` : ''}`)
      if (part.length === 1) {
        refused.push({item: part[0]!, error: e})
        rest = rest.slice(1)
        continue
      }
      // a foreign key (checked at the end of the statement): its suspects, each written alone (foreign-keys.ts)
      const suspects = await foreignKeySuspects(tx, e.original, part)
      if (suspects && suspects.length > 0) {
        let from = 0
        for (const v of suspects) {
          if (v > from) refused.push(...(await bisect(tx, sinks, part.slice(from, v))))
          refused.push(...(await bisect(tx, sinks, [part[v]!])))
          from = v + 1
        }
        rest = rest.slice(from)
        window = Math.max(MIN_WINDOW, Math.ceil((2 * from) / suspects.length))
        continue
      }
      // 0-based index in `part` of the row it stopped at; -1: unknown
      const at = e.progress ? Number(lastResult(back).rows[0]!.last_value) - 1 : -1
      if (at < 0 || at >= part.length) {
        refused.push(...(await bisect(tx, sinks, part)))
        rest = rest.slice(part.length)
        continue
      }
      if (at > 0) refused.push(...(await bisect(tx, sinks, part.slice(0, at))))
      // the row it stopped at, alone, after the rows before it (as bisection would): refused, or written after all
      refused.push(...(await bisect(tx, sinks, [part[at]!])))
      rest = rest.slice(at + 1)
      window = Math.max(MIN_WINDOW, 2 * (at + 1))
    }
  }
  return refused
}

/** The fewest rows findRefused tries at once after a refused row. */
const MIN_WINDOW = 64

/** Writes `items` to every sink, bisecting under savepoints to find the rows refused: returns those, keeps the others written, in order. */
async function bisect(tx: PoolClient, sinks: readonly Sink[], items: readonly WorkItem[]): Promise<RefusedRow[]> {
  await tx.query('SAVEPOINT cutover_sink')
  try {
    await writeAll(tx, sinks, items)
    await tx.query('RELEASE SAVEPOINT cutover_sink')
    return []
  } catch (e) {
    if (!(e instanceof SinkWriteError)) throw e
    await tx.query('ROLLBACK TO SAVEPOINT cutover_sink; RELEASE SAVEPOINT cutover_sink')
    if (items.length === 1) return [{item: items[0]!, error: e}]
    const mid = Math.ceil(items.length / 2)
    const left = await bisect(tx, sinks, items.slice(0, mid))
    const right = await bisect(tx, sinks, items.slice(mid))
    return [...left, ...right]
  }
}

/** The dead letter of a row the database refused: its texts, with the spec's sensitive values masked (Sink maskRow). */
function sinkRejection(err: SinkWriteError, item: WorkItem): DeadLetter {
  const pgErr = err.original as {message?: string; detail?: string; column?: string; constraint?: string; code?: string}
  const texts = {message: pgErr.message ?? String(err.original), ...(pgErr.detail ? {detail: pgErr.detail} : {})}
  const shown = err.sink.maskRow ? err.sink.maskRow(texts, item.record, pgErr) : texts
  // PostgreSQL names no column for a value too long or a numeric overflow: the sink finds it
  const which = pgErr.column === undefined ? err.sink.explainRow?.(item.record, pgErr.code) : undefined
  return {
    code: 'SINK_REJECTED',
    message: `PostgreSQL rejected the row for ${err.sink.table}: ${shown.message}${shown.detail ? ` (${shown.detail})` : ''}${which ? ` (${which.why})` : ''}`,
    stage: 'sink',
    field: pgErr.column ?? which?.field ?? null,
  }
}

/**
 * The items' statuses as they are now, and `restore()` to put them back (and forget what the
 * dedupe stage noted) before a transaction runs again. Two arrays, not an object per item: this
 * runs for every batch.
 */
export function snapshotItems(items: readonly WorkItem[]): {restore(): void} {
  const status = items.map((i) => i.status)
  const dead = items.map((i) => i.dead)
  return {
    restore() {
      for (let i = 0; i < items.length; i++) {
        const item = items[i]!
        item.status = status[i]!
        item.dead = dead[i]
        // assigned, not deleted: a deleted property turns the object into a slow dictionary
        item.dedupeKey = undefined
        item.dedupeInserted = undefined
        item.dedupeOrder = undefined
        item.windows = undefined
      }
    },
  }
}

export function countItems(items: readonly WorkItem[]): BatchCounts {
  const counts: BatchCounts = {read: items.length, written: 0, duplicates: 0, dead: {}}
  for (const i of items) {
    if (i.status === 'ok') counts.written++
    else if (i.status === 'duplicate') counts.duplicates++
    else if (i.dead) counts.dead[i.dead.code] = (counts.dead[i.dead.code] ?? 0) + 1
  }
  return counts
}

/**
 * Runs one batch in one transaction. `attempt` (1-based) goes into `cutover.attempts`.
 * The same as `commitBatches` with one batch.
 */
export async function commitBatch(deps: BatchDeps, input: BatchInput, attempt: number): Promise<BatchOutcome> {
  try {
    return (await commitBatches(deps, [{input, attempt}]))[0]!
  } catch (e) {
    throw e instanceof GroupCommitOutcomeUnknown ? e.each[0]! : e
  }
}

/** COMMIT of a group got no answer: one CommitOutcomeUnknown per batch that was in it. */
export class GroupCommitOutcomeUnknown extends Error {
  constructor(
    readonly each: CommitOutcomeUnknown[],
    override readonly cause: unknown,
  ) {
    super(each[0]?.message ?? String(cause))
  }
}

/** The compare-and-set failed for one of several batches: run each alone (cannot happen under the row locks). */
class RunAlone extends Error {}

export interface GroupEntry {
  input: BatchInput
  /** 1-based attempt of this batch, into `cutover.attempts` */
  attempt: number
}

/**
 * Runs batches of DIFFERENT partitions of one topic in ONE transaction (group commit): each
 * partition's offset row is locked and compare-and-set as for one batch, and a batch whose
 * partition is behind or has a gap gets that outcome and contributes nothing, while the others
 * commit. The transact stages and the sinks see the union of the batches' records (concatenated
 * in `entries` order), so one dedupe statement, one statement per sink and one COMMIT serve
 * them all. Returns one outcome per entry, in order.
 *
 * The common case writes the outbox rows and the sinks in one statement, without savepoints.
 * If the database refuses a row, the transaction is rolled back and run again at once with
 * savepoints and one statement per sink to find the refused rows (writeSinks; only for that
 * group). If the dedupe fast path lost a race for a key to a concurrent transaction
 * (isDedupeRace), the transaction runs again at once with the race-free dedupe statements.
 */
export async function commitBatches(deps: BatchDeps, entries: readonly GroupEntry[]): Promise<BatchOutcome[]> {
  const topics = new Set(entries.map((e) => `${e.input.ref.pipeline}\u0000${e.input.ref.topic}`))
  if (topics.size > 1 || new Set(entries.map((e) => e.input.ref.partition)).size !== entries.length) {
    throw new Error('a group commit takes batches of different partitions of one topic')
  }
  const snapshots = entries.map((e) => snapshotItems(e.input.items))
  // records a sink refused in an earlier run of this transaction, dead from the start (RepeatsOfRefused)
  const refused = new Map<WorkItem, DeadLetter>()
  // the items as they came (what the caller sees after an error, or hands to another transaction)
  const restoreAsCame = () => snapshots.forEach((s) => s.restore())
  // ...and as this transaction runs again
  const restore = () => {
    restoreAsCame()
    for (const [item, dead] of refused) markDead(item, dead)
  }
  const isolateRows = deps.refusedRows?.take() ?? false
  const mode: TransactionMode = {isolateRows, alone: !deps.isolateInOrder, conservative: false, insertFirst: !isolateRows && (deps.insertFirst?.take() ?? false)}
  for (;;) {
    try {
      const outcomes = await runTransaction(deps, entries, mode)
      if (mode.insertFirst) deps.insertFirst?.success()
      return outcomes
    } catch (e) {
      if (e instanceof RunAlone) {
        restoreAsCame()
        const out: BatchOutcome[] = []
        for (const entry of entries) out.push((await commitBatches(deps, [entry]))[0]!)
        return out
      }
      // each rerun flips one flag for good, so this runs the transaction at most five times (and
      // once more for each record that claims a refused record's key in turn: refusedWithRepeats)
      if (e instanceof RepeatsOfRefused) for (const [item, dead] of e.refused) refused.set(item, dead)
      else if (e instanceof JoinedWriteError && mode.insertFirst && isUniqueViolation(e.original)) {
        // a key that exists (or another unique index: the upsert meets that one again, and the
        // rows are then isolated as below)
        mode.insertFirst = false
        deps.insertFirst?.conflict()
      } else if ((e instanceof SinkWriteError || e instanceof JoinedWriteError) && !mode.isolateRows) mode.isolateRows = true
      else if (isDedupeRace(e) && !mode.conservative) mode.conservative = true
      else if (e instanceof IsolateAlone && !mode.alone) mode.alone = true
      else if (e instanceof DeferredConstraintError && !mode.immediate) {
        mode.immediate = true
        mode.isolateRows = true
        mode.insertFirst = false
      } else if (e instanceof DeferredConstraintError) {
        restoreAsCame()
        throw e.original
      } else {
        // rolled back: the items are as they came, not dead for a refusal the database never
        // committed (a COMMIT without an answer keeps what it decided)
        if (!(e instanceof GroupCommitOutcomeUnknown)) restoreAsCame()
        throw e
      }
      restore()
    }
  }
}

interface TransactionMode {
  /** savepoints and one statement per sink, to find the rows the database refuses (writeSinks) */
  isolateRows: boolean
  /** isolating, it takes the pipeline's lock exclusively (else shared: isolatesInOrder) */
  alone: boolean
  /** the race-free dedupe statements */
  conservative: boolean
  /** upsert sinks write by plain INSERT (InsertFirst) */
  insertFirst: boolean
  /** deferred constraints checked at each statement (after a COMMIT they refused: DeferredConstraintError) */
  immediate?: boolean
}

async function runTransaction(deps: BatchDeps, entries: readonly GroupEntry[], mode: TransactionMode): Promise<BatchOutcome[]> {
  const co = await checkout(deps.pool)
  const client = co.client
  let open = false
  try {
    // A session cut off by a network partition must not hold the partitions' row locks for ever:
    // the server ends it after a minute idle in the transaction, and a waiter gives up (and
    // retries) after 30 s. BEGIN, the SET LOCALs, the offset row locks (in partition order) and
    // the compare-and-set: one round trip.
    open = true
    const claims = entries.map((e) => ({ref: e.input.ref, first: e.input.firstOffset, next: e.input.lastOffset + 1n, allowGap: e.input.allowGap}))
    const begin = beginBatch(entries[0]!.input.ref.pipeline, mode.isolateRows && mode.alone)
    const {states, xid} = await beginLockAndAdvance(client, mode.immediate ? `${begin}; SET CONSTRAINTS ALL IMMEDIATE` : begin, claims)
    const outcomes = new Array<BatchOutcome>(entries.length)
    const live: {entry: GroupEntry; k: number; stored: bigint; next: bigint}[] = []
    let fenced = false
    entries.forEach((entry, k) => {
      const {stored: s, moved} = states[k]!
      const claim = claims[k]!
      if (moved) live.push({entry, k, stored: s, next: claim.next})
      else if (applies(claim, s)) {
        // it should have moved and did not: another consumer moved it (cannot happen under the row lock)
        fenced = true
        outcomes[k] = {kind: 'fenced', stored: s}
      } else if (claim.first > s && !claim.allowGap) outcomes[k] = {kind: 'gap', stored: s}
      else outcomes[k] = {kind: 'behind', stored: s}
    })
    if (fenced && entries.length > 1) {
      await client.query('ROLLBACK')
      open = false
      throw new RunAlone()
    }
    if (live.length === 0) {
      await client.query('ROLLBACK')
      open = false
      return outcomes
    }
    const works = live.map((l) => l.entry.input.items.filter((i) => i.offset >= l.stored))
    const work = works.length === 1 ? works[0]! : works.flat()
    const attemptOf = new Map<WorkItem, number>()
    if (new Set(live.map((l) => l.entry.attempt)).size > 1) live.forEach((l, j) => works[j]!.forEach((i) => attemptOf.set(i, l.entry.attempt)))
    const failedAt = new Date()
    // the dead letters' context when every batch is at the same attempt (attemptOf empty)
    const deadContext = {...deps.deadLetter, attempts: live[0]!.entry.attempt, failedAt}
    const insertDead = async (items: readonly WorkItem[]) => {
      if (attemptOf.size === 0) return insertDeadLetters(client, deps.dlqTopic, items, deadContext)
      const byAttempt = new Map<number, WorkItem[]>()
      for (const i of items) {
        const a = attemptOf.get(i) ?? 1
        const some = byAttempt.get(a)
        if (some) some.push(i)
        else byAttempt.set(a, [i])
      }
      for (const [attempts, some] of byAttempt) await insertDeadLetters(client, deps.dlqTopic, some, {...deps.deadLetter, attempts, failedAt})
      return items.length
    }
    for (const stage of deps.transact) await stage.run(work, client, {conservative: mode.conservative})
    // a record that a stage after dedupe dead-lettered (window: LATE_EVENT) gives back the key it
    // claimed, as one dead-lettered before dedupe holds none: replayed once the spec lets it
    // through (allowed_lateness), it is written, not dropped as a duplicate of itself
    await releaseDedupeKeys(client, deps.deadLetter.pipeline, work.filter((i) => i.dedupeInserted && i.status === 'dead'))
    // in the dedupe stage's key order (the upsert sink then needs no sort of its own)
    const candidates = inDedupeOrder(okItems(work))
    if (!mode.isolateRows) {
      // the common case: the dead letters and every sink in one statement, one round trip.
      // PostgreSQL runs its main statement first and then the data-modifying CTEs, the first
      // one last (PostgreSQL 15, seen with BEFORE triggers; the manual leaves the order open, so
      // this is about speed only): the sinks with shared rows (`sharedRows`: aggregates, which
      // every transaction of the pipeline updates) go first, so that their row locks, which the
      // pipeline's other transactions wait for, are taken after the other inserts, not before
      // them, and held only until COMMIT.
      const shared: WriteStatement[] = []
      const writes: WriteStatement[] = []
      if (attemptOf.size === 0) {
        const outbox = deadLetterStatement(deps.dlqTopic, work, deadContext)
        if (outbox) writes.push(outbox)
      } else await insertDead(work)
      for (const sink of deps.sinks) {
        const st = sink.statement(candidates, {insertFirst: mode.insertFirst})
        if (st) (sink.sharedRows ? shared : writes).push(st)
      }
      try {
        await joinedWrite(client, [...shared, ...writes])
      } catch (e) {
        throw isRowLevelError(e, deps.sinks) ? new JoinedWriteError(e) : e
      }
    } else {
      await insertDead(work)
      const rejected = await writeSinks(client, deps.sinks, candidates, {inOrder: !mode.alone})
      deps.refusedRows?.found(rejected.length, mode.alone)
      for (const r of rejected) markDead(r.item, sinkRejection(r.error, r.item))
      const items = rejected.map((r) => r.item)
      // a refused record counted in a window or fired a rule (Stage keepsState), or claimed the key of a
      // record resolved against it: the transaction runs again with it dead from the start
      if (rejected.length > 0 && (deps.transact.some((s) => s.keepsState) || hasRepeatsOfRefused(work, items))) throw new RepeatsOfRefused(refusedWithRepeats(work, rejected))
      await releaseDedupeKeys(client, deps.deadLetter.pipeline, items)
      await insertDead(items)
    }
    const committed = live.map((l, j) => ({kind: 'committed' as const, stored: l.stored, next: l.next, counts: countItems(works[j]!), committedAt: 0, items: works[j]!}))
    try {
      await client.query('COMMIT')
    } catch (e) {
      const sqlstate = sqlstateOf(e)
      if (sqlstate !== undefined) {
        // the server answered: the transaction was rolled back (the client is not returned to the pool)
        throw sqlstate.startsWith('23') ? new DeferredConstraintError(e) : e
      }
      // the connection broke during COMMIT: the server may or may not have committed
      throw new GroupCommitOutcomeUnknown(
        committed.map((c) => new CommitOutcomeUnknown(c, e, xid)),
        e,
      )
    }
    open = false
    const now = Date.now()
    live.forEach((l, j) => {
      committed[j]!.committedAt = now
      outcomes[l.k] = committed[j]!
    })
    return outcomes
  } catch (e) {
    if (open) await client.query('ROLLBACK').catch(() => {})
    throw e
  } finally {
    // a client whose transaction failed is not trusted back into the pool
    co.release(open)
  }
}
