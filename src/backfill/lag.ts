/**
 * Consumer-group lag, sampled and judged the way Burrow does (LinkedIn's lag checker):
 * not by a threshold on one number but by how the committed offsets and the lag move over a
 * sliding window of samples.
 *
 * One sample (`sampleGroupLag`) is two admin calls: the group's committed offsets
 * (`admin.fetchOffsets`) and the topics' end offsets (`admin.fetchTopicOffsets`); lag of a
 * partition = end - committed (end - low watermark when the group never committed there), plus
 * the group's state, member count and, while it is Stable, which member each partition is
 * assigned to (`describeGroups`, the consumer protocol's assignment).
 *
 * Per partition, over the window (oldest .. newest sample), first match wins:
 *
 *   ERR       the committed offset went backwards (Burrow's REWIND: a reset, a restore)
 *   OK        the newest lag is 0
 *   STOP      lag > 0 and nobody is consuming: the group has no members, or none is assigned
 *             this partition (a Stable group), or it never committed here and no member is
 *             known to hold it — Burrow's "no commit for longer than the window"
 *   STARTING  lag > 0, never committed here, and a member of the Stable group is assigned
 *             this partition: its first batch is in progress (`stream run` commits a partition
 *             once per batch: with --max-rate a batch waits for its records' tokens first)
 *   STALL     lag > 0 and the committed offset did not move over the whole window although the
 *             group has members (Burrow's STALLED: consuming nothing, or stuck on a record);
 *             with `stallMinMs`, only once it stood still that long (a rate-limited batch of a
 *             member assigned the partition takes longer than a short window): before that the
 *             verdict is OK with `pendingStall`, for the caller to sample longer
 *   WARN      the committed offset moves but the lag grew at every step of the window (at least
 *             three samples): the consumer falls behind
 *   OK        anything else (lag steady or shrinking)
 *
 * The overall status is the worst partition status, by OK < STARTING < WARN < STALL < STOP < ERR.
 * A window of one sample can only say OK/STOP/ERR-free OK (nothing to compare).
 */
import type {Admin} from 'kafkajs'
import {groupAssignments} from '../kafka/client.js'

export const LAG_STATUSES = ['OK', 'STARTING', 'WARN', 'STALL', 'STOP', 'ERR'] as const
export type LagStatus = (typeof LAG_STATUSES)[number]
const SEVERITY: Record<LagStatus, number> = {OK: 0, STARTING: 1, WARN: 2, STALL: 3, STOP: 4, ERR: 5}

export function worstStatus(statuses: Iterable<LagStatus>): LagStatus {
  let worst: LagStatus = 'OK'
  for (const s of statuses) if (SEVERITY[s] > SEVERITY[worst]) worst = s
  return worst
}

export interface PartitionOffsets {
  topic: string
  partition: number
  /** end offset (high watermark) */
  end: bigint
  /** low watermark */
  low: bigint
  /** committed offset of the group; null when it never committed here */
  committed: bigint | null
  /** end - committed (end - low when never committed) */
  lag: bigint
  /**
   * The member the Stable group assigned this partition to (`member-id@host`, as
   * kafka-consumer-groups --describe shows its CONSUMER-ID and HOST), null when no
   * member holds it; undefined when not known (the group is rebalancing or empty, or an
   * assignment is not in the consumer protocol's layout).
   */
  member?: string | null
}

export interface LagSample {
  /** ms since epoch when the sample was asked for */
  at: number
  group: string
  /** Kafka group state: Stable, Empty, Dead, PreparingRebalance, ... */
  state: string
  members: number
  partitions: PartitionOffsets[]
  /** sum of the partitions' lag */
  totalLag: bigint
}

/** One sample of a group's lag on `topics` (default: every topic the group committed on). */
export async function sampleGroupLag(admin: Admin, group: string, topics?: readonly string[]): Promise<LagSample> {
  const at = Date.now()
  const [committed, described] = await Promise.all([
    admin.fetchOffsets(topics ? {groupId: group, topics: [...topics]} : {groupId: group}),
    admin.describeGroups([group]),
  ])
  const g = described.groups[0]
  const held = groupAssignments(g)
  const names = topics ? [...topics] : committed.map((c) => c.topic)
  const ends = await Promise.all(names.map(async (t) => ({topic: t, offsets: await admin.fetchTopicOffsets(t)})))
  const partitions: PartitionOffsets[] = []
  let totalLag = 0n
  for (const {topic, offsets} of ends) {
    const byPartition = new Map((committed.find((c) => c.topic === topic)?.partitions ?? []).map((p) => [p.partition, p.offset]))
    for (const o of [...offsets].sort((a, b) => a.partition - b.partition)) {
      const end = BigInt(o.high)
      const low = BigInt(o.low)
      const c = byPartition.get(o.partition)
      const committedAt = c === undefined || Number(c) < 0 ? null : BigInt(c)
      let lag = end - (committedAt ?? low)
      if (lag < 0n) lag = 0n
      totalLag += lag
      partitions.push({topic, partition: o.partition, end, low, committed: committedAt, lag, ...(held ? {member: held.get(`${topic}/${o.partition}`) ?? null} : {})})
    }
  }
  return {at, group, state: g?.state ?? 'Unknown', members: g?.members.length ?? 0, partitions, totalLag}
}

export interface PartitionVerdict {
  topic: string
  partition: number
  status: LagStatus
  lag: bigint
  end: bigint
  committed: bigint | null
  /** records consumed per second over the window (committed offset delta / time) */
  consumedPerSec: number
  reason: string
  /** see PartitionOffsets.member */
  member?: string | null
  /** see PartitionEvaluation.pendingStall */
  pendingStall?: boolean
}

export interface GroupVerdict {
  status: LagStatus
  totalLag: bigint
  partitions: PartitionVerdict[]
  /** records consumed per second over the window, all partitions */
  consumedPerSec: number
  reason: string
}

export interface EvaluateOptions {
  /**
   * STALL only once the committed offset stood still this long (ms) while a member is assigned
   * the partition; before that the verdict is OK with `pendingStall` (sample longer). Default 0.
   */
  stallMinMs?: number
}

export interface PartitionEvaluation {
  status: LagStatus
  reason: string
  consumedPerSec: number
  /** the committed offset stood still with lag, for less than `stallMinMs`: not judged yet */
  pendingStall?: boolean
}

/** Judges one partition over its samples (oldest first). Pure. */
export function evaluatePartition(history: readonly PartitionOffsets[], times: readonly number[], members: number, options: EvaluateOptions = {}): PartitionEvaluation {
  const last = history[history.length - 1]!
  const first = history[0]!
  const spanMs = times[times.length - 1]! - times[0]!
  const spanS = Math.max(0.001, spanMs / 1000)
  const consumedPerSec = first.committed !== null && last.committed !== null && history.length > 1 ? Number(last.committed - first.committed) / spanS : 0
  for (let i = 1; i < history.length; i++) {
    const a = history[i - 1]!.committed
    const b = history[i]!.committed
    if (a !== null && b !== null && b < a) return {status: 'ERR', reason: `committed offset went back from ${a} to ${b}`, consumedPerSec}
  }
  if (last.lag === 0n) return {status: 'OK', reason: 'no lag', consumedPerSec}
  if (members === 0) return {status: 'STOP', reason: `lag ${last.lag} and the group has no members`, consumedPerSec}
  if (last.member === null) return {status: 'STOP', reason: `lag ${last.lag} and no member of the group is assigned this partition`, consumedPerSec}
  if (last.committed === null) {
    if (last.member !== undefined) {
      return {status: 'STARTING', reason: `lag ${last.lag}, nothing committed yet, assigned to ${last.member}: its first batch is in progress (or stuck: see the consumer's log)`, consumedPerSec}
    }
    return {status: 'STOP', reason: `lag ${last.lag} and the group never committed here`, consumedPerSec}
  }
  if (history.length >= 2 && history.every((h) => h.committed === last.committed)) {
    const minMs = options.stallMinMs ?? 0
    if (typeof last.member === 'string' && spanMs < minMs) {
      return {status: 'OK', reason: `lag ${last.lag}, committed offset at ${last.committed} for ${spanS.toFixed(0)} s, assigned to ${last.member}: a batch in progress?`, consumedPerSec, pendingStall: true}
    }
    return {status: 'STALL', reason: `lag ${last.lag} and the committed offset stayed at ${last.committed} for ${spanS.toFixed(0)} s${last.member ? ` (assigned to ${last.member})` : ''}`, consumedPerSec}
  }
  if (history.length >= 3) {
    let growing = true
    for (let i = 1; i < history.length; i++) if (history[i]!.lag <= history[i - 1]!.lag) growing = false
    if (growing) return {status: 'WARN', reason: `lag grew at every sample, ${first.lag} -> ${last.lag}`, consumedPerSec}
  }
  return {status: 'OK', reason: history.length >= 2 && last.lag < first.lag ? `lag shrinking, ${first.lag} -> ${last.lag}` : `lag ${last.lag}, consumer moving`, consumedPerSec}
}

/** Judges a window of samples of one group (oldest first). Pure. */
export function evaluateGroup(samples: readonly LagSample[], options: EvaluateOptions = {}): GroupVerdict {
  if (samples.length === 0) throw new Error('evaluateGroup needs at least one sample')
  const last = samples[samples.length - 1]!
  const times = samples.map((s) => s.at)
  const partitions: PartitionVerdict[] = []
  let consumed = 0
  for (const p of last.partitions) {
    const history = samples.map((s) => s.partitions.find((q) => q.topic === p.topic && q.partition === p.partition)).filter((h): h is PartitionOffsets => h !== undefined)
    const hTimes = samples.filter((s) => s.partitions.some((q) => q.topic === p.topic && q.partition === p.partition)).map((s) => s.at)
    const v = evaluatePartition(history, hTimes.length === history.length ? hTimes : times.slice(-history.length), last.members, options)
    consumed += v.consumedPerSec
    partitions.push({
      topic: p.topic, partition: p.partition, status: v.status, lag: p.lag, end: p.end, committed: p.committed, consumedPerSec: v.consumedPerSec, reason: v.reason,
      ...(p.member !== undefined ? {member: p.member} : {}),
      ...(v.pendingStall ? {pendingStall: true} : {}),
    })
  }
  const status = worstStatus(partitions.map((p) => p.status))
  const worst = partitions.find((p) => p.status === status && status !== 'OK')
  return {
    status,
    totalLag: last.totalLag,
    partitions,
    consumedPerSec: consumed,
    reason: worst ? `${worst.topic}/${worst.partition}: ${worst.reason}` : `lag ${last.totalLag}`,
  }
}

/** A sliding window of samples (Burrow keeps the last N offsets per partition). */
export class LagWindow {
  private readonly samples: LagSample[] = []
  constructor(
    private readonly size = 10,
    private readonly options: EvaluateOptions = {},
  ) {}

  add(s: LagSample): GroupVerdict {
    this.samples.push(s)
    if (this.samples.length > this.size) this.samples.shift()
    return evaluateGroup(this.samples, this.options)
  }

  get latest(): LagSample | undefined {
    return this.samples[this.samples.length - 1]
  }
}
