import {Flags} from '@oclif/core'
import {CutoverCommand} from '../../cli/base.js'
import {connectionSettingsFromEnv} from '../../config/env.js'
import {ExitCode} from '../../errors.js'
import {formatRepublish, republishDlq, type DlqRepublishResult} from '../../dlq/republish.js'

export type {DlqRepublishResult}

export default class DlqRepublish extends CutoverCommand {
  static override summary = 'Publish again, with their value, the dead letters the relay published without it (larger than the DLQ topic took), once the topic takes them.'
  static override description =
    "Lists the pipeline's cutover.outbox rows published without their value (header cutover.value.omitted) and measures each against its DLQ topic's max.message.bytes now. Those that fit are made unsent and published by the outbox relay's own rounds (the pipeline's relay lock, its producer): with their value, the row then marked sent and prunable; one not published within 30 s is left to the relay of the running or the next stream run. Those still too large are left as they are, with their size, the topic's limit and the kafka-configs.sh command that raises it: exit 1 when any is. dlq inspect, stats and replay then take the copy with the value for the dead letter."
  static override examples = [
    '<%= config.bin %> dlq republish --spec pipeline.yaml --dry-run',
    '<%= config.bin %> dlq republish --spec pipeline.yaml --id 1234 --json',
  ]
  static override flags = {
    spec: Flags.string({required: true, description: "the pipeline spec (its name selects the outbox rows)"}),
    id: Flags.integer({multiple: true, min: 1, description: 'only this outbox row (repeatable; relay.value_omitted names it)'}),
    'dry-run': Flags.boolean({description: 'say what fits now, change nothing'}),
  }

  async run(): Promise<DlqRepublishResult> {
    const {flags} = await this.parse(DlqRepublish)
    const result = await republishDlq({
      spec: flags.spec,
      settings: connectionSettingsFromEnv(),
      ...(flags.id ? {ids: flags.id} : {}),
      dryRun: flags['dry-run'],
      logger: this.logger,
    })
    this.log(formatRepublish(result))
    // not a crash: the check "every one of them is on the topic with its value" failed, the result says why
    if (result.too_large > 0) process.exitCode = ExitCode.CHECK_FAILED
    return result
  }
}
