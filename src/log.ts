/**
 * Structured, namespaced logging (after kafkajs' `logger.namespace()`).
 *
 * Library code never writes to the console: it receives a `Logger` and emits named events
 * (`kafka.connect`, `dev.broker.start`). The sink is injected; the default writes one JSON
 * line per event to stderr so stdout stays free for `--json` results. Every entry passes
 * through `redact`, so passwords, tokens and credentials inside URLs never leave the process.
 */

export const LOG_LEVELS = ['debug', 'info', 'warn', 'error', 'silent'] as const
export type LogLevel = (typeof LOG_LEVELS)[number]
const RANK: Record<LogLevel, number> = {debug: 10, info: 20, warn: 30, error: 40, silent: 100}

export interface LogEntry {
  level: Exclude<LogLevel, 'silent'>
  namespace: string
  event: string
  time: string
  [key: string]: unknown
}

export type LogSink = (entry: LogEntry) => void

export interface Logger {
  readonly level: LogLevel
  namespace(name: string): Logger
  debug(event: string, fields?: Record<string, unknown>): void
  info(event: string, fields?: Record<string, unknown>): void
  warn(event: string, fields?: Record<string, unknown>): void
  error(event: string, fields?: Record<string, unknown>): void
}

const SECRET_KEY = /pass(word)?|secret|token|credential|api[_-]?key|private[_-]?key|sasl/i
/**
 * user:password@ after `//` (with or without a scheme in front: a source URI quoted in an error
 * may have lost it). The password runs to the LAST `@` of the token, so one holding `@` or `/`
 * (base64) is masked whole; the user may be empty. A password may hold quotes too (`'` is left as
 * it is by encodeURIComponent, and a URL quoted back in a message keeps them): the password runs
 * to that last `@` across them, never across a blank. Masking a little too much is the safe side.
 */
const URL_CREDENTIALS = /((?:[a-z][a-z0-9+.-]*:)?\/\/[^:/@\s"']*):\S*@/gi
/**
 * The same inside double quotes, where a message quotes a URL that did not parse (`DATABASE_URL
 * "postgres://u:pa ss@h:99999/db" is not a URL`): the password may hold blanks, and runs to the
 * last `@` before the closing quote.
 */
const QUOTED_URL_CREDENTIALS = /("(?:[a-z][a-z0-9+.-]*:)?\/\/[^:/@\s"']*):[^"]*@/gi
/**
 * password=, passwd=, pwd= anywhere in a word (sslpassword=, PGPASSWORD=): the value bare, or
 * quoted as libpq's conninfo quotes it (`password='my secret'`, with `\'` inside) or in double quotes
 */
const KEYWORD_SECRET = /(password|passwd|pwd)=('(?:[^'\\]|\\.)*'?|"[^"]*"?|[^\s&;"']+)/gi

/** Masks credentials inside a string: `postgres://u:secret@h` -> `postgres://u:***@h`. */
export function redactString(s: string): string {
  return s.replace(QUOTED_URL_CREDENTIALS, '$1:***@').replace(URL_CREDENTIALS, '$1:***@').replace(KEYWORD_SECRET, '$1=***')
}

/** Deep copy with secret-looking keys masked and credentials removed from strings. */
export function redact(value: unknown, depth = 0): unknown {
  if (depth > 6) return '[…]'
  if (typeof value === 'string') return redactString(value)
  if (value instanceof Error) {
    const e = value as Error & {code?: unknown}
    return {name: e.name, message: redactString(e.message), ...(e.code === undefined ? {} : {code: e.code})}
  }
  if (Array.isArray(value)) return value.map((v) => redact(v, depth + 1))
  if (value && typeof value === 'object') {
    const out: Record<string, unknown> = {}
    for (const [k, v] of Object.entries(value)) out[k] = SECRET_KEY.test(k) ? '***' : redact(v, depth + 1)
    return out
  }
  return value
}

export const stderrJsonSink: LogSink = (entry) => {
  process.stderr.write(JSON.stringify(entry) + '\n')
}

export function parseLogLevel(s: string | undefined, fallback: LogLevel = 'warn'): LogLevel {
  if (!s) return fallback
  const l = s.toLowerCase()
  return (LOG_LEVELS as readonly string[]).includes(l) ? (l as LogLevel) : fallback
}

export function createLogger(options: {level?: LogLevel; sink?: LogSink; namespace?: string} = {}): Logger {
  const level = options.level ?? parseLogLevel(process.env.CUTOVER_LOG_LEVEL)
  const sink = options.sink ?? stderrJsonSink
  const make = (ns: string): Logger => {
    const emit = (l: LogEntry['level'], event: string, fields?: Record<string, unknown>) => {
      if (RANK[l] < RANK[level]) return
      const safe = fields ? (redact(fields) as Record<string, unknown>) : {}
      sink({...safe, level: l, namespace: ns, event, time: new Date().toISOString()})
    }
    return {
      level,
      namespace: (name) => make(ns ? `${ns}.${name}` : name),
      debug: (e, f) => emit('debug', e, f),
      info: (e, f) => emit('info', e, f),
      warn: (e, f) => emit('warn', e, f),
      error: (e, f) => emit('error', e, f),
    }
  }
  return make(options.namespace ?? 'cutover')
}

/** A logger that drops everything (tests, library defaults). */
export const silentLogger: Logger = createLogger({level: 'silent', sink: () => {}})
