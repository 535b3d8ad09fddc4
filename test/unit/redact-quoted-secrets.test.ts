/**
 * Passwords that redactString let through: one holding a quote (encodeURIComponent leaves `'`
 * as it is), in a DATABASE_URL that does not parse and is quoted back whole (a port typo), and a
 * libpq conninfo password in quotes (a dblink() call in a pg:query= source).
 */
import {describe, expect, it} from 'vitest'
import {createLogger, redact, redactString, type LogEntry} from '../../src/log.js'

describe('secrets in strings are masked', () => {
  it('a URL password holding a quote is masked whole', () => {
    const cases: [string, string][] = [
      [`DATABASE_URL "postgres://app:Se'cret9@127.0.0.1:99999/cutover" is not a URL`, `DATABASE_URL "postgres://app:***@127.0.0.1:99999/cutover" is not a URL`],
      [`postgres://app:a"b'c@db/x`, `postgres://app:***@db/x`],
      // a blank (not percent-encoded) in a URL that did not parse, quoted back
      [`DATABASE_URL "postgres://app:O'Br ien@127.0.0.1:99999/cutover" is not a URL`, `DATABASE_URL "postgres://app:***@127.0.0.1:99999/cutover" is not a URL`],
      [`source "postgres://u:it's@h/db": unknown scheme "postgres:"`, `source "postgres://u:***@h/db": unknown scheme "postgres:"`],
    ]
    for (const [text, shown] of cases) expect(redactString(text), text).toBe(shown)
    const seen: LogEntry[] = []
    createLogger({level: 'debug', sink: (e) => seen.push(e)}).debug('x', {error: new Error(`bad postgres://u:p'w@h:1/d`)})
    expect(JSON.stringify(seen)).not.toContain(`p'w`)
    expect(JSON.stringify(redact({m: `kafka://u:O'Brien1@h`}))).not.toContain('Brien1')
  })
  it('a conninfo password in quotes is masked', () => {
    expect(redactString(`host=db password='my secret' user=x`)).toBe(`host=db password=*** user=x`)
    expect(redactString(`host=db password="my secret" user=x`)).toBe(`host=db password=*** user=x`)
    expect(redactString(`host=db password=plain user=x`)).toBe(`host=db password=*** user=x`)
  })
})
