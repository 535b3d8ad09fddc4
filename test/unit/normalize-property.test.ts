/**
 * Property tests (fast-check): exactness of decimals across every printed style, and dates that
 * are either read as the printed instant or refused as ambiguous, never read as another instant.
 */
import fc from 'fast-check'
import {DateTime} from 'luxon'
import {describe, expect, it} from 'vitest'
import {parseFieldSpec} from '../../src/config/spec.js'
import {createNormalizer, DateMatcher, Fail, parseDecimal} from '../../src/normalize/index.js'

interface Style {
  name: string
  group: string
  dec: '.' | ','
}

const STYLES: Style[] = [
  {name: 'plain dot', group: '', dec: '.'},
  {name: 'plain comma', group: '', dec: ','},
  {name: 'space, comma', group: ' ', dec: ','},
  {name: 'nbsp, comma', group: '\u00a0', dec: ','},
  {name: 'narrow nbsp, comma', group: '\u202f', dec: ','},
  {name: 'dot, comma', group: '.', dec: ','},
  {name: 'comma, dot', group: ',', dec: '.'},
  {name: 'apostrophe, dot', group: "'", dec: '.'},
  {name: 'space, dot', group: ' ', dec: '.'},
]
const SIGNS = ['leading', 'trailing', 'parentheses'] as const

function group(int: string, sep: string): string {
  if (!sep) return int
  const parts: string[] = []
  for (let end = int.length; end > 0; end -= 3) parts.unshift(int.slice(Math.max(0, end - 3), end))
  return parts.join(sep)
}

const decimalCase = fc.record({
  int: fc.bigInt({min: 0n, max: 10n ** 15n}),
  fracSeed: fc.bigInt({min: 0n, max: 10n ** 6n}),
  scale: fc.integer({min: 0, max: 5}),
  negative: fc.boolean(),
  plus: fc.boolean(),
  style: fc.constantFrom(...STYLES),
  sign: fc.constantFrom(...SIGNS),
})

interface DecimalCase {
  int: bigint
  fracSeed: bigint
  scale: number
  negative: boolean
  plus: boolean
  style: Style
  sign: (typeof SIGNS)[number]
}

function print(c: DecimalCase) {
  const frac = c.scale === 0 ? '' : (c.fracSeed % 10n ** BigInt(c.scale)).toString().padStart(c.scale, '0')
  const intText = c.int.toString()
  const body = group(intText, c.style.group) + (c.scale > 0 ? c.style.dec + frac : '')
  const isZero = c.int === 0n && !/[1-9]/.test(frac)
  const expected = (c.negative && !isZero ? '-' : '') + intText + (c.scale > 0 ? '.' + frac : '')
  const text = !c.negative ? (c.plus ? '+' + body : body) : c.sign === 'leading' ? '-' + body : c.sign === 'trailing' ? body + '-' : `(${body})`
  return {text, expected}
}

describe('decimals: any value printed in any supported style parses back to the same exact value', () => {
  it('with the decimal separator declared: always the same value', () => {
    fc.assert(
      fc.property(decimalCase, (c) => {
        const {text, expected} = print(c)
        expect(parseDecimal(text, {scale: c.scale, precision: 38, decimalSeparator: c.style.dec})).toBe(expected)
      }),
      {numRuns: 3000},
    )
  })

  it('without it: the same value, or refused as ambiguous; never a different value', () => {
    let ambiguous = 0
    fc.assert(
      fc.property(decimalCase, (c) => {
        const {text, expected} = print(c)
        const r = parseDecimal(text, {scale: c.scale, precision: 38})
        if (r instanceof Fail) {
          ambiguous++
          expect(r.code).toBe('UNPARSEABLE_AMOUNT')
          expect(r.reason).toMatch(/^is ambiguous/)
        } else expect(r).toBe(expected)
      }),
      {numRuns: 3000},
    )
    expect(ambiguous).toBeLessThan(3000)
  })

  it('with scale 2 (money) nothing printed with 2 decimals is ever ambiguous', () => {
    fc.assert(
      fc.property(decimalCase, (c) => {
        const {text, expected} = print({...c, scale: 2})
        expect(parseDecimal(text, {scale: 2, precision: 38})).toBe(expected)
      }),
      {numRuns: 2000},
    )
  })
})

const PRINT_FORMATS = ['dd/MM/yyyy HH:mm:ss', 'MM/dd/yyyy HH:mm:ss', 'dd.MM.yyyy HH:mm:ss', 'yyyy-MM-dd HH:mm:ss', 'yyyyMMddHHmmss', 'epoch_ms', 'epoch_s', 'iso'] as const
const PARSE_FORMATS = ['dd/MM/yyyy HH:mm:ss', 'MM/dd/yyyy HH:mm:ss', 'dd.MM.yyyy HH:mm:ss', 'yyyyMMddHHmmss', 'iso', 'epoch_ms', 'epoch_s']

function printDate(ms: number, format: (typeof PRINT_FORMATS)[number], zone: string): string {
  if (format === 'epoch_ms') return String(ms)
  if (format === 'epoch_s') return String(ms / 1000)
  const dt = DateTime.fromMillis(ms, {zone})
  if (format === 'iso') return dt.toISO({suppressMilliseconds: true})!
  return dt.toFormat(format)
}

describe('dates: printed in one format, parsed with an ambiguous list: the same instant or AMBIGUOUS_DATE', () => {
  for (const zone of ['UTC', 'Europe/Berlin', 'America/New_York', 'Europe/Moscow']) {
    it(`in ${zone}`, () => {
      const matcher = new DateMatcher(PARSE_FORMATS, zone)
      let same = 0
      fc.assert(
        fc.property(fc.integer({min: Date.UTC(1981, 0, 1) / 1000, max: Date.UTC(2098, 11, 31) / 1000}), fc.constantFrom(...PRINT_FORMATS), (seconds, format) => {
          const ms = seconds * 1000
          const text = printDate(ms, format, zone)
          const r = matcher.parse(text, 'timestamp')
          if (r instanceof Fail) expect(r.code, `${text} (${format}): ${r.reason}`).toBe('AMBIGUOUS_DATE')
          else {
            expect(r, `${text} (${format})`).toBe(new Date(ms).toISOString())
            same++
          }
        }),
        {numRuns: 3000},
      )
      expect(same).toBeGreaterThan(1000)
    })
  }

  it('the date type: the same calendar date or AMBIGUOUS_DATE', () => {
    const matcher = new DateMatcher(['dd/MM/yyyy', 'MM/dd/yyyy', 'yyyy-MM-dd'], 'UTC')
    let same = 0
    fc.assert(
      fc.property(fc.date({min: new Date(Date.UTC(1900, 0, 1)), max: new Date(Date.UTC(2999, 11, 31)), noInvalidDate: true}), fc.constantFrom('dd/MM/yyyy', 'MM/dd/yyyy', 'yyyy-MM-dd'), (d, format) => {
        const dt = DateTime.fromJSDate(d, {zone: 'UTC'})
        const r = matcher.parse(dt.toFormat(format), 'date')
        if (r instanceof Fail) expect(r.code).toBe('AMBIGUOUS_DATE')
        else {
          expect(r).toBe(dt.toFormat('yyyy-MM-dd'))
          same++
        }
      }),
      {numRuns: 2000},
    )
    // about three in four parse (every yyyy-MM-dd, and dd/MM or MM/dd unless both numbers are 12 or less and differ)
    expect(same).toBeGreaterThan(1000)
  })
})

describe('the normalizer never throws on any input', () => {
  it('arbitrary strings and JSON values give a result with codes, never an exception', () => {
    const fields = {
      s: parseFieldSpec('s', {type: 'string', required: true, pattern: '^[a-z]+$', max_length: 4}),
      d: parseFieldSpec('d', {type: 'decimal', scale: 2}),
      i: parseFieldSpec('i', {type: 'integer'}),
      t: parseFieldSpec('t', {type: 'timestamp', formats: ['iso', 'dd.MM.yyyy HH:mm', 'epoch_ms'], timezone: 'Europe/Berlin'}),
      b: parseFieldSpec('b', {type: 'boolean'}),
      x: parseFieldSpec('x', {type: 'date', formats: ['dd.MM.yyyy']}),
    }
    const normalize = createNormalizer(fields)
    const value = fc.oneof(fc.string(), fc.string({unit: 'grapheme'}), fc.stringMatching(/^[-+(]?[\d .,']{0,12}[)-]?$/), fc.double(), fc.boolean(), fc.constant(null), fc.object())
    fc.assert(
      fc.property(fc.record({s: value, d: value, i: value, t: value, b: value, x: value}), (raw) => {
        const r = normalize({ok: true, fields: raw, position: {scheme: 'kafka', source: 't', partition: 0, offset: '1'}})
        if (!r.ok) for (const rej of r.rejections) expect(rej.message).toMatch(/^Field [a-z] /)
      }),
      {numRuns: 2000},
    )
  })
})
