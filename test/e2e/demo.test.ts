/**
 * The demo (`npm run demo` = examples/demo.sh), as CI runs it: the broker and PostgreSQL are
 * already up (`dev up` in the script finds them). It seeds, runs the DESIGN.md pipeline (enrich,
 * windows, rules) and shows what landed where; this checks what it says against what is there:
 * the --json result, the alerts on demo.txn.alerts and the dead letters on demo.txn.dlq read back
 * with kcat, the rows of demo.txn_clean against demo.accounts.
 *
 * The demo recreates the `demo` schema, the demo pipeline's bookkeeping and the alerts topic on
 * every run: one `it`, and no other test uses them. DEMO_RECORDS keeps it small.
 */
import {spawn} from 'node:child_process'
import {readFileSync} from 'node:fs'
import {join} from 'node:path'
import {expect, it} from 'vitest'
import {BURSTS, DEMO_ALERTS_TOPIC, DEMO_DLQ_TOPIC, DEMO_GENERATOR, MISSING_ACCOUNTS, demoTransactions} from '../../examples/demo-data.js'
import {generateTransactions} from '../../fixtures/generator/transactions.js'
import {kcatConsume, ROOT, tempDir, testPool} from '../helpers.js'

const N = 5_000

function runDemo(env: Record<string, string>): Promise<{code: number | null; stdout: string; stderr: string}> {
  return new Promise((resolve, reject) => {
    const child = spawn('bash', ['examples/demo.sh'], {cwd: ROOT, env: {...process.env, ...env}, stdio: ['ignore', 'pipe', 'pipe']})
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()))
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
    child.on('error', reject)
    child.on('close', (code) => resolve({code, stdout, stderr}))
  })
}

it('npm run demo: enrichment, the velocity window and its alerts, each shown and each where it says', async () => {
  const resultFile = join(tempDir('cutover-demo-'), 'result.json')
  const r = await runDemo({CUTOVER_DEMO_RESULT: resultFile, DEMO_RECORDS: String(N)})
  expect(r.code, `${r.stdout}\n${r.stderr}`).toBe(0)

  // the --json result it printed is the one it wrote
  const result = JSON.parse(readFileSync(resultFile, 'utf8')) as {read: number; written: number; dead_lettered: Record<string, number>; duplicates: number; alerts?: number}
  const printed = /== cutover stream run --until-idle\n(\{[\s\S]*?\n\})\n/.exec(r.stdout)
  expect(printed, r.stdout).not.toBeNull()
  expect(JSON.parse(printed![1]!)).toEqual(result)

  // conservation, over every record the seed produced
  const dead = Object.values(result.dead_lettered).reduce((a, b) => a + b, 0)
  expect(result.read).toBe(demoTransactions(N).length)
  expect(result.read).toBe(result.written + dead + result.duplicates)

  // enrich runs before dedupe: every record of a left-out account that reaches it (good, an
  // identical repeat, or its id with another amount) is ENRICHMENT_MISSING
  const missing = generateTransactions(N, DEMO_GENERATOR).filter(
    (t) => t.record !== null && MISSING_ACCOUNTS.includes(t.record.acct) && (t.outcome.kind !== 'dead_letter' || t.outcome.code === 'DUPLICATE_CONFLICT'),
  ).length
  expect(missing).toBeGreaterThan(0)
  expect(result.dead_lettered.ENRICHMENT_MISSING).toBe(missing)
  expect(r.stdout).toContain(`ENRICHMENT_MISSING ${missing}: records of accounts demo.accounts does not hold`)

  // the seed delivers in event-time order, 1% late: a few LATE_EVENT, explained, not most records
  const late = result.dead_lettered.LATE_EVENT ?? 0
  expect(late).toBeLessThan(result.read * 0.02)
  expect(r.stdout).toContain(`LATE_EVENT ${late}: transactions delivered more than allowed_lateness (2m) behind`)

  // the dead letters the demo points to: this run's, each on demo.txn.dlq with its code
  const byCode: Record<string, number> = {}
  for (const d of kcatConsume(DEMO_DLQ_TOPIC)) byCode[d.headers['cutover.error.code']!] = (byCode[d.headers['cutover.error.code']!] ?? 0) + 1
  expect(byCode).toEqual(result.dead_lettered)

  // the alerts: as many on the topic (an independent client) as stream run counted, and as alerts.ts read back
  const alerts = kcatConsume(DEMO_ALERTS_TOPIC)
  expect(result.alerts).toBeGreaterThan(0)
  expect(alerts).toHaveLength(result.alerts!)
  expect(r.stdout).toContain(`alerts on ${DEMO_ALERTS_TOPIC}: ${result.alerts}\n`)
  for (const b of BURSTS) expect(alerts.map((a) => a.key)).toContain(b.account)
  for (const a of alerts) {
    const v = JSON.parse(a.payload!) as {rule: string; windows: {velocity: {key: string; values: {txn_count: string}}}}
    expect(v.rule).toBe('high_velocity')
    expect(v.windows.velocity.key).toBe(a.key)
    expect(Number(v.windows.velocity.values.txn_count)).toBeGreaterThan(5)
  }

  // PostgreSQL: each row has its account's customer_id and segment; none of a left-out account
  const pool = testPool()
  const firstOk = demoTransactions(N).find((t) => t.outcome.kind === 'ok' && !MISSING_ACCOUNTS.includes(t.clean!.account_id) && t.dirt === null)!
  for (const txnId of [firstOk.clean!.txn_id, 'B0000001']) {
    const row = await pool.query<{account_id: string; customer_id: string; segment: string}>('SELECT account_id, customer_id::text, segment FROM demo.txn_clean WHERE txn_id = $1', [txnId])
    expect(row.rows, txnId).toHaveLength(1)
    const account = await pool.query<{customer_id: string; segment: string}>('SELECT customer_id::text, segment FROM demo.accounts WHERE account_id = $1', [row.rows[0]!.account_id])
    expect(row.rows[0]).toEqual({account_id: row.rows[0]!.account_id, ...account.rows[0]})
  }
  const unenriched = await pool.query<{n: string}>('SELECT count(*) AS n FROM demo.txn_clean WHERE segment IS NULL OR customer_id IS NULL OR account_id = ANY($1)', [MISSING_ACCOUNTS])
  expect(unenriched.rows[0]!.n).toBe('0')

  // the window state it shows: each burst's 8 transactions in one window of its account (no other
  // transaction of these accounts within 10 minutes of their burst: seed 2026), counted once
  // (the seed forgets an earlier run's state)
  const busiest = await pool.query<{key: string; n: number}>(
    `SELECT key, max((aggs->>'txn_count')::int) AS n FROM cutover.window_state WHERE pipeline = 'demo-card-transactions' AND window_name = 'velocity' AND key = ANY($1) GROUP BY key`,
    [BURSTS.map((b) => b.account)],
  )
  expect(busiest.rows).toHaveLength(BURSTS.length)
  for (const row of busiest.rows) expect(row.n, row.key).toBe(8)
}, 300_000)
