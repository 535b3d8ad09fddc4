import {Args, Flags} from '@oclif/core'
import {CutoverCommand} from '../../cli/base.js'
import {loadSpec} from '../../config/spec.js'
import {UsageError} from '../../errors.js'

export interface PipelineValidateResult {
  valid: true
  file: string
  name: string
  /** SHA-256 of the spec file: `cutover.pipeline.version` */
  sha256: string
  /** number of output fields */
  fields: number
}

export default class PipelineValidate extends CutoverCommand {
  static override summary = 'Check a pipeline spec against the schema; errors point to file:line:column and say what is allowed (exit 2).'
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
    const {spec, file, sha256} = await loadSpec(path)
    const result: PipelineValidateResult = {valid: true, file, name: spec.name, sha256, fields: Object.keys(spec.fields).length}
    this.log(`${file}: valid pipeline spec "${result.name}" (${result.fields} fields, sha256 ${sha256.slice(0, 12)})`)
    return result
  }
}
