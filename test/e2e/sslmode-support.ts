/** Shared by the e2e tests of cutover's `pg.sslmode` log line (DATABASE_URL sslmode prefer, require, verify-ca). */
import {expect} from 'vitest'
import type {CliResult} from '../helpers.js'

/**
 * The pg.sslmode lines on stderr, parsed, after the checks every such run passes: the password
 * `secret` (as written and percent-encoded) nowhere in the output, and no node-postgres SECURITY
 * WARNING or other process warning on stderr.
 */
export function sslmodeLines(r: CliResult, secret: string): Record<string, unknown>[] {
  const all = `${r.stdout}\n${r.stderr}`
  expect(all).not.toContain('s3cret')
  expect(all).not.toContain(encodeURIComponent(secret))
  expect(r.stderr).not.toContain('SECURITY WARNING')
  expect(r.stderr).not.toMatch(/\(node:\d+\) Warning/)
  return r.stderr
    .split('\n')
    .filter((l) => l.includes('pg.sslmode'))
    .map((l) => JSON.parse(l) as Record<string, unknown>)
}
