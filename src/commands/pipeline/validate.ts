import {Args, Flags} from '@oclif/core'
import {CutoverCommand} from '../../cli/base.js'
import {loadSpec, type LoadedSpec} from '../../config/spec.js'
import {SpecError, UsageError} from '../../errors.js'
import {silentLogger} from '../../log.js'
import {checkSourceFormat} from '../../runtime/stages/decode.js'

/** What the schema accepts and another command of this version will not do with it. */
export interface PipelineValidateWarning {
  file: string
  line?: number
  column?: number
  /** the sections, what they mean for the command that refuses them, and that it does */
  message: string
  /** what to do */
  hint?: string
}

export interface PipelineValidateResult {
  valid: true
  file: string
  name: string
  /** SHA-256 of the spec file: `cutover.pipeline.version` */
  sha256: string
  /** number of output fields */
  fields: number
  /** valid, but `stream run` refuses it ([] when it does not): a source it cannot read (checkSourceFormat) */
  warnings: PipelineValidateWarning[]
}

/**
 * stream run's own start check of the source, asked of this spec: a csv or fixed source it cannot
 * read (no `columns`, a copybook it cannot read, a field whose `from` is no column or copybook
 * field: checkSourceFormat) is a warning here, not an error: the spec is valid, and normalize
 * (which reads a file's own header) and pipeline test run it. It reads only the spec (and its
 * copybook). (enrich, windows and rules all run; their tables are checked when stream run starts.)
 */
function streamRunRefusals(loaded: LoadedSpec): PipelineValidateWarning[] {
  const ctx = {loaded, pipeline: loaded.spec.name, schema: 'public', maxRecordBytes: 0, dedupeRetentionMs: 0, logger: silentLogger}
  const out: PipelineValidateWarning[] = []
  for (const check of [checkSourceFormat]) {
    try {
      check(ctx)
    } catch (e) {
      if (!(e instanceof SpecError)) throw e
      out.push({...e.location, message: `${e.reason}, so stream run refuses this spec (exit 2)`, ...(e.hint ? {hint: e.hint} : {})})
    }
  }
  return out
}

export default class PipelineValidate extends CutoverCommand {
  static override summary = 'Check a pipeline spec against the schema; errors point to file:line:column and say what is allowed (exit 2).'
  static override description =
    'A valid spec is exit 0. What the schema accepts but stream run of this version refuses (a csv or fixed source whose fields name no column of source.columns or field of the copybook) is a warning, on stderr (under --json: in the result\'s warnings): validate says so rather than call such a spec ready to run.'
  static override examples = ['<%= config.bin %> pipeline validate fixtures/specs/card-transactions.yaml', '<%= config.bin %> pipeline validate pipeline.yaml --json']
  static override args = {
    spec: Args.string({description: 'pipeline spec (YAML)'}),
  }
  // every other command takes the spec as --spec: taken here too, rather than "Nonexistent flag"
  static override flags = {
    spec: Flags.string({description: 'pipeline spec (YAML), instead of the SPEC argument'}),
  }

  async run(): Promise<PipelineValidateResult> {
    const {args, flags} = await this.parse(PipelineValidate)
    if (args.spec !== undefined && flags.spec !== undefined) {
      throw new UsageError(`two specs given: ${args.spec} and --spec ${flags.spec}`, {hint: 'give one: cutover pipeline validate <spec> (or --spec <spec>)'})
    }
    const path = flags.spec ?? args.spec
    if (path === undefined) throw new UsageError('no spec given', {hint: 'cutover pipeline validate <spec.yaml> (or --spec <spec.yaml>)'})
    const loaded = await loadSpec(path)
    const {spec, file, sha256} = loaded
    const result: PipelineValidateResult = {valid: true, file, name: spec.name, sha256, fields: Object.keys(spec.fields).length, warnings: streamRunRefusals(loaded)}
    this.log(`${file}: valid pipeline spec "${result.name}" (${result.fields} fields, sha256 ${sha256.slice(0, 12)})`)
    // on stderr (oclif keeps it silent under --json, whose result has them): stdout keeps its one line
    for (const w of result.warnings) this.logToStderr(`warning: ${[w.file, w.line, w.column].filter((p) => p !== undefined).join(':')}: ${w.message}${w.hint ? `; ${w.hint}` : ''}`)
    return result
  }
}
