import {Args, Flags} from '@oclif/core'
import {CutoverCommand} from '../../cli/base.js'
import {ExitCode, UsageError} from '../../errors.js'
import {runPipelineCases, type PipelineTestResult} from '../../normalize/cases.js'

export type {PipelineTestResult}

export default class PipelineTest extends CutoverCommand {
  static override summary = 'Run golden cases (input, expected output, rejections) through a spec: exit 0 all pass, 1 a case fails, 2 bad spec.'
  static override description =
    "Each case is a folder with input.ndjson (raw records), expected.ndjson (normalized records) and optionally rejects.ndjson ({code, field} per rejection, in order). The spec's dedupe applies as in normalize: an identical repeat of a key is dropped (in neither file), a differing one is rejected as DUPLICATE_CONFLICT. Values of sensitive fields are masked."
  static override examples = ['<%= config.bin %> pipeline test fixtures/specs/card-transactions.yaml fixtures/cases/card-transactions']
  static override args = {
    spec: Args.string({description: 'pipeline spec (YAML)'}),
    cases: Args.string({description: 'folder of case folders (or one case folder)'}),
  }
  // every other command takes the spec as --spec: `pipeline test --spec p.yaml cases/` works too
  static override flags = {
    spec: Flags.string({description: 'pipeline spec (YAML), instead of the SPEC argument: then the one argument is CASES'}),
  }

  async run(): Promise<PipelineTestResult> {
    const {args, flags} = await this.parse(PipelineTest)
    const usage = 'cutover pipeline test <spec.yaml> <cases-folder> (or --spec <spec.yaml> <cases-folder>)'
    // with --spec, the first (only) argument is the cases folder
    const [spec, cases, extra] = flags.spec === undefined ? [args.spec, args.cases] : [flags.spec, args.spec, args.cases]
    if (extra !== undefined) throw new UsageError(`with --spec ${flags.spec}, the one argument is the cases folder; got two: ${args.spec} and ${extra}`, {hint: usage})
    if (spec === undefined) throw new UsageError('no spec and no cases folder given', {hint: usage})
    if (cases === undefined) throw new UsageError(`no cases folder given (the spec is ${spec})`, {hint: `${usage}; each case is a folder with input.ndjson, expected.ndjson and optionally rejects.ndjson`})
    const result = await runPipelineCases(spec, cases)
    for (const c of result.cases) {
      this.log(`${c.passed ? 'PASS' : 'FAIL'}  ${c.name}  (${c.inputs} inputs: ${c.accepted} accepted, ${c.rejected} rejected${c.duplicates > 0 ? `, ${c.duplicates} duplicate${c.duplicates === 1 ? '' : 's'} dropped` : ''})`)
      if (c.difference) this.log(`      ${c.difference}`)
    }
    this.log(`${result.passed} passed, ${result.failed} failed`)
    if (result.failed > 0) process.exitCode = ExitCode.CHECK_FAILED
    return result
  }
}
