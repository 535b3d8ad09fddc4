import {Args} from '@oclif/core'
import {CutoverCommand} from '../../cli/base.js'
import {loadSpec} from '../../config/spec.js'

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
    spec: Args.string({required: true, description: 'pipeline spec (YAML)'}),
  }

  async run(): Promise<PipelineValidateResult> {
    const {args} = await this.parse(PipelineValidate)
    const {spec, file, sha256} = await loadSpec(args.spec)
    const result: PipelineValidateResult = {valid: true, file, name: spec.name, sha256, fields: Object.keys(spec.fields).length}
    this.log(`${file}: valid pipeline spec "${result.name}" (${result.fields} fields, sha256 ${sha256.slice(0, 12)})`)
    return result
  }
}
