/**
 * Root help that lists every command with its one-line summary (oclif's default lists only
 * the topics and the top-level commands, hiding `dev up`, `stream run`, ...).
 */
import {Help} from '@oclif/core'

export default class CutoverHelp extends Help {
  protected override async showRootHelp(): Promise<void> {
    this.log(this.formatRoot())
    this.log('')
    const commands = this.sortedCommands.filter((c) => c.id && !c.hidden)
    if (commands.length > 0) {
      this.log(this.formatCommands(commands))
      this.log('')
    }
    this.log(`Run \`${this.config.bin} <command> --help\` for its flags. Every command takes --json.`)
  }
}
