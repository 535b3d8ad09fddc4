/**
 * oclif's `command_not_found` hook: an unknown command under `--json` prints one JSON error
 * document on stdout (DESIGN.md: `--json` prints one document and nothing else) and exits 2, as
 * every command's usage errors do; without `--json`, oclif's own message.
 *
 * No command at all, only flags (`cutover --json`, `cutover --log-level debug`): oclif takes the
 * first flag for the command's name ("command --json not found"). It is the same usage error,
 * saying that a command is missing, and which one follows the flags if one does
 * (`cutover --json dlq stats`: the flags go after it).
 */
import {Errors, type Hook, type Interfaces} from '@oclif/core'

type Config = Interfaces.Config

/** The command named in `argv` (its first one or two words: `dlq stats`), if one is. */
function commandIn(argv: readonly string[], config: Config): string | undefined {
  for (let i = 0; i < argv.length; i++) {
    if (argv[i]!.startsWith('-')) continue
    for (const words of [2, 1]) {
      const id = argv.slice(i, i + words).join(':')
      if (argv.slice(i, i + words).every((w) => !w.startsWith('-')) && config.findCommand(id)) return id
    }
  }
  return undefined
}

function usage(id: string, argv: readonly string[], config: Config): {message: string; hint: string} {
  const bin = config.bin
  if (!id.startsWith('-')) return {message: `command ${id.replaceAll(':', ' ')} not found`, hint: `run ${bin} --help for the commands`}
  const all = [id, ...argv]
  const command = commandIn(all, config)
  if (command !== undefined) {
    const words = command.split(':')
    const at = all.findIndex((a, i) => all.slice(i, i + words.length).join(':') === command)
    const flags = [...all.slice(0, at), ...all.slice(at + words.length)]
    return {message: `${id}: flags go after the command`, hint: `run ${bin} ${[...words, ...flags].join(' ')}`}
  }
  return {message: `no command given, only flags: ${bin} ${all.join(' ')}`, hint: `flags go after a command (${bin} <command> ${id}); run ${bin} --help for the commands`}
}

const hook: Hook<'command_not_found'> = async function (options) {
  const argv = options.argv ?? []
  const {message, hint} = usage(options.id, argv, options.config)
  if (options.id !== '--json' && !argv.includes('--json')) Errors.error(message, {exit: 2, suggestions: [hint]})
  process.stdout.write(JSON.stringify({error: {code: 'USAGE', message, hint}}, null, 2) + '\n')
  process.exitCode = 2
}

export default hook
