import {Flags} from '@oclif/core'
import {CutoverCommand} from '../cli/base.js'
import {kafkaSettingsFromEnv} from '../config/env.js'
import {formatGroupStatus, groupStatus, type GroupStatusResult} from '../backfill/status.js'
import {UsageError} from '../errors.js'

export type StatusResult = GroupStatusResult

export default class Status extends CutoverCommand {
  static override summary = "A consumer group's lag per partition, Burrow-style status (OK, WARN, STALL, STOP, ERR) and the last minute's throughput."
  static override description =
    'Samples the group once a second over --window and judges each partition by how its committed offset and lag move: OK (no lag, or keeping up), WARN (lag grows at every sample), STALL (lag and the committed offset does not move), STOP (lag and no members / never committed), ERR (committed offset went back). The overall status is the worst partition. Produced-per-minute comes from the broker\'s time index; consumed-per-second is measured over the window.'
  static override examples = ['<%= config.bin %> status --group cutover-txn', '<%= config.bin %> status --group cutover-txn --topic txn.raw --window 10 --json']
  static override flags = {
    group: Flags.string({required: true, description: 'consumer group'}),
    topic: Flags.string({multiple: true, description: 'topic(s) to judge (default: every topic the group committed on)'}),
    window: Flags.integer({min: 0, max: 600, default: 5, description: 'seconds to sample (one sample a second; 0 = one sample)'}),
  }

  async run(): Promise<StatusResult> {
    const {flags} = await this.parse(Status)
    // `--group=` would reach Kafka as an invalid group id (a Kafka error, exit 70)
    if (flags.group.trim() === '') throw new UsageError('--group is empty', {hint: 'name the consumer group, e.g. --group cutover-txn (the spec\'s source.group)'})
    // a topic named twice would be sampled twice: every partition listed and its lag counted twice
    const topics = flags.topic ? [...new Set(flags.topic)] : undefined
    const controller = new AbortController()
    process.once('SIGINT', () => controller.abort())
    const result = await groupStatus({
      group: flags.group,
      ...(topics ? {topics} : {}),
      windowMs: flags.window * 1000,
      settings: kafkaSettingsFromEnv(),
      logger: this.logger,
      signal: controller.signal,
    })
    this.log(formatGroupStatus(result))
    return result
  }
}
