/**
 * Backfill checkpoints in `cutover.backfills` (migration 5): one row per backfill, updated every
 * few seconds and when the backfill stops, with the source position acknowledged by the broker.
 *
 *   position = {records, partitions?, last?}
 *     records     source records handled, in the reader's order, whose batch the broker
 *                 acknowledged (sent, or rejected to the DLQ); for file and pg: sources the
 *                 ordinal of the last one (a resume skips that many), for kafka: sources their
 *                 count over all runs (the reader's order differs each run: run.ts KAFKA_COUNT)
 *     partitions  kafka: sources: per partition, the last acknowledged offset (the reader
 *                 interleaves partitions, so an ordinal alone would not say where to continue)
 *     last        the Position of the last acknowledged record, for people
 *     last_sha256 csv: and fixed: sources: the digest of that record (records.ts recordSha256),
 *                 which a resume checks when it reads the record again (./file-identity.ts)
 *
 * `options` holds what the backfill was started with; a resumed run writes back the pace it
 * was given (--rate, --burst, --max-lag, --group, --batch-size), so the next resume keeps it.
 *
 * A session advisory lock on the id keeps two processes from running one backfill at once.
 */
import type {Pool, PoolClient} from '../pg/pool.js'
import type {Position} from '../../legacy-adapters/types.js'
import {UsageError} from '../errors.js'

export type BackfillStatus = 'running' | 'stopped' | 'completed' | 'failed'

export interface BackfillPosition {
  records: number
  partitions?: Record<string, string>
  last?: Position
  last_sha256?: string
}

export interface BackfillCounts {
  read: number
  sent: number
  rejected: number
  out_of_range: number
  rejected_by_code: Record<string, number>
}

export interface BackfillRow {
  id: string
  source: string
  target: string
  options: Record<string, unknown>
  position: BackfillPosition
  counts: BackfillCounts
  status: BackfillStatus
  runs: number
  paused_ms: number
  elapsed_ms: number
}

export function emptyCounts(): BackfillCounts {
  return {read: 0, sent: 0, rejected: 0, out_of_range: 0, rejected_by_code: {}}
}

export class CheckpointStore {
  private lockClient: PoolClient | undefined

  constructor(private readonly pool: Pool) {}

  /** Takes the run lock of a backfill id (held until `release`). */
  async lock(id: string): Promise<void> {
    const c = await this.pool.connect()
    const r = await c.query<{ok: boolean}>(`SELECT pg_try_advisory_lock(hashtext('cutover.backfill'), hashtext($1)) AS ok`, [id])
    if (!r.rows[0]?.ok) {
      c.release()
      throw new UsageError(`backfill ${id} is running in another process`, {hint: 'wait for it to finish, or stop it (SIGINT) and resume here'})
    }
    this.lockClient = c
  }

  async release(): Promise<void> {
    const c = this.lockClient
    this.lockClient = undefined
    if (!c) return
    c.release(true) // destroying the session drops its advisory locks
  }

  async load(id: string): Promise<BackfillRow | undefined> {
    const r = await this.pool.query<{id: string; source: string; target: string; options: Record<string, unknown>; position: BackfillPosition; counts: BackfillCounts; status: BackfillStatus; runs: number; paused_ms: string; elapsed_ms: string}>(
      `SELECT id, source, target, options, position, counts, status, runs, paused_ms, elapsed_ms FROM cutover.backfills WHERE id = $1`,
      [id],
    )
    const row = r.rows[0]
    return row ? {...row, paused_ms: Number(row.paused_ms), elapsed_ms: Number(row.elapsed_ms)} : undefined
  }

  /** Records a new backfill; an id that is taken already (--id of an earlier backfill) is a UsageError. */
  async create(row: Omit<BackfillRow, 'runs'>, runBy: string): Promise<void> {
    const taken = await this.load(row.id)
    if (taken) {
      throw new UsageError(`backfill ${row.id} exists already (${taken.status}, ${taken.source} -> ${taken.target})`, {
        hint: taken.status === 'completed' ? 'name the new backfill with another --id (or none: one is made up)' : `continue it with --resume ${row.id}, or name the new backfill with another --id`,
      })
    }
    await this.pool.query(
      `INSERT INTO cutover.backfills (id, source, target, options, position, counts, status, paused_ms, elapsed_ms, run_by)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
      [row.id, row.source, row.target, row.options, row.position, row.counts, row.status, row.paused_ms, row.elapsed_ms, runBy],
    )
  }

  /** A resumed run starts: status running, one more run; `options` the ones in force from now on (the pace it was given). */
  async restart(id: string, options?: Record<string, unknown>): Promise<void> {
    await this.pool.query(
      `UPDATE cutover.backfills SET status = 'running', runs = runs + 1, options = COALESCE($2, options), finished_at = NULL, error = NULL, updated_at = now() WHERE id = $1`,
      [id, options ?? null],
    )
  }

  async save(id: string, position: BackfillPosition, counts: BackfillCounts, pausedMs: number, elapsedMs: number, status: BackfillStatus = 'running', error?: string): Promise<void> {
    await this.pool.query(
      `UPDATE cutover.backfills
          SET position = $2, counts = $3, paused_ms = $4, elapsed_ms = $5, status = $6, error = $7, updated_at = now(),
              finished_at = CASE WHEN $6 = 'running' THEN NULL ELSE now() END
        WHERE id = $1`,
      [id, position, counts, Math.round(pausedMs), Math.round(elapsedMs), status, error ?? null],
    )
  }
}
