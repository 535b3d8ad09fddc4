/**
 * The shapes that flow through the stream runtime.
 *
 * One kafkajs batch (one partition) becomes an array of `WorkItem`s. Each stage reads the
 * items still `ok` and may turn one into `dead` (it goes to the dead-letter topic with its
 * code) or `duplicate` (dropped and counted). Stages never remove or reorder items, so the
 * offsets stay aligned with the batch.
 */
import type {KafkaMessage} from 'kafkajs'
import type {PoolClient} from '../pg/pool.js'
import type {LoadedSpec} from '../config/spec.js'
import type {RecordErrorCode} from '../errors.js'
import type {Logger} from '../log.js'
import type {NormalizedValue} from '../normalize/types.js'
import type {RawRecordOk} from '../../legacy-adapters/types.js'
import type {StageName} from './metrics.js'
import type {RowTextMasker} from './sinks/sensitive.js'

export type NormalizedRecord = Record<string, NormalizedValue>

export interface DeadLetter {
  code: RecordErrorCode
  /** one human sentence with the field and the value (masked when sensitive) */
  message: string
  stage: StageName
  field: string | null
}

export interface WorkItem {
  message: KafkaMessage
  topic: string
  partition: number
  /** the Kafka offset, as a bigint for exact comparisons */
  offset: bigint
  raw?: RawRecordOk
  record?: NormalizedRecord
  status: 'ok' | 'dead' | 'duplicate'
  dead?: DeadLetter
  /** set by dedupe: this batch inserted the record's dedupe key (undone if a sink rejects the row) */
  dedupeKey?: string
  /** SHA-256 of the normalized record (dedupe) */
  dedupeHash?: string
  dedupeInserted?: boolean
  /**
   * set by dedupe on the first occurrence of each key: the key's rank in the batch's sorted keys;
   * the sinks get the records in this order (inDedupeOrder)
   */
  dedupeOrder?: number
  /**
   * set by the window stage on a record it counted: per window name, the aggregates (output name ->
   * exact text, null when undefined, e.g. min of no value) of the record's window that started
   * earliest (the one covering the most time before the record), after this record was added,
   * and that window's bounds; the rules stage reads `<window>.<aggregate>` from here
   */
  windows?: Record<string, {start: string; end: string; key: string; values: Record<string, string | null>}>
}

export function markDead(item: WorkItem, dead: DeadLetter): void {
  item.status = 'dead'
  item.dead = dead
}

export function okItems(items: readonly WorkItem[]): WorkItem[] {
  return items.filter((i) => i.status === 'ok')
}

/**
 * `items` in the dedupe stage's key order when it ranked every one of them (`dedupeOrder`, each
 * rank once), else `items` as given. After dedupe the `ok` items are the first occurrences of
 * their keys, so with a sink keyed like the dedupe they reach it distinct and already sorted, and
 * the upsert sink skips its own grouping and sort (~0.7 µs per record for a Map and a sort of
 * 6,000 keys). Placed by rank: no comparison sort here either.
 */
export function inDedupeOrder(items: WorkItem[]): WorkItem[] {
  if (items.length < 2) return items
  let max = -1
  for (const i of items) {
    const o = i.dedupeOrder
    if (o === undefined) return items
    if (o > max) max = o
  }
  const slots = new Array<WorkItem | undefined>(max + 1)
  for (const i of items) {
    if (slots[i.dedupeOrder!] !== undefined) return items
    slots[i.dedupeOrder!] = i
  }
  const out: WorkItem[] = []
  for (const i of slots) if (i !== undefined) out.push(i)
  return out
}


/** What every stage and sink may use; built once per run. */
export interface PipelineContext {
  loaded: LoadedSpec
  /** pipeline identity in cutover's tables: the spec name */
  pipeline: string
  /** PostgreSQL schema of sink tables without an explicit `schema.` */
  schema: string
  /** largest accepted message value, in bytes (RECORD_TOO_LARGE above) */
  maxRecordBytes: number
  /** dedupe keys older than this are pruned */
  dedupeRetentionMs: number
  logger: Logger
  /** a stop (SIGTERM/SIGINT) ends a start check's wait for a lock on a sink table (sinks/table.ts planWaiting) */
  signal?: AbortSignal
  /** a line for the person at the terminal: stream run's human mode (a start check waiting for a lock) */
  notice?: (message: string) => void
}

/**
 * A stage. `prepare` stages are pure (decode, normalize, validate; later enrich) and run once
 * per batch before the transaction; `transact` stages (dedupe; later window) run inside the
 * batch's PostgreSQL transaction and are re-run if that transaction is retried.
 */
export interface Stage {
  readonly name: StageName
  readonly phase: 'prepare' | 'transact'
  run(items: WorkItem[], tx: PoolClient | null, opts?: StageRunOptions): Promise<void> | void
  /**
   * `transact` stages: the per-record part that needs no database (dedupe: the payload hash), run
   * in the prepare phase on the records still `ok`, outside the transaction and while other
   * batches' transactions run; `run` does it itself for a record that did not get it.
   */
  precompute?(items: WorkItem[]): void
  /**
   * `transact` stages whose state counts the batch's `ok` records (window: the aggregates; rules:
   * the firings and alerts): a record a sink then refuses must not have reached it, so the
   * transaction runs again with that record dead from the start (batch.ts RepeatsOfRefused),
   * as the dedupe keys of refused records are released
   */
  readonly keepsState?: boolean
}

export interface StageRunOptions {
  /** the batch runs again after a race with a concurrent transaction: take the slower, race-free path */
  conservative?: boolean
}

export type StageFactory = (ctx: PipelineContext) => Stage | null

/**
 * One set-based SQL statement with its parameters, numbered from `base + 1`, so that the runtime
 * can join several into one round trip (`WITH w0 AS (...), w1 AS (...) ...`, see batch.ts joinedWrite).
 */
export interface WriteStatement {
  /** the relation it writes (two statements on one table are never joined) */
  readonly target: string
  text(base: number): string
  readonly params: unknown[]
  /** it reports the row it is writing through PROGRESS_SEQUENCE (asked for with `progress`) */
  readonly progress?: boolean
  /**
   * the rows as COPY text lines (pg/copy.ts): `text(0)` is then a `COPY ... FROM STDIN`, run on
   * its own before the joined statements, and `params` is empty
   */
  readonly copy?: string
}

/**
 * The fewest rows a bulk insert sends by COPY (WriteStatement `copy`, the dedupe keys) rather than
 * in the joined statement: COPY is a round trip of its own, which only many rows repay (at a
 * trickle, 5,000 records/s, transactions hold tens of records and keep their four round trips).
 */
export const COPY_MIN_ROWS = 500

/**
 * A session's temporary sequence through which a sink statement asked for `progress` reports, row
 * by row, the 1-based index (in the items it was given) of the row it is about to write:
 * `setval` is not undone by a rollback, so after a row-level error it tells the row the
 * statement stopped at (batch.ts writeSinks). 0: no row reached.
 */
export const PROGRESS_SEQUENCE = 'pg_temp.cutover_sink_progress'

/** The condition that reports the row `index` (1-based) as it is written: a WHERE of the statement's last scan. */
export function progressMark(index: string): string {
  return `setval('${PROGRESS_SEQUENCE}', ${index}) IS NOT NULL`
}

/**
 * A sink writes the `ok` items of a batch inside the batch transaction, as ONE set-based SQL
 * statement (never row by row), which the runtime runs alone or joined with the batch's other
 * writes. `statement` may be called again on a subset of the items when the database rejects a
 * row (the runtime bisects under savepoints to find it), so it must be a pure function of the
 * items it is given; null when there is nothing to write.
 */
export interface Sink {
  readonly name: string
  /** the qualified table, for messages */
  readonly table: string
  /**
   * its rows are shared by the pipeline's transactions (an aggregate: every batch updates the same
   * account-days): the batch writes it last, so that its row locks are held the shortest time
   * (batch.ts)
   */
  readonly sharedRows?: boolean
  /**
   * SQLSTATEs besides classes 22 and 23 by which its table refuses one row (the spec's
   * `reject_sqlstates`, e.g. a trigger's P0001): the row is isolated and dead-lettered as
   * SINK_REJECTED instead of the batch being retried (batch.ts isRowLevelError)
   */
  readonly rejects?: ReadonlySet<string>
  /** masks the spec's sensitive fields in what the database says of a row it refused (sinks/sensitive.ts); absent when none is sensitive */
  readonly maskRow?: RowTextMasker
  /**
   * The field of `record` whose column PostgreSQL refused, and why (naming the column), when its
   * text names none (a value too long, a numeric overflow: sinks/table.ts overflowOf); undefined
   * when it cannot tell
   */
  explainRow?(record: NormalizedRecord | undefined, sqlstate: string | undefined): {field: string; why: string} | undefined
  /** the write of `items` (see above); null when there is nothing to write */
  statement(items: readonly WorkItem[], options?: SinkStatementOptions): WriteStatement | null
}

export interface SinkStatementOptions {
  /**
   * a plain INSERT instead of the upsert, for a transaction that expects new keys only (batch.ts
   * InsertFirst); a key that exists then fails it with 23505 and the transaction runs again with
   * the upsert. Sinks whose statement is not an upsert of rows ignore it. With COPY_MIN_ROWS rows
   * or more, into a table that may be copied into, the insert is a COPY (WriteStatement `copy`).
   */
  insertFirst?: boolean
  /**
   * report the row being written (progressMark), when the statement writes `items` one row each,
   * in their order; a sink that cannot returns a statement without `progress`
   */
  progress?: boolean
}
