/**
 * `cutover normalize`: read a legacy source, normalize every record with the spec's `fields`
 * (the same normalizer `stream run`, backfill and parity use), de-duplicate by the spec's
 * `dedupe.by` (or `key`), and write clean records and rejects as NDJSON.
 *
 * Every record is accounted for: read = ok + rejected + duplicates.
 *
 * Output lines:
 *   clean   {"txn_id":"T1","amount":"1234.56",...}                      (the typed record)
 *   reject  {"code":"UNPARSEABLE_DATE","field":"event_time","value":"31.02.2026",
 *            "message":"...","position":{"scheme":"csv","source":"a.csv","line":12,...}}
 *
 * Dedupe keeps each distinct key with a 53-bit hash of its normalized record in an off-heap
 * table (./key-table.ts: 70–140 bytes a key, nothing for the GC to trace): 1.4–2.8 GB for the
 * 20 million rows of a 2 GB file. Beyond that, `stream run`'s PostgreSQL key table is the tool. The hash only tells an identical repeat from a conflicting one; two
 * different payloads of one key colliding in 53 bits is a chance of about 1e-16.
 */
import type {Writable} from 'node:stream'
import {openSource, type ReaderContext} from '../../legacy-adapters/index.js'
import {estimateCsvRecords} from '../../legacy-adapters/csv.js'
import {pgSourceDataError, pgSourceError} from '../../legacy-adapters/pg.js'
import type {SourceUri} from '../../legacy-adapters/types.js'
import {recordBatches} from '../../legacy-adapters/source.js'
import {parseSourceUri} from '../../legacy-adapters/uri.js'
import {SpecError, type RecordErrorCode} from '../errors.js'
import {sensitiveInputs, specLocation, type LoadedSpec} from '../config/spec.js'
import {createNormalizer} from '../normalize/index.js'
import type {ProgressTracker} from './progress.js'
import {createRecordProcessor, type NormalizeCounts, type RecordProcessorSpec} from './record-processor.js'
import {normalizeOnThread, packedCsvSource, useNormalizeThread} from './normalize-thread.js'

export {createRecordProcessor, recordSerializer, type NormalizeCounts, type RecordProcessorSpec, type RejectLine} from './record-processor.js'

export interface NormalizeSummary {
  source: string
  spec: string
  read: number
  ok: number
  rejected: Partial<Record<RecordErrorCode, number>>
  duplicates: number
  elapsed_ms: number
  /** only when the run was stopped (SIGINT/SIGTERM) before the end of the source: the counts are of what was read until then */
  interrupted?: true
}

export interface NormalizeJobOptions {
  uri: string
  spec: LoadedSpec
  out: Writable
  rejects?: Writable
  ctx?: ReaderContext
  progress?: ProgressTracker
  /** aborted: stop reading after the batch in hand (SIGINT); the summary says `interrupted` */
  signal?: AbortSignal
}

/**
 * The files a run of `uri` with the spec `specFile` reads (the spec, a csv: or fixed: file, a
 * copybook): what its outputs must not overwrite. Throws UsageError for a bad URI.
 */
export function normalizeInputFiles(uri: string, specFile: string): {what: string; path: string}[] {
  const files = [{what: 'the spec', path: specFile}]
  const source = parseSourceUri(uri)
  if (source.scheme === 'csv' || source.scheme === 'fixed') files.push({what: 'the source', path: source.target})
  if (source.scheme === 'fixed' && source.params.copybook !== undefined) files.push({what: 'the copybook', path: source.params.copybook})
  return files
}

/**
 * Writes one batch's bytes; a promise when it must be waited for (the stream is full, or failed).
 * A stream that failed earlier (a write error is reported after write() returned) rejects here
 * instead of waiting for a 'drain' that never comes. An aborted `signal` (SIGINT/SIGTERM) ends
 * the wait: a reader that stopped reading (a stalled `| consumer`, a FIFO nobody opened) must
 * not keep the run from stopping; the run ends after the batch in hand and its outputs are dropped.
 */
function write(stream: Writable, chunk: string | Uint8Array, signal: AbortSignal | undefined): Promise<void> | undefined {
  if (chunk.length === 0) return undefined
  if (stream.errored) return Promise.reject(stream.errored)
  if (stream.write(chunk) || signal?.aborted) return undefined
  return new Promise((resolve, reject) => {
    if (stream.errored || stream.destroyed) {
      reject(stream.errored ?? new Error('the output was closed'))
      return
    }
    const done = () => {
      stream.off('drain', onDrain)
      stream.off('error', onError)
      signal?.removeEventListener('abort', onDrain)
    }
    const onDrain = () => {
      done()
      resolve()
    }
    const onError = (e: Error) => {
      done()
      reject(e)
    }
    stream.once('drain', onDrain)
    stream.once('error', onError)
    signal?.addEventListener('abort', onDrain, {once: true})
  })
}

/** `source` until `signal` is aborted: it ends after the batch in hand (one check per batch, none per record). */
async function* until<T>(source: AsyncIterable<T>, signal: AbortSignal | undefined): AsyncIterable<T> {
  if (signal === undefined) return yield* source
  if (signal.aborted) return
  for await (const batch of source) {
    yield batch
    if (signal.aborted) return
  }
}

function reportProgress(progress: ProgressTracker | undefined, counts: NormalizeCounts): void {
  if (progress) {
    progress.done = counts.read
    progress.extra = {ok: counts.ok, rejected: counts.read - counts.ok - counts.duplicates, duplicates: counts.duplicates}
  }
}

/**
 * A csv: file's records, estimated from its first 64 KiB (estimateCsvRecords, as backfill and
 * parity check estimate them), for the percentage and ETA of progress lines: "of about N
 * records". Never a count of the file's lines, which would read it twice. Other sources: no total.
 */
async function estimateTotal(options: NormalizeJobOptions): Promise<void> {
  if (!options.progress) return
  const uri = parseSourceUri(options.uri)
  if (uri.scheme !== 'csv') return
  const records = await estimateCsvRecords(uri, options.ctx?.cwd ? {cwd: options.ctx.cwd} : {})
  if (records) options.progress.total = {value: records, estimate: true, unit: 'records'}
}

/**
 * A source with columns (csv:, fixed:, pg:) must have the column every field reads (`from`):
 * a field whose column is missing (a typo, another export's layout, a header read in the wrong
 * encoding) would be null in every record, silently, or reject every record as empty. A
 * SpecError (exit 2) naming the columns instead, before anything is written. JSON sources
 * (kafka:) have no columns: an absent key is a value left out.
 */
/**
 * The columns of `wanted` (a field's name and the column it reads) that a source with columns
 * (csv:, fixed:, pg:) lacks, with a message naming them and the source's columns; undefined when
 * none is missing, the source has no record yet, or it has no columns (kafka:). normalize and
 * backfill refuse such a source (exit 2) rather than reading a null from every record.
 */
export async function missingColumns(uri: SourceUri, ctx: ReaderContext, wanted: readonly {name: string; from: string}[]): Promise<{missing: {name: string; from: string}[]; message: string; hint: string} | undefined> {
  if (wanted.length === 0 || (uri.scheme !== 'csv' && uri.scheme !== 'fixed' && uri.scheme !== 'pg')) return undefined
  const {peekColumns} = await import('../parity/sources.js')
  const columns = await peekColumns(uri, ctx)
  if (columns === undefined) return undefined // no record: nothing to read wrong
  const have = new Set(columns)
  const missing = wanted.filter((w) => !have.has(w.from))
  if (missing.length === 0) return undefined
  const which = missing.map((m) => (m.from === m.name ? m.name : `${m.from} (field ${m.name})`)).join(', ')
  const shown = columns.length > 20 ? `${columns.slice(0, 20).join(', ')}, … (${columns.length})` : columns.join(', ')
  return {missing, message: `${uri.text} has no column ${which}; its columns: ${shown}`, hint: missingColumnHint(uri, missing, columns)}
}

/**
 * The hint of a spec field whose column `uri` lacks, by what names its columns: a csv: file's
 * header row (read with its encoding= and delimiter=), a fixed: file's copybook, a pg: source's
 * result (PostgreSQL's names, folded to lower case unless quoted; an expression in query= named
 * by its AS). A pg: column of the same name in another case is named, as the `from:` to write.
 */
export function missingColumnHint(uri: SourceUri, missing: readonly {from: string}[], columns: readonly string[]): string {
  if (uri.scheme === 'pg') {
    const cased = missing.flatMap((m) => columns.filter((c) => c.toLowerCase() === m.from.toLowerCase()).map((c) => `from: ${c} (not ${m.from})`))
    if (cased.length > 0) return `write ${cased.join(', ')}: \`from:\` is matched with the column's name as PostgreSQL gives it, case and all`
    return (
      "set the field's `from:` to a column's name as PostgreSQL gives it, case and all (an unquoted name in CREATE TABLE or query= is folded to lower case: TxnId is txnid; " +
      '"TxnId", quoted, keeps its capitals), and name an expression of query= with AS (SELECT amt * 100 AS amount_minor ...); or remove the field'
    )
  }
  if (uri.scheme === 'fixed') {
    return "set the field's `from:` to a name of the copybook (copybook=) in lower_snake_case (TXN-ID is txn_id, an OCCURS item's first is name_1), or remove the field"
  }
  return "set the field's `from:` to the column's name in the header row, or remove the field (a header that looks garbled: check encoding= of the source; the whole header as one column: check delimiter=; a file without a header row: header=false&columns=a,b,c)"
}

/**
 * A pg: source's SQL that fails: an unquoted dotted name, a bind parameter, `&key=` inside query=
 * (pgSourceError, for the column probe; the reader gives these itself) and a value it cannot read
 * (class 22, data exception: a where= literal that is no date, a division by zero in query=,
 * SQL_ASCII bytes that are no UTF-8: pgSourceDataError) are exit 2 with the fix, as backfill gives
 * them. Anything else (and any other scheme) as it is.
 */
export async function pgSourceFailure(e: unknown, uri: string, databaseUrl?: string): Promise<unknown> {
  let source: SourceUri
  try {
    source = parseSourceUri(uri)
  } catch {
    return e
  }
  if (source.scheme !== 'pg') return e
  return pgSourceDataError(await pgSourceError(e, source, databaseUrl), source)
}

async function assertColumnsRead(options: NormalizeJobOptions, ctx: ReaderContext): Promise<void> {
  const wanted = Object.entries(options.spec.spec.fields).map(([name, f]) => ({name, from: f.from}))
  const found = await missingColumns(parseSourceUri(options.uri), ctx, wanted)
  if (!found) return
  // file:line:column of the first missing field's `from:` (of the field, when it has no `from:`)
  throw new SpecError(specLocation(options.spec, ['fields', found.missing[0]!.name, 'from']), found.message, {hint: found.hint})
}

export async function normalizeSource(options: NormalizeJobOptions): Promise<NormalizeSummary> {
  try {
    return await normalizeRead(options)
  } catch (e) {
    throw await pgSourceFailure(e, options.uri, options.ctx?.databaseUrl)
  }
}

async function normalizeRead(options: NormalizeJobOptions): Promise<NormalizeSummary> {
  const started = Date.now()
  const {spec} = options.spec
  const counts: NormalizeCounts = {read: 0, ok: 0, rejected: {}, duplicates: 0}
  const processorSpec: RecordProcessorSpec = {fields: spec.fields, ...(spec.dedupe ? {dedupe: spec.dedupe} : {})}
  const withRejects = options.rejects !== undefined
  const output = async (clean: string | Uint8Array, bad: string | Uint8Array): Promise<void> => {
    const a = write(options.out, clean, options.signal)
    const b = options.rejects ? write(options.rejects, bad, options.signal) : undefined
    if (a && b) await Promise.all([a, b]) // both awaited: a second failure is never an unhandled rejection
    else if (a) await a
    else if (b) await b
    reportProgress(options.progress, counts)
  }
  // readers keep the values of sensitive inputs out of positions (a pg: key= column)
  const ctx: ReaderContext = {...options.ctx, sensitiveColumns: sensitiveInputs(spec.fields)}
  await assertColumnsRead(options, ctx)
  await estimateTotal(options)
  // Either way the fields are compiled first: a field that cannot work fails before the source is opened.
  if (useNormalizeThread(options.uri)) {
    createNormalizer(spec.fields)
    await normalizeOnThread(until(packedCsvSource(options.uri, ctx), options.signal), processorSpec, withRejects, counts, output, options.signal)
  } else {
    const processBatch = createRecordProcessor(processorSpec, withRejects, counts)
    for await (const batch of until(recordBatches(openSource(options.uri, ctx)), options.signal)) {
      const {clean, bad} = processBatch(batch)
      await output(clean, bad)
    }
  }
  return {source: options.uri, spec: options.spec.file, ...counts, elapsed_ms: Date.now() - started, ...(options.signal?.aborted ? {interrupted: true as const} : {})}
}
