/**
 * `parity check` of sources holding a NUL character in a value (a CSV or copybook field padded
 * with low-values): the result's samples hold it, and PostgreSQL's jsonb refuses the escape
 * \u0000, so the run failed after its whole comparison (exit 70, nothing recorded). It is recorded
 * with the NUL shown as U+2400 in the ledger's result document, chained, and reported.
 */
import {writeFileSync} from 'node:fs'
import {join} from 'node:path'
import pg from 'pg'
import {describe, expect, it} from 'vitest'
import {freshDatabase, runCli, tempDir} from '../helpers.js'

describe('parity check: a value holding a NUL character', () => {
  it('is recorded in the ledger (the NUL shown as U+2400 in its result document), and the report verifies the chain', async () => {
    const env = {DATABASE_URL: freshDatabase()}
    const dir = tempDir('parity-nul-')
    writeFileSync(join(dir, 'l.csv'), 'id,name\n1,ok\n2,a\u0000b\n3,x\n')
    writeFileSync(join(dir, 'r.csv'), 'id,name\n1,ok\n2,ab\n3,x\n')
    const c = await runCli(['parity', 'check', '--left', 'csv:l.csv', '--right', 'csv:r.csv', '--key', 'id', '--json'], {cwd: dir, env})
    expect(c.code, c.stderr).toBe(0)
    expect(c.json).toMatchObject({mismatched: 1, run_id: expect.any(Number)})
    // --json itself keeps the value as it was
    expect(c.json.samples[0]).toMatchObject({key: {id: '2'}, left: 'a\u0000b', right: 'ab'})
    const db = new pg.Client({connectionString: env.DATABASE_URL})
    await db.connect()
    try {
      const row = await db.query<{left: string}>(`SELECT result->'samples'->0->>'left' AS left FROM cutover.parity_runs WHERE id = $1`, [c.json.run_id])
      expect(row.rows).toEqual([{left: 'a\u2400b'}])
    } finally {
      await db.end()
    }
    const r = await runCli(['parity', 'report', '--days', '1', '--json'], {env})
    expect(r.code, r.stderr).toBe(0)
    expect(r.json.ledger).toMatchObject({verified: 1, head: {run: c.json.run_id}, gaps: []})
    expect(r.json.runs[0].edited).toEqual([])
  })
})
