/**
 * The demo's data (examples/seed.ts produces it, test/e2e/demo.test.ts checks what the demo made
 * of it): the generated card transactions (fixtures/generator/transactions.ts, seed 2026, 500
 * accounts A00000..A00499 over three days) in the order a live feed would deliver them, two
 * bursts of card testing, and the rows of `demo.accounts` that the pipeline's `enrich: account`
 * looks them up in.
 *
 * - **Delivery order.** The generator draws each record's event time at random over its three
 *   days; produced in that order, nearly every record would be far behind its partition's
 *   watermark (the largest event time the partition had shown) and the window stage would
 *   dead-letter it as LATE_EVENT. A card processor's feed is in event-time order give or take a
 *   little, so the demo sorts by event time, and then delivers 1 % of the good records 3 to 10
 *   minutes late (a terminal that was offline and uploaded later): most of those are more than
 *   the spec's `allowed_lateness: 2m` behind and are LATE_EVENT dead letters, the others still
 *   count. A repeat of a record (an exact duplicate, or its id with another amount) is delivered
 *   after the record it repeats, as a redelivery is; records that fail before the window stage
 *   (not JSON, an empty field, ...) keep their place in the generated sequence.
 * - **Bursts.** The generator's times are spread so thin (about 40 records per account over three
 *   days) that no account has 6 transactions in 10 minutes, and `velocity.txn_count > 5` would
 *   never fire. BURSTS adds 8 small transactions within one minute for two accounts (a stolen
 *   card being tested): each fires `high_velocity` on its 6th record. They are in the last hour
 *   of the three days: the demo's event times run three days ahead within seconds, and window
 *   retention (stages/window.ts) may delete, at the first batch, windows that ended more than
 *   allowed_lateness + 1 h before the watermark of the partitions committed so far; a burst
 *   earlier than that could lose its count when its records are spread over partitions that
 *   commit in different transactions (a run of a few hundred records does).
 * - **Accounts.** `demo.accounts` holds every account but MISSING_ACCOUNTS (opened after the
 *   nightly extract that fills it): their records are ENRICHMENT_MISSING dead letters.
 */
import {formatIsoMoscow, generateTransactions, businessDate, minorToDecimal, mulberry32, type GeneratedTransaction, type GeneratorOptions, type RawTransaction} from '../fixtures/generator/transactions.js'

export const DEMO_PIPELINE = 'demo-card-transactions'
export const DEMO_ALERTS_TOPIC = 'demo.txn.alerts'
export const DEMO_DLQ_TOPIC = 'demo.txn.dlq'
export const DEMO_RECORDS = 20_000
export const DEMO_GENERATOR: GeneratorOptions = {seed: 2026, accounts: 500}

/** Accounts the generator uses that `demo.accounts` does not hold. */
export const MISSING_ACCOUNTS: readonly string[] = ['A00013', 'A00099', 'A00256', 'A00404', 'A00477']

/** Card testing: `count` transactions of the account, `everyMs` apart from `startMs` (UTC). */
export const BURSTS: readonly {account: string; startMs: number; count: number; everyMs: number}[] = [
  {account: 'A00042', startMs: Date.UTC(2026, 10, 21, 20, 5, 5), count: 8, everyMs: 6_000},
  {account: 'A00314', startMs: Date.UTC(2026, 10, 21, 20, 32, 0), count: 8, everyMs: 7_000},
]

/** Share of the good records delivered late, and how late (ms). */
const STRAGGLERS = 0.01
const STRAGGLER_DELAY_MS = [180_000, 600_000] as const

export interface AccountRow {
  account_id: string
  customer_id: string
  segment: string
  /** exact, scale 2 */
  daily_limit: string
}

const LIMITS: Record<string, string> = {retail: '150000.00', premium: '1000000.00', business: '5000000.00'}

/** The rows of `demo.accounts`: every account of the generator but MISSING_ACCOUNTS. */
export function demoAccounts(): AccountRow[] {
  const rows: AccountRow[] = []
  for (let i = 0; i < (DEMO_GENERATOR.accounts ?? 500); i++) {
    const account_id = `A${String(i).padStart(5, '0')}`
    if (MISSING_ACCOUNTS.includes(account_id)) continue
    const segment = i % 10 < 6 ? 'retail' : i % 10 < 9 ? 'premium' : 'business'
    rows.push({account_id, customer_id: String(7_700_000 + i), segment, daily_limit: LIMITS[segment]!})
  }
  return rows
}

/** The burst transactions (ids B0000001, ...), clean ISO records that come out ok. */
export function burstTransactions(firstSeq: number): {txn: GeneratedTransaction; ms: number}[] {
  const out: {txn: GeneratedTransaction; ms: number}[] = []
  let n = 0
  for (const b of BURSTS) {
    for (let i = 0; i < b.count; i++) {
      n++
      const ms = b.startMs + i * b.everyMs
      const id = `B${String(n).padStart(7, '0')}`
      const amount = minorToDecimal(100 + 37 * i) // 1.00, 1.37, ...: the small amounts of card testing
      const record: RawTransaction = {id, acct: b.account, amt: amount, ts: formatIsoMoscow(ms), currency: 'RUB', merchant: `ONLINE STORE ${String(i).padStart(4, '0')} MOSCOW`}
      out.push({
        ms,
        txn: {
          seq: firstSeq + n - 1,
          key: id,
          value: Buffer.from(JSON.stringify(record), 'utf8'),
          record,
          dirt: null,
          outcome: {kind: 'ok'},
          clean: {txn_id: id, account_id: b.account, amount, currency: 'RUB', event_time: new Date(ms).toISOString(), merchant: record.merchant, business_date: businessDate(ms)},
        },
      })
    }
  }
  return out
}

/**
 * The demo's `n` generated transactions plus the bursts, in delivery order (see the file's
 * comment). Deterministic: the same n gives the same records in the same order.
 */
export function demoTransactions(n = DEMO_RECORDS): GeneratedTransaction[] {
  const rng = mulberry32(20_261_120)
  const placed: {txn: GeneratedTransaction; at: number; seq: number}[] = []
  const placeOf = new Map<string, number>() // a good record's id -> where it was placed
  let last = DEMO_GENERATOR.startMs ?? Date.UTC(2026, 10, 18, 21, 0, 0)
  for (const t of generateTransactions(n, DEMO_GENERATOR)) {
    let at: number
    if (t.outcome.kind === 'ok') {
      at = Date.parse(t.clean!.event_time)
      if (rng() < STRAGGLERS) at += STRAGGLER_DELAY_MS[0] + Math.floor(rng() * (STRAGGLER_DELAY_MS[1] - STRAGGLER_DELAY_MS[0]))
      placeOf.set(t.clean!.txn_id, at)
    } else if (t.dirt === 'exact_duplicate' || t.dirt === 'conflicting_duplicate') {
      // a repeat, after the record it repeats (always an earlier good one: the generator's pool)
      at = placeOf.get(t.record!.id)! + 1 + Math.floor(rng() * 30_000)
    } else {
      at = last // dead before the window stage: where it was generated
    }
    last = at
    placed.push({txn: t, at, seq: t.seq})
  }
  for (const b of burstTransactions(n)) placed.push({txn: b.txn, at: b.ms, seq: b.txn.seq})
  placed.sort((a, b) => a.at - b.at || a.seq - b.seq)
  return placed.map((p) => p.txn)
}
