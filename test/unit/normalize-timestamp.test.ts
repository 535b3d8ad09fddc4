import {DateTime} from 'luxon'
import {describe, expect, it} from 'vitest'
import {compileDateFormat, DateMatcher, Fail, matchDateFormats} from '../../src/normalize/index.js'

const reason = (v: unknown) => (v instanceof Fail ? `${v.code}: ${v.reason}` : v)
const ts = (formats: string[], tz: string, value: string) => reason(new DateMatcher(formats, tz).parse(value, 'timestamp'))
const date = (formats: string[], tz: string, value: string) => reason(new DateMatcher(formats, tz).parse(value, 'date'))

const DESIGN = ['iso', 'dd.MM.yyyy HH:mm:ss', 'MM/dd/yyyy HH:mm', 'yyyyMMddHHmmss', 'epoch_ms']

describe('timestamps: the DESIGN.md format list in Europe/Moscow', () => {
  it.each([
    ['20.11.2026 12:15:00', '2026-11-20T09:15:00.000Z'],
    ['11/20/2026 12:15', '2026-11-20T09:15:00.000Z'],
    ['20261120121500', '2026-11-20T09:15:00.000Z'],
    ['1795166100000', '2026-11-20T09:15:00.000Z'],
    ['2026-11-20T09:15:00Z', '2026-11-20T09:15:00.000Z'],
    ['2026-11-20T12:15:00+03:00', '2026-11-20T09:15:00.000Z'],
    ['2026-11-20T12:15:00.123456+0300', '2026-11-20T09:15:00.123456Z'],
    ['2026-11-20 12:15', '2026-11-20T09:15:00.000Z'],
    ['2026-11-20', '2026-11-19T21:00:00.000Z'],
    ['01.07.2013 12:00:00', '2013-07-01T08:00:00.000Z'], // Moscow was UTC+4 in 2011-2014: zone history is used
  ])('%s -> %s', (value, expected) => {
    expect(ts(DESIGN, 'Europe/Moscow', value)).toBe(expected)
  })

  it('20261120121500 is not also read as epoch_ms (epoch formats only match 1980-2099)', () => {
    expect(matchDateFormats('20261120121500', DESIGN, 'Europe/Moscow').map((m) => m.format)).toEqual(['yyyyMMddHHmmss'])
  })

  it('impossible dates and unknown shapes are UNPARSEABLE_DATE, saying why', () => {
    expect(ts(DESIGN, 'Europe/Moscow', '31.02.2026 10:00:00')).toBe('UNPARSEABLE_DATE: is not a valid date: day 31 does not exist in 2026-02 (format dd.MM.yyyy HH:mm:ss)')
    expect(ts(DESIGN, 'Europe/Moscow', '29.02.2025 10:00:00')).toMatch(/day 29 does not exist in 2025-02/)
    expect(ts(DESIGN, 'Europe/Moscow', '20.13.2026 10:00:00')).toMatch(/month 13 does not exist/)
    expect(ts(DESIGN, 'Europe/Moscow', '20.11.2026 24:00:00')).toMatch(/24:00:00 is not a time of day/)
    expect(ts(DESIGN, 'Europe/Moscow', 'yesterday')).toBe(
      'UNPARSEABLE_DATE: matches none of the formats "iso", "dd.MM.yyyy HH:mm:ss", "MM/dd/yyyy HH:mm", "yyyyMMddHHmmss", "epoch_ms"',
    )
    expect(ts(DESIGN, 'Europe/Moscow', '2026-11-20T09:15:00+19:00')).toMatch(/offset \+19:00 is out of range/)
    // local 0001-01-01 00:00 in Moscow is still year 0 in UTC: PostgreSQL refused the ISO text (a SINK_REJECTED)
    expect(ts(DESIGN, 'Europe/Moscow', '01.01.0001 00:00:00')).toBe('UNPARSEABLE_DATE: is 0000-12-31T21:29:43.000Z, outside the years 0001-9999 that an ISO date (and PostgreSQL) can hold')
    expect(ts(DESIGN, 'UTC', '01.01.0001 00:00:00')).toBe('0001-01-01T00:00:00.000Z')
    expect(ts(DESIGN, 'Europe/Moscow', '31.12.9999 23:59:59')).toBe('9999-12-31T20:59:59.000Z')
  })
})

describe('ambiguity: never a guess', () => {
  const F = ['dd/MM/yyyy', 'MM/dd/yyyy']
  it('two formats, two instants: AMBIGUOUS_DATE naming both readings', () => {
    expect(ts(F, 'UTC', '01/02/2026')).toBe(
      'AMBIGUOUS_DATE: is ambiguous: it reads as 2026-02-01T00:00:00.000Z with "dd/MM/yyyy" and as 2026-01-02T00:00:00.000Z with "MM/dd/yyyy"',
    )
    expect(date(F, 'UTC', '01/02/2026')).toMatch(/^AMBIGUOUS_DATE: .*2026-02-01.*2026-01-02/)
  })

  it('two formats, one instant: fine', () => {
    expect(ts(F, 'UTC', '05/05/2026')).toBe('2026-05-05T00:00:00.000Z')
    expect(ts(['iso', 'yyyy-MM-dd'], 'UTC', '2026-05-05')).toBe('2026-05-05T00:00:00.000Z')
  })

  it('only one format is a real date: that one', () => {
    expect(ts(F, 'UTC', '13/02/2026')).toBe('2026-02-13T00:00:00.000Z')
    expect(ts(F, 'UTC', '02/13/2026')).toBe('2026-02-13T00:00:00.000Z')
  })

  it('matchDateFormats lists every real match with its instant (for profile)', () => {
    expect(matchDateFormats('01/02/2026', F)).toEqual([
      {format: 'dd/MM/yyyy', instant: '2026-02-01T00:00:00.000Z', epochMs: Date.UTC(2026, 1, 1), date: '2026-02-01'},
      {format: 'MM/dd/yyyy', instant: '2026-01-02T00:00:00.000Z', epochMs: Date.UTC(2026, 0, 2), date: '2026-01-02'},
    ])
    expect(matchDateFormats('13/02/2026', F).map((m) => m.format)).toEqual(['dd/MM/yyyy'])
    expect(matchDateFormats('31/02/2026', F)).toEqual([])
    expect(matchDateFormats('01/02/2026 10:00', ['dd/MM/yyyy HH:mm'], 'Europe/Berlin')[0]!.instant).toBe('2026-02-01T09:00:00.000Z')
  })
})

describe('DST (Europe/Berlin, 2026: forward 29 March 02:00, back 25 October 03:00)', () => {
  const F = ['yyyy-MM-dd HH:mm']
  it('either side of the change', () => {
    expect(ts(F, 'Europe/Berlin', '2026-03-29 01:59')).toBe('2026-03-29T00:59:00.000Z')
    expect(ts(F, 'Europe/Berlin', '2026-03-29 03:00')).toBe('2026-03-29T01:00:00.000Z')
    expect(ts(F, 'Europe/Berlin', '2026-07-01 12:00')).toBe('2026-07-01T10:00:00.000Z')
    expect(ts(F, 'Europe/Berlin', '2026-12-01 12:00')).toBe('2026-12-01T11:00:00.000Z')
    expect(ts(F, 'Europe/Berlin', '2026-10-25 03:00')).toBe('2026-10-25T02:00:00.000Z')
    expect(ts(F, 'Europe/Berlin', '2026-10-25 01:59')).toBe('2026-10-24T23:59:00.000Z')
  })

  it('a local time in the gap does not exist: UNPARSEABLE_DATE', () => {
    expect(ts(F, 'Europe/Berlin', '2026-03-29 02:30')).toBe(
      'UNPARSEABLE_DATE: is not a valid date: local time 2026-03-29 02:30:00 does not exist in Europe/Berlin (clocks moved forward) (format yyyy-MM-dd HH:mm)',
    )
  })

  it('a local time in the overlap occurs twice: AMBIGUOUS_DATE; with an offset it is exact', () => {
    expect(ts(F, 'Europe/Berlin', '2026-10-25 02:30')).toBe('AMBIGUOUS_DATE: is ambiguous: local time 2026-10-25 02:30:00 occurs twice in Europe/Berlin (clocks moved back)')
    expect(ts(['iso'], 'Europe/Berlin', '2026-10-25T02:30:00+01:00')).toBe('2026-10-25T01:30:00.000Z')
    expect(ts(['iso'], 'Europe/Berlin', '2026-10-25T02:30:00+02:00')).toBe('2026-10-25T00:30:00.000Z')
  })

  it('America/New_York and a southern-hemisphere zone', () => {
    expect(ts(F, 'America/New_York', '2026-03-08 02:30')).toMatch(/^UNPARSEABLE_DATE: .*does not exist/)
    expect(ts(F, 'America/New_York', '2026-11-01 01:30')).toMatch(/^AMBIGUOUS_DATE/)
    expect(ts(F, 'America/New_York', '2026-07-04 12:00')).toBe('2026-07-04T16:00:00.000Z')
    expect(ts(F, 'Australia/Sydney', '2026-01-15 12:00')).toBe('2026-01-15T01:00:00.000Z')
  })
})

describe('iso', () => {
  it.each([
    ['2026-11-20T09:15:00,5Z', '2026-11-20T09:15:00.500Z'],
    ['2026-11-20T09:15:00.12Z', '2026-11-20T09:15:00.120Z'],
    ['2026-11-20T09:15:00.123456000Z', '2026-11-20T09:15:00.123456Z'],
    ['2026-11-20T06:45:00-0230', '2026-11-20T09:15:00.000Z'],
    ['2026-11-20T12:15+03', '2026-11-20T09:15:00.000Z'],
    ['2026-11-20T09:15', '2026-11-20T09:15:00.000Z'],
  ])('%s -> %s', (value, expected) => {
    expect(ts(['iso'], 'UTC', value)).toBe(expected)
  })

  it.each(['2026-11-20T09:15:00+03:99', '2026-11-20T09:15:00+0399', '2026-11-20T09:15:00.', '2026-11-20T09:15:00+3', '2026-11-20T9:15', '2026-11-20T09:15:0', '2026-11-20T09:15:00.1234567890Z', '2026-11-20X09:15', '2026-11-20T09:15:00Zx', '2026-1-20', '20261120'])(
    '%s is not iso',
    (value) => {
      expect(ts(['iso'], 'UTC', value)).toMatch(/^UNPARSEABLE_DATE: matches none/)
    },
  )
})

describe('format tokens', () => {
  it.each([
    [['dd-MMM-yyyy'], '20-NOV-2026', '2026-11-20T00:00:00.000Z'],
    [['d.M.yyyy H:mm'], '5.1.2026 7:05', '2026-01-05T07:05:00.000Z'],
    [['MM/dd/yyyy hh:mm a'], '11/20/2026 12:15 AM', '2026-11-20T00:15:00.000Z'],
    [['MM/dd/yyyy hh:mm a'], '11/20/2026 12:15 pm', '2026-11-20T12:15:00.000Z'],
    [['MM/dd/yyyy hh:mm a'], '11/20/2026 01:15 PM', '2026-11-20T13:15:00.000Z'],
    [["yyyy-MM-dd'T'HH:mm:ss.SSSXXX"], '2026-11-20T12:15:00.250+03:00', '2026-11-20T09:15:00.250Z'],
    [['yyyyMMddHHmmssSSS'], '20261120091500007', '2026-11-20T09:15:00.007Z'],
    [['yyyy-MM-dd HH:mm:ssXX'], '2026-11-20 12:15:00+0300', '2026-11-20T09:15:00.000Z'],
    [['yyyy-MM-dd HH:mm:ssX'], '2026-11-20 09:15:00Z', '2026-11-20T09:15:00.000Z'],
    [['yyyy-MM-dd-HH.mm.ss.SSSSSS'], '2026-11-20-09.15.00.123456', '2026-11-20T09:15:00.123456Z'],
    [['epoch_s'], '1795166100', '2026-11-20T09:15:00.000Z'],
    [['epoch_s'], '1795166100.5', '2026-11-20T09:15:00.500Z'],
  ])('%j %s', (formats, value, expected) => {
    expect(ts(formats, 'UTC', value)).toBe(expected)
  })

  it('refuses formats it cannot read without guessing, saying what is allowed', () => {
    expect(() => compileDateFormat('dd.MM.yy')).toThrow('use yyyy')
    expect(() => compileDateFormat('dd.QQ.yyyy')).toThrow(/unknown token "QQ".*allowed: yyyy, MM \/ M, MMM/)
    expect(() => compileDateFormat('HH:mm')).toThrow('needs a year (yyyy), a month (MM) and a day (dd)')
    expect(() => compileDateFormat('dd.MM.yyyy hh:mm')).toThrow('without a (AM/PM)')
    expect(() => compileDateFormat("dd.MM.yyyy 'at")).toThrow('unclosed quote')
    expect(() => compileDateFormat('dd.MM.yyyy dd')).toThrow('appears twice')
    // two variable-width tokens side by side: 1112026 is 11 Jan or 1 Nov; 20261120115 is 11:05 or 01:15
    expect(() => compileDateFormat('dMyyyy')).toThrow('"d" and "M" stand side by side')
    expect(() => compileDateFormat('yyyyMMddHm')).toThrow('"H" and "m" stand side by side')
    // one of them in a run is read by the length, with a separator each is its own: fine
    expect(ts(['yyyyMMddHmm'], 'UTC', '20261120915')).toBe('2026-11-20T09:15:00.000Z')
    expect(ts(['d.M.yyyy H:m'], 'UTC', '5.1.2026 7:5')).toBe('2026-01-05T07:05:00.000Z')
  })

  it('an offset whose minutes are over 59 is no offset (was read as +03:99 = 4:39)', () => {
    expect(ts(["dd.MM.yyyy HH:mm:ssXXX"], 'UTC', '20.11.2026 09:15:00+03:75')).toMatch(/UNPARSEABLE_DATE: .*offset \+03:75 is not an offset/)
    expect(ts(["dd.MM.yyyy HH:mm:ssXXX"], 'UTC', '20.11.2026 09:15:00+03:30')).toBe('2026-11-20T05:45:00.000Z')
  })

  it('month names must be months', () => {
    expect(ts(['dd-MMM-yyyy'], 'UTC', '20-XYZ-2026')).toMatch(/"XYZ" is not a month name/)
  })

  it('hh is 1-12', () => {
    expect(ts(['MM/dd/yyyy hh:mm a'], 'UTC', '11/20/2026 13:15 PM')).toMatch(/hour 13 is not 1-12/)
  })
})

describe('date fields', () => {
  it('a date is the local calendar date, yyyy-MM-dd', () => {
    expect(date(['dd.MM.yyyy'], 'UTC', '20.11.2026')).toBe('2026-11-20')
    // a value with an offset gives the date in the field's zone
    expect(date(['iso'], 'Europe/Moscow', '2026-11-20T22:30:00Z')).toBe('2026-11-21')
    // a pure date needs no instant, so a zone whose midnight is skipped does not matter
    expect(date(['yyyy-MM-dd'], 'America/Sao_Paulo', '2018-11-04')).toBe('2018-11-04')
  })
})

describe('fast paths agree with the slow ones', () => {
  it('isoOf equals Date#toISOString, in and out of time order', async () => {
    const {isoOf} = await import('../../src/normalize/timestamp.js')
    const instants = [0, 1, 86_399_999, 86_400_000, -1, Date.UTC(1900, 0, 1), Date.UTC(2026, 10, 20, 9, 15, 0, 7), Date.UTC(9999, 11, 31, 23, 59, 59, 999)]
    for (let i = 0; i < 5000; i++) instants.push(Math.floor(Math.sin(i) * 4e12))
    for (const ms of instants) expect(isoOf(ms)).toBe(new Date(ms).toISOString())
  })

  it('every 5 minutes across DST changes, with the offset cache warm in both directions', () => {
    for (const zone of ['Europe/Berlin', 'America/New_York', 'Australia/Lord_Howe']) {
      const matcher = new DateMatcher(['yyyy-MM-dd HH:mm'], zone)
      const from = Date.UTC(2026, 2, 27)
      const steps = Array.from({length: (10 * 86_400_000) / 300_000}, (_, i) => from + i * 300_000)
      const autumn = Date.UTC(2026, 9, 23)
      steps.push(...Array.from({length: (10 * 86_400_000) / 300_000}, (_, i) => autumn + i * 300_000))
      let parsed = 0
      for (const order of [steps, [...steps].reverse()]) {
        for (const ms of order) {
          const text = DateTime.fromMillis(ms, {zone}).toFormat('yyyy-MM-dd HH:mm')
          const r = matcher.parse(text, 'timestamp')
          if (r instanceof Fail) expect(r.code, `${zone} ${text}`).toBe('AMBIGUOUS_DATE')
          else {
            expect(r, `${zone} ${text}`).toBe(new Date(ms).toISOString())
            parsed++
          }
        }
      }
      // only the local times the autumn change repeats are ambiguous: at most an hour's 24 of each order's steps
      expect(parsed, zone).toBeGreaterThanOrEqual(2 * steps.length - 2 * 24)
    }
  })
})
