/**
 * Which file a csv: or fixed: backfill reads, by content: a resume skips the records its
 * checkpoint covers by their number, which is right only in the file the checkpoint was taken
 * from. `csv:data/tx.csv` names another file once tonight's export replaced it, or from another
 * working directory; resumed there, the backfill would go on at record N of another file.
 *
 * Two checks, neither of which reads the file again in full (a resume reads it from its start
 * anyway, to skip by record number; a digest of the whole file would read it a second time at
 * start and at every resume):
 *
 *   options.file   at the start of a backfill: the resolved path, the size, and the SHA-256 of the
 *                  first and of the last `sample_bytes` (1 MiB) bytes. A resume compares them
 *                  before it touches the row or sends anything (2 MiB read, whatever the size).
 *                  Another day's export has another size or other first records; an appended or
 *                  truncated file another size; an edit near either end another digest.
 *   position.last_sha256
 *                  with every checkpoint: the digest of the last record it covers (recordSha256:
 *                  its position and its bytes or fields). A resume recomputes it when its reader
 *                  reaches that record, before the first record it sends: the rest continues
 *                  after the same record at the same line or byte. This covers what the sampled
 *                  digests do not: a file of the same size whose middle changed so that the
 *                  records before the resume point are others.
 *
 * A file of the same size and the same first and last MiB whose middle changed, while the record
 * at the resume point stayed the same, is not noticed: its records before that point are sent
 * already, and those after it are read as they are now.
 */
import {createHash} from 'node:crypto'
import {open} from 'node:fs/promises'
import {isAbsolute, resolve as resolvePath} from 'node:path'
import {formatPosition, type Position} from '../../legacy-adapters/types.js'
import {UsageError} from '../errors.js'

/** The bytes at each end of the file that a fingerprint digests. */
export const FILE_SAMPLE_BYTES = 1 << 20

export interface FileFingerprint {
  /** resolved as the reader resolves it */
  path: string
  size: number
  /** SHA-256 of the first min(size, sample_bytes) bytes */
  head_sha256: string
  /** SHA-256 of the last min(size, sample_bytes) bytes */
  tail_sha256: string
  sample_bytes: number
}

/** The path a csv: or fixed: URI target names, as the readers resolve it. */
export function sourcePath(target: string, cwd: string): string {
  return isAbsolute(target) ? target : resolvePath(cwd, target)
}

/** `path`'s fingerprint; `uriText` names the source in the error when it cannot be read. */
export async function fileFingerprint(path: string, uriText: string, sampleBytes = FILE_SAMPLE_BYTES, hint?: string): Promise<FileFingerprint> {
  let fh
  try {
    fh = await open(path, 'r')
  } catch (e) {
    throw new UsageError(`source "${uriText}": cannot open ${path}: ${(e as Error).message}`, {cause: e, hint: hint ?? 'check the path (relative paths start at the working directory)'})
  }
  try {
    const st = await fh.stat()
    if (!st.isFile()) throw new UsageError(`source "${uriText}": ${path} is not a file`, {hint: hint ?? 'give the path of the file to read'})
    const size = st.size
    const n = Math.min(size, sampleBytes)
    const digest = async (at: number): Promise<string> => {
      const buf = Buffer.allocUnsafe(n)
      let got = 0
      while (got < n) {
        const {bytesRead} = await fh.read(buf, got, n - got, at + got)
        if (bytesRead === 0) break
        got += bytesRead
      }
      return createHash('sha256').update(buf.subarray(0, got)).digest('hex')
    }
    return {path, size, head_sha256: await digest(0), tail_sha256: await digest(size - n), sample_bytes: sampleBytes}
  } finally {
    await fh.close()
  }
}

/** The fingerprint a checkpoint's options keep; undefined for a checkpoint from before them. */
export function savedFingerprint(v: unknown): FileFingerprint | undefined {
  if (typeof v !== 'object' || v === null) return undefined
  const f = v as Partial<FileFingerprint>
  if (typeof f.path !== 'string' || typeof f.size !== 'number' || typeof f.head_sha256 !== 'string' || typeof f.tail_sha256 !== 'string') return undefined
  return {path: f.path, size: f.size, head_sha256: f.head_sha256, tail_sha256: f.tail_sha256, sample_bytes: typeof f.sample_bytes === 'number' ? f.sample_bytes : FILE_SAMPLE_BYTES}
}

function mib(bytes: number): string {
  return bytes % (1 << 20) === 0 ? `${bytes / (1 << 20)} MiB` : `${bytes} bytes`
}

function refusal(id: string, uriText: string, samePath: boolean, now: string, then: string, what: string, details: Record<string, unknown>): UsageError {
  const which = samePath
    ? `the file ${now} (--from ${uriText}) is not the one backfill ${id} started from: ${what}`
    : `the file ${now} (--from ${uriText}) is not the one backfill ${id} started from (${then}): ${what}`
  return new UsageError(`${which}; resumed, the backfill would go on after the wrong record of another file`, {
    hint:
      `start a new backfill from the file as it is now (another --id; it reads the file from its start), or restore ${then} to what it held when the backfill started and resume` +
      (samePath ? '' : ' (a relative path in --from starts at the working directory: resume from the one the backfill started in)'),
    details: {file: now, file_started: then, ...details},
  })
}

/** A resume reads the file it started from (see the top of this file): exit 2 otherwise. */
export function assertSameFile(id: string, uriText: string, then: FileFingerprint, now: FileFingerprint, samePath: boolean): void {
  let what: string | undefined
  const details: Record<string, unknown> = {}
  if (now.size !== then.size) {
    what = `it holds ${now.size.toLocaleString('en-US')} bytes, the file it started from ${then.size.toLocaleString('en-US')}`
    Object.assign(details, {size_started: then.size, size_now: now.size})
  } else if (now.head_sha256 !== then.head_sha256) {
    what = `its first ${mib(Math.min(then.size, then.sample_bytes))} differ (sha256 ${then.head_sha256} then, ${now.head_sha256} now)`
    Object.assign(details, {head_sha256_started: then.head_sha256, head_sha256_now: now.head_sha256})
  } else if (now.tail_sha256 !== then.tail_sha256) {
    what = `its last ${mib(Math.min(then.size, then.sample_bytes))} differ (sha256 ${then.tail_sha256} then, ${now.tail_sha256} now)`
    Object.assign(details, {tail_sha256_started: then.tail_sha256, tail_sha256_now: now.tail_sha256})
  }
  if (what) throw refusal(id, uriText, samePath, now.path, then.path, what, details)
}

/**
 * The record at the resume point is not the one the checkpoint was taken after, or (`endedAfter`:
 * the records the file holds) the file ends before it. Thrown by the reader (the worker's or the
 * in-thread loop) before it sends a record of the resumed run.
 */
export function resumePointMismatch(id: string, uriText: string, path: string, records: number, last: Position | undefined, endedAfter?: number): UsageError {
  const what =
    endedAfter === undefined
      ? `its record ${records}${last ? ` (${formatPosition(last)})` : ''}, the last one the checkpoint covers, is not the record read there when the checkpoint was taken`
      : `it holds ${endedAfter.toLocaleString('en-US')} records, and the checkpoint covers ${records.toLocaleString('en-US')}`
  return refusal(id, uriText, true, path, path, what, {resume_record: records, ...(endedAfter === undefined ? {} : {records_now: endedAfter})})
}
