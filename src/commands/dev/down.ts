import {Flags} from '@oclif/core'
import {CutoverCommand} from '../../cli/base.js'
import {defaultStateDir, stopBroker, type DownResult} from '../../dev/broker.js'

export type DevDownResult = DownResult

export default class DevDown extends CutoverCommand {
  static override summary = 'Stop the local broker that `dev up` started (only that one); keep its data unless --wipe.'
  static override examples = ['<%= config.bin %> dev down', '<%= config.bin %> dev down --wipe']
  static override flags = {
    wipe: Flags.boolean({default: false, description: 'also delete the broker data and logs'}),
    'state-dir': Flags.string({description: 'the state directory given to dev up'}),
  }

  async run(): Promise<DevDownResult> {
    const {flags} = await this.parse(DevDown)
    const result = await stopBroker({stateDir: flags['state-dir'] ?? defaultStateDir(), wipe: flags.wipe, logger: this.logger})
    this.log(result.message)
    return result
  }
}
