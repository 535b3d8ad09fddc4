/**
 * `dev status` with a DATABASE_URL asking for sslmode prefer, require or verify-ca: every other
 * command says once, in one `pg.sslmode` log line on stderr, that cutover verifies them as
 * verify-full (test/e2e/database-url-sslmode-note.test.ts); `dev status` probed PostgreSQL without
 * its logger and said nothing (stderr empty under --json). It now says it as they do, once, with
 * no node-postgres SECURITY WARNING and --json stdout one document.
 *
 * The shared test server runs without TLS (ssl=off): PostgreSQL refuses the TLS request, and dev
 * status reports it as refused (exit 2, the fix: sslmode=disable), not as down.
 */
import {describe, expect, it} from 'vitest'
import {runCli, settings, tempDir, type CliResult} from '../helpers.js'
import {sslmodeLines as sslmodeLinesOf} from './sslmode-support.js'

const SECRET = 'Dev@:/%#?-s3cret'

function databaseUrl(sslmode: string): string {
  const u = new URL(settings().databaseUrl)
  u.password = encodeURIComponent(SECRET)
  u.searchParams.set('sslmode', sslmode)
  return u.toString()
}

/** The pg.sslmode lines on stderr, parsed, after the checks every run here passes (sslmode-support.ts). */
const sslmodeLines = (r: CliResult) => sslmodeLinesOf(r, SECRET)

describe('dev status: DATABASE_URL sslmode prefer, require, verify-ca', () => {
  it('one pg.sslmode line on stderr, as every other command; --json stdout one document; TLS refused by the server: refused, exit 2', async () => {
    // a state directory of its own: the result is about the settings, not about a broker started here
    const stateDir = tempDir('cutover-dev-status-sslmode-')
    const runs = await Promise.all(
      (['require', 'prefer', 'verify-ca'] as const).map(async (mode) => ({
        mode,
        json: await runCli(['dev', 'status', '--state-dir', stateDir, '--json'], {env: {DATABASE_URL: databaseUrl(mode)}}),
        text: await runCli(['dev', 'status', '--state-dir', stateDir], {env: {DATABASE_URL: databaseUrl(mode)}}),
      })),
    )
    for (const {mode, json, text} of runs) {
      expect(json.code, json.stderr).toBe(2)
      expect(json.json, json.stdout).toMatchObject({
        kafka: {status: 'up'},
        postgresql: {status: 'refused', address: '127.0.0.1:5432/cutover', version: null},
        unreachable: [],
        refused: ['postgresql'],
      })
      expect(json.json.postgresql.error).toContain(`does not accept TLS connections, and DATABASE_URL asks for TLS (sslmode=${mode})`)
      expect(json.json.postgresql.error).toContain('set sslmode=disable in DATABASE_URL')
      const lines = sslmodeLines(json)
      expect(lines, json.stderr).toHaveLength(1)
      expect(lines[0]).toMatchObject({level: 'warn', event: 'pg.sslmode', sslmode: mode, address: '127.0.0.1:5432/cutover'})
      expect(lines[0]!.note).toContain('verified (as verify-full)')

      expect(text.code, text.stderr).toBe(2)
      expect(text.stdout).toMatch(/^postgresql\s+REFUSED\s+127\.0\.0\.1:5432\/cutover\s+PostgreSQL at 127\.0\.0\.1:5432\/cutover does not accept TLS connections/m)
      expect(text.stdout).not.toContain('pg.sslmode')
      expect(text.stderr).toContain('refused: postgresql')
      expect(sslmodeLines(text), text.stderr).toHaveLength(1)
    }
  })

  it('sslmode=verify-full or uselibpqcompat=true: nothing to say', async () => {
    const stateDir = tempDir('cutover-dev-status-sslmode-')
    const u = new URL(databaseUrl('require'))
    u.searchParams.set('uselibpqcompat', 'true')
    const [full, compat] = await Promise.all([
      runCli(['dev', 'status', '--state-dir', stateDir, '--json'], {env: {DATABASE_URL: databaseUrl('verify-full')}}),
      runCli(['dev', 'status', '--state-dir', stateDir, '--json'], {env: {DATABASE_URL: u.toString()}}),
    ])
    for (const r of [full, compat]) {
      expect(r.code, r.stderr).toBe(2)
      expect(r.json.postgresql.status).toBe('refused')
      expect(sslmodeLines(r)).toHaveLength(0)
    }
  })
})
