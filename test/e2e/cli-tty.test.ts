/**
 * The CLI on a terminal (a pseudo-terminal from util-linux `script`): what a person sees of the
 * ink progress, with and without NO_COLOR (no-color.org).
 */
import {spawnSync} from 'node:child_process'
import {describe, expect, it} from 'vitest'
import {BIN, ROOT, createTestTopic} from '../helpers.js'

/** Runs `bin/run.js args` with stderr and stdout on a 100x30 pseudo-terminal; returns what the terminal got. */
function onTerminal(args: string[], env: Record<string, string | undefined>): {code: number | null; screen: string} {
  const quote = (s: string) => `'${s.replaceAll("'", `'\\''`)}'`
  const command = `stty cols 100 rows 30; ${[process.execPath, BIN, ...args].map(quote).join(' ')}`
  const merged: Record<string, string | undefined> = {...process.env, NODE_ENV: 'production', ...env}
  for (const [k, v] of Object.entries(merged)) if (v === undefined) delete merged[k]
  const r = spawnSync('script', ['-qec', command, '/dev/null'], {cwd: ROOT, encoding: 'utf8', env: merged})
  if (r.error) throw r.error
  return {code: r.status, screen: r.stdout}
}

// eslint-disable-next-line no-control-regex
const SGR = /\u001b\[[0-9;]*m/

describe('progress on a terminal', () => {
  it('NO_COLOR: the backfill progress bar is drawn without colors or dim text; without it, with', async () => {
    const topic = await createTestTopic({prefix: 'tty-nocolor'})
    const args = ['backfill', '--from', 'csv:fixtures/legacy/txn-utf8.csv?delimiter=;', '--to', topic, '--dlq', topic, '--rate', '50', '--log-level', 'error']
    // CI (set by the test runner) makes chalk draw without colors: a person's terminal has no CI
    const plain = onTerminal(args, {NO_COLOR: '1', FORCE_COLOR: undefined, CI: undefined})
    expect(plain.code, plain.screen).toBe(0)
    expect(plain.screen).toMatch(/sent 6/) // the ink frame was drawn (a terminal)
    // before the fix: \e[2m (dim), \e[32m (green bar)
    expect(plain.screen).not.toMatch(SGR)

    const colored = onTerminal(args, {NO_COLOR: undefined, FORCE_COLOR: undefined, CI: undefined})
    expect(colored.code, colored.screen).toBe(0)
    expect(colored.screen).toMatch(SGR)
  })
})
