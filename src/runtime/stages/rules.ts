/**
 * Stage `rules` (transactional, last: after dedupe and window): alert rules, published through
 * the PostgreSQL outbox, so that an alert exists exactly when its batch committed.
 *
 * - Each rule's `when` was parsed and type-checked when the spec was loaded
 *   (config/rule-expression.ts); here it is compiled once, and evaluated for each `ok` record of
 *   the batch in offset order. A rule fires on a record for which its condition is true (a
 *   comparison with null is unknown, never true).
 * - A rule that reads no window fires for every such record. A rule that reads a window
 *   aggregate (`velocity.txn_count`) fires at most ONCE per window instance: the start and key
 *   of each window it reads (`item.windows`, set by the window stage), as JSON text, claimed in
 *   `cutover.rule_firings (pipeline, rule, instance)` by INSERT ... ON CONFLICT DO NOTHING
 *   RETURNING. A later record of the same instance (in this batch or another, before a restart or
 *   after it) does not fire it again. Rows are pruned after RULE_FIRINGS_RETENTION_MS.
 * - One statement per batch (with any rule firing): the instances claimed (in (rule, instance)
 *   order: concurrent partitions lock them in the same order) and one outbox row per alert, to
 *   the rule's `emit` topic, in offset order. The relay (../relay.ts) publishes them.
 * - The alert: key = the window key for a window rule (of the first window it reads; masked when
 *   the window is kept by a sensitive field), else the record's Kafka key; value = JSON {rule, pipeline, when, record: {the spec's key field(s) and
 *   event_time}, windows: {name: {start, end, key, values}} (those it reads), source: {topic,
 *   partition, offset}}, every value its exact text; headers cutover.pipeline,
 *   cutover.pipeline.version, cutover.rule, cutover.source.topic/.partition/.offset. A `sensitive`
 *   field's value is masked in it (maskValue), and so are the key and aggregates of a window over one.
 * - A record a sink refuses (SINK_REJECTED) raises no alert: the stage keeps state (Stage
 *   keepsState), so the batch transaction runs again with that record dead from the start
 *   (batch.ts), and a fixed `dlq replay` of it raises its alerts once.
 */
import {namesOf, parseAggregate} from '../../config/spec.js'
import {compileCondition, ruleScopeOf, type CompiledCondition} from '../../config/rule-expression.js'
import {maskValue} from '../../normalize/text.js'
import type {PoolClient} from '../../pg/pool.js'
import type {StoredHeaders} from '../outbox.js'
import type {PipelineContext, Stage, WorkItem} from '../types.js'

/** A rule of a window fires once per instance; an instance's row is kept this long (wall clock), then pruned. */
export const RULE_FIRINGS_RETENTION_MS = 8 * 24 * 3600 * 1000
/** Rows deleted by one prune of the firings (hourly), so that it never holds the table long. */
export const RULE_FIRINGS_PRUNE_LIMIT = 50_000

/** A work item as the rules stage leaves it: the names of the rules it raised an alert for in this transaction (in rule order). */
export type AlertedItem = WorkItem & {alerted?: string[]}

/** The rules a committed item raised alerts for (none: undefined). */
export function alertsOf(item: WorkItem): readonly string[] | undefined {
  return (item as AlertedItem).alerted
}

/** The emit topics of a spec's rules, each once. */
export function emitTopics(rules: readonly {emit: string}[]): string[] {
  return [...new Set(rules.map((r) => r.emit))]
}

/** One rule firing on one record, before the claim of its window instance. */
interface Firing {
  item: WorkItem
  rule: string
  topic: string
  /** the window instance (JSON text), undefined for a rule without windows */
  instance: string | undefined
  key: Buffer | null
  value: Buffer
  headers: string
}

/** The batch's alerts: the window instances claimed and the outbox rows of the alerts that fire, in one round trip. */
export const ALERTS_SQL = `WITH c AS (
  SELECT * FROM unnest($2::text[], $3::text[], $4::text[], $5::bytea[], $6::bytea[], $7::jsonb[]) WITH ORDINALITY AS c(rule, instance, topic, k, v, h, ord)),
f AS (INSERT INTO cutover.rule_firings (pipeline, rule, instance)
      SELECT $1, c.rule, c.instance FROM c WHERE c.instance IS NOT NULL ORDER BY c.rule, c.instance
      ON CONFLICT DO NOTHING RETURNING rule, instance),
fire AS (SELECT c.* FROM c WHERE c.instance IS NULL OR EXISTS (SELECT 1 FROM f WHERE f.rule = c.rule AND f.instance = c.instance)),
o AS (INSERT INTO cutover.outbox (pipeline, topic, key, value, headers) SELECT $1, fire.topic, fire.k, fire.v, fire.h FROM fire ORDER BY fire.ord)
SELECT ord::int AS ord FROM fire`

export function rulesStage(ctx: PipelineContext): Stage | null {
  const {spec, sha256} = ctx.loaded
  if (spec.rules.length === 0) return null
  const scope = ruleScopeOf(spec)
  const rules = spec.rules.map((r) => ({name: r.name, when: r.when, emit: r.emit, condition: compileCondition(r.when, scope)}))
  const sensitive = (f: string | undefined) => f !== undefined && spec.fields[f]?.sensitive === true
  const keys = namesOf(spec.key)
  const shownFields = spec.event_time !== undefined && !keys.includes(spec.event_time) ? [...keys, spec.event_time] : keys
  // per window: its key masked when one of its `by` fields is sensitive; the aggregates of a sensitive field
  const windowMask = new Map(
    spec.windows.map((w) => [
      w.name,
      {key: namesOf(w.by).some(sensitive), aggs: new Set(Object.entries(w.aggregates).filter(([, expr]) => sensitive(parseAggregate(expr).field)).map(([name]) => name))},
    ]),
  )
  const b64 = (s: string) => Buffer.from(s, 'utf8').toString('base64')

  const recordOf = (item: WorkItem): Record<string, unknown> => {
    const out: Record<string, unknown> = {}
    for (const f of shownFields) {
      const v = item.record![f] ?? null
      out[f] = v !== null && sensitive(f) ? maskValue(String(v)) : v
    }
    return out
  }
  const windowsOf = (item: WorkItem, condition: CompiledCondition) => {
    const out: Record<string, {start: string; end: string; key: string; values: Record<string, string | null>}> = {}
    for (const name of condition.windows) {
      const w = item.windows?.[name]
      if (!w) continue
      const mask = windowMask.get(name)
      const values: Record<string, string | null> = {}
      for (const [a, v] of Object.entries(w.values)) values[a] = v !== null && mask?.aggs.has(a) ? maskValue(v) : v
      out[name] = {start: w.start, end: w.end, key: mask?.key ? maskValue(w.key) : w.key, values}
    }
    return out
  }

  const fire = (item: WorkItem, rule: (typeof rules)[number], ws: readonly string[], instance: string | undefined): Firing => {
    const value = {
      rule: rule.name,
      pipeline: ctx.pipeline,
      when: rule.when,
      record: recordOf(item),
      windows: windowsOf(item, rule.condition),
      source: {topic: item.topic, partition: item.partition, offset: item.offset.toString()},
    }
    const headers: StoredHeaders = [
      ['cutover.pipeline', b64(ctx.pipeline)],
      ['cutover.pipeline.version', b64(sha256)],
      ['cutover.rule', b64(rule.name)],
      ['cutover.source.topic', b64(item.topic)],
      ['cutover.source.partition', b64(String(item.partition))],
      ['cutover.source.offset', b64(item.offset.toString())],
    ]
    // a window rule's key: the window key, masked as in the value when a `by` field is sensitive
    // (a card number would otherwise reach the alerts topic in clear: a new place for it)
    const windowKey = ws.length > 0 ? item.windows![ws[0]!]!.key : undefined
    const key = windowKey !== undefined ? Buffer.from(windowMask.get(ws[0]!)?.key ? maskValue(windowKey) : windowKey, 'utf8') : (item.message.key ?? null)
    return {item, rule: rule.name, topic: rule.emit, instance, key, value: Buffer.from(JSON.stringify(value), 'utf8'), headers: JSON.stringify(headers)}
  }

  return {
    name: 'rules',
    phase: 'transact',
    // a record a sink refuses fires no rule: the transaction runs again with it dead (batch.ts)
    keepsState: true,
    async run(items, tx) {
      if (!tx) throw new Error('rules run inside the batch transaction')
      const firings: Firing[] = []
      // one firing per (rule, instance) in the batch: the first record in offset order
      const claimed = new Set<string>()
      for (const item of items) {
        ;(item as AlertedItem).alerted = undefined // set again on every run of the transaction
        if (item.status !== 'ok' || !item.record) continue
        const input = {record: item.record, windows: item.windows}
        for (const rule of rules) {
          if (rule.condition.evaluate(input) !== true) continue
          // the instance: each window's start and key (a record counted in none of the windows it reads: none, it fires per record)
          const ws = rule.condition.windows.length === 0 ? rule.condition.windows : rule.condition.windows.filter((w) => item.windows?.[w] !== undefined)
          const instance = ws.length === 0 ? undefined : JSON.stringify(ws.map((w) => [w, item.windows![w]!.start, item.windows![w]!.key]))
          if (instance !== undefined) {
            const id = `${rule.name}\u0000${instance}`
            if (claimed.has(id)) continue
            claimed.add(id)
          }
          firings.push(fire(item, rule, ws, instance))
        }
      }
      if (firings.length === 0) return
      await writeAlerts(tx, ctx.pipeline, firings)
    },
  }
}

async function writeAlerts(tx: PoolClient, pipeline: string, firings: readonly Firing[]): Promise<void> {
  const r = await tx.query<{ord: number}>(ALERTS_SQL, [
    pipeline,
    firings.map((f) => f.rule),
    firings.map((f) => f.instance ?? null),
    firings.map((f) => f.topic),
    firings.map((f) => f.key),
    firings.map((f) => f.value),
    firings.map((f) => f.headers),
  ])
  for (const {ord} of r.rows) {
    const f = firings[ord - 1]!
    const item = f.item as AlertedItem
    ;(item.alerted ??= []).push(f.rule)
  }
}

/** Deletes the window instances fired more than RULE_FIRINGS_RETENTION_MS ago, RULE_FIRINGS_PRUNE_LIMIT at most (run hourly). */
export async function pruneRuleFirings(db: {query: PoolClient['query']}, pipeline: string, retentionMs = RULE_FIRINGS_RETENTION_MS): Promise<number> {
  const r = await db.query(
    `DELETE FROM cutover.rule_firings WHERE ctid IN (
       SELECT ctid FROM cutover.rule_firings WHERE pipeline = $1 AND fired_at < now() - make_interval(secs => $2) LIMIT ${RULE_FIRINGS_PRUNE_LIMIT})`,
    [pipeline, retentionMs / 1000],
  )
  return r.rowCount ?? 0
}
