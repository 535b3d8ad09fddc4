/**
 * The shape every reader returns: an `AsyncIterable<RawRecord>` that can also be read in
 * batches. Readers produce batches internally (a chunk of a file, a fetch of rows, a Kafka
 * batch); iterating record by record costs one resolved promise per record, iterating
 * `batches()` costs one per batch.
 */
import type {BatchedRecords, RawRecord} from './types.js'

class BatchedSource implements BatchedRecords {
  constructor(private readonly make: () => AsyncIterator<RawRecord[]>) {}

  batches(): AsyncIterable<RawRecord[]> {
    return {[Symbol.asyncIterator]: () => this.make()}
  }

  [Symbol.asyncIterator](): AsyncIterator<RawRecord> {
    const inner = this.make()
    let buf: RawRecord[] = []
    let k = 0
    const pull = (): Promise<IteratorResult<RawRecord>> =>
      inner.next().then((r) => {
        if (r.done) return {value: undefined, done: true}
        buf = r.value
        k = 0
        return k < buf.length ? {value: buf[k++]!, done: false} : pull()
      })
    const it: AsyncIterator<RawRecord> = {
      // Buffered records are handed out without an async function frame per record.
      next: () => (k < buf.length ? Promise.resolve({value: buf[k++]!, done: false}) : pull()),
      return: async (): Promise<IteratorResult<RawRecord>> => {
        buf = []
        await inner.return?.()
        return {value: undefined, done: true}
      },
    }
    return it
  }
}

/** Wraps a generator of record batches as a reader result. `make` runs once per iteration. */
export function batchedSource(make: () => AsyncIterator<RawRecord[]>): BatchedRecords {
  return new BatchedSource(make)
}

/** The batches of any reader result (grouping records, up to `size`, when it has no `batches()`). */
export function recordBatches(source: AsyncIterable<RawRecord>, size = 1000): AsyncIterable<RawRecord[]> {
  const b = (source as Partial<BatchedRecords>).batches
  if (typeof b === 'function') return b.call(source)
  return (async function* () {
    let batch: RawRecord[] = []
    for await (const r of source) {
      batch.push(r)
      if (batch.length >= size) {
        yield batch
        batch = []
      }
    }
    if (batch.length > 0) yield batch
  })()
}
