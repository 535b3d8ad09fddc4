/**
 * The sink registry, by name: a sink spec with `group_by` is an `aggregate` sink, any other an
 * `upsert` sink. Each factory checks its table at start (exit 2 when it does not fit).
 */
import {sameTableMessage, specLocation, type SinkSpec} from '../../config/spec.js'
import {SpecError} from '../../errors.js'
import type {Pool} from '../../pg/pool.js'
import type {PipelineContext, Sink} from '../types.js'
import {aggregateSink} from './aggregate.js'
import {rowTextMasker} from './sensitive.js'
import {MissingTableError, missingTables, tableRef} from './table.js'
import {upsertSink} from './upsert.js'

export type SinkFactory = (ctx: PipelineContext, sink: SinkSpec, pool: Pool) => Promise<Sink>

export const SINKS: ReadonlyMap<string, SinkFactory> = new Map<string, SinkFactory>([
  ['upsert', upsertSink],
  ['aggregate', aggregateSink],
])

export function sinkKind(sink: SinkSpec): string {
  return sink.group_by ? 'aggregate' : 'upsert'
}

export async function buildSinks(ctx: PipelineContext, pool: Pool): Promise<Sink[]> {
  const out: Sink[] = []
  const maskRow = rowTextMasker(ctx.loaded.spec.fields)
  // every sink's table is checked: the ones missing are reported together (their CREATEs in one hint), before anything else
  const missing: MissingTableError[] = []
  // a refusal points at its sink's `table:` in the spec (file:line:column); the tables missing at the first of them
  const located = (e: unknown, i: number) => (e instanceof SpecError ? e.at(specLocation(ctx.loaded, ['sinks', i, 'table'])) : e)
  const missingAt: number[] = []
  const allMissing = () => located(missingTables(missing), missingAt[0]!)
  // one table in two sinks, once --schema qualifies the names (txn and public.txn): every record
  // written twice, an aggregate's counts and sums doubled (the spec check compares names as written)
  const sinks = ctx.loaded.spec.sinks
  const labels = sinks.map((s) => tableRef(s.table, ctx.schema).label)
  labels.forEach((label, i) => {
    const prev = labels.indexOf(label)
    if (prev !== i) throw new SpecError(specLocation(ctx.loaded, ['sinks', i, 'table']), sameTableMessage(label, prev, sinks[prev]!, sinks[i]!), {hint: 'one sink per table: list all the aggregates of a table in its one sink'})
  })
  for (const [i, s] of ctx.loaded.spec.sinks.entries()) {
    const sink = await SINKS.get(sinkKind(s))!(ctx, s, pool).catch((e: unknown) => {
      if (!(e instanceof MissingTableError)) throw missing.length > 0 ? allMissing() : located(e, i)
      missing.push(e)
      missingAt.push(i)
    })
    if (!sink) continue
    out.push({...sink, ...(s.reject_sqlstates?.length ? {rejects: new Set(s.reject_sqlstates)} : {}), ...(maskRow ? {maskRow} : {})})
  }
  if (missing.length > 0) throw allMissing()
  // rows shared by all partitions (aggregates: their row locks serialize concurrent batches):
  // written last, right before COMMIT, to hold those locks as briefly as possible
  return [...out.filter((s) => !s.sharedRows), ...out.filter((s) => s.sharedRows)]
}
