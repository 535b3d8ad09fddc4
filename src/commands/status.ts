import {Flags} from '@oclif/core'
import {CutoverCommand} from '../cli/base.js'
import {kafkaSettingsFromEnv} from '../config/env.js'
import {worstStatus, type LagStatus} from '../backfill/lag.js'
import {formatGroupStatus, groupStatus, type GroupStatusResult} from '../backfill/status.js'
import {ExitCode, UsageError} from '../errors.js'

export type StatusResult = GroupStatusResult

export default class Status extends CutoverCommand {
  static override summary = "A consumer group's lag per partition, Burrow-style status (OK, STARTING, WARN, STALL, STOP, ERR) and the last minute's throughput."
  static override description =
    "Samples the group once a second over --window and judges each partition by how its committed offset and lag move: OK (no lag, or keeping up), STARTING (lag, nothing committed yet, and a member of the Stable group is assigned it: its first batch is in progress), WARN (lag grows at every sample), STALL (lag and the committed offset does not move: with a member assigned, only once it stood still for 30 s, sampled past --window until then, since stream run commits a partition once per batch and a --max-rate batch waits for its tokens first), STOP (lag and no members, no member assigned, or never committed without a member known to hold it), ERR (committed offset went back). The overall status is the worst partition, by OK < STARTING < WARN < STALL < STOP < ERR. Each partition names the member assigned to it. Produced-per-minute comes from the broker's time index; consumed-per-second is measured over the samples. Any status is data, exit 0; with --fail-on LEVEL, a status at or past LEVEL in that order is exit 1 (the check failed), for a monitoring script."
  static override examples = [
    '<%= config.bin %> status --group cutover-txn',
    '<%= config.bin %> status --group cutover-txn --topic txn.raw --window 10 --json',
    '<%= config.bin %> status --group cutover-txn --fail-on stall',
  ]
  static override flags = {
    group: Flags.string({required: true, description: 'consumer group'}),
    topic: Flags.string({multiple: true, description: 'topic(s) to judge (default: every topic the group committed on; before its first commit, the topics its members are assigned)'}),
    window: Flags.integer({min: 0, max: 600, default: 5, description: 'seconds to sample (one sample a second; 0 = one sample); sampling goes on, up to 30 s, while a partition with a member assigned has a committed offset that stands still'}),
    'fail-on': Flags.option({
      options: ['warn', 'stall', 'stop', 'err'] as const,
      description: 'exit 1 when any partition is at or past this status, by OK < STARTING < WARN < STALL < STOP < ERR (default: every status is exit 0)',
    })(),
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
      onProgress: (m) => this.progress(m),
    })
    this.log(formatGroupStatus(result))
    // the overall status is the worst partition's: at or past the level when it is the worse of the two
    const level = flags['fail-on']?.toUpperCase() as LagStatus | undefined
    if (level !== undefined && worstStatus([result.status, level]) === result.status) {
      process.exitCode = ExitCode.CHECK_FAILED
      if (!this.jsonEnabled()) this.logToStderr(`check failed: group ${result.group} is ${result.status} (${result.reason}), at or past --fail-on ${flags['fail-on']}`)
    }
    return result
  }
}
