/**
 * `cutover` given flags but no command: oclif took the first flag for the command's name and
 * said "command --json not found". It is a usage error (exit 2) that says a command is missing;
 * under --json one JSON document on stdout (DESIGN.md), and naming the command when one follows
 * the flags.
 */
import {describe, expect, it} from 'vitest'
import {runCli} from '../helpers.js'

describe('cutover without a command', () => {
  it('--json: one JSON usage error on stdout, exit 2', async () => {
    const r = await runCli(['--json'])
    expect(r.code, r.stdout + r.stderr).toBe(2)
    expect(r.json, r.stdout).toBeDefined()
    expect(r.json.error.code).toBe('USAGE')
    expect(r.json.error.message).toContain('no command given')
    expect(r.json.error.message).not.toContain('command --json not found')
    expect(r.json.error.hint).toContain('cutover --help')
    expect(r.stderr).toBe('')
  })

  it('other flags alone: a usage error on stderr, exit 2', async () => {
    const r = await runCli(['--log-level', 'debug'])
    expect(r.code).toBe(2)
    expect(r.stdout).toBe('')
    expect(r.stderr).toContain('no command given')
    expect(r.stderr).not.toContain('command --log-level not found')
  })

  it('flags before a command: says to put them after it, exit 2', async () => {
    const j = await runCli(['--json', 'dlq', 'stats', '--topic', 'x'])
    expect(j.code).toBe(2)
    expect(j.json.error).toMatchObject({code: 'USAGE', hint: 'run cutover dlq stats --json --topic x'})
    const p = await runCli(['--log-level', 'debug', 'dlq', 'stats', '--topic', 'x'])
    expect(p.code).toBe(2)
    expect(p.stderr).toContain('cutover dlq stats --log-level debug --topic x')
  })

  it('no flags at all is still the help (exit 0), and an unknown command still exit 2', async () => {
    const h = await runCli([])
    expect(h.code).toBe(0)
    expect(h.stdout).toContain('dlq replay')
    const u = await runCli(['no-such-command', '--json'])
    expect(u.code).toBe(2)
    expect(u.json.error).toMatchObject({code: 'USAGE', message: 'command no-such-command not found'})
  })
})
