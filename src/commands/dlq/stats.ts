import {Flags} from '@oclif/core'
import {CutoverCommand} from '../../cli/base.js'
import {connectionSettingsFromEnv} from '../../config/env.js'
import {ExitCode} from '../../errors.js'
import {dlqStats, type DlqStatsResult} from '../../dlq/stats.js'

export type {DlqStatsResult}

export default class DlqStats extends CutoverCommand {
  static override summary = 'Totals by error code and the rate of the last hour of a dead-letter topic (for scripts and alerts).'
  static override examples = ['<%= config.bin %> dlq stats --topic txn.dlq --json', '<%= config.bin %> dlq stats --topic txn.dlq --fail-if-not-empty --json']
  static override flags = {
    topic: Flags.string({required: true, description: 'dead-letter topic'}),
    'fail-if-not-empty': Flags.boolean({description: 'exit 1 when the topic holds any dead letter (the result is printed all the same)'}),
  }

  async run(): Promise<DlqStatsResult> {
    const {flags} = await this.parse(DlqStats)
    let lastLine = Date.now()
    const r = await dlqStats({
      topic: flags.topic,
      kafka: connectionSettingsFromEnv().kafka,
      logger: this.logger,
      // it reads the whole topic: a line every 5 s on stderr (none under --json)
      onProgress: (n) => {
        if (Date.now() - lastLine < 5000) return
        lastLine = Date.now()
        this.progress(`read ${n.toLocaleString('en-US')} dead letters`)
      },
    })
    const codes = Object.entries(r.by_code)
      .map(([c, n]) => `${c} ${n.toLocaleString('en-US')}`)
      .join(', ')
    this.log(`${r.topic}: ${r.total.toLocaleString('en-US')} dead letters${codes ? ` (${codes})` : ''}; last hour ${r.last_hour.count.toLocaleString('en-US')} (${r.last_hour.per_minute}/min)`)
    if (flags['fail-if-not-empty'] && r.total > 0) process.exitCode = ExitCode.CHECK_FAILED
    return r
  }
}
