/**
 * `cutover status --group G [--topic T]`: a consumer group's lag per partition, judged
 * Burrow-style over a short sampling window (./lag.ts), and the throughput of the last minute:
 *
 *   produced   records appended to the topics in the last 60 s: end offset now minus the first
 *              offset whose timestamp is at or after now - 60 s (exact, from the broker's
 *              time index, no waiting)
 *   consumed   records per second the group committed over the sampling window (`--window`,
 *              default 5 s, one sample a second): Kafka keeps no history of commits, so this
 *              is measured, not looked up
 *
 * A partition whose committed offset stands still over the window while a member of the Stable
 * group is assigned it is not called STALL at once: `stream run` commits a partition once per
 * batch, and with --max-rate a batch waits for its records' tokens (shared by the process's
 * partitions) first, which can take longer than the window. Sampling goes on until it moves or
 * it has stood still for STALL_MIN_MS (then STALL), whichever comes first.
 */
import type {KafkaSettings} from '../config/env.js'
import {UsageError} from '../errors.js'
import {connectAdmin, createKafka, groupAssignments, mapKafkaError, probeKafka} from '../kafka/client.js'
import type {Logger} from '../log.js'
import {sleep} from '../runtime/ratelimit.js'
import {evaluateGroup, sampleGroupLag, type LagSample, type LagStatus} from './lag.js'

/** How long a committed offset must stand still, with a member assigned, to be called STALL. */
export const STALL_MIN_MS = 30_000

export interface StatusOptions {
  group: string
  topics?: string[]
  /** sampling window in ms (default 5000); 0 = one sample */
  windowMs?: number
  intervalMs?: number
  settings: KafkaSettings
  logger: Logger
  signal?: AbortSignal
  /** STALL only after this long still (default STALL_MIN_MS) */
  stallMinMs?: number
  /** a line for the person waiting (sampling goes on past the window) */
  onProgress?: (message: string) => void
}

export interface PartitionStatus {
  topic: string
  partition: number
  end: number
  committed: number | null
  lag: number
  status: LagStatus
  reason: string
  consumed_per_sec: number
  /** the member the Stable group assigned it to (`member-id@host`); null when none, or not known */
  member: string | null
}

export interface GroupStatusResult {
  group: string
  /** Kafka's group state: Stable, Empty, Dead, PreparingRebalance, ... */
  state: string
  members: number
  status: LagStatus
  reason: string
  total_lag: number
  window_ms: number
  samples: number
  throughput: {
    produced_last_minute: number
    produced_per_sec: number
    consumed_per_sec: number
  }
  partitions: PartitionStatus[]
}

export async function groupStatus(o: StatusOptions): Promise<GroupStatusResult> {
  // one quick attempt first: an unreachable broker is exit 3 in seconds, not after the resilient client's retries (~35 s)
  await probeKafka(o.settings, o.logger)
  const kafka = createKafka(o.settings, {logger: o.logger, mode: 'resilient', clientId: 'cutover-status'})
  const admin = await connectAdmin(kafka, o.settings)
  try {
    const windowMs = o.windowMs ?? 5000
    const interval = o.intervalMs ?? 1000
    const stallMinMs = o.stallMinMs ?? STALL_MIN_MS
    let topics = o.topics
    if (!topics) {
      const committed = await admin.fetchOffsets({groupId: o.group})
      topics = committed.filter((t) => t.partitions.some((p) => Number(p.offset) >= 0)).map((t) => t.topic)
      // a group that has not committed yet (a pipeline on its first batch) still consumes the
      // topics its members are assigned: judged there (STARTING), not refused as an unknown group
      if (topics.length === 0) topics = [...new Set([...(groupAssignments((await admin.describeGroups([o.group])).groups[0])?.keys() ?? [])].map((tp) => tp.slice(0, tp.lastIndexOf('/'))))]
      if (topics.length === 0) throw new UsageError(`consumer group ${o.group} has committed no offsets and has no member assigned a topic`, {hint: 'check the group name, or give --topic <topic> it should consume'})
    }
    // A topic that does not exist is a usage error, said at once: asked for its offsets, the
    // resilient client retries UNKNOWN_TOPIC_OR_PARTITION for half a minute.
    const existing = new Set(await admin.listTopics())
    const missing = topics.filter((t) => !existing.has(t))
    if (missing.length > 0) {
      throw new UsageError(`topic${missing.length === 1 ? '' : 's'} ${missing.join(', ')} do${missing.length === 1 ? 'es' : ''} not exist on ${o.settings.brokers.join(',')}`, {
        hint: o.topics ? 'check --topic and KAFKA_BROKERS' : `the group committed offsets on ${missing.length === 1 ? 'it' : 'them'} before ${missing.length === 1 ? 'it was' : 'they were'} deleted: give --topic <topic> it consumes now`,
      })
    }
    const started = Date.now()
    const minuteAgo = started - 60_000
    const [first, starts] = await settled(
      sampleGroupLag(admin, o.group, topics),
      settled(...topics.map(async (t) => ({topic: t, offsets: await admin.fetchTopicOffsetsByTimestamp(t, minuteAgo)}))),
    )
    const taken: LagSample[] = [first]
    while (Date.now() - started < windowMs && !o.signal?.aborted) {
      await sleep(Math.min(interval, windowMs - (Date.now() - started)), o.signal)
      if (o.signal?.aborted) break
      taken.push(await sampleGroupLag(admin, o.group, topics))
    }
    let verdict = evaluateGroup(taken, {stallMinMs})
    // still partitions of assigned members: sampled on until they move, or stood still long enough for STALL
    let told = false
    while (verdict.partitions.some((p) => p.pendingStall) && !o.signal?.aborted) {
      if (!told) {
        const still = verdict.partitions.filter((p) => p.pendingStall).map((p) => `${p.topic}/${p.partition}`)
        o.onProgress?.(`${still.join(', ')}: committed offset${still.length === 1 ? '' : 's'} still, with a member assigned: watching up to ${stallMinMs / 1000} s before calling it STALL (a --max-rate batch commits only when done)`)
        told = true
      }
      await sleep(interval, o.signal)
      if (o.signal?.aborted) break
      taken.push(await sampleGroupLag(admin, o.group, topics))
      verdict = evaluateGroup(taken, {stallMinMs})
    }
    // stopped early (SIGINT): judged on what was seen
    if (verdict.partitions.some((p) => p.pendingStall)) verdict = evaluateGroup(taken)
    const samples = taken.length
    const last = taken[taken.length - 1]!
    let produced = 0
    for (const p of first.partitions) {
      const s = starts.find((x) => x.topic === p.topic)?.offsets.find((x) => x.partition === p.partition)
      // no record at or after the time: offset -1 or the end; nothing was produced in the minute
      const from = s === undefined || Number(s.offset) < 0 ? Number(p.end) : Number(s.offset)
      produced += Math.max(0, Number(p.end) - from)
    }
    return {
      group: o.group,
      state: last.state,
      members: last.members,
      status: verdict.status,
      reason: verdict.reason,
      total_lag: Number(verdict.totalLag),
      window_ms: samples > 1 ? last.at - first.at : 0,
      samples,
      throughput: {produced_last_minute: produced, produced_per_sec: Math.round((produced / 60) * 10) / 10, consumed_per_sec: Math.round(verdict.consumedPerSec * 10) / 10},
      partitions: verdict.partitions.map((p) => ({
        topic: p.topic,
        partition: p.partition,
        end: Number(p.end),
        committed: p.committed === null ? null : Number(p.committed),
        lag: Number(p.lag),
        status: p.status,
        reason: p.reason,
        consumed_per_sec: Math.round(p.consumedPerSec * 10) / 10,
        member: p.member ?? null,
      })),
    }
  } catch (e) {
    throw mapKafkaError(e, o.settings, `status of group ${o.group}`)
  } finally {
    await admin.disconnect().catch(() => {})
  }
}

/**
 * Promise.all that settles every request before it rejects: one failing request must not
 * leave another retrying behind the error (it would keep the process alive after it).
 */
async function settled<T extends unknown[]>(...promises: {[K in keyof T]: Promise<T[K]>}): Promise<T> {
  const results = await Promise.allSettled(promises)
  const failed = results.find((r) => r.status === 'rejected')
  if (failed) throw failed.reason
  return results.map((r) => (r as PromiseFulfilledResult<unknown>).value) as T
}

/** The table for a person. */
export function formatGroupStatus(r: GroupStatusResult): string {
  const lines = [
    `group ${r.group}: ${r.status} (${r.reason}) · state ${r.state}, ${r.members} member${r.members === 1 ? '' : 's'} · lag ${r.total_lag.toLocaleString('en-US')}`,
    `throughput: produced ${r.throughput.produced_last_minute.toLocaleString('en-US')} in the last minute (${r.throughput.produced_per_sec}/s), consumed ${r.throughput.consumed_per_sec}/s over ${(r.window_ms / 1000).toFixed(0)} s`,
    '',
    ['topic', 'partition', 'end', 'committed', 'lag', 'status', 'consumed/s', 'member'].join('\t'),
  ]
  for (const p of r.partitions) lines.push([p.topic, p.partition, p.end, p.committed ?? '-', p.lag, p.status, p.consumed_per_sec, p.member ?? '-'].join('\t'))
  return lines.join('\n')
}
