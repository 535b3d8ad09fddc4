/**
 * Sensitive values in what the database says about a row it refused (SINK_REJECTED). PostgreSQL
 * shows values of the row in its texts: a CHECK or NOT NULL violation's detail is the whole row
 * ("Failing row contains (T1, 4111111111111111, ...)"), a unique or foreign-key violation's
 * detail the key ("Key (pan)=(4111111111111111) already exists"), a trigger's message whatever
 * the trigger put in it. Those texts become the dead letter's `cutover.error.message`, so a field
 * marked `sensitive` in the spec is masked in them as everywhere else (maskValue:
 * 4111********1111 or ***):
 *
 *   string             each occurrence of the value as a whole token (not inside a longer word)
 *   decimal, integer   each occurrence of the number, with the trailing zeros a column's scale
 *                      may add (10.50 shown as 10.5000)
 *   timestamp, date,   PostgreSQL shows these in its own formats (the session's time zone and
 *   boolean            DateStyle), which cannot be matched reliably: the database's texts are
 *                      withheld, and only the constraint and the SQLSTATE are said (in
 *                      `batch.retry` logs too, batchTextMasker)
 */
import type {FieldSpec} from '../../config/spec.js'
import {maskValue} from '../../normalize/index.js'
import type {NormalizedRecord} from '../types.js'

export interface RowTexts {
  message: string
  detail?: string
}

/** The database's texts about one refused row, with the record's sensitive values masked. */
export type RowTextMasker = (texts: RowTexts, record: NormalizedRecord | undefined, error: {code?: string; constraint?: string}) => RowTexts

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')

/** The field types whose values can be found in PostgreSQL's texts (patternOf); the others are shown in PostgreSQL's own formats. */
const FINDABLE: ReadonlySet<FieldSpec['type']> = new Set(['string', 'decimal', 'integer'])

/** How a (non-empty) value of a sensitive field of a FINDABLE `type` is found in PostgreSQL's texts. */
function patternOf(type: FieldSpec['type'], value: string): RegExp {
  if (type === 'decimal') return new RegExp(`(?<![\\d.])${escape(value)}${value.includes('.') ? '0*' : '(?:\\.0+)?'}(?![\\d])`, 'g')
  if (type === 'integer') return new RegExp(`(?<![\\d.])${escape(value)}(?![\\d.])`, 'g')
  return new RegExp(`(?<![\\p{L}\\p{N}_])${escape(value)}(?![\\p{L}\\p{N}_])`, 'gu')
}

/** The masker for a spec's fields; undefined when none is sensitive (the texts are shown as they are). */
export function rowTextMasker(fields: Record<string, FieldSpec>): RowTextMasker | undefined {
  const sensitive = Object.entries(fields).filter(([, f]) => f.sensitive)
  if (sensitive.length === 0) return undefined
  return (texts, record, error) => {
    // without the record nothing is known of its values: withheld
    const opaque: string[] = record ? [] : sensitive.map(([name]) => name)
    const patterns: RegExp[] = []
    for (const [name, f] of sensitive) {
      const v = record?.[name]
      if (v === null || v === undefined || v === '') continue
      if (FINDABLE.has(f.type)) patterns.push(patternOf(f.type, String(v)))
      else opaque.push(name)
    }
    if (opaque.length > 0) {
      const what = [error.constraint ? `constraint "${error.constraint}"` : null, error.code ? `SQLSTATE ${error.code}` : null].filter(Boolean).join(', ')
      return {message: `${what || 'the row was refused'}; the database's message is withheld: it may show the sensitive field${opaque.length > 1 ? 's' : ''} ${opaque.join(', ')}`}
    }
    const mask = (text: string) => patterns.reduce((t, p) => t.replace(p, (m) => maskValue(m)), text)
    return {message: mask(texts.message), ...(texts.detail === undefined ? {} : {detail: mask(texts.detail)})}
  }
}

/**
 * SQLSTATE classes of outages and transaction retries (connection, resources, operator
 * intervention, system error, serialization and deadlock): their texts hold no row values and
 * must stay readable while the batch is retried.
 */
const OUTAGE_CLASSES: ReadonlySet<string> = new Set(['08', '40', '53', '57', '58'])

/**
 * For a text about a whole batch (the error of a batch that is retried, logged as `batch.retry`:
 * a trigger's message, say, with a code not in `reject_sqlstates`): every sensitive value of its
 * records that occurs in the text, masked as rowTextMasker masks them. A sensitive timestamp,
 * date or boolean cannot be found (PostgreSQL's formats), so when the spec has one, a text the
 * database wrote about the rows (a SQLSTATE outside the outage classes) is withheld, with its
 * SQLSTATE said instead; an outage's message, which holds no value, stays readable. Undefined
 * when no field is sensitive.
 */
export function batchTextMasker(fields: Record<string, FieldSpec>): ((text: string, records: Iterable<NormalizedRecord | undefined>, sqlstate?: string) => string) | undefined {
  const all = Object.entries(fields).filter(([, f]) => f.sensitive)
  if (all.length === 0) return undefined
  const sensitive = all.filter(([, f]) => FINDABLE.has(f.type))
  const opaque = all.filter(([, f]) => !FINDABLE.has(f.type)).map(([name]) => name)
  return (text, records, sqlstate) => {
    if (opaque.length > 0 && sqlstate !== undefined && !OUTAGE_CLASSES.has(sqlstate.slice(0, 2))) {
      return `SQLSTATE ${sqlstate}; the database's message is withheld: it may show the sensitive field${opaque.length > 1 ? 's' : ''} ${opaque.join(', ')}`
    }
    let out = text
    const done = new Set<string>()
    for (const r of records) {
      if (!r) continue
      for (const [name, f] of sensitive) {
        const v = r[name]
        if (v === null || v === undefined) continue
        const s = String(v)
        if (s === '' || done.has(s) || !out.includes(s)) continue
        done.add(s)
        out = out.replace(patternOf(f.type, s), (m) => maskValue(m))
      }
    }
    return out
  }
}
