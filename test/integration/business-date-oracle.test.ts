/**
 * businessDateOf (the aggregate sink's business_date of event_time) against PostgreSQL as the
 * oracle: `(ts AT TIME ZONE zone)::date`. Zones with DST, 30/45-minute offsets, offsets that
 * changed (Moscow 2011/2014), midnight DST changes (Cairo, Santiago, Havana) and the end of
 * local mean time, whose offsets had seconds and changed off the quarter hour (Kathmandu 1919).
 * The instants before 2025 only: the tz data of Node (ICU) and of PostgreSQL (the system's) may
 * be of different releases, which agree on the past but may not on announced future rules.
 */
import fc from 'fast-check'
import {IANAZone} from 'luxon'
import pg from 'pg'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {businessDateOf} from '../../src/runtime/sinks/aggregate.js'
import {settings} from '../helpers.js'

const ZONES = [
  'UTC',
  'Europe/Berlin',
  'America/New_York',
  'Europe/Moscow',
  'Asia/Kolkata',
  'Asia/Kathmandu',
  'Africa/Cairo',
  'America/Santiago',
  'America/Havana',
  'America/Sao_Paulo',
  'Australia/Lord_Howe',
  'Pacific/Chatham',
  'Pacific/Apia',
  'America/St_Johns',
  'Asia/Tehran',
  'Africa/Monrovia',
] as const

const FROM = Date.UTC(1880, 0, 1)
const UNTIL = Date.UTC(2025, 0, 1)

let client: pg.Client

beforeAll(async () => {
  client = new pg.Client({connectionString: settings().databaseUrl})
  await client.connect()
})

afterAll(async () => {
  await client.end()
})

/** PostgreSQL's business date of each [instant, zone]. */
async function oracle(cases: readonly (readonly [iso: string, zone: string])[]): Promise<string[]> {
  const r = await client.query<{d: string}>(
    'SELECT ((u.ts::timestamptz) AT TIME ZONE u.z)::date::text AS d FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS u(ts, z, n) ORDER BY u.n',
    [cases.map((c) => c[0]), cases.map((c) => c[1])],
  )
  return r.rows.map((row) => row.d)
}

/** Every offset change of `zone` in [FROM, UNTIL), to the second (luxon picks the samples; PostgreSQL judges). */
function changes(zone: string): number[] {
  const z = IANAZone.create(zone)
  const out: number[] = []
  let t = FROM
  let o = z.offset(t)
  while (t < UNTIL) {
    const next = t + 3 * 86_400_000
    const on = z.offset(next)
    if (on !== o) {
      let a = t
      let b = next
      while (b - a > 1000) {
        const mid = Math.floor((a + b) / 2000) * 1000
        if (z.offset(mid) === o) a = mid
        else b = mid
      }
      out.push(b)
      o = on
    }
    t = next
  }
  return out
}

describe('businessDateOf against PostgreSQL', () => {
  it('the quarter hour of an offset change that is not on a quarter hour (end of local mean time)', async () => {
    // Kathmandu: +5:41:16 until 1919-12-31T18:18:44Z, then +5:30: 18:19:22Z is 23:49:22 on the 31st
    // (the offset of 18:15Z, cached for the quarter hour, made it 00:00:38 on 1920-01-01)
    const cases = [
      ['1919-12-31T18:15:00.000Z', 'Asia/Kathmandu'],
      ['1919-12-31T18:18:43.999Z', 'Asia/Kathmandu'],
      ['1919-12-31T18:18:44.000Z', 'Asia/Kathmandu'],
      ['1919-12-31T18:19:22.000Z', 'Asia/Kathmandu'],
      ['1919-12-31T18:29:59.999Z', 'Asia/Kathmandu'],
      ['1919-12-31T18:30:00.000Z', 'Asia/Kathmandu'],
      // Cairo: +2:05:09 until 1900-09-30T21:54:51Z, then +2
      ['1900-09-30T21:45:00.000Z', 'Africa/Cairo'],
      ['1900-09-30T21:54:52.000Z', 'Africa/Cairo'],
      ['1900-09-30T21:59:59.000Z', 'Africa/Cairo'],
    ] as const
    const expected = await oracle(cases)
    expect(expected.slice(0, 6)).toEqual(['1919-12-31', '1919-12-31', '1919-12-31', '1919-12-31', '1919-12-31', '1920-01-01'])
    // a fresh function per case and one shared: the cache is filled from the first instant of a quarter hour either way
    expect(cases.map(([iso, zone]) => businessDateOf(zone)(iso))).toEqual(expected)
    const shared = new Map<string, (iso: string) => string>()
    const of = (zone: string) => shared.get(zone) ?? shared.set(zone, businessDateOf(zone)).get(zone)!
    expect(cases.map(([iso, zone]) => of(zone)(iso))).toEqual(expected)
  })

  it('around every offset change of the zones since 1880: the quarter hour it falls in, and either side', async () => {
    const cases: [string, string][] = []
    for (const zone of ZONES) {
      for (const at of changes(zone)) {
        const start = Math.floor(at / 900_000) * 900_000
        for (const t of [start, start + 1000, at - 1000, at - 1, at, at + 1000, start + 899_999, at - 86_400_000, at + 86_400_000]) {
          cases.push([new Date(t).toISOString(), zone])
        }
      }
    }
    expect(cases.length).toBeGreaterThan(1000)
    const expected = await oracle(cases)
    const fns = new Map(ZONES.map((z) => [z as string, businessDateOf(z)]))
    const got = cases.map(([iso, zone]) => fns.get(zone)!(iso))
    const wrong = cases.map((c, i) => [...c, got[i], expected[i]]).filter((_, i) => got[i] !== expected[i])
    expect(wrong).toEqual([])
  })

  it('local midnight exactly, and the last millisecond before it, on DST days and others', async () => {
    const cases: [string, string][] = []
    for (const zone of ZONES) {
      const z = IANAZone.create(zone)
      for (const day of ['2011-03-27', '2014-10-26', '2024-03-10', '2024-03-31', '2024-04-26', '2024-09-08', '2024-10-27', '2024-11-03', '2024-12-31', '2024-02-29']) {
        // the instant of local midnight (where the zone has one), found to the ms by the offsets either side
        const local = Date.parse(`${day}T00:00:00Z`)
        for (const o of new Set([z.offset(local - 86_400_000), z.offset(local + 86_400_000)])) {
          const u = local - o * 60_000
          cases.push([new Date(u).toISOString(), zone], [new Date(u - 1).toISOString(), zone])
        }
      }
    }
    const expected = await oracle(cases)
    const fns = new Map(ZONES.map((z) => [z as string, businessDateOf(z)]))
    expect(cases.map(([iso, zone]) => fns.get(zone)!(iso))).toEqual(expected)
  })

  it('random instants 1880-2024 in the zones (fast-check), in and out of time order', async () => {
    const fns = new Map(ZONES.map((z) => [z as string, businessDateOf(z)])) // shared: the caches stay warm across runs
    const arb = fc.array(fc.tuple(fc.integer({min: FROM, max: UNTIL - 1}), fc.constantFrom(...ZONES)), {minLength: 1, maxLength: 100})
    await fc.assert(
      fc.asyncProperty(arb, async (instants) => {
        const cases = instants.map(([ms, zone]) => [new Date(ms).toISOString(), zone] as const)
        expect(cases.map(([iso, zone]) => fns.get(zone)!(iso))).toEqual(await oracle(cases))
      }),
      {numRuns: 50},
    )
  })
})
