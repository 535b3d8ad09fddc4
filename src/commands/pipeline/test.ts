import {Args} from '@oclif/core'
import {CutoverCommand} from '../../cli/base.js'
import {ExitCode} from '../../errors.js'
import {runPipelineCases, type PipelineTestResult} from '../../normalize/cases.js'

export type {PipelineTestResult}

export default class PipelineTest extends CutoverCommand {
  static override summary = 'Run golden cases (input, expected output, rejections) through a spec: exit 0 all pass, 1 a case fails, 2 bad spec.'
  static override description =
    "Each case is a folder with input.ndjson (raw records), expected.ndjson (normalized records) and optionally rejects.ndjson ({code, field} per rejection, in order). The spec's dedupe applies as in normalize: an identical repeat of a key is dropped (in neither file), a differing one is rejected as DUPLICATE_CONFLICT. Values of sensitive fields are masked."
  static override examples = ['<%= config.bin %> pipeline test fixtures/specs/card-transactions.yaml fixtures/cases/card-transactions']
  static override args = {
    spec: Args.string({required: true, description: 'pipeline spec (YAML)'}),
    cases: Args.string({required: true, description: 'folder of case folders (or one case folder)'}),
  }

  async run(): Promise<PipelineTestResult> {
    const {args} = await this.parse(PipelineTest)
    const result = await runPipelineCases(args.spec, args.cases)
    for (const c of result.cases) {
      this.log(`${c.passed ? 'PASS' : 'FAIL'}  ${c.name}  (${c.inputs} inputs: ${c.accepted} accepted, ${c.rejected} rejected${c.duplicates > 0 ? `, ${c.duplicates} duplicate${c.duplicates === 1 ? '' : 's'} dropped` : ''})`)
      if (c.difference) this.log(`      ${c.difference}`)
    }
    this.log(`${result.passed} passed, ${result.failed} failed`)
    if (result.failed > 0) process.exitCode = ExitCode.CHECK_FAILED
    return result
  }
}
