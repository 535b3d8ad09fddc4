/**
 * Group commit: batches of different partitions that kafkajs hands over concurrently
 * (`partitionsConsumedConcurrently`) may share one PostgreSQL transaction (batch.ts
 * `commitBatches`) instead of one each.
 *
 * A batch ready while no transaction runs starts one at once. While one runs, the batches that
 * become ready wait and gather until they hold `groupRecords` records (then they start together
 * in a free lane) or until no transaction runs any more. So in bulk (batches of thousands of
 * records) every batch starts its own transaction at once, concurrently, as before: measured,
 * one transaction at a time lost the overlap of decoding with PostgreSQL and ~15% of the
 * throughput on this 2-core machine. At a steady trickle (5,000 records/s: batches of tens of
 * records) the batches of one fetch share one or two transactions instead of six that fight
 * over the same aggregate rows: one BEGIN, one dedupe statement, one statement per sink and one
 * COMMIT (one WAL flush) for all of them.
 *
 * Failure semantics stay per batch: when a group's transaction fails, each of its batches runs
 * again at once alone, and a batch that fails alone is rejected and retried by its caller with
 * backoff (an outage fails them all; a batch the database cannot take stalls only its own
 * partition). A COMMIT without an answer becomes a CommitOutcomeUnknown for each batch,
 * confirmed or not by its own retry. Two batches of the same partition never share a group
 * (the second waits for the next one).
 */
import {commitBatches, GroupCommitOutcomeUnknown, type BatchDeps, type BatchInput, type BatchOutcome} from './batch.js'

interface Waiting {
  input: BatchInput
  attempt: number
  resolve: (o: BatchOutcome) => void
  reject: (e: unknown) => void
}

export class GroupCommitter {
  private queue: Waiting[] = []
  private running = 0
  /** partitions in a running transaction (a second batch of one waits for it) */
  private readonly busy = new Set<string>()

  /**
   * `lanes`: transactions that may run at once (the runtime passes its partition concurrency);
   * `groupRecords`: while a transaction runs, ready batches wait and gather until they hold
   * this many records, then start in a free lane (a big batch starts at once)
   */
  constructor(
    private readonly deps: BatchDeps,
    private readonly lanes = 1,
    private readonly groupRecords = 1000,
  ) {}

  commit(input: BatchInput, attempt: number): Promise<BatchOutcome> {
    return new Promise<BatchOutcome>((resolve, reject) => {
      this.queue.push({input, attempt, resolve, reject})
      this.kick()
    })
  }

  private kick(): void {
    if (this.running >= this.lanes || this.queue.length === 0) return
    const group: Waiting[] = []
    const rest: Waiting[] = []
    const keys: string[] = []
    const keyOf = (w: Waiting) => `${w.input.ref.topic}\u0000${w.input.ref.partition}`
    let records = 0
    for (const w of this.queue) {
      const key = keyOf(w)
      if (this.busy.has(key) || keys.includes(key) || (group.length > 0 && w.input.ref.topic !== group[0]!.input.ref.topic)) rest.push(w)
      else {
        keys.push(key)
        group.push(w)
        records += w.input.items.length
      }
    }
    // while a transaction runs, small batches wait for more (one transaction instead of several
    // fighting over the same aggregate rows); enough records start a transaction in a free lane
    if (group.length === 0 || (this.running > 0 && records < this.groupRecords)) return
    this.queue = rest
    this.running++
    for (const k of keys) this.busy.add(k)
    void this.run(group).finally(() => {
      this.running--
      for (const k of keys) this.busy.delete(k)
      this.kick()
    })
    this.kick()
  }

  private async run(group: Waiting[]): Promise<void> {
    try {
      const outcomes = await commitBatches(
        this.deps,
        group.map((w) => ({input: w.input, attempt: w.attempt})),
      )
      group.forEach((w, k) => w.resolve(outcomes[k]!))
    } catch (e) {
      if (e instanceof GroupCommitOutcomeUnknown) group.forEach((w, k) => w.reject(e.each[k]!))
      else if (group.length === 1) group[0]!.reject(e)
      else {
        // the whole group rolled back: each batch alone, so that one whose records the database
        // cannot take (an error that is not a row-level one) stalls only its own partition
        for (const w of group) {
          try {
            w.resolve((await commitBatches(this.deps, [{input: w.input, attempt: w.attempt}]))[0]!)
          } catch (e1) {
            w.reject(e1 instanceof GroupCommitOutcomeUnknown ? e1.each[0]! : e1)
          }
        }
      }
    }
  }
}
