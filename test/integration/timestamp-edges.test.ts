/**
 * The timestamp parser at DST and calendar edges, with PostgreSQL as the oracle where it has an
 * answer: `'<local>'::timestamp AT TIME ZONE '<zone>'`. Dates before 2025 where the zone's
 * history matters: the tz data of Node (ICU) and of PostgreSQL (the system's) may be of
 * different releases, which agree on the past but may not on announced future rules.
 */
import fc from 'fast-check'
import {IANAZone} from 'luxon'
import pg from 'pg'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {compileDateFormat, DateMatcher, type DateKind} from '../../src/normalize/timestamp.js'
import {isCalendarDate} from '../../src/parity/date.js'
import {settings} from '../helpers.js'

let client: pg.Client

beforeAll(async () => {
  client = new pg.Client({connectionString: settings().databaseUrl})
  await client.connect()
})

afterAll(async () => {
  await client.end()
})

/** PostgreSQL's instant of each local wall-clock time [local, zone], as ISO with ms. */
async function pgInstants(cases: readonly (readonly [local: string, zone: string])[]): Promise<string[]> {
  const r = await client.query<{i: string}>(
    `SELECT to_char((u.l::timestamp AT TIME ZONE u.z) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS i
       FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS u(l, z, n) ORDER BY u.n`,
    [cases.map((c) => c[0]), cases.map((c) => c[1])],
  )
  return r.rows.map((row) => row.i)
}

const parse = (formats: string[], zone: string, text: string, kind: DateKind = 'timestamp') => new DateMatcher(formats, zone).parse(text, kind)

describe('a date without a time of day, read as a timestamp, on a day whose midnight is missing or doubled', () => {
  // [zone, day]: the clocks skip 00:00-01:00 (Cairo, Santiago, Sao Paulo 2018, Beirut, Havana in
  // March, Tehran 2022) or fall back to 00:00 so that it occurs twice (Havana in November, Azores, Gaza)
  const DAYS = [
    ['Africa/Cairo', '2024-04-26'],
    ['America/Santiago', '2024-09-08'],
    ['America/Sao_Paulo', '2018-11-04'],
    ['Asia/Beirut', '2024-03-31'],
    ['America/Havana', '2024-03-10'],
    ['Asia/Tehran', '2022-03-22'],
    ['America/Havana', '2024-11-03'],
    ['Atlantic/Azores', '2024-10-27'],
    ['Asia/Gaza', '2023-10-28'],
  ] as const

  it('is that day, at the instant PostgreSQL gives its midnight (was UNPARSEABLE_DATE / AMBIGUOUS_DATE)', async () => {
    const expected = await pgInstants(DAYS.map(([zone, day]) => [day, zone]))
    // iso (no regex), a fixed-width pattern (no regex) and a variable-width one (regex)
    for (const [i, [zone, day]] of DAYS.entries()) {
      const [y, m, d] = day.split('-')
      expect(parse(['iso'], zone, day), `${zone} ${day} iso`).toBe(expected[i])
      expect(parse(['dd.MM.yyyy'], zone, `${d}.${m}.${y}`), `${zone} ${day} dd.MM.yyyy`).toBe(expected[i])
      expect(parse(['d.M.yyyy'], zone, `${Number(d)}.${Number(m)}.${y}`), `${zone} ${day} d.M.yyyy`).toBe(expected[i])
      expect(parse(['iso'], zone, day, 'date')).toBe(day)
      // profile sees the same reading
      expect(new DateMatcher(['iso'], zone).match(day)).toEqual([{format: 'iso', instant: expected[i], epochMs: Date.parse(expected[i]!), date: day}])
    }
  })

  it('whose instant is of that day in the zone (the first instant after the gap; the midnight after the fall-back)', () => {
    expect(parse(['iso'], 'Africa/Cairo', '2024-04-26')).toBe('2024-04-25T22:00:00.000Z') // 01:00 EEST
    expect(parse(['iso'], 'America/Havana', '2024-11-03')).toBe('2024-11-03T05:00:00.000Z') // 00:00 CST, the second midnight
  })

  it('a day the zone skipped whole is UNPARSEABLE_DATE, saying so (PostgreSQL would move it to the next day)', () => {
    // Pacific/Apia went from 2011-12-29 24:00 (-10) to 2011-12-31 00:00 (+14)
    expect(parse(['iso'], 'Pacific/Apia', '2011-12-30')).toMatchObject({code: 'UNPARSEABLE_DATE', reason: expect.stringContaining('day 2011-12-30 does not exist in Pacific/Apia')})
    expect(parse(['iso'], 'Pacific/Apia', '2011-12-29')).toBe('2011-12-29T10:00:00.000Z')
    expect(parse(['iso'], 'Pacific/Apia', '2011-12-31')).toBe('2011-12-30T10:00:00.000Z')
    // as a date it is a day of the calendar, whatever the zone's clocks did
    expect(parse(['iso'], 'Pacific/Apia', '2011-12-30', 'date')).toBe('2011-12-30')
  })

  it('a time of day in the gap or the overlap is still refused, with the reason (the text names a clock reading)', () => {
    expect(parse(['iso'], 'Africa/Cairo', '2024-04-26 00:00')).toMatchObject({code: 'UNPARSEABLE_DATE', reason: expect.stringContaining('does not exist in Africa/Cairo')})
    expect(parse(['dd.MM.yyyy HH:mm:ss'], 'Africa/Cairo', '26.04.2024 00:30:00')).toMatchObject({code: 'UNPARSEABLE_DATE'})
    expect(parse(['iso'], 'America/Havana', '2024-11-03T00:00:00')).toMatchObject({code: 'AMBIGUOUS_DATE'})
    expect(parse(['iso'], 'Europe/Berlin', '2026-03-29 02:30')).toMatchObject({code: 'UNPARSEABLE_DATE', reason: expect.stringContaining('clocks moved forward')})
    expect(parse(['MM/dd/yyyy HH:mm'], 'America/New_York', '03/08/2026 02:30')).toMatchObject({code: 'UNPARSEABLE_DATE'})
    expect(parse(['iso'], 'Europe/Berlin', '2026-10-25 02:30')).toMatchObject({code: 'AMBIGUOUS_DATE', reason: expect.stringContaining('occurs twice')})
    // with an offset it is one instant
    expect(parse(['iso'], 'Europe/Berlin', '2026-10-25T02:30:00+01:00')).toBe('2026-10-25T01:30:00.000Z')
  })
})

describe('local wall-clock times against PostgreSQL', () => {
  const ZONES = ['Europe/Berlin', 'America/New_York', 'Europe/Moscow', 'Asia/Kolkata', 'Asia/Kathmandu', 'Africa/Cairo', 'America/Santiago', 'Australia/Lord_Howe', 'Pacific/Chatham', 'America/St_Johns'] as const
  /** the local wall-clock time (ms, as if UTC) of every offset change of the zone 1900-2024 (luxon picks the samples; PostgreSQL judges) */
  const changes = new Map<string, number[]>(
    ZONES.map((zone) => {
      const z = IANAZone.create(zone)
      const out: number[] = []
      for (let t = Date.UTC(1900, 0, 1), o = z.offset(t); t < Date.UTC(2025, 0, 1); t += 7 * 86_400_000) {
        const on = z.offset(t + 7 * 86_400_000)
        if (on !== o) {
          let a = t
          let b = t + 7 * 86_400_000
          while (b - a > 1000) {
            const mid = Math.floor((a + b) / 2000) * 1000
            if (z.offset(mid) === o) a = mid
            else b = mid
          }
          out.push(b + o * 60_000) // the wall clock where the change starts: the gap or the overlap is just after it
        }
        o = on
      }
      return [zone, out]
    }),
  )

  it('accepted: the instant PostgreSQL gives; refused as a gap: PostgreSQL does not give it back; ambiguous: PostgreSQL has two instants (fast-check)', async () => {
    const matchers = new Map(ZONES.map((z) => [z as string, new DateMatcher(['yyyy-MM-dd HH:mm:ss'], z)]))
    const seen = new Set<string>()
    const sample = fc
      .tuple(fc.constantFrom(...ZONES), fc.nat(), fc.oneof(fc.integer({min: -3 * 3600, max: 3 * 3600}), fc.integer({min: -8 * 86_400, max: 8 * 86_400})))
      .map(([zone, pick, seconds]) => {
        const list = changes.get(zone)!
        const local = new Date(list[pick % list.length]! + seconds * 1000).toISOString().slice(0, 19).replace('T', ' ')
        return [local, zone] as const
      })
    await fc.assert(
      fc.asyncProperty(fc.array(sample, {minLength: 1, maxLength: 100}), async (cases) => {
        const r = await client.query<{i: string; back: boolean; n: string}>(
          `SELECT to_char((u.l::timestamp AT TIME ZONE u.z) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS i,
                  ((u.l::timestamp AT TIME ZONE u.z) AT TIME ZONE u.z) = u.l::timestamp AS back,
                  (SELECT count(DISTINCT c) FROM (
                     SELECT (u.l::timestamp - (((u.l::timestamp AT TIME ZONE u.z) + k * interval '1 day') AT TIME ZONE u.z
                                               - ((u.l::timestamp AT TIME ZONE u.z) + k * interval '1 day') AT TIME ZONE 'UTC')) AT TIME ZONE 'UTC' AS c
                       FROM unnest(ARRAY[-1, 1]) AS k) x
                    WHERE c AT TIME ZONE u.z = u.l::timestamp) AS n
             FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS u(l, z, ord) ORDER BY u.ord`,
          [cases.map((c) => c[0]), cases.map((c) => c[1])],
        )
        cases.forEach(([local, zone], i) => {
          const row = r.rows[i]!
          const got = matchers.get(zone)!.parse(local, 'timestamp')
          const pgSays = Number(row.n) === 2 ? 'AMBIGUOUS_DATE' : row.back ? row.i : 'UNPARSEABLE_DATE'
          expect(typeof got === 'string' ? got : got.code, `${zone} ${local}`).toBe(pgSays)
          seen.add(typeof got === 'string' ? 'instant' : got.code)
        })
      }),
      {numRuns: 40},
    )
    // the samples reached both kinds of edge, not only ordinary times
    expect([...seen].sort()).toEqual(['AMBIGUOUS_DATE', 'UNPARSEABLE_DATE', 'instant'])
  })

  it('30/45-minute zones and zones whose offset changed (Moscow 2011 and 2014)', async () => {
    const cases = [
      ['2026-11-20 00:00:00', 'Asia/Kolkata'],
      ['2026-11-20 00:00:00', 'Asia/Kathmandu'],
      ['1986-01-01 00:20:00', 'Asia/Kathmandu'], // +5:30 -> +5:45: 00:00-00:15 does not exist
      ['2010-11-20 12:00:00', 'Europe/Moscow'], // +3
      ['2012-11-20 12:00:00', 'Europe/Moscow'], // +4 (2011-2014)
      ['2014-10-26 00:59:59', 'Europe/Moscow'],
      ['2014-10-26 02:00:00', 'Europe/Moscow'], // +3 again
      ['1919-01-01 00:00:00', 'Europe/Moscow'], // local mean time era, offset with seconds
    ] as const
    const expected = await pgInstants(cases)
    expect(cases.map(([l, z]) => parse(['yyyy-MM-dd HH:mm:ss'], z, l))).toEqual(expected)
    expect(parse(['iso'], 'Asia/Kathmandu', '1986-01-01 00:10')).toMatchObject({code: 'UNPARSEABLE_DATE'})
    expect(parse(['iso'], 'Europe/Moscow', '2011-03-27 02:30')).toMatchObject({code: 'UNPARSEABLE_DATE'})
    expect(parse(['iso'], 'Europe/Moscow', '2014-10-26 01:30')).toMatchObject({code: 'AMBIGUOUS_DATE'})
  })
})

describe('calendar edges', () => {
  it('impossible days and times are UNPARSEABLE_DATE saying why; leap days where they exist', () => {
    expect(parse(['dd.MM.yyyy'], 'UTC', '29.02.2023', 'date')).toMatchObject({code: 'UNPARSEABLE_DATE', reason: expect.stringContaining('day 29 does not exist in 2023-02')})
    expect(parse(['dd.MM.yyyy'], 'UTC', '29.02.2024', 'date')).toBe('2024-02-29')
    expect(parse(['dd.MM.yyyy'], 'UTC', '29.02.2000', 'date')).toBe('2000-02-29')
    expect(parse(['dd.MM.yyyy'], 'UTC', '29.02.1900', 'date')).toMatchObject({code: 'UNPARSEABLE_DATE'})
    expect(parse(['dd.MM.yyyy'], 'UTC', '31.04.2026', 'date')).toMatchObject({code: 'UNPARSEABLE_DATE', reason: expect.stringContaining('day 31 does not exist in 2026-04')})
    expect(parse(['iso'], 'UTC', '0000-01-01', 'date')).toMatchObject({code: 'UNPARSEABLE_DATE', reason: expect.stringContaining('outside the years 0001-9999')})
    expect(parse(['iso'], 'UTC', '0001-01-01T00:00', 'timestamp')).toBe('0001-01-01T00:00:00.000Z')
    // 24:00 and a leap second are not read (PostgreSQL would move them to the next day/minute): refused, not guessed
    expect(parse(['iso'], 'UTC', '2026-11-20T24:00:00')).toMatchObject({code: 'UNPARSEABLE_DATE', reason: expect.stringContaining('24:00:00 is not a time of day')})
    expect(parse(['dd.MM.yyyy HH:mm:ss'], 'UTC', '31.12.2016 23:59:60')).toMatchObject({code: 'UNPARSEABLE_DATE', reason: expect.stringContaining('23:59:60 is not a time of day')})
    // two-digit years need a century guess: the format is refused
    expect(() => compileDateFormat('dd.MM.yy')).toThrow(/use yyyy/)
  })

  it('fractions are kept exactly to the microsecond (the precision of PostgreSQL), finer ones rounded to it as PostgreSQL rounds them (.999999999 is the next second, as in a timestamptz)', () => {
    expect(parse(['iso'], 'UTC', '2026-11-20T09:15:00.123456')).toBe('2026-11-20T09:15:00.123456Z')
    expect(parse(['iso'], 'UTC', '2026-11-20T09:15:00.999999000')).toBe('2026-11-20T09:15:00.999999Z')
    expect(parse(['iso'], 'UTC', '2026-11-20T09:15:00.999999999')).toBe('2026-11-20T09:15:01.000Z')
    expect(parse(['yyyy-MM-dd HH:mm:ss.SSSSSS'], 'UTC', '2026-11-20 09:15:00.999999')).toBe('2026-11-20T09:15:00.999999Z')
    expect(parse(['epoch_s'], 'UTC', '1795300000.123456')).toBe('2026-11-21T22:26:40.123456Z')
  })

  it('an offset in the text wins over the field timezone; a date of such a value is its date in the field timezone', () => {
    expect(parse(['iso'], 'Europe/Moscow', '2026-11-20T09:15:00+0300')).toBe('2026-11-20T06:15:00.000Z')
    expect(parse(['iso'], 'Europe/Moscow', '2026-11-20T09:15:00Z')).toBe('2026-11-20T09:15:00.000Z')
    expect(parse(['iso'], 'Europe/Moscow', '2026-11-20T23:15:00Z', 'date')).toBe('2026-11-21')
    expect(parse(['yyyy-MM-dd HH:mm:ss.SSS XX'], 'UTC', '2026-11-20 09:15:00.050 +0545')).toBe('2026-11-20T03:30:00.050Z')
  })
})

describe('isCalendarDate (parity --date, --until)', () => {
  it('year 0000 is not a day (PostgreSQL refused DATE \'0000-01-01\' after the flag was taken: exit 70)', () => {
    expect(isCalendarDate('0000-01-01')).toBe(false)
    expect(isCalendarDate('0001-01-01')).toBe(true)
    expect(isCalendarDate('2024-02-29')).toBe(true)
    expect(isCalendarDate('2023-02-29')).toBe(false)
  })

  it('what it accepts PostgreSQL reads as that same date, and what it refuses PostgreSQL refuses (fast-check)', async () => {
    const text = fc
      .tuple(fc.oneof(fc.integer({min: 0, max: 3}), fc.integer({min: 0, max: 9999})), fc.integer({min: 0, max: 13}), fc.integer({min: 0, max: 32}))
      .map(([y, m, d]) => `${String(y).padStart(4, '0')}-${String(m).padStart(2, '0')}-${String(d).padStart(2, '0')}`)
    await fc.assert(
      fc.asyncProperty(text, async (t) => {
        let pgReads: boolean
        try {
          const r = await client.query<{d: string}>('SELECT $1::date::text AS d', [t])
          pgReads = r.rows[0]!.d === t
        } catch {
          pgReads = false
        }
        expect(isCalendarDate(t), t).toBe(pgReads)
      }),
      {numRuns: 200},
    )
  })
})
