import {Args, Flags} from '@oclif/core'
import {CutoverCommand} from '../cli/base.js'
import {openOutput, startProgressLines} from '../cli/output.js'
import {connectionSettingsFromEnv} from '../config/env.js'
import {loadSpec} from '../config/spec.js'
import {normalizeSource, type NormalizeSummary} from '../jobs/normalize.js'
import {formatProgress, ProgressTracker} from '../jobs/progress.js'

export type NormalizeResult = NormalizeSummary

export default class Normalize extends CutoverCommand {
  static override summary = 'Normalize a legacy source with a spec: clean records and precise rejects as NDJSON.'
  static override description =
    'Reads csv:, fixed:, pg: or kafka: sources, applies the spec `fields` (dates, decimals, encodings, required, patterns) and its dedupe key. Rejected records are data, not failure: the exit code is 0 unless the spec or the source cannot be used.'
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

  async run(): Promise<NormalizeResult> {
    const {args, flags} = await this.parse(Normalize)
    const spec = await loadSpec(flags.spec)
    const json = this.jsonEnabled()
    const out = openOutput(flags.out, json, 'clean records')
    const rejects = flags.rejects ? openOutput(flags.rejects, false, 'rejects', '--rejects') : undefined
    const tracker = new ProgressTracker('normalize')
    const stop = json ? () => {} : startProgressLines(tracker, (l) => this.logToStderr(l))
    const settings = connectionSettingsFromEnv()
    try {
      const summary = await normalizeSource({
        uri: args.source,
        spec,
        out: out.stream,
        ...(rejects ? {rejects: rejects.stream} : {}),
        ctx: {databaseUrl: settings.databaseUrl, kafka: settings.kafka, logger: this.logger},
        progress: tracker,
      })
      if (!json) {
        const rejected = Object.entries(summary.rejected).map(([c, n]) => `${c} ${n}`).join(', ')
        this.logToStderr(`${formatProgress(tracker.snapshot())}\nread ${summary.read}, ok ${summary.ok}, rejected ${summary.read - summary.ok - summary.duplicates}${rejected ? ` (${rejected})` : ''}, duplicates ${summary.duplicates}`)
      }
      return summary
    } finally {
      stop()
      await out.close()
      await rejects?.close()
    }
  }
}
