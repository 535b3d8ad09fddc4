/**
 * Root-cause attribution (`parity check --spec pipeline.yaml`): each unexplained key missing
 * on the streaming side is looked up where the stream runtime keeps what it did not write:
 *
 *   cutover.outbox        dead letters of that pipeline (headers cutover.error.code and
 *                         cutover.source.topic/partition/offset): `in DLQ: REQUIRED_FIELD_EMPTY
 *                         (txn.raw/3/1234)`; LATE_EVENT is reported as `late (...)`;
 *   the DLQ topic         (with Kafka settings) for keys not in the outbox: the relay prunes
 *                         sent dead letters after a retention, the topic keeps them;
 *   cutover.stream_dedupe the key was already seen by the stream: `duplicate dropped`;
 *   neither                `not seen by the stream`.
 *
 * A dead letter is matched by its Kafka key (the key's text) or, for JSON values, by the
 * input fields the spec's key fields read (`from`). Counts per cause go to `root_causes`;
 * the samples of missing rows get the cause as their explanation. The keys still count as
 * unexplained: a root cause is a to-do, not an accepted difference.
 */
import QueryStream from 'pg-query-stream'
import {openSource, type ReaderContext} from '../../legacy-adapters/index.js'
import {UsageError} from '../errors.js'
import {namesOf, type PipelineSpec} from '../config/spec.js'
import {mapPgError, openDatabase} from '../pg/pool.js'
import {parseJsonExact, UnusableJsonError} from '../normalize/json.js'
import {storedKeys} from '../runtime/stages/dedupe.js'
import type {ParityCore} from './compare.js'

export interface AttributionOptions {
  core: ParityCore
  spec: PipelineSpec
  databaseUrl: string
  /** the variable databaseUrl came from, for errors (default DATABASE_URL) */
  databaseUrlName?: string
  /** the check's key columns (left names), in order */
  keyColumns: string[]
  /** Kafka settings: keys not in the outbox (pruned after the relay sent them) are looked up in the DLQ topic */
  ctx?: ReaderContext
}

function header(headers: [string, string][], name: string): string | undefined {
  const h = headers.find(([n]) => n === name)
  return h ? Buffer.from(h[1], 'base64').toString('utf8') : undefined
}

/** The pipeline's key text of a parity key (single value, or the JSON array the dedupe stage uses). */
function pipelineKey(key: string[]): string {
  return key.length === 1 ? key[0]! : JSON.stringify(key)
}

export async function attributeMissing(o: AttributionOptions): Promise<Record<string, number>> {
  const causes: Record<string, number> = {}
  const keys = o.core.missingKeys
  if (keys.length === 0 && o.core.missingKeysDropped === 0) return causes
  const byText = new Map<string, string>() // pipeline key text -> cause text
  const wanted = new Set(keys.map(pipelineKey))
  const specKey = namesOf(o.spec.key)
  const fromFields = specKey.map((k) => o.spec.fields[k]?.from ?? k)
  // openDatabase runs the migrations: the outbox and dedupe tables exist even before a first `stream run`
  const pool = await openDatabase(o.databaseUrl, {max: 1, applicationName: 'cutover-parity', ...(o.databaseUrlName ? {urlName: o.databaseUrlName} : {})})
  const client = await pool.connect()
  /** Records the cause of a dead letter whose Kafka key or JSON value names a wanted key. */
  const match = (key: Buffer | null | undefined, value: Buffer | null | undefined, headerOf: (name: string) => string | undefined) => {
    const candidates: string[] = []
    if (key) candidates.push(key.toString('utf8').trim())
    if (value && value[0] === 0x7b) {
      const text = value.toString('utf8')
      let v: Record<string, unknown> | undefined
      try {
        v = parseJsonExact(text) as Record<string, unknown>
      } catch (e) {
        // JSON the runtime refused (a member given twice, a lone surrogate): its key still names it;
        // not JSON: the Kafka key is all there is to match on
        if (e instanceof UnusableJsonError) v = JSON.parse(text) as Record<string, unknown>
      }
      if (v) candidates.push(pipelineKey(fromFields.map((f) => (v[f] === undefined || v[f] === null ? '' : String(v[f]).trim()))))
    }
    const hit = candidates.find((c) => wanted.has(c) && !byText.has(c))
    if (hit === undefined) return
    const code = headerOf('cutover.error.code') ?? 'UNKNOWN'
    const where = `${headerOf('cutover.source.topic') ?? '?'}/${headerOf('cutover.source.partition') ?? '?'}/${headerOf('cutover.source.offset') ?? '?'}`
    byText.set(hit, code === 'LATE_EVENT' ? `late (${where})` : `in DLQ: ${code} (${where})`)
  }
  try {
    // dead letters of the pipeline (streamed: the outbox may be large)
    const rows = client.query(
      new QueryStream('SELECT key, value, headers FROM cutover.outbox WHERE pipeline = $1 AND topic = $2 ORDER BY id', [o.spec.name, o.spec.dlq.topic], {batchSize: 2000}),
    ) as unknown as AsyncIterable<{key: Buffer | null; value: Buffer | null; headers: [string, string][]}>
    for await (const r of rows) match(r.key, r.value, (name) => header(r.headers, name))
    // dead letters the relay sent and the outbox has pruned: the DLQ topic
    if (o.ctx?.kafka && [...wanted].some((k) => !byText.has(k))) {
      try {
        for await (const r of openSource(`kafka:${o.spec.dlq.topic}?format=text`, o.ctx)) {
          const raw = r.raw ?? (r.ok && typeof r.fields.value === 'string' ? Buffer.from(r.fields.value) : undefined)
          match(r.key, raw, (name) => {
            const h = r.headers?.[name]
            const one = Array.isArray(h) ? h[h.length - 1] : h
            return one === undefined ? undefined : Buffer.isBuffer(one) ? one.toString('utf8') : one
          })
        }
      } catch (e) {
        // a DLQ topic that does not exist (yet) holds no dead letters; anything else is reported
        if (!(e instanceof UsageError && /does not exist/.test(e.message))) throw e
      }
    }
    // keys the stream already saw
    const rest = [...wanted].filter((k) => !byText.has(k))
    for (let i = 0; i < rest.length; i += 10_000) {
      const chunk = rest.slice(i, i + 10_000)
      const q = await client.query<{key: string; seen: string}>(
        storedKeys('unnest($2::text[])', `k.key AS key, to_char(d.seen_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') AS seen`),
        [o.spec.name, chunk],
      )
      for (const r of q.rows) byText.set(r.key, `duplicate dropped (key first seen ${r.seen})`)
    }
  } catch (e) {
    if (e instanceof UsageError) throw e
    throw mapPgError(e, o.databaseUrl, o.databaseUrlName)
  } finally {
    client.release()
    await pool.end().catch(() => {})
  }
  const bucket = (cause: string) => (cause.startsWith('in DLQ: ') ? cause.replace(/ \(.*$/, '') : cause.startsWith('late') ? 'late' : cause.startsWith('duplicate dropped') ? 'duplicate dropped' : cause)
  for (const k of keys) {
    const cause = byText.get(pipelineKey(k)) ?? 'not seen by the stream'
    causes[bucket(cause)] = (causes[bucket(cause)] ?? 0) + 1
  }
  if (o.core.missingKeysDropped > 0) causes['not looked up (too many)'] = o.core.missingKeysDropped
  for (const s of o.core.currentSamples()) {
    if (s.kind !== 'missing_in_right' || s.explanation !== null) continue
    const k = o.keyColumns.map((c) => s.key[c] ?? '')
    s.explanation = byText.get(pipelineKey(k)) ?? 'not seen by the stream'
  }
  return causes
}
