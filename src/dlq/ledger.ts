/**
 * The replay ledger, `cutover.replays` (migration 4): one row per replay, the PostgreSQL half
 * of its checkpoint and what an auditor reads afterwards (what was selected, sent, parked).
 *
 * The Kafka half is the replay's consumer group: its offsets are committed in the same Kafka
 * transaction as the records sent, so Kafka says exactly what was sent. The row is updated
 * after each transaction commits; a crash in between leaves the row behind the group, and the
 * next run re-reads that stretch of the DLQ to count it (./replay.ts) without sending it again.
 */
import type {Pool} from '../pg/pool.js'

export interface ReplayTarget {
  partition: number
  /** first DLQ offset covered */
  start: string
  /** first DLQ offset not covered (the end offset when the replay was first started) */
  end: string
}

export interface ReplaySelection {
  codes: string[]
  /** as given: ISO-8601 or a duration back from the first run ("2h") */
  since: string | null
  until: string | null
  /**
   * --key as its digest, `sha256:<64 hex>` (./mask.ts keyDigest), never the key itself (a card
   * number, an account id). Rows written by earlier versions hold the key itself: they resume
   * all the same (compared as digests), and their key is replaced by its digest when they do
   * (`digestStoredKey`).
   */
  key: string | null
  /** 'source' or a topic */
  to: string
  max_replays: number
}

export interface ReplayRow {
  id: string
  dlq_topic: string
  pipeline: string
  spec_sha256: string
  selection: ReplaySelection
  group_id: string
  targets: ReplayTarget[]
  /** partition -> next DLQ offset counted */
  progress: Record<string, string>
  scanned: number
  selected: number
  sent: number
  parked: number
  /** dead letters retention deleted before the replay reached them (migration 8) */
  deleted: number
  sent_by_topic: Record<string, number>
  status: 'running' | 'completed' | 'failed'
  runs: number
  started_at: string
  finished_at: string | null
}

export interface ReplayCounts {
  scanned: number
  selected: number
  sent: number
  parked: number
  sentByTopic: Record<string, number>
}

const COLUMNS = `id, dlq_topic, pipeline, spec_sha256, selection, group_id, targets, progress, scanned::int AS scanned, selected::int AS selected,
  sent::int AS sent, parked::int AS parked, deleted::int AS deleted, sent_by_topic, status, runs, started_at::text AS started_at, finished_at::text AS finished_at`

export async function getReplay(pool: Pool, id: string): Promise<ReplayRow | undefined> {
  const r = await pool.query<ReplayRow>(`SELECT ${COLUMNS} FROM cutover.replays WHERE id = $1`, [id])
  return r.rows[0]
}

/** Inserts the row of a new replay, or finds the existing one (then counts one more run). */
export async function openReplay(
  pool: Pool,
  row: Pick<ReplayRow, 'id' | 'dlq_topic' | 'pipeline' | 'spec_sha256' | 'selection' | 'group_id' | 'targets'> & {run_by: string},
): Promise<{row: ReplayRow; created: boolean}> {
  const ins = await pool.query(
    `INSERT INTO cutover.replays (id, dlq_topic, pipeline, spec_sha256, selection, group_id, targets, run_by)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (id) DO NOTHING`,
    [row.id, row.dlq_topic, row.pipeline, row.spec_sha256, JSON.stringify(row.selection), row.group_id, JSON.stringify(row.targets), row.run_by],
  )
  const created = (ins.rowCount ?? 0) > 0
  if (!created) await pool.query(`UPDATE cutover.replays SET runs = runs + 1, updated_at = now() WHERE id = $1 AND status <> 'completed'`, [row.id])
  return {row: (await getReplay(pool, row.id))!, created}
}

/**
 * Replaces the key a row written by an earlier version keeps in its selection (the --key
 * itself) by its digest; only while it still holds that very key.
 */
export async function digestStoredKey(pool: Pool, id: string, key: string, digest: string): Promise<void> {
  await pool.query(`UPDATE cutover.replays SET selection = jsonb_set(selection, '{key}', to_jsonb($3::text)) WHERE id = $1 AND selection ->> 'key' = $2`, [id, key, digest])
}

/**
 * Adds the counts of one stretch of a partition, [progress, next), and moves its progress to
 * `next` - only if the row is still at `from` (a stretch is never counted twice).
 */
export async function recordProgress(pool: Pool, id: string, partition: number, from: bigint, next: bigint, c: ReplayCounts): Promise<boolean> {
  const r = await pool.query(
    `UPDATE cutover.replays SET
       progress = progress || jsonb_build_object($2::text, $4::text),
       scanned = scanned + $5, selected = selected + $6, sent = sent + $7, parked = parked + $8,
       sent_by_topic = (SELECT coalesce(jsonb_object_agg(k, v), '{}') FROM (
         SELECT k, sum(v)::bigint AS v FROM (
           SELECT key AS k, value::bigint AS v FROM jsonb_each_text(sent_by_topic)
           UNION ALL SELECT key, value::bigint FROM jsonb_each_text($9::jsonb)) x GROUP BY k) y),
       updated_at = now()
     WHERE id = $1 AND coalesce(progress ->> $2::text, (SELECT t ->> 'start' FROM jsonb_array_elements(targets) t WHERE (t ->> 'partition')::int = $2::int)) = $3::text`,
    [id, partition, from.toString(), next.toString(), c.scanned, c.selected, c.sent, c.parked, JSON.stringify(c.sentByTopic)],
  )
  return (r.rowCount ?? 0) > 0
}

/**
 * Passes over [from, next) of `partition`, deleted by retention before the replay reached it:
 * counted as deleted (`deleted` of them: fewer when the stretch begins with transaction markers
 * the replay passed over), with the same compare-and-set on the progress as recordProgress.
 */
export async function recordDeleted(pool: Pool, id: string, partition: number, from: bigint, next: bigint, deleted = next - from): Promise<boolean> {
  const r = await pool.query(
    `UPDATE cutover.replays SET progress = progress || jsonb_build_object($2::text, $4::text), deleted = deleted + $5, updated_at = now()
     WHERE id = $1 AND coalesce(progress ->> $2::text, (SELECT t ->> 'start' FROM jsonb_array_elements(targets) t WHERE (t ->> 'partition')::int = $2::int)) = $3::text`,
    [id, partition, from.toString(), next.toString(), deleted.toString()],
  )
  return (r.rowCount ?? 0) > 0
}

export async function finishReplay(pool: Pool, id: string, status: 'completed' | 'failed'): Promise<void> {
  await pool.query(`UPDATE cutover.replays SET status = $2, finished_at = now(), updated_at = now() WHERE id = $1`, [id, status])
}
