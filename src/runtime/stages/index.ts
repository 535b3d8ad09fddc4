/**
 * The stage registry: every stage of `stream run`, by name, in pipeline order (transact stages
 * run in this order too: enrich, dedupe, window, rules). A factory returns null when the spec
 * does not use the stage (no `dedupe:`, for example).
 */
import type {PipelineContext, Stage, StageFactory} from '../types.js'
import {decodeStage} from './decode.js'
import {dedupeStage} from './dedupe.js'
import {enrichStage, isStartable, type StageStartDeps} from './enrich.js'
import {normalizeStage} from './normalize.js'
import {rulesStage} from './rules.js'
import {validateStage} from './validate.js'
import {windowStage} from './window.js'

export const STAGES: ReadonlyMap<string, StageFactory> = new Map<string, StageFactory>([
  ['decode', decodeStage],
  ['normalize', normalizeStage],
  ['validate', validateStage],
  // transact, first: its lookups run in the batch transaction and are retried with it; a record it
  // dead-letters claims no dedupe key, so its replay after the lookup table is fixed goes through
  ['enrich', enrichStage],
  ['dedupe', dedupeStage],
  // transact, after dedupe (a duplicate is not counted twice): event-time windows, window.ts
  ['window', windowStage],
  // transact, last (after window, whose aggregates it reads): alert rules into the outbox, rules.ts
  ['rules', rulesStage],
])

export function buildStages(ctx: PipelineContext): {prepare: Stage[]; transact: Stage[]} {
  const all = [...STAGES.values()].map((make) => make(ctx)).filter((s): s is Stage => s !== null)
  return {prepare: all.filter((s) => s.phase === 'prepare'), transact: all.filter((s) => s.phase === 'transact')}
}

/**
 * The start checks of the stages that have their own (enrich: its lookup tables), run once by
 * `stream run` beside the sinks' (run.ts), before the first batch: exit 2 when one does not fit.
 */
export async function startStages(stages: {prepare: Stage[]; transact: Stage[]}, deps: StageStartDeps): Promise<void> {
  for (const s of [...stages.prepare, ...stages.transact]) if (isStartable(s)) await s.start(deps)
}
