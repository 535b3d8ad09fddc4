/**
 * The stage registry: every stage of `stream run`, by name, in pipeline order. Enrich, window
 * and rules slot in here (enrich as a `prepare` stage after validate, window and rules as
 * `transact` stages after dedupe) without changing the others. A factory returns null when
 * the spec does not use the stage (no `dedupe:`, for example).
 */
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

export function buildStages(ctx: PipelineContext): {prepare: Stage[]; transact: Stage[]} {
  const all = [...STAGES.values()].map((make) => make(ctx)).filter((s): s is Stage => s !== null)
  return {prepare: all.filter((s) => s.phase === 'prepare'), transact: all.filter((s) => s.phase === 'transact')}
}
