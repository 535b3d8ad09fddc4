import {Flags} from '@oclif/core'
import {CutoverCommand} from '../../cli/base.js'
import {connectionSettingsFromEnv} from '../../config/env.js'
import {runStream, type StreamRunResult} from '../../runtime/run.js'

export type {StreamRunResult}

export default class StreamRun extends CutoverCommand {
  static override summary = "Consume the spec's topic and write its projections to PostgreSQL effectively-once; dead letters to the DLQ topic."
  static override description =
    'decode -> normalize -> validate -> dedupe -> sinks, one PostgreSQL transaction per batch (sink rows, dedupe keys, dead letters and the offset together). SIGTERM/SIGINT finish the batch in hand, commit and exit 0. Exit 2: bad spec or a sink table that does not fit; 3: Kafka or PostgreSQL unreachable at start.'
  static override examples = [
    '<%= config.bin %> stream run --spec fixtures/specs/stream-card-transactions.yaml',
    '<%= config.bin %> stream run --spec pipeline.yaml --until-idle --json',
    '<%= config.bin %> stream run --spec pipeline.yaml --schema staging --max-rate 5000 --metrics-port 9464',
  ]
  static override flags = {
    spec: Flags.string({required: true, description: 'pipeline spec (YAML)'}),
    'until-idle': Flags.boolean({description: 'exit 0 once caught up and nothing new arrived for --idle-ms (outbox drained)'}),
    'idle-ms': Flags.integer({default: 3000, min: 0, description: 'with --until-idle: quiet time before it exits'}),
    'max-rate': Flags.integer({min: 1, description: 'cap on records per second'}),
    'metrics-port': Flags.integer({min: 0, max: 65535, description: 'serve Prometheus /metrics, /healthz, /readyz on this port'}),
    schema: Flags.string({default: 'public', description: 'PostgreSQL schema of sink tables named without schema.'}),
    'max-bytes-per-partition': Flags.integer({min: 1024, description: 'fetch size per partition: bounds the batch (default 2 MiB)'}),
    'max-record-bytes': Flags.integer({min: 1, description: 'larger values are dead-lettered as RECORD_TOO_LARGE (default 1 MiB)'}),
    'max-transactions': Flags.integer({min: 1, description: 'PostgreSQL batch transactions in flight at once (default: the CPU count, at least 2)'}),
    consumers: Flags.integer({min: 1, max: 16, description: "kafkajs consumers in this process, each a member of the spec's group with its share of the partitions (default 2)"}),
  }

  async run(): Promise<StreamRunResult> {
    const {flags} = await this.parse(StreamRun)
    const controller = new AbortController()
    const stop = (sig: string) => {
      this.progress(`${sig}: finishing the batches in hand, then exiting`)
      controller.abort()
    }
    process.once('SIGTERM', () => stop('SIGTERM'))
    process.once('SIGINT', () => stop('SIGINT'))
    const result = await runStream({
      spec: flags.spec,
      settings: connectionSettingsFromEnv(),
      schema: flags.schema,
      untilIdle: flags['until-idle'],
      idleMs: flags['idle-ms'],
      ...(flags['max-rate'] === undefined ? {} : {maxRate: flags['max-rate']}),
      ...(flags['metrics-port'] === undefined ? {} : {metricsPort: flags['metrics-port']}),
      ...(flags['max-bytes-per-partition'] === undefined ? {} : {maxBytesPerPartition: flags['max-bytes-per-partition']}),
      ...(flags['max-record-bytes'] === undefined ? {} : {maxRecordBytes: flags['max-record-bytes']}),
      ...(flags['max-transactions'] === undefined ? {} : {maxTransactions: flags['max-transactions']}),
      ...(flags.consumers === undefined ? {} : {consumers: flags.consumers}),
      logger: this.logger,
      signal: controller.signal,
      onNotice: (m) => this.progress(m),
      ...(this.jsonEnabled()
        ? {}
        : {
            onProgress: (p) =>
              this.progress(
                `read ${p.read}  written ${p.written}  dead-lettered ${p.deadLettered}  duplicates ${p.duplicates}  ${p.recordsPerSecond} records/s  lag ${p.lag}`,
              ),
          }),
    })
    const dead = Object.entries(result.dead_lettered)
      .map(([c, n]) => `${c} ${n}`)
      .join(', ')
    this.log(
      `read ${result.read}, written ${result.written}, dead-lettered ${Object.values(result.dead_lettered).reduce((a, b) => a + (b ?? 0), 0)}${dead ? ` (${dead})` : ''}, duplicates ${result.duplicates}, ${result.batches} batches, lag ${result.lag_end}, ${(result.elapsed_ms / 1000).toFixed(1)} s`,
    )
    // Everything is committed and every client closed by now, and the result is printed when this
    // returns. A kafkajs client that lost its broker can still leave a retry behind that keeps node
    // alive (seen: a run that had returned its result after a broker restart and never exited), so
    // the process ends within FORCED_EXIT_MS whatever is left, saying what that was.
    setTimeout(() => {
      this.logger.warn('stream.exit.forced', {after_ms: FORCED_EXIT_MS, left: process.getActiveResourcesInfo()})
      process.exit()
    }, FORCED_EXIT_MS).unref()
    return result
  }
}

/** How long `stream run` waits, once done, for node to exit by itself. */
const FORCED_EXIT_MS = 5000
