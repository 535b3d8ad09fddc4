/**
 * The business calendar of `parity report`: the days on which the legacy batch does not run
 * (`--days-off sat,sun`, `--holidays <file>`), so that a window of N business days skips them
 * and a day without a legacy batch is not held against the cutover.
 *
 * Holidays file layout (UTF-8 text): one day per line as yyyy-MM-dd; blank lines are skipped;
 * `#` starts a comment (to the end of the line):
 *
 *   # Bank holidays 2026
 *   2026-11-04   # Unity Day
 *   2026-12-31
 *
 * The file's SHA-256 goes into the report, so that an auditor can tell which calendar the
 * verdict was computed with.
 */
import {createHash} from 'node:crypto'
import {readFile} from 'node:fs/promises'
import {SpecError, UsageError} from '../errors.js'
import {isCalendarDate} from './date.js'

export type Weekday = 'mon' | 'tue' | 'wed' | 'thu' | 'fri' | 'sat' | 'sun'

/** In Date.getUTCDay() order (0 = Sunday). */
const WEEKDAYS: Weekday[] = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat']
const WEEK_ORDER: Weekday[] = ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun']
const NAMES: Record<string, Weekday> = {
  mon: 'mon', monday: 'mon',
  tue: 'tue', tues: 'tue', tuesday: 'tue',
  wed: 'wed', wednesday: 'wed',
  thu: 'thu', thur: 'thu', thurs: 'thu', thursday: 'thu',
  fri: 'fri', friday: 'fri',
  sat: 'sat', saturday: 'sat',
  sun: 'sun', sunday: 'sun',
}

/** Days declared without a legacy batch. */
export interface DaysOff {
  /** weekdays off, Monday first */
  weekdays: Weekday[]
  /** holidays (yyyy-MM-dd), sorted, each once */
  holidays: string[]
  /** the --holidays file as given, or null */
  holidays_file: string | null
  /** SHA-256 of the --holidays file's bytes, or null */
  holidays_sha256: string | null
}

export const NO_DAYS_OFF: DaysOff = Object.freeze({weekdays: [], holidays: [], holidays_file: null, holidays_sha256: null})

export const weekdayOf = (date: string): Weekday => WEEKDAYS[new Date(`${date}T00:00:00Z`).getUTCDay()]!

/** Whether any day off was declared. */
export const declaresDaysOff = (o: DaysOff): boolean => o.weekdays.length > 0 || o.holidays.length > 0

/** Whether `date` was declared a day off (its weekday, or a holiday). */
export function isDayOff(o: DaysOff, date: string): boolean {
  return o.weekdays.includes(weekdayOf(date)) || o.holidays.includes(date)
}

const WEEKDAY_HINT = 'name the weekdays, comma-separated, e.g. --days-off sat,sun (mon, tue, wed, thu, fri, sat, sun)'

/** `--days-off sat,sun` (or full names, any case) -> the weekdays, Monday first. */
export function parseWeekdays(text: string): Weekday[] {
  const parts = text.split(',').map((p) => p.trim())
  const out = new Set<Weekday>()
  for (const p of parts) {
    const w = NAMES[p.toLowerCase()]
    if (!w) throw new UsageError(`--days-off ${JSON.stringify(text)}: ${p === '' ? 'an empty name' : JSON.stringify(p)} is not a day of the week`, {hint: WEEKDAY_HINT})
    out.add(w)
  }
  if (out.size === 7) throw new UsageError(`--days-off ${JSON.stringify(text)} leaves no business day`, {hint: WEEKDAY_HINT})
  return WEEK_ORDER.filter((w) => out.has(w))
}

/** The days of a holidays file (layout in the header comment); a line that is not a day is exit 2 with file:line:column. */
export function parseHolidays(text: string, file: string): string[] {
  const out = new Set<string>()
  const lines = text.replace(/^\uFEFF/, '').split(/\r?\n/)
  lines.forEach((raw, i) => {
    const hash = raw.indexOf('#')
    const line = hash === -1 ? raw : raw.slice(0, hash)
    const day = line.trim()
    if (day === '') return
    if (!isCalendarDate(day)) {
      const column = line.indexOf(day) + 1
      throw new SpecError({file, line: i + 1, column}, `${JSON.stringify(day)} is not a day (yyyy-MM-dd)`, {
        hint: 'write one day off per line as yyyy-MM-dd, e.g. 2026-12-31; # starts a comment',
      })
    }
    out.add(day)
  })
  return [...out].sort()
}

/** The days off of `--days-off` and `--holidays` (either may be absent). */
export async function readDaysOff(o: {daysOff?: string | undefined; holidaysFile?: string | undefined}): Promise<DaysOff> {
  const weekdays = o.daysOff === undefined ? [] : parseWeekdays(o.daysOff)
  if (o.holidaysFile === undefined) return Object.freeze({weekdays, holidays: [], holidays_file: null, holidays_sha256: null})
  let bytes: Buffer
  try {
    bytes = await readFile(o.holidaysFile)
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code
    throw new UsageError(`--holidays ${o.holidaysFile}: ${code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'is a folder, not a file' : (e as Error).message}`, {
      cause: e,
      hint: 'give a text file with one day off per line (yyyy-MM-dd), e.g. --holidays holidays-2026.txt',
    })
  }
  const holidays = parseHolidays(bytes.toString('utf8'), o.holidaysFile)
  return Object.freeze({weekdays, holidays, holidays_file: o.holidaysFile, holidays_sha256: createHash('sha256').update(bytes).digest('hex')})
}
