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
import {nearestWord} from '../config/nearest-word.js'

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

/**
 * The command `id` is likely a typo of (`stream runn`, `normalise`, `dlq inspekt`): the nearest
 * command to its first words, longest first (`normalise x` is `normalize` given an argument).
 */
async function nearestCommand(id: string, config: Config): Promise<{typed: string; near: string} | undefined> {
  const words = id.split(':')
  const commands = config.commands.filter((c) => !c.hidden).map((c) => c.id.split(':'))
  for (let n = Math.min(words.length, 2); n >= 1; n--) {
    const typed = words.slice(0, n).join(' ')
    const near = nearestWord(typed, commands.filter((c) => c.length === n).map((c) => c.join(' ')))
    if (near !== undefined) return {typed, near}
  }
  return undefined
}

async function usage(id: string, argv: readonly string[], config: Config): Promise<{message: string; hint: string}> {
  const bin = config.bin
  if (!id.startsWith('-')) {
    const found = await nearestCommand(id, config)
    if (found !== undefined) return {message: `command ${found.typed} not found (did you mean ${found.near}?)`, hint: `run ${bin} ${found.near} --help for its flags, or ${bin} --help for the commands`}
    return {message: `command ${id.replaceAll(':', ' ')} not found`, hint: `run ${bin} --help for the commands`}
  }
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
  const {message, hint} = await usage(options.id, argv, options.config)
  // a word holding ":" after an unknown command (a source URI: `normalise csv:x.csv --json`) is
  // two words of oclif's id (normalise:csv:x.csv), and oclif drops as many words after it from
  // argv: --json is looked for in the whole command line
  const json = options.id === '--json' || argv.includes('--json') || process.argv.slice(2).includes('--json')
  if (!json) Errors.error(message, {exit: 2, suggestions: [hint]})
  process.stdout.write(JSON.stringify({error: {code: 'USAGE', message, hint}}, null, 2) + '\n')
  process.exitCode = 2
}

export default hook
