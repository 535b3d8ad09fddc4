/**
 * Root help that lists every command with its one-line summary (oclif's default lists only
 * the topics and the top-level commands, hiding `dev up`, `stream run`, ...).
 *
 * A topic given as a command (`cutover dlq --json`): oclif shows the topic's help, exit 0.
 * Under --json that is a usage error, one JSON document on stdout and exit 2, as an unknown
 * command is (src/cli/not-found.ts), naming the topic's commands.
 */
import {Help} from '@oclif/core'

export default class CutoverHelp extends Help {
  override async showHelp(argv: string[]): Promise<void> {
    const [id] = argv
    const args = process.argv.slice(2)
    if (argv.length === 1 && id !== undefined && args.includes('--json') && !args.includes('--help') && this.config.findTopic(id) && !this.config.findCommand(id)) {
      const words = id.replaceAll(':', ' ')
      const commands = this.config.commands.filter((c) => !c.hidden && c.id.startsWith(`${id}:`)).map((c) => c.id.replaceAll(':', ' '))
      const message = `${words} is a group of commands, not a command: name one of ${commands.join(', ')}`
      const hint = `put the command after ${words}; ${this.config.bin} ${words} --help says what each one does`
      process.stdout.write(JSON.stringify({error: {code: 'USAGE', message, hint}}, null, 2) + '\n')
      process.exitCode = 2
      return
    }
    await super.showHelp(argv)
  }

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
