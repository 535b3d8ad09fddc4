/**
 * The stream runtime's Prometheus metrics (prom-client), in one registry per run so that
 * tests and several pipelines in one process do not collide. The runtime calls these
 * methods; `startMetricsServer` serves /metrics, /healthz and /readyz.
 *
 * Names follow Prometheus conventions: `cutover_` prefix, `_total` counters, `_seconds`.
 */
import type {Server} from 'node:http'
import {Counter, Gauge, Histogram, Registry, collectDefaultMetrics, type Metric} from 'prom-client'
import {RECORD_ERROR_CODES} from '../errors.js'

export type StageName = 'decode' | 'normalize' | 'validate' | 'dedupe' | 'enrich' | 'window' | 'rules' | 'sink'

/** One line of a metric's export (prom-client's shape). */
type HistogramValue = {labels: Record<string, string | number>; value: number; metricName: string}

/**
 * A histogram of one label set that is observed once per record (the end-to-end latency):
 * prom-client's Histogram validates and hashes its labels on every `observe`, ~0.2 µs a call,
 * ~1% of the runtime's CPU per record; this one finds the bucket and counts. Registered in the
 * registry as a metric of its own, exported in prom-client's histogram format (cumulative
 * `_bucket` lines with `le`, then `+Inf`, `_sum`, `_count`).
 */
export class RecordHistogram {
  readonly type = 'histogram'
  readonly aggregator = 'sum'
  private readonly counts: number[]
  private sum = 0
  private count = 0

  constructor(
    readonly name: string,
    readonly help: string,
    private readonly buckets: readonly number[],
    private readonly labels: Record<string, string>,
    registry: Registry,
  ) {
    this.counts = new Array<number>(buckets.length).fill(0)
    // prom-client's registry takes any object with name, help, type and get(); its types list only its own classes
    registry.registerMetric(this as unknown as Metric)
  }

  observe(value: number): void {
    this.sum += value
    this.count++
    const b = this.buckets
    for (let i = 0; i < b.length; i++) {
      if (value <= b[i]!) {
        this.counts[i]!++
        return
      }
    }
  }

  reset(): void {
    this.counts.fill(0)
    this.sum = 0
    this.count = 0
  }

  get(): {name: string; help: string; type: string; aggregator: string; values: HistogramValue[]} {
    let acc = 0
    const values: HistogramValue[] = this.buckets.map((le, i) => ({labels: {...this.labels, le}, value: (acc += this.counts[i]!), metricName: `${this.name}_bucket`}))
    values.push(
      {labels: {...this.labels, le: '+Inf'}, value: this.count, metricName: `${this.name}_bucket`},
      {labels: {...this.labels}, value: this.sum, metricName: `${this.name}_sum`},
      {labels: {...this.labels}, value: this.count, metricName: `${this.name}_count`},
    )
    return {name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values}
  }
}

export class RuntimeMetrics {
  readonly registry: Registry
  private readonly records: Counter<'pipeline' | 'stage' | 'direction'>
  private readonly dead: Counter<'pipeline' | 'code'>
  private readonly dups: Counter<'pipeline'>
  private readonly batch: Histogram<'pipeline'>
  private readonly commit: Histogram<'pipeline'>
  private readonly e2e: RecordHistogram
  private readonly lagGauge: Gauge<'pipeline' | 'topic' | 'partition'>
  private readonly outbox: Gauge<'pipeline'>
  private readonly omitted: Counter<'pipeline'>
  private readonly lastCommitGauge: Gauge<'pipeline'>
  private readonly reruns: Counter<'pipeline'>
  private readonly isolations: Counter<'pipeline' | 'lock'>
  private readonly watermarkGauge: Gauge<'pipeline' | 'topic' | 'partition'>
  private readonly alertCounter: Counter<'pipeline' | 'rule'>
  private readonly lookups: Counter<'pipeline' | 'lookup' | 'result'>
  private readonly lookupQuery: Histogram<'pipeline' | 'lookup'>
  private readonly pipeline: string

  constructor(pipeline: string, options: {registry?: Registry; defaultMetrics?: boolean} = {}) {
    this.pipeline = pipeline
    this.registry = options.registry ?? new Registry()
    if (options.defaultMetrics !== false) collectDefaultMetrics({register: this.registry, prefix: 'cutover_process_'})
    const registers = [this.registry]
    this.records = new Counter({name: 'cutover_records_total', help: 'Records in and out of each stage', labelNames: ['pipeline', 'stage', 'direction'], registers})
    this.dead = new Counter({name: 'cutover_dead_lettered_total', help: 'Records sent to the dead-letter topic, by code', labelNames: ['pipeline', 'code'], registers})
    this.dups = new Counter({name: 'cutover_duplicates_total', help: 'Identical repeats dropped by dedupe', labelNames: ['pipeline'], registers})
    this.batch = new Histogram({name: 'cutover_batch_size_records', help: 'Records per committed batch', labelNames: ['pipeline'], buckets: [1, 10, 50, 100, 500, 1000, 2500, 5000, 10000, 25000], registers})
    this.commit = new Histogram({name: 'cutover_commit_latency_seconds', help: 'Duration of the PostgreSQL transaction of one batch', labelNames: ['pipeline'], buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5], registers})
    this.e2e = new RecordHistogram('cutover_end_to_end_latency_seconds', 'From the Kafka record timestamp to the PostgreSQL commit', [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60], {pipeline}, this.registry)
    this.lagGauge = new Gauge({name: 'cutover_consumer_lag_records', help: 'High watermark minus the offset committed in PostgreSQL, per partition this process consumes (at each commit and every 5 s, also while PostgreSQL is down)', labelNames: ['pipeline', 'topic', 'partition'], registers})
    this.outbox = new Gauge({name: 'cutover_outbox_backlog_records', help: 'Outbox rows (dead letters, alerts) not yet published', labelNames: ['pipeline'], registers})
    this.omitted = new Counter({
      name: 'cutover_dead_letter_values_omitted_total',
      help: 'Dead letters published without their value, larger than the DLQ topic accepts (max.message.bytes); the value stays in cutover.outbox (relay.value_omitted in the log)',
      labelNames: ['pipeline'],
      registers,
    })
    this.lastCommitGauge = new Gauge({name: 'cutover_last_commit_timestamp_seconds', help: 'Unix time of the last committed batch', labelNames: ['pipeline'], registers})
    this.reruns = new Counter({name: 'cutover_upsert_reruns_total', help: 'Batch transactions run again as upserts because a plain INSERT met an existing key', labelNames: ['pipeline'], registers})
    this.isolations = new Counter({
      name: 'cutover_isolating_transactions_total',
      help: 'Batch transactions that isolated rows the database refuses (savepoints), by the pipeline lock they took (shared, or exclusive: alone)',
      labelNames: ['pipeline', 'lock'],
      registers,
    })
    this.lookups = new Counter({
      name: 'cutover_enrich_lookups_total',
      help: 'Values looked up by the enrich stage, per batch run, by lookup and result: cache_hit, found (by the query), missing, ambiguous (more than one row)',
      labelNames: ['pipeline', 'lookup', 'result'],
      registers,
    })
    this.lookupQuery = new Histogram({name: 'cutover_enrich_query_seconds', help: "Duration of one lookup's query (the values of a batch not in the cache)", labelNames: ['pipeline', 'lookup'], buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5], registers})
    this.alertCounter = new Counter({name: 'cutover_alerts_total', help: 'Alerts of the alert rules written to the outbox by committed batches, by rule (stages/rules.ts)', labelNames: ['pipeline', 'rule'], registers})
    this.watermarkGauge = new Gauge({
      name: 'cutover_watermark_seconds',
      help: 'Event-time watermark of each partition with windows (the largest event time it committed, Unix seconds), as its last batch transaction set it (stages/window.ts)',
      labelNames: ['pipeline', 'topic', 'partition'],
      registers,
    })
    // every series at 0 from the start: a counter's first increment is then a rise that rate()
    // sees (a series born at its first increment is not), and the dashboard's panels show 0, not "no data"
    for (const code of RECORD_ERROR_CODES) this.dead.inc({pipeline, code}, 0)
    // the stages every pipeline has: records read (decode in) is the denominator of the dead-letter ratio (ops/)
    for (const stage of ['decode', 'sink'] as const) for (const direction of ['in', 'out'] as const) this.records.inc({pipeline, stage, direction}, 0)
    this.dups.inc({pipeline}, 0)
    this.reruns.inc({pipeline}, 0)
    for (const lock of ['shared', 'exclusive']) this.isolations.inc({pipeline, lock}, 0)
    this.outbox.set({pipeline}, 0)
    this.omitted.inc({pipeline}, 0)
  }

  /** A batch transaction isolated refused rows (batch.ts RefusedRows), alone (the pipeline's lock exclusive) or beside the others. */
  isolating(alone: boolean): void {
    this.isolations.inc({pipeline: this.pipeline, lock: alone ? 'exclusive' : 'shared'})
  }

  /** A batch transaction's plain INSERT met an existing key and ran again as an upsert (batch.ts InsertFirst). */
  upsertRerun(): void {
    this.reruns.inc({pipeline: this.pipeline})
  }

  /** A lookup of the enrich stage: its series at 0 (stages/enrich.ts, at start). */
  declareLookup(lookup: string): void {
    for (const result of ['cache_hit', 'found', 'missing', 'ambiguous']) this.lookups.inc({pipeline: this.pipeline, lookup, result}, 0)
  }

  enrichLookups(lookup: string, result: 'cache_hit' | 'found' | 'missing' | 'ambiguous', n: number): void {
    if (n > 0) this.lookups.inc({pipeline: this.pipeline, lookup, result}, n)
  }

  enrichQuery(lookup: string, seconds: number): void {
    this.lookupQuery.observe({pipeline: this.pipeline, lookup}, seconds)
  }

  /** The spec's rules: their alert series at 0 (run.ts, at start). */
  declareRules(rules: readonly string[]): void {
    for (const rule of rules) this.alertCounter.inc({pipeline: this.pipeline, rule}, 0)
  }

  /** Alerts of `rule` that a committed batch wrote to the outbox. */
  alerts(rule: string, n = 1): void {
    if (n > 0) this.alertCounter.inc({pipeline: this.pipeline, rule}, n)
  }

  stageRecords(stage: StageName, direction: 'in' | 'out', n: number): void {
    if (n > 0) this.records.inc({pipeline: this.pipeline, stage, direction}, n)
  }

  deadLettered(code: string, n = 1): void {
    if (n > 0) this.dead.inc({pipeline: this.pipeline, code}, n)
  }

  duplicates(n: number): void {
    if (n > 0) this.dups.inc({pipeline: this.pipeline}, n)
  }

  /** A committed batch: its records, and its transaction's duration when known (not for a COMMIT whose answer was lost). */
  batchCommitted(records: number, commitSeconds?: number): void {
    this.batch.observe({pipeline: this.pipeline}, records)
    if (commitSeconds !== undefined) this.commit.observe({pipeline: this.pipeline}, commitSeconds)
    this.lastCommitGauge.set({pipeline: this.pipeline}, Date.now() / 1000)
  }

  /** One observation per record: commit time minus the record's Kafka timestamp. */
  endToEnd(seconds: number): void {
    this.e2e.observe(Math.max(0, seconds))
  }

  lag(topic: string, partition: number, lag: number): void {
    this.lagGauge.set({pipeline: this.pipeline, topic, partition: String(partition)}, lag)
  }

  /** The event-time watermark of a partition (stages/window.ts), in Unix seconds. */
  watermark(topic: string, partition: number, seconds: number): void {
    this.watermarkGauge.set({pipeline: this.pipeline, topic, partition: String(partition)}, seconds)
  }

  /** A partition this process no longer consumes: its lag and watermark series go (its new owner reports them). */
  forgetLag(topic: string, partition: number): void {
    this.lagGauge.remove({pipeline: this.pipeline, topic, partition: String(partition)})
    this.watermarkGauge.remove({pipeline: this.pipeline, topic, partition: String(partition)})
  }

  outboxBacklog(n: number): void {
    this.outbox.set({pipeline: this.pipeline}, n)
  }

  /** Dead letters the relay published without their value (relay.ts VALUE_OMITTED_HEADER). */
  valuesOmitted(n: number): void {
    this.omitted.inc({pipeline: this.pipeline}, n)
  }
}

export interface HealthProbe {
  /** the process runs (event loop alive, not shutting down) */
  healthy(): boolean
  /** in the group with partitions assigned, and Kafka and PostgreSQL answered the last probe (run.ts watchDependencies) */
  ready(): boolean
}

/** Serves /metrics, /healthz, /readyz on `port` (0 = any free port). */
export async function startMetricsServer(port: number, metrics: RuntimeMetrics, probe: HealthProbe, host = '0.0.0.0'): Promise<{server: Server; port: number; close(): Promise<void>}> {
  // imported here, not at the top: on Node 22 an ES module import of node:http reads every export
  // of it for the import's bindings, WebSocket's lazy getter included, which loads all of undici
  // (~60 ms of CPU) in every `stream run`, with --metrics-port or not
  const {createServer} = await import('node:http')
  const server = createServer((req, res) => {
    const url = req.url ?? '/'
    if (url.startsWith('/metrics')) {
      metrics.registry
        .metrics()
        .then((body) => {
          res.writeHead(200, {'content-type': metrics.registry.contentType})
          res.end(body)
        })
        .catch((e: unknown) => {
          res.writeHead(500)
          res.end(String(e))
        })
      return
    }
    if (url.startsWith('/healthz') || url.startsWith('/readyz')) {
      const ok = url.startsWith('/healthz') ? probe.healthy() : probe.ready()
      res.writeHead(ok ? 200 : 503, {'content-type': 'text/plain'})
      res.end(ok ? 'ok\n' : 'not ready\n')
      return
    }
    res.writeHead(404)
    res.end()
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, host, () => resolve())
  })
  const address = server.address()
  const actual = typeof address === 'object' && address ? address.port : port
  return {server, port: actual, close: () => new Promise((r) => server.close(() => r()))}
}
