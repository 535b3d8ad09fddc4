/**
 * The base of every command: `--json` (one JSON document on stdout, nothing else),
 * `--log-level`, an injected logger, progress lines on stderr, and the mapping of the
 * project's errors to exit codes (DESIGN.md: 1 check failed, 2 usage/spec, 3 unreachable).
 * Commands stay thin: parse flags, call one library function, return a typed result.
 */
import {Command, Flags, type Interfaces} from '@oclif/core'
import chalk from 'chalk'
import {nearestWord} from '../config/nearest-word.js'
import {type CutoverError, describeError, ExitCode, isCutoverError, UsageError} from '../errors.js'
import {createLogger, LOG_LEVELS, parseLogLevel, redact, redactString, type Logger} from '../log.js'

export type BaseFlags<T extends typeof Command> = Interfaces.InferredFlags<(typeof CutoverCommand)['baseFlags'] & T['flags']>

export abstract class CutoverCommand extends Command {
  static override enableJsonFlag = true

  static override baseFlags = {
    'log-level': Flags.option({
      options: LOG_LEVELS,
      description: 'structured log level on stderr (or CUTOVER_LOG_LEVEL)',
      helpGroup: 'GLOBAL',
    })(),
  }

  protected logger!: Logger

  override async init(): Promise<void> {
    await super.init()
    const argv = this.argv
    const i = argv.findIndex((a) => a === '--log-level' || a.startsWith('--log-level='))
    const fromFlag = i < 0 ? undefined : argv[i]!.includes('=') ? argv[i]!.split('=')[1] : argv[i + 1]
    const fromEnv = process.env.CUTOVER_LOG_LEVEL
    this.logger = createLogger({level: parseLogLevel(fromFlag ?? fromEnv)})
    // a level the logger does not know would be ignored (warn, silently): refused, as --log-level refuses it
    if (fromFlag === undefined && fromEnv && !(LOG_LEVELS as readonly string[]).includes(fromEnv.toLowerCase())) {
      throw new UsageError(`CUTOVER_LOG_LEVEL=${fromEnv} is not a log level`, {hint: `set it to one of ${LOG_LEVELS.join(', ')} (or unset it: warn)`})
    }
    // NO_COLOR (no-color.org): the progress bars and the DLQ browser (ink, through chalk) draw
    // without colors; chalk itself reads only FORCE_COLOR, which still wins when set
    if (process.env.NO_COLOR && process.env.FORCE_COLOR === undefined) chalk.level = 0
  }

  /** A line for the person at the terminal (stderr); silent under --json. */
  protected progress(message: string): void {
    if (!this.jsonEnabled()) this.logToStderr(message)
  }

  /**
   * oclif's "Nonexistent flag: --spc" names no flag that exists: the nearest one of this command
   * is added to its message ("(did you mean --spec?)"), shown with or without --json.
   */
  private async suggestFlags(err: Error & {flags?: unknown}): Promise<void> {
    if (!Array.isArray(err.flags) || !err.message.startsWith('Nonexistent flag')) return
    const known = Object.keys({...this.ctor.flags, ...this.ctor.baseFlags, json: true})
    const near = err.flags
      .map((f) => String(f).replace(/^-+/, '').split('=')[0]!)
      .map((f) => nearestWord(f, known))
      .filter((f): f is string => f !== undefined)
    if (near.length === 0) return
    const [first, ...rest] = err.message.split('\n')
    err.message = [`${first} (did you mean ${[...new Set(near)].map((f) => `--${f}`).join(', ')}?)`, ...rest].join('\n')
  }

  override async catch(err: Error & {exitCode?: number}): Promise<unknown> {
    if (isCutoverError(err)) {
      process.exitCode = err.exitCode
      if (this.jsonEnabled()) this.logJson({error: redact(err.toJSON())})
      else this.logToStderr(`Error: ${redactString(describeError(err))}`)
      this.logger?.debug('command.error', {error: err, cause: (err as CutoverError).cause})
      return undefined
    }
    if (err && typeof err === 'object' && 'oclif' in err) {
      await this.suggestFlags(err)
      // oclif's own: a flag or argument it refused (exit 2), or this.exit(n). Under --json oclif
      // would print the whole error object (its parse context: ~145 KB of its configuration) and
      // exit 1, which means "the check failed"; one usage error document and exit 2 instead.
      const exit = (err as {oclif?: {exit?: number}}).oclif?.exit
      if (!this.jsonEnabled() || exit === 0) return super.catch(err)
      process.exitCode = exit ?? ExitCode.USAGE
      const command = ['cutover', ...(this.id ? this.id.split(':') : [])].join(' ')
      this.logJson({error: {code: 'USAGE', message: redactString(err.message), hint: `see ${command} --help`}})
      return undefined
    }
    process.exitCode = ExitCode.INTERNAL
    if (this.jsonEnabled()) this.logJson({error: {code: 'INTERNAL', message: redactString(err?.message ?? String(err))}})
    else this.logToStderr(`Error: ${redactString(err?.stack ?? String(err))}`)
    return undefined
  }
}
