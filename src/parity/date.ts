/**
 * `yyyy-MM-dd` naming a day of the calendar (2026-02-30 and 2026-13-45 are not, nor is year
 * 0000: the calendar has no year 0, and PostgreSQL refuses DATE '0000-01-01').
 */
export function isCalendarDate(text: string): boolean {
  if (!/^\d{4}-\d{2}-\d{2}$/.test(text) || text.startsWith('0000')) return false
  const d = new Date(`${text}T00:00:00Z`)
  return !Number.isNaN(d.getTime()) && d.toISOString().slice(0, 10) === text
}
