import {Flags} from '@oclif/core'
import {CutoverCommand} from '../../cli/base.js'
import {connectionSettingsFromEnv} from '../../config/env.js'
import {defaultStateDir, saslSslEnvLine} from '../../dev/broker.js'
import {devStatus, type DevStatusResult} from '../../dev/status.js'
import {ExitCode} from '../../errors.js'

const state = (s: 'up' | 'down' | 'refused') => (s === 'up' ? 'up     ' : s === 'down' ? 'DOWN   ' : 'REFUSED')

export type {DevStatusResult}

export default class DevStatus extends CutoverCommand {
  static override summary = 'Report the Kafka broker and PostgreSQL: up or down, versions, addresses (exit 3 if one is unreachable, 2 if one refuses the settings).'
  static override description =
    'Each service is up, down (unreachable: exit 3, naming it) or refused (it answers but refuses the settings: a wrong user or password in DATABASE_URL, SASL or TLS settings; exit 2 with the fix).'
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
        ? `kafka       ${state(k.status)}  ${k.address}  ${k.version ? `Apache Kafka ${k.version}` : 'version unknown'}${k.managed ? ` (started by cutover, pid ${k.pid})` : ''}`
        : `kafka       ${state(k.status)}  ${k.address}  ${k.error}`,
    )
    this.log(`postgresql  ${state(p.status)}  ${p.address}  ${p.status === 'up' ? `PostgreSQL ${p.version}` : p.error}`)
    if (k.saslSsl) {
      this.log(`SASL_SSL listener of the dev broker at ${k.saslSsl.address} (SCRAM-SHA-256/512 over TLS): user ${k.saslSsl.username}, password in ${k.saslSsl.passwordFile}, CA ${k.saslSsl.caFile}`)
      this.log(`  ${saslSslEnvLine(k.saslSsl)}`)
    }
    if (result.refused.length > 0) {
      // it answers: the settings are wrong (exit 2, as any command says of them), not an outage
      process.exitCode = ExitCode.USAGE
      this.logToStderr(`refused: ${result.refused.join(', ')} (it answers, but refuses these settings)`)
    }
    if (result.unreachable.length > 0) {
      process.exitCode = ExitCode.UNAVAILABLE
      this.logToStderr(`unreachable: ${result.unreachable.join(', ')}`)
    }
    return result
  }
}
