import {Flags} from '@oclif/core'
import {CutoverCommand} from '../../cli/base.js'
import {connectionSettingsFromEnv} from '../../config/env.js'
import {defaultStateDir} from '../../dev/broker.js'
import {devStatus, type DevStatusResult} from '../../dev/status.js'
import {ExitCode} from '../../errors.js'

export type {DevStatusResult}

export default class DevStatus extends CutoverCommand {
  static override summary = 'Report the Kafka broker and PostgreSQL: up or down, versions, addresses (exit 3 if one is unreachable).'
  static override examples = ['<%= config.bin %> dev status', '<%= config.bin %> dev status --json']
  static override flags = {
    'state-dir': Flags.string({description: 'the state directory given to dev up'}),
  }

  async run(): Promise<DevStatusResult> {
    const {flags} = await this.parse(DevStatus)
    const result = await devStatus(connectionSettingsFromEnv(), flags['state-dir'] ?? defaultStateDir(), this.logger)
    const k = result.kafka
    const p = result.postgresql
    this.log(
      k.status === 'up'
        ? `kafka       up    ${k.address}  ${k.version ? `Apache Kafka ${k.version}` : 'version unknown'}${k.managed ? ` (started by cutover, pid ${k.pid})` : ''}`
        : `kafka       DOWN  ${k.address}  ${k.error}`,
    )
    this.log(p.status === 'up' ? `postgresql  up    ${p.address}  PostgreSQL ${p.version}` : `postgresql  DOWN  ${p.address}  ${p.error}`)
    if (result.unreachable.length > 0) {
      process.exitCode = ExitCode.UNAVAILABLE
      this.logToStderr(`unreachable: ${result.unreachable.join(', ')}`)
    }
    return result
  }
}
