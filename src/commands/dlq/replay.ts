import {constants} from 'node:os'
import {Flags} from '@oclif/core'
import {UsageError} from '../../errors.js'
import {CutoverCommand} from '../../cli/base.js'
import {connectionSettingsFromEnv} from '../../config/env.js'
import {parseCodeFlags, parseTimeFlag} from '../../dlq/reader.js'
import {replayDlq, type DlqReplayResult} from '../../dlq/replay.js'
import {createLogger, stderrJsonSink} from '../../log.js'
import type {ReplayProgressUi} from '../../ui/dlq-progress.js'
import {formatReplay} from '../../ui/dlq-text.js'

export type {DlqReplayResult}

export default class DlqReplay extends CutoverCommand {
  static override summary = 'Send dead letters back through the pipeline once the spec is fixed: exactly once, rate-limited, resumable.'
  static override description =
    "--dry-run runs the selected dead letters through the CURRENT spec's decode, normalize and validate stages (and a read-only dedupe check; with windows, whether each is further behind the topic's watermarks than allowed_lateness: LATE_EVENT again) and says how many would now pass. A real replay republishes the original key, value and headers to each record's source topic (or --to), with cutover.replay.count and cutover.replay.id, in Kafka transactions with its own consumer group; past --max-replays records go to <dlq>.parked. Of cutover's dead letters, only those of the spec's pipeline (cutover.pipeline) are selected: a DLQ shared by several pipelines is replayed with each one's spec. The same replay run again sends nothing new; after a crash, or SIGINT/SIGTERM (exit 130/143: not finished), it continues. The DLQ topic is never modified. The ledger is cutover.replays."
  static override examples = [
    '<%= config.bin %> dlq replay --topic txn.dlq --spec pipeline.yaml --code UNPARSEABLE_DATE --dry-run',
    '<%= config.bin %> dlq replay --topic txn.dlq --spec pipeline.yaml --code UNPARSEABLE_DATE --rate 500 --json',
  ]
  static override flags = {
    topic: Flags.string({required: true, description: 'dead-letter topic'}),
    spec: Flags.string({required: true, description: 'the (fixed) pipeline spec'}),
    code: Flags.string({multiple: true, description: 'only dead letters with this code (repeatable)'}),
    since: Flags.string({description: 'dead letters written at or after (ISO-8601, or 2h / 30m / 7d back from now)'}),
    until: Flags.string({description: 'dead letters written before (ISO-8601 or a duration back from now)'}),
    key: Flags.string({description: 'only dead letters with this Kafka key (the ledger keeps its SHA-256, messages show sha256: and 12 hex digits of it)'}),
    to: Flags.string({default: 'source', description: "'source' (each record's source topic) or a topic"}),
    rate: Flags.integer({min: 1, description: 'at most this many records in any second, the first one included'}),
    'dry-run': Flags.boolean({description: 'predict, write nothing'}),
    'max-record-bytes': Flags.integer({min: 1, dependsOn: ['dry-run'], description: "with --dry-run: the stream run --max-record-bytes to predict with (default 1 MiB, as stream run's): larger values are predicted RECORD_TOO_LARGE"}),
    'max-replays': Flags.integer({default: 3, min: 0, description: 'records replayed this many times already are parked in <dlq>.parked'}),
    'replay-id': Flags.string({
      description: 'name the replay (default: derived from the flags as written, so the same command resumes an unfinished replay and is a no-op after a finished one; name a new one to replay dead letters that arrived since)',
    }),
  }

  async run(): Promise<DlqReplayResult> {
    const {flags} = await this.parse(DlqReplay)
    const since = parseTimeFlag(flags.since, '--since')
    const until = parseTimeFlag(flags.until, '--until')
    // an empty window would select nothing, and a finished replay of nothing is no-op for ever after
    if (since !== undefined && until !== undefined && since >= until) {
      throw new UsageError(`--since ${flags.since} is ${since === until ? 'the same time as' : 'after'} --until ${flags.until}: no dead letter is in that window`, {
        hint: since === until ? '--until is the end of the window, not included: for one day, --since 2026-11-20 --until 2026-11-21' : 'swap them, or drop --until',
      })
    }
    const codes = parseCodeFlags(flags.code)
    const settings = connectionSettingsFromEnv()
    const controller = new AbortController()
    let tty: ReplayProgressUi | undefined
    // while ink draws, every other stderr line goes above its frame (a line written beside it
    // would be erased by its next redraw): SIGINT's note and the log's entries
    const say = (line: string) => (tty ? tty.print(line) : this.progress(line))
    let stoppedBy: 'SIGINT' | 'SIGTERM' | undefined
    const stop = (sig: 'SIGINT' | 'SIGTERM') => {
      say(`${sig}: finishing the transaction in hand; run the same command again to continue`)
      stoppedBy ??= sig
      controller.abort()
    }
    process.once('SIGTERM', () => stop('SIGTERM'))
    process.once('SIGINT', () => stop('SIGINT'))
    let lastLine = 0
    // ink on a terminal (stderr), plain lines otherwise; nothing under --json. A terminal of 0
    // columns (`script` without a terminal of its own, some CI runners) is no terminal: ink would
    // draw one character per line
    const terminal = process.stderr.isTTY === true && (process.stderr.columns ?? 0) > 0
    if (!this.jsonEnabled() && terminal) tty = (await import('../../ui/dlq-progress.js')).startReplayProgress(flags['dry-run'])
    const logger = tty ? createLogger({level: this.logger.level, sink: (e) => (tty ? tty.print(JSON.stringify(e)) : stderrJsonSink(e))}) : this.logger
    const result = await replayDlq({
      topic: flags.topic,
      spec: flags.spec,
      settings,
      ...(codes ? {codes} : {}),
      ...(since === undefined ? {} : {since, sinceText: flags.since!}),
      ...(until === undefined ? {} : {until, untilText: flags.until!}),
      ...(flags.key === undefined ? {} : {key: flags.key}),
      to: flags.to,
      ...(flags.rate === undefined ? {} : {rate: flags.rate}),
      dryRun: flags['dry-run'],
      ...(flags['max-record-bytes'] === undefined ? {} : {maxRecordBytes: flags['max-record-bytes']}),
      maxReplays: flags['max-replays'],
      ...(flags['replay-id'] === undefined ? {} : {replayId: flags['replay-id']}),
      logger,
      signal: controller.signal,
      onProgress: (p) => {
        if (tty) return tty.update(p)
        const now = Date.now()
        if (now - lastLine < (terminal ? 1000 : 5000)) return
        lastLine = now
        this.progress(`${flags['dry-run'] ? 'checked' : 'replayed'} ${p.scanned.toLocaleString('en-US')} of ${p.total.toLocaleString('en-US')} dead letters: selected ${p.selected.toLocaleString('en-US')}, sent ${p.sent.toLocaleString('en-US')}, parked ${p.parked.toLocaleString('en-US')}`)
      },
    }).finally(() => tty?.done())
    this.log(formatReplay(result))
    if (result.other_pipelines_now > 0) {
      this.progress(`${result.other_pipelines_now.toLocaleString('en-US')} dead letters of other pipelines than ${result.pipeline} were not selected: replay them with their own spec`)
    }
    if (result.status === 'stopped' && stoppedBy) {
      // not done: 130 / 143, so that a scheduler (a Kubernetes Job, cron, Airflow) that sent the
      // signal does not take the replay for finished; the same command continues it
      process.exitCode = 128 + constants.signals[stoppedBy]
      this.progress(`stopped by ${stoppedBy} (exit ${process.exitCode}): the same command continues the replay`)
    }
    return result
  }
}
