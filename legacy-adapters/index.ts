/**
 * Legacy readers, registered by URI scheme (as data-diff's DATABASE_BY_SCHEME):
 *
 *   csv:    ./csv.ts     delimited text files (csv-parse)
 *   fixed:  ./fixed.ts   fixed-length / RDW records described by a COBOL copybook
 *   pg:     ./pg.ts      PostgreSQL tables, views and queries (pg-query-stream)
 *   kafka:  ./kafka.ts   a topic, optionally a time range (kafkajs)
 *
 * ./message.ts decodes one CSV line or one copybook record per Kafka message, for specs
 * whose source.format is csv or fixed.
 *
 * `openSource('csv:a.csv?delimiter=;', ctx)` parses the URI, checks its parameters and
 * returns the records. The pg and kafka modules are loaded on first use, so reading a file
 * does not load the database and Kafka clients.
 */
import {readCsv} from './csv.js'
import {parseSourceUri} from './uri.js'
import type {RawRecord, Reader, ReaderContext, SourceUri} from './types.js'

export {parseSourceUri, renderSchemesReference, SCHEMES, type SchemeSpec, type ParamSpec} from './uri.js'
export {batchedSource, recordBatches} from './source.js'
export {csvMessageDecoder, fixedMessageDecoder, type MessageDecoder, type MessageDecodeResult} from './message.js'
export {formatPosition} from './types.js'
export type {BatchedRecords, KafkaOrigin, Position, RawRecord, RawRecordOk, RawRecordError, Reader, ReaderContext, SourceUri} from './types.js'

function lazy(load: () => Promise<Reader>): Reader {
  return async function* (uri, ctx) {
    const reader = await load()
    yield* reader(uri, ctx)
  }
}

export const READERS: Record<string, Reader> = {
  csv: readCsv,
  fixed: lazy(async () => (await import('./fixed.js')).readFixed),
  pg: lazy(async () => (await import('./pg.js')).readPg),
  kafka: lazy(async () => (await import('./kafka.js')).readKafka),
}

/** Opens a source by URI text or parsed URI. Usage problems throw before the first record. */
export function openSource(uri: string | SourceUri, ctx: ReaderContext = {}): AsyncIterable<RawRecord> {
  const parsed = typeof uri === 'string' ? parseSourceUri(uri) : uri
  const reader = READERS[parsed.scheme]
  if (!reader) throw new Error(`no reader registered for ${parsed.scheme}: (SCHEMES and READERS disagree)`)
  return reader(parsed, ctx)
}
