/**
 * Stage `validate`: what the runtime itself needs of a normalized record, beyond the field
 * rules the normalizer already applied: the sink key, the dedupe key and event_time (when
 * business_date is derived from it) must have a value, without U+0000, and a key (the sink key,
 * the dedupe key, an aggregate's group_by) at most MAX_KEY_BYTES of UTF-8 in all; and a string
 * field a sink writes (every field, into an upsert sink; an aggregate's min/max of one) without
 * U+0000, which PostgreSQL text cannot store (the sink statement would fail, the batch run again
 * row by row, and the record be SINK_REJECTED with a message that names no column). Otherwise
 * SCHEMA_VIOLATION, naming the field.
 *
 * It also samples the Kafka key (DESIGN.md: the spec's `key` is the Kafka key): the first valid
 * record of each batch whose message key is not its key field's value (nor that value padded with
 * spaces a `trim` removed) is logged once per partition, `stream.kafka_key_differs`. Records of one
 * key on different partitions are applied in no decided order (dedupe keeps whichever commits
 * first, an upsert the last written), so a rerun of the same topic may end otherwise. Only a
 * single-field key is compared; values are never logged.
 */
import {derivesBusinessDate, namesOf, parseAggregate} from '../../config/spec.js'
import type {PipelineContext, Stage, WorkItem} from '../types.js'
import {markDead} from '../types.js'

/**
 * The longest key a record may have, in UTF-8 bytes (its fields together). PostgreSQL's B-tree
 * indexes hold entries of at most ~2,700 bytes (a third of a page): a longer key fails the
 * batch's dedupe claim or the sink's primary key with 54000 again and again, holding its
 * partition back for ever, so it is refused here as one record (the rest of the entry, the
 * pipeline's name, needs room too).
 */
export const MAX_KEY_BYTES = 2000

export function validateStage(ctx: PipelineContext): Stage {
  const {spec} = ctx.loaded
  const derived = (g: string) => derivesBusinessDate(spec.fields, g)
  const needed = new Set<string>([...namesOf(spec.key), ...namesOf(spec.dedupe?.by)])
  if (spec.event_time && spec.sinks.some((s) => s.group_by?.some(derived))) needed.add(spec.event_time)
  // a group_by column of an `enrich` lookup has no value yet here (the enrich stage sets it, in the
  // transaction): the aggregate's table takes or refuses its value (a null into its key: SINK_REJECTED)
  const grouped = (g: string) => !derived(g) && Object.hasOwn(spec.fields, g)
  for (const s of spec.sinks) for (const g of s.group_by ?? []) if (grouped(g)) needed.add(g)
  const fields = [...needed]
  // the other string fields a sink writes: checked for U+0000 only (a value may be empty or null)
  const written = new Set<string>()
  for (const s of spec.sinks) {
    if (!s.group_by) for (const name of Object.keys(spec.fields)) written.add(name)
    else for (const expr of Object.values(s.aggregates ?? {})) {
      const field = parseAggregate(expr).field
      if (field !== undefined) written.add(field)
    }
  }
  const texts = [...written].filter((f) => spec.fields[f]?.type === 'string' && !needed.has(f))
  const nul = (field: string) => ({
    code: 'SCHEMA_VIOLATION' as const,
    message: `field ${field} contains a NUL character (U+0000), which PostgreSQL text cannot store`,
    stage: 'validate' as const,
    field,
  })
  // each key's fields, for its length
  const keys = [namesOf(spec.key), namesOf(spec.dedupe?.by), ...spec.sinks.map((s) => (s.group_by ?? []).filter(grouped))].filter((k) => k.length > 0)
  /** The first key of the record longer than MAX_KEY_BYTES: its fields and length; undefined when none. */
  const tooLong = (record: Record<string, unknown>): {fields: string[]; bytes: number} | undefined => {
    for (const k of keys) {
      let chars = 0
      for (const f of k) chars += String(record[f]).length
      // a UTF-8 character is at most 3 bytes per UTF-16 unit: count bytes only when it may matter
      if (chars * 3 <= MAX_KEY_BYTES) continue
      let bytes = 0
      for (const f of k) bytes += Buffer.byteLength(String(record[f]))
      if (bytes > MAX_KEY_BYTES) return {fields: k, bytes}
    }
    return undefined
  }
  const keyField = namesOf(spec.key).length === 1 ? namesOf(spec.key)[0]! : undefined
  const warned = new Set<number>()
  /** Whether the message key of `item` (valid) is its key field's value, or that value with the spaces a trim removed. */
  const keyedBySpec = (item: WorkItem, field: string): boolean => {
    const key = item.message.key
    if (key === null || key === undefined) return false
    const text = String(item.record![field])
    const got = key.toString('utf8')
    return got === text || got.trim() === text
  }
  const sampleKafkaKey = (items: WorkItem[]) => {
    // a batch is of one partition: once said for it, nothing more to look at
    if (keyField === undefined || items.length === 0 || warned.has(items[0]!.partition)) return
    const item = items.find((i) => i.status === 'ok' && i.record)
    if (!item || keyedBySpec(item, keyField)) return
    warned.add(item.partition)
    const key = item.message.key
    ctx.logger.warn('stream.kafka_key_differs', {
      topic: item.topic,
      partition: item.partition,
      offset: String(item.offset),
      key_field: keyField,
      note:
        `the record at offset ${item.offset} of partition ${item.partition} has ${key === null || key === undefined ? 'no Kafka key' : `a Kafka key (${key.length} bytes) that is not its ${keyField}`}: ` +
        `the spec's key is meant to be the Kafka key, so that every record of one ${keyField} is on one partition, in order. Records of one ${keyField} on two partitions are applied in no decided order ` +
        `(dedupe keeps whichever commits first, the upsert the last written). Key the producer's records by ${keyField}; said once per partition`,
    })
  }
  return {
    name: 'validate',
    phase: 'prepare',
    run(items) {
      for (const item of items) {
        if (item.status !== 'ok' || !item.record) continue
        for (const f of fields) {
          const v = item.record[f]
          if (v === null || v === undefined || v === '') {
            markDead(item, {
              code: 'SCHEMA_VIOLATION',
              message: `field ${f} has no value, and the pipeline needs it (key, dedupe or group_by)`,
              stage: 'validate',
              field: f,
            })
            break
          }
          // PostgreSQL text cannot hold U+0000: a key with one would fail the dedupe statement of
          // the whole batch again and again, so it is refused here, as one record
          if (typeof v === 'string' && v.includes('\u0000')) {
            markDead(item, nul(f))
            break
          }
        }
        if (item.status !== 'ok') continue
        for (const f of texts) {
          const v = item.record[f]
          if (typeof v === 'string' && v.includes('\u0000')) {
            markDead(item, nul(f))
            break
          }
        }
        if (item.status !== 'ok') continue
        const long = tooLong(item.record)
        if (long) {
          const what = long.fields.length === 1 ? `field ${long.fields[0]}` : `the key of fields ${long.fields.join(', ')}`
          markDead(item, {
            code: 'SCHEMA_VIOLATION',
            message: `${what} is ${long.bytes} bytes long, over the ${MAX_KEY_BYTES} a key may be (PostgreSQL's B-tree indexes, of the key table and the sink's primary key, cannot hold longer ones)`,
            stage: 'validate',
            field: long.fields[0]!,
          })
        }
      }
      sampleKafkaKey(items)
    },
  }
}
