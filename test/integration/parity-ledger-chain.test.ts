/**
 * The parity ledger's hash chain (src/parity/ledger.ts recordRun, chainProblems), against the real
 * PostgreSQL: checks recording at the same time each chain to the row before them (the chain lock),
 * and a row's hash does not depend on the session that wrote it (TimeZone, DateStyle, extra_float_digits).
 */
import {describe, expect, it} from 'vitest'
import {openDatabase, type Pool} from '../../src/pg/pool.js'
import {chainProblems, recordRun, type LedgerEntry} from '../../src/parity/ledger.js'
import type {ParityCheckResult} from '../../src/parity/types.js'
import {freshDatabase} from '../helpers.js'

function entry(n: number): LedgerEntry {
  const result = {
    left_rows: 10,
    right_rows: 10,
    matched: 10 - (n % 2),
    mismatched: n % 2,
    missing_in_right: 0,
    extra_in_right: 0,
    duplicate_keys_left: 0,
    duplicate_keys_right: 0,
    explained: 0,
    unexplained: n % 2,
    parity_pct: n % 2 === 0 ? 100 : 90,
    columns: {amount: {mismatches: n % 2, explained: 0}},
    samples: [],
    digests: {left: `l${n}`, right: `r${n}`},
    strategy: 'memory',
    elapsed_ms: 1,
    rules: {},
    date: '2026-11-02',
  } as unknown as ParityCheckResult
  return {date: '2026-11-02', left: 'csv:l.csv', right: `csv:r${n}.csv`, options: {key: ['id']}, result, reportSha256: 'f'.repeat(64), reportPath: null, runBy: 'test', startedAt: new Date(Date.UTC(2026, 10, 2, 3, 4, 5, 678))}
}

describe('parity ledger: the hash chain', () => {
  it('runs recorded at the same time from several sessions form one chain, verified from any session', async () => {
    const url = freshDatabase()
    const pools: Pool[] = []
    try {
      // the writers' sessions speak other time zones and date styles than the reader's
      const settings = ['-c TimeZone=Asia/Kolkata -c DateStyle=SQL,DMY', '-c TimeZone=America/St_Johns -c extra_float_digits=0', '-c TimeZone=UTC', '']
      for (const options of settings) {
        const u = new URL(url)
        if (options) u.searchParams.set('options', options)
        pools.push(await openDatabase(u.toString(), {max: 2}))
      }
      await Promise.all(Array.from({length: 24}, (_, n) => recordRun(pools[n % pools.length]!, entry(n))))
      const chain = await chainProblems(pools[3]!)
      expect({...chain, rows: [...chain.rows]}).toEqual({unchained_before: 0, verified: 24, head: {run: 24, row_hash: expect.stringMatching(/^[0-9a-f]{64}$/)}, rows: [], gaps: []})
      // every row links to the one before it, in id order
      const links = await pools[3]!.query<{id: string; ok: boolean}>('SELECT id, prev_hash IS NOT DISTINCT FROM lag(row_hash) OVER (ORDER BY id) AS ok FROM cutover.parity_runs ORDER BY id')
      expect(links.rows.every((r) => r.ok)).toBe(true)
    } finally {
      await Promise.all(pools.map((p) => p.end()))
    }
  })
})
