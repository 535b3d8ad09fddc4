/**
 * oclif's `command_not_found` hook: an unknown command under `--json` prints one JSON error
 * document on stdout (DESIGN.md: `--json` prints one document and nothing else) and exits 2, as
 * every command's usage errors do; without `--json`, oclif's own message.
 */
import type {Hook} from '@oclif/core'

const hook: Hook<'command_not_found'> = async function (options) {
  const message = `command ${options.id.replaceAll(':', ' ')} not found`
  if (!(options.argv ?? []).includes('--json')) this.error(message, {exit: 2})
  process.stdout.write(JSON.stringify({error: {code: 'USAGE', message, hint: `run ${options.config.bin} --help for the commands`}}, null, 2) + '\n')
  process.exitCode = 2
}

export default hook
