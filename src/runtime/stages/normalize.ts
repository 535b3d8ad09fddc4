/**
 * Stage `normalize`: the raw record -> the typed record of the spec's `fields`, through the
 * project's one normalizer (src/normalize, shared with `normalize`, backfill and parity).
 * A rejected record becomes a dead letter with the FIRST rejection's code and message (the
 * message names the field and the value, masked when the field is sensitive).
 */
import {createNormalizer} from '../../normalize/index.js'
import type {PipelineContext, Stage} from '../types.js'
import {markDead} from '../types.js'

export function normalizeStage(ctx: PipelineContext): Stage {
  // no `original` texts: the stream writes the normalized values only (one object less per record)
  const normalize = createNormalizer(ctx.loaded.spec.fields, {original: false})
  return {
    name: 'normalize',
    phase: 'prepare',
    run(items) {
      for (const item of items) {
        if (item.status !== 'ok' || !item.raw) continue
        let r: ReturnType<typeof normalize>
        try {
          r = normalize(item.raw)
        } catch (e) {
          // a defect of the normalizer on one record must not stop the partition: that record
          // goes to the DLQ (replayable once fixed) with what the normalizer threw
          markDead(item, {code: 'SCHEMA_VIOLATION', message: `the normalizer failed on this record: ${(e as Error)?.message ?? String(e)}`, stage: 'normalize', field: null})
          continue
        }
        // nothing reads the raw record after this stage (dead letters take the Kafka message):
        // released now, its parsed JSON is garbage before the batch transaction instead of after
        item.raw = undefined
        if (r.ok) {
          item.record = r.record
          continue
        }
        const first = r.rejections[0]
        markDead(item, {
          code: first?.code ?? 'SCHEMA_VIOLATION',
          message: first?.message ?? 'the record was rejected by the normalizer',
          stage: 'normalize',
          field: first?.field ?? null,
        })
      }
    },
  }
}
