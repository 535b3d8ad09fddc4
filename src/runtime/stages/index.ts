/**
 * The stage registry: every stage of `stream run`, by name, in pipeline order. Enrich, window
 * and rules slot in here (enrich as a `prepare` stage after validate, window and rules as
 * `transact` stages after dedupe) without changing the others. A factory returns null when
 * the spec does not use the stage (no `dedupe:`, for example).
 */
import {specLocation} from '../../config/spec.js'
import {SpecError} from '../../errors.js'
import type {PipelineContext, Stage, StageFactory} from '../types.js'
import {decodeStage} from './decode.js'
import {dedupeStage} from './dedupe.js'
import {normalizeStage} from './normalize.js'
import {validateStage} from './validate.js'

export const STAGES: ReadonlyMap<string, StageFactory> = new Map<string, StageFactory>([
  ['decode', decodeStage],
  ['normalize', normalizeStage],
  ['validate', validateStage],
  ['dedupe', dedupeStage],
])

/**
 * Throws SpecError (exit 2) for a spec that uses what this version of `stream run` does not run
 * yet (`enrich`, `windows`, `rules`: a later release). Run without them, its records would be
 * written unenriched, their late events and alerts never raised, and nothing would say so.
 */
export function checkRunnable(ctx: PipelineContext): void {
  const {spec} = ctx.loaded
  const unrun = (['enrich', 'windows', 'rules'] as const).filter((k) => spec[k].length > 0)
  if (unrun.length === 0) return
  throw new SpecError(specLocation(ctx.loaded, [unrun[0]!]), `${unrun.join(', ')}: not run by stream run in this version; the records would be written without ${unrun.length === 1 ? 'it' : 'them'}`, {
    hint: `remove ${unrun.join(', ')} from the spec that stream run reads (pipeline validate checks ${unrun.length === 1 ? 'it' : 'them'} already; normalize and pipeline test ignore ${unrun.length === 1 ? 'it' : 'them'})`,
  })
}

export function buildStages(ctx: PipelineContext): {prepare: Stage[]; transact: Stage[]} {
  const all = [...STAGES.values()].map((make) => make(ctx)).filter((s): s is Stage => s !== null)
  return {prepare: all.filter((s) => s.phase === 'prepare'), transact: all.filter((s) => s.phase === 'transact')}
}
