/**
 * Golden parity cases (fixtures/parity/<case>/: left, right, options.json, expected.json),
 * each run through `bin/run.js parity check --json` from the case folder, as a user would.
 * expected.json holds the exit code and the whole result but its timing.
 */
import {readdirSync, readFileSync} from 'node:fs'
import {join} from 'node:path'
import {describe, expect, it} from 'vitest'
import {ROOT, runCli} from '../helpers.js'

const CASES = join(ROOT, 'fixtures', 'parity')

export interface CaseOptions {
  left: string
  right: string
  flags: Record<string, string | string[] | boolean>
}

export function caseArgs(o: CaseOptions): string[] {
  const args = ['parity', 'check', '--left', o.left, '--right', o.right]
  for (const [k, v] of Object.entries(o.flags)) {
    if (v === true) args.push(`--${k}`)
    else for (const one of Array.isArray(v) ? v : [v as string]) args.push(`--${k}`, one)
  }
  return [...args, '--json', '--no-ledger']
}

describe('parity fixtures through bin/run.js', () => {
  for (const name of readdirSync(CASES).sort()) {
    it(name, async () => {
      const dir = join(CASES, name)
      const options = JSON.parse(readFileSync(join(dir, 'options.json'), 'utf8')) as CaseOptions
      const expected = JSON.parse(readFileSync(join(dir, 'expected.json'), 'utf8')) as {exit: number; result: Record<string, unknown>}
      const r = await runCli(caseArgs(options), {cwd: dir})
      expect(r.stderr).toBe('')
      const {elapsed_ms, ...rest} = r.json as Record<string, unknown>
      expect(typeof elapsed_ms).toBe('number')
      expect(rest).toEqual(expected.result)
      expect(r.code).toBe(expected.exit)
    })
  }
})
