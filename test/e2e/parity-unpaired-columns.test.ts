/**
 * `parity check` of a legacy file whose amount column is `amt` against a stream output whose
 * column is `amount`, without `--map amt=amount`: the amount was never compared, and the check
 * said "parity 100%" (exit 0 under --strict) with nothing in its output, its ledger row or the
 * evidence of `parity report` to say so.
 */
import {writeFileSync} from 'node:fs'
import {join} from 'node:path'
import {describe, expect, it} from 'vitest'
import {freshDatabase, runCli, tempDir} from '../helpers.js'

describe('parity check: columns with no counterpart on the other side', () => {
  it('nothing but the key to compare is exit 2 with the --map fix; a column left out is named in the output, the ledger and the report', async () => {
    const dir = tempDir('parity-unpaired-')
    writeFileSync(join(dir, 'legacy.csv'), 'id;amt;cur\n1;10,00;RUB\n2;20,00;RUB\n')
    writeFileSync(join(dir, 'keys-amt.csv'), 'id;amt\n1;10,00\n2;20,00\n')
    writeFileSync(join(dir, 'stream.csv'), 'id,amount,cur\n1,99.00,RUB\n2,20.00,RUB\n')
    writeFileSync(join(dir, 'keys-amount.csv'), 'id,amount\n1,99.00\n2,20.00\n')
    const env = {DATABASE_URL: freshDatabase()}

    const refused = await runCli(['parity', 'check', '--left', 'csv:keys-amt.csv?delimiter=;', '--right', 'csv:keys-amount.csv', '--key', 'id', '--strict', '--json'], {cwd: dir, env})
    expect(refused.code, refused.stdout + refused.stderr).toBe(2)
    expect(refused.json.error).toMatchObject({code: 'USAGE', message: expect.stringContaining("the left side's amt has no column of the same name on the right side") as unknown, hint: expect.stringContaining('--map amt=<right column>') as unknown})

    const human = await runCli(['parity', 'check', '--left', 'csv:legacy.csv?delimiter=;', '--right', 'csv:stream.csv', '--key', 'id', '--no-ledger', '--log-level', 'silent'], {cwd: dir, env})
    expect(human.code).toBe(0)
    expect(human.stderr).toContain('not compared (no column of that name on the other side): left amt; right amount. Pair a column with --map <left>=<right>')

    const run = await runCli(['parity', 'check', '--left', 'csv:legacy.csv?delimiter=;', '--right', 'csv:stream.csv', '--key', 'id', '--json'], {cwd: dir, env})
    expect(run.code, run.stderr).toBe(0)
    expect(run.json).toMatchObject({parity_pct: 100, not_compared: {left: ['amt'], right: ['amount']}})
    expect(Object.keys(run.json.columns)).toEqual(['cur'])

    const report = await runCli(['parity', 'report', '--days', '1', '--json'], {cwd: dir, env})
    expect(report.code, report.stderr).toBe(0)
    expect(report.json.per_day.at(-1).decided_by[0]).toMatchObject({run: run.json.run_id, columns: ['cur'], not_compared: {left: ['amt'], right: ['amount']}})
  })
})
