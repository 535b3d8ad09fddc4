/**
 * What to do about the dead letters of each code (DESIGN.md's catalogue), as `dlq inspect` says
 * it beside the counts: the fix, in the spec, the producer or the database, and whether
 * `dlq replay` can then send them through. One sentence each; a code outside the catalogue
 * (Kafka Connect's, Spring's exception classes) has none.
 */
import type {RecordErrorCode} from '../errors.js'

const DRY = '`dlq replay --dry-run` says how many would then pass'

export const NEXT_STEPS: Readonly<Record<RecordErrorCode, string>> = {
  DECODE_ERROR: `the value is not what source.format and source.encoding say (not JSON, bytes not of the encoding, a broken csv line): fix the producer, or the spec's source.format or encoding if it is wrong; ${DRY}`,
  SCHEMA_VIOLATION: `a value of the wrong JSON type, longer than max_length, or a key the runtime cannot store (empty, U+0000, over 2,000 bytes), as each message says: fix the field in the spec or the producer; ${DRY}`,
  REQUIRED_FIELD_EMPTY: `a required field was missing or empty: give the field a default, make it not required, or fix the producer; ${DRY}`,
  UNPARSEABLE_DATE: `add the value's format to the field's formats (dd.MM.yyyy HH:mm:ss, yyyyMMddHHmmss, epoch_ms, ...) and check it with \`pipeline test\`; ${DRY}`,
  AMBIGUOUS_DATE: `the value matches two of the field's formats with different results, and is never guessed: remove the format that is wrong for this source; ${DRY}`,
  UNPARSEABLE_AMOUNT: `not a number the decimal field reads ("1 234,56", "1,234.56", "(12.50)" and "12.50-" are read): fix the producer, or the field's scale if the value has more decimals; ${DRY}`,
  PATTERN_MISMATCH: `the value does not match the field's pattern: widen the pattern if the value is valid, else fix the producer; ${DRY}`,
  DUPLICATE_CONFLICT: 'a repeat of a key with another payload; the first one written stands, and a replay meets the same conflict: compare it with the row written and fix the producer (dedupe.by is the key compared)',
  ENRICHMENT_MISSING: `no row of the lookup table matched: add the missing rows (or set the lookup's missing: null to write such records without its columns); ${DRY}`,
  ENRICHMENT_UNAVAILABLE: `two or more rows of the lookup table matched: make its on columns unique (a unique index), then replay`,
  LATE_EVENT: `further behind its partition's watermark than the window's allowed_lateness: raise allowed_lateness to cover the lag the message gives; ${DRY}`,
  RECORD_TOO_LARGE: `larger than stream run's --max-record-bytes (1 MiB by default), or, from backfill (stage sink), than the target topic's max.message.bytes: raise that if the record is genuine (backfill's message gives the kafka-configs.sh), then replay; ${DRY} with the same --max-record-bytes`,
  SINK_REJECTED: `the database refused the row (the message is PostgreSQL's, naming the constraint): fix the table's constraint or type, or the data; ${DRY}, the table's constraints not included`,
}

/** The next steps of the codes among `codes` that the catalogue has, in their order. */
export function nextSteps(codes: Iterable<string>): Record<string, string> {
  const out: Record<string, string> = {}
  for (const code of codes) if (Object.hasOwn(NEXT_STEPS, code)) out[code] = NEXT_STEPS[code as RecordErrorCode]
  return out
}
