import {Flags} from '@oclif/core'
import {CutoverCommand} from '../../cli/base.js'
import {defaultStateDir, startBroker, type UpResult} from '../../dev/broker.js'

export type DevUpResult = UpResult

export default class DevUp extends CutoverCommand {
  static override summary = 'Start a local single-node Apache Kafka broker (KRaft), or reuse one that answers.'
  static override description =
    'Fetches the broker jars with Maven once (dev/kafka/pom.xml), formats the storage on first start, starts kafka.Kafka in the background and waits until it answers.'
  static override examples = ['<%= config.bin %> dev up', '<%= config.bin %> dev up --json']
  static override flags = {
    port: Flags.integer({default: 9092, description: 'broker (PLAINTEXT) port'}),
    'controller-port': Flags.integer({default: 9093, description: 'KRaft controller port'}),
    heap: Flags.string({default: '1g', description: 'maximum JVM heap (-Xmx)'}),
    timeout: Flags.integer({default: 120, description: 'seconds to wait for the broker to answer'}),
    'state-dir': Flags.string({description: 'where jars, data and logs live (default $CUTOVER_HOME/dev/kafka, CUTOVER_HOME being ~/.cutover unless set)'}),
  }

  async run(): Promise<DevUpResult> {
    const {flags} = await this.parse(DevUp)
    const result = await startBroker({
      stateDir: flags['state-dir'] ?? defaultStateDir(),
      port: flags.port,
      controllerPort: flags['controller-port'],
      heap: flags.heap,
      startTimeoutMs: flags.timeout * 1000,
      logger: this.logger,
      onProgress: (m) => this.progress(m),
    })
    this.log(result.reused ? `Kafka already answers at ${result.bootstrap}; reusing it.` : `Kafka ${result.version} is up at ${result.bootstrap} (pid ${result.pid}, ${(result.startMs / 1000).toFixed(1)} s).`)
    this.log(`KAFKA_BROKERS=${result.bootstrap}`)
    return result
  }
}
