import {constants} from 'node:os'
import {Args, Flags} from '@oclif/core'
import {CutoverCommand} from '../cli/base.js'
import {assertDistinctFiles, assertWritableFolder, commitOutputs, discardOutputs, openOutput, outputFailure, progressEveryMs, readerWentAway, startProgressLines, type OpenedOutput} from '../cli/output.js'
import {connectionSettingsFromEnv} from '../config/env.js'
import {loadSpec} from '../config/spec.js'
import {normalizeInputFiles, normalizeSource, type NormalizeSummary} from '../jobs/normalize.js'
import {formatProgress, ProgressTracker} from '../jobs/progress.js'

/** The summary; after SIGINT/SIGTERM also `interrupted: true` and the signal (nothing was written then). */
export type NormalizeResult = NormalizeSummary & {signal?: 'SIGINT' | 'SIGTERM'}

export default class Normalize extends CutoverCommand {
  static override summary = 'Normalize a legacy source with a spec: clean records and precise rejects as NDJSON.'
  static override description =
    'Reads csv:, fixed:, pg: or kafka: sources, applies the spec `fields` (dates, decimals, encodings, required, patterns) and its dedupe key. Rejected records are data, not failure: the exit code is 0 unless the spec or the source cannot be used. ' +
    '--out and --rejects are written whole or not at all: each is written beside its name and renamed onto it when the run completes; a run that fails or is stopped leaves them as they were. ' +
    'SIGINT/SIGTERM stop the reading: the counts so far are printed with `interrupted: true` and the exit code is 130 (SIGINT) or 143 (SIGTERM). ' +
    'Clean records on stdout (no --out) end quietly when the reader goes away (`| head`), exit 141.'
  static override examples = [
    '<%= config.bin %> normalize "csv:fixtures/legacy/txn-2026-11-20.csv?delimiter=;&encoding=windows-1251" --spec fixtures/specs/card-transactions.yaml',
    '<%= config.bin %> normalize csv:data/txn.csv --spec pipeline.yaml --out clean.ndjson --rejects rejects.ndjson --json',
  ]
  static override args = {
    source: Args.string({required: true, description: 'source URI: csv:, fixed:, pg: or kafka:'}),
  }
  static override flags = {
    spec: Flags.string({required: true, description: 'pipeline spec (YAML) whose `fields` describe the output'}),
    out: Flags.string({description: 'clean records as NDJSON (default stdout)'}),
    rejects: Flags.string({description: 'rejected records as NDJSON with code, field, value, message, position'}),
  }

  async run(): Promise<NormalizeResult | undefined> {
    const {args, flags} = await this.parse(Normalize)
    const json = this.jsonEnabled()
    // every output is checked before anything is read or opened
    const files = [
      ...(flags.out === undefined || flags.out === '-' ? [] : [{flag: '--out', path: flags.out}]),
      ...(flags.rejects === undefined ? [] : [{flag: '--rejects', path: flags.rejects}]),
    ]
    for (const f of files) assertWritableFolder(f.path, f.flag)
    assertDistinctFiles(files, normalizeInputFiles(args.source, flags.spec))
    const spec = await loadSpec(flags.spec)
    // a bad CUTOVER_PROGRESS_EVERY is exit 2 before any output file is opened
    const progressEvery = json ? 0 : progressEveryMs()
    const outputs: OpenedOutput[] = [openOutput(flags.out, json, 'clean records')]
    if (flags.rejects !== undefined) outputs.push(openOutput(flags.rejects, false, 'rejects', '--rejects'))
    const [out, rejects] = outputs
    const tracker = new ProgressTracker('normalize')
    const stop = json ? () => {} : startProgressLines(tracker, (l) => this.logToStderr(l), progressEvery)
    const controller = new AbortController()
    let signal: 'SIGINT' | 'SIGTERM' | undefined
    const onSignal = (s: 'SIGINT' | 'SIGTERM') => {
      signal ??= s
      controller.abort()
    }
    const onInt = () => onSignal('SIGINT')
    const onTerm = () => onSignal('SIGTERM')
    process.once('SIGINT', onInt)
    process.once('SIGTERM', onTerm)
    const settings = connectionSettingsFromEnv()
    let summary: NormalizeSummary
    try {
      summary = await normalizeSource({
        uri: args.source,
        spec,
        out: out!.stream,
        ...(rejects ? {rejects: rejects.stream} : {}),
        ctx: {databaseUrl: settings.databaseUrl, kafka: settings.kafka, logger: this.logger},
        progress: tracker,
        signal: controller.signal,
      })
      if (summary.interrupted) discardOutputs(outputs)
      else await commitOutputs(outputs)
    } catch (e) {
      discardOutputs(outputs)
      if (readerWentAway(outputs)) {
        process.exitCode = 128 + constants.signals.SIGPIPE // as `cat` ends in `| head`: quietly
        return undefined
      }
      throw outputFailure(outputs, e)
    } finally {
      stop()
      process.off('SIGINT', onInt)
      process.off('SIGTERM', onTerm)
    }
    const rejected = summary.read - summary.ok - summary.duplicates
    const counts = `read ${summary.read}, ok ${summary.ok}, rejected ${rejected}${Object.keys(summary.rejected).length ? ` (${Object.entries(summary.rejected).map(([c, n]) => `${c} ${n}`).join(', ')})` : ''}, duplicates ${summary.duplicates}`
    if (summary.interrupted) {
      const s = signal ?? 'SIGINT'
      process.exitCode = 128 + constants.signals[s]
      const kept = [...(out!.label === 'stdout' ? ['the records on stdout stop there'] : []), ...files.map((f) => `${f.flag} ${f.path} left as it was`)]
      if (!json) this.logToStderr(`interrupted (${s}) after ${counts}; ${kept.join(', ')}`)
      return {...summary, signal: s}
    }
    // the read is over: its count is exact, an estimate of the file's records is no longer news
    tracker.total = undefined
    if (!json) this.logToStderr(`${formatProgress(tracker.snapshot())}\n${counts}`)
    return summary
  }
}
