import {Flags} from '@oclif/core'
import {CutoverCommand} from '../../cli/base.js'
import {defaultStateDir, saslSslEnvLine, startBroker, type UpResult} from '../../dev/broker.js'

export type DevUpResult = UpResult

export default class DevUp extends CutoverCommand {
  static override summary = 'Start a local single-node Apache Kafka broker (KRaft), or reuse one that answers.'
  static override description =
    'Fetches the broker jars with Maven once (dev/kafka/pom.xml), formats the storage on first start, starts kafka.Kafka in the background and waits until it answers. Two listeners: PLAINTEXT on --port, and SASL_SSL (SCRAM-SHA-256/512 over TLS) on --sasl-port, with a self-signed CA and a SCRAM user `cutover` whose random password is kept in a file of the state directory (mode 0600); both are made once per state directory.'
  static override examples = ['<%= config.bin %> dev up', '<%= config.bin %> dev up --json']
  static override flags = {
    port: Flags.integer({default: 9092, description: 'broker (PLAINTEXT) port'}),
    'sasl-port': Flags.integer({description: 'SASL_SSL (SCRAM over TLS) port [default: the first port after --port that --controller-port does not take: 9093]'}),
    'controller-port': Flags.integer({description: 'KRaft controller port [default: the first port after --port that the SASL_SSL listener does not take: 9094]'}),
    heap: Flags.string({default: '1g', description: 'maximum JVM heap (-Xmx)'}),
    timeout: Flags.integer({default: 120, description: 'seconds to wait for the broker to answer'}),
    'state-dir': Flags.string({description: 'where jars, data and logs live (default $CUTOVER_HOME/dev/kafka, CUTOVER_HOME being ~/.cutover unless set)'}),
  }

  async run(): Promise<DevUpResult> {
    const {flags} = await this.parse(DevUp)
    const result = await startBroker({
      stateDir: flags['state-dir'] ?? defaultStateDir(),
      port: flags.port,
      ...(flags['sasl-port'] === undefined ? {} : {saslPort: flags['sasl-port']}),
      ...(flags['controller-port'] === undefined ? {} : {controllerPort: flags['controller-port']}),
      heap: flags.heap,
      startTimeoutMs: flags.timeout * 1000,
      logger: this.logger,
      onProgress: (m) => this.progress(m),
    })
    this.log(result.reused ? `Kafka already answers at ${result.bootstrap}; reusing it.` : `Kafka ${result.version} is up at ${result.bootstrap} (pid ${result.pid}, ${(result.startMs / 1000).toFixed(1)} s).`)
    this.log(`KAFKA_BROKERS=${result.bootstrap}`)
    const s = result.saslSsl
    if (s) {
      this.log(`SASL_SSL listener (SCRAM-SHA-256/512 over TLS) at ${s.address}: user ${s.username}, password in ${s.passwordFile}, CA ${s.caFile}`)
      this.log(saslSslEnvLine(s))
    } else if (result.managed) {
      this.log(`(no SASL_SSL listener: this broker was started before dev up opened one; \`cutover dev down\` then \`cutover dev up\` adds it)`)
    }
    return result
  }
}
