import {constants} from 'node:os'
import {Flags} from '@oclif/core'
import {CutoverCommand} from '../cli/base.js'
import {startProgressLines} from '../cli/output.js'
import {connectionSettingsFromEnv} from '../config/env.js'
import {formatBackfillResult, parseTimeOption, runBackfill, type BackfillResult} from '../backfill/run.js'
import {parseRate} from '../backfill/pacing.js'
import {ProgressTracker} from '../jobs/progress.js'
import {createLogger, stderrJsonSink} from '../log.js'
import type {BackfillProgressUi} from '../ui/backfill-progress.js'

export type {BackfillResult}

export default class Backfill extends CutoverCommand {
  static override summary = 'Replay history from a legacy source into a Kafka topic at a controlled rate that respects the consumers; resumable.'
  static override description =
    'Reads csv:, fixed:, pg: or kafka: sources; with --spec normalizes first and sends rejects to the spec\'s DLQ with their codes (read = sent + rejected). Records are keyed, batched, snappy-compressed and sent with the idempotent producer, each with cutover.backfill.id and cutover.backfill.position headers, in sends cut to fit the target\'s and the DLQ\'s max.message.bytes; a record larger than the target takes even alone and compressed is dead-lettered as RECORD_TOO_LARGE, with the kafka-configs.sh that raises the limit (its dead letter without its value when the DLQ cannot take it either, cutover.value.omitted saying so). --rate paces against elapsed time; --max-lag with --group slows down as the group\'s lag nears N and pauses above it. On a terminal a progress bar, with the log\'s lines kept above it (plain periodic lines when stderr is not a terminal, or one of 0 columns). The acknowledged position is checkpointed in cutover.backfills every 2 s and on SIGINT/SIGTERM (exit 130/143: not finished, so that a scheduler that sent the signal does not take it for done); --resume ID continues after it: at least once, so the records acknowledged after the last checkpoint of a run that was killed (up to 2 s of them, and the batch in flight) are sent again, identical (same key, value and headers); the pipeline\'s dedupe drops them. A resumed backfill reads the same records as its first run: it refuses (exit 2) another --from, --to, --key, --since, --until, --dlq or --send, a spec or a copybook whose content changed since it started (the checkpoint keeps the SHA-256 of the spec file and of each copybook read: copybook= of a fixed: --from, the spec\'s source.copybook for a kafka: source; the same file by another path is fine), and a csv: or fixed: file other than the one it started from (another file at the path, or a relative path from another working directory: the checkpoint keeps the file\'s size and the SHA-256 of its first and last MiB, checked at the start, and of the last record it covers, checked when that record is read again, before anything is sent); --rate, --burst, --max-lag, --group and --batch-size may change, and are saved for the next resume (--max-lag alone keeps the backfill\'s saved --group, and --group alone its --max-lag); the result shows the pace in force. --burst needs --rate (exit 2 without). A kafka: source\'s records keep their timestamps, keys and headers (a warning when the target\'s retention.ms is shorter than their age); without --spec or --key the replay is a copy: every value byte for byte (Avro, text, JSON or not), a tombstone as a tombstone.'
  static override examples = [
    '<%= config.bin %> backfill --from "csv:data/txn-2026-11-20.csv?delimiter=;&encoding=windows-1251" --to txn.raw --spec pipeline.yaml --rate 2000/s',
    '<%= config.bin %> backfill --from kafka:txn.archive --since 2026-11-01T00:00:00Z --until 2026-11-02T00:00:00Z --to txn.raw --max-lag 50000 --group cutover-txn',
    '<%= config.bin %> backfill --resume bf-20261122-010203-a1b2c3 --json',
  ]
  static override flags = {
    from: Flags.string({description: 'source URI: csv:, fixed:, pg: or kafka: (not needed with --resume)'}),
    to: Flags.string({description: 'target topic (must exist, and not be the topic of a kafka: --from; not needed with --resume)'}),
    spec: Flags.string({description: 'pipeline spec: normalize with its fields, key by its key, rejects to its DLQ (its SHA-256 is kept: --resume refuses the spec once its content changed)'}),
    key: Flags.string({description: 'field(s) whose value is the Kafka key, comma-separated (default: the spec key; kafka: sources keep their key)'}),
    rate: Flags.string({description: 'records per second: N or N/s (also /m, /h)'}),
    burst: Flags.integer({min: 0, description: 'records that may go at once beyond --rate (default 0; needs --rate, or a resumed backfill\'s rate)'}),
    'max-lag': Flags.integer({min: 1, description: "pause while the group's lag on --to is above N (with --group, or a resumed backfill's group)"}),
    group: Flags.string({description: "consumer group whose lag paces the backfill (with --max-lag, or a resumed backfill's --max-lag)"}),
    since: Flags.string({description: 'first record time, inclusive (ISO-8601): kafka record timestamps, or the spec event_time'}),
    until: Flags.string({description: 'end record time, exclusive (ISO-8601)'}),
    resume: Flags.string({description: 'continue the backfill with this id after its last checkpoint (at least once: after a kill, up to 2 s of acknowledged records are sent again)'}),
    id: Flags.string({description: 'name a new backfill (default bf-<time>-<random>)'}),
    dlq: Flags.string({description: "dead-letter topic for rejects (default: the spec's dlq, else <to>.dlq)"}),
    'batch-size': Flags.integer({min: 1, max: 10000, description: 'records per producer batch (default: 50 ms of --rate, at most 2000)'}),
    send: Flags.option({
      options: ['raw', 'normalized'] as const,
      description: "with --spec: send accepted records as read (raw, default: in the spec's source.format, what `stream run` with the same spec consumes: json the fields, fixed the copybook record's bytes, csv one line of source.columns in source.encoding) or as the normalized record (JSON)",
    })(),
    'dry-run': Flags.boolean({description: "read and normalize, count, send nothing; records over the target's max.message.bytes (the broker's, or Kafka's default when none answers) count as RECORD_TOO_LARGE"}),
  }

  async run(): Promise<BackfillResult> {
    const {flags} = await this.parse(Backfill)
    const settings = connectionSettingsFromEnv()
    const json = this.jsonEnabled()
    const controller = new AbortController()
    const tracker = new ProgressTracker('backfill')
    // a terminal of 0 columns (`script` without a terminal of its own, some CI runners) is no
    // terminal: ink would draw one character per line; plain periodic lines there instead
    const tty = !json && process.stderr.isTTY === true && (process.stderr.columns ?? 0) > 0
    let stopProgress: () => void = () => {}
    let ui: BackfillProgressUi | undefined
    // while ink draws, every other stderr line goes above its frame (a line written beside it
    // would be erased by its next redraw): the header, SIGINT's note and the log's entries
    const say = (line: string) => (ui ? ui.print(line) : this.progress(line))
    const logger = tty ? createLogger({level: this.logger.level, sink: (e) => (ui ? ui.print(JSON.stringify(e)) : stderrJsonSink(e))}) : this.logger
    let stoppedBy: 'SIGINT' | 'SIGTERM' | undefined
    const stop = (sig: 'SIGINT' | 'SIGTERM') => {
      say(`${sig}: stopping after the batches in flight, with a checkpoint`)
      stoppedBy ??= sig
      controller.abort()
    }
    process.once('SIGTERM', () => stop('SIGTERM'))
    process.once('SIGINT', () => stop('SIGINT'))
    if (tty) {
      const {startBackfillProgress} = await import('../ui/backfill-progress.js')
      ui = startBackfillProgress(tracker, flags.rate ? parseRate(flags.rate) : null)
    } else if (!json) {
      stopProgress = startProgressLines(tracker, (l) => this.logToStderr(l))
    }
    try {
      const result = await runBackfill({
        ...(flags.from === undefined ? {} : {from: flags.from}),
        ...(flags.to === undefined ? {} : {to: flags.to}),
        ...(flags.spec === undefined ? {} : {spec: flags.spec}),
        ...(flags.key === undefined ? {} : {key: flags.key}),
        ...(flags.rate === undefined ? {} : {rate: parseRate(flags.rate)}),
        ...(flags.burst === undefined ? {} : {burst: flags.burst}),
        ...(flags['max-lag'] === undefined ? {} : {maxLag: flags['max-lag']}),
        ...(flags.group === undefined ? {} : {group: flags.group}),
        ...(flags.since === undefined ? {} : {since: parseTimeOption(flags.since, '--since')!}),
        ...(flags.until === undefined ? {} : {until: parseTimeOption(flags.until, '--until')!}),
        ...(flags.resume === undefined ? {} : {resume: flags.resume}),
        ...(flags.id === undefined ? {} : {id: flags.id}),
        ...(flags.dlq === undefined ? {} : {dlq: flags.dlq}),
        ...(flags.send === undefined ? {} : {send: flags.send}),
        ...(flags['batch-size'] === undefined ? {} : {batchSize: flags['batch-size']}),
        dryRun: flags['dry-run'],
        settings,
        logger,
        signal: controller.signal,
        progress: tracker,
        countTotal: tty,
        onStart: (s) => {
          ui?.setTargetRate(s.rate) // a resume without --rate paces at the backfill's saved one
          say(`backfill ${s.id}: ${s.source} -> ${s.target}${s.resumedFrom ? ` (resuming after record ${s.resumedFrom.records})` : ''}`)
        },
        ...(ui ? {onPace: () => ui!.update()} : {}),
      })
      ui?.done()
      ui = undefined
      this.log(formatBackfillResult(result))
      if (result.status === 'stopped' && stoppedBy) {
        // not done: 130 / 143, so that a scheduler (a Kubernetes Job, cron, Airflow) that sent the
        // signal does not take the backfill for finished; the same command with --resume goes on
        process.exitCode = 128 + constants.signals[stoppedBy]
        if (!json) this.logToStderr(`stopped by ${stoppedBy} (exit ${process.exitCode}): cutover backfill --resume ${result.id} continues it`)
      }
      return result
    } finally {
      ui?.done()
      stopProgress()
    }
  }
}
