/**
 * Stage `validate`: what the runtime itself needs of a normalized record, beyond the field
 * rules the normalizer already applied: the sink key, the dedupe key and event_time (when
 * business_date is derived from it) must have a value, without U+0000. Otherwise
 * SCHEMA_VIOLATION, naming the field.
 */
import {namesOf} from '../../config/spec.js'
import type {PipelineContext, Stage} from '../types.js'
import {markDead} from '../types.js'

export function validateStage(ctx: PipelineContext): Stage {
  const {spec} = ctx.loaded
  const needed = new Set<string>([...namesOf(spec.key), ...namesOf(spec.dedupe?.by)])
  if (spec.event_time && spec.sinks.some((s) => s.group_by?.includes('business_date'))) needed.add(spec.event_time)
  for (const s of spec.sinks) for (const g of s.group_by ?? []) if (g !== 'business_date') needed.add(g)
  const fields = [...needed]
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
            markDead(item, {
              code: 'SCHEMA_VIOLATION',
              message: `field ${f} contains a NUL character (U+0000), which PostgreSQL text cannot store`,
              stage: 'validate',
              field: f,
            })
            break
          }
        }
      }
    },
  }
}
