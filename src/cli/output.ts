/**
 * Where a command's NDJSON goes: a file (`--out x.ndjson`), or stdout. Under `--json` stdout
 * carries only the result document, so data then needs a file (or is discarded with
 * `--out /dev/null`).
 *
 * A file is written whole or not at all: the run writes `.<name>.partial-<pid>` beside it and
 * `commitOutputs` renames that onto the name only when the run completes. A run that fails or
 * is interrupted leaves the name as it was (an existing file survives) and removes its partial
 * file (`discardOutputs`). Devices and pipes (/dev/null, a FIFO) are written in place.
 */
import {accessSync, closeSync, constants, createWriteStream, open, openSync, realpathSync, renameSync, rmSync, statSync} from 'node:fs'
import {basename, dirname, join, resolve} from 'node:path'
import {finished} from 'node:stream/promises'
import {Socket} from 'node:net'
import {Writable} from 'node:stream'
import {CutoverError, ExitCode, UsageError} from '../errors.js'
import {formatProgress, type ProgressTracker} from '../jobs/progress.js'
import {parseDuration} from '../config/spec.js'

export interface OpenedOutput {
  stream: Writable
  /** `--out o.ndjson`, or `stdout` */
  readonly label: string
  /** the first error of its stream: a failed write, or EPIPE when stdout's reader went away */
  readonly error: NodeJS.ErrnoException | undefined
  /** flushes and closes it (a file stays under its partial name until `commit`) */
  finish(): Promise<void>
  /** renames the finished partial file onto the name */
  commit(): void
  /** closes it and removes the partial file: the name stays as it was */
  discard(): void
}

/** A file a command writes, and one it reads (which no output may overwrite). */
export interface OutputFile {
  flag: string
  path: string
}
export interface InputFile {
  what: string
  path: string
}

function statOf(path: string): ReturnType<typeof statSync> | undefined {
  return statSync(path, {throwIfNoEntry: false})
}

/**
 * A file a command will write (`--out`): not a folder, and its folder must exist and be
 * writable, checked before the work starts, so that a long run does not end in an error with
 * its result thrown away.
 */
export function assertWritableFolder(path: string, flag: string): void {
  if (statOf(path)?.isDirectory()) {
    throw new UsageError(`${flag} ${path} is a folder, not a file`, {hint: `name a file, e.g. ${flag} ${join(path, 'out.ndjson')}`})
  }
  try {
    accessSync(path, constants.W_OK) // a file that exists and may be written (/dev/null too)
    return
  } catch {
    // a new file: its folder decides
  }
  const folder = dirname(resolve(path))
  if (!statOf(folder)?.isDirectory()) throw new UsageError(`${flag} ${path}: the folder ${folder} does not exist`, {hint: `create it first (mkdir -p ${folder}), or write elsewhere`})
  try {
    accessSync(folder, constants.W_OK)
  } catch {
    throw new UsageError(`${flag} ${path}: the folder ${folder} is not writable`, {hint: 'write to a folder this user may write to'})
  }
}

/**
 * What makes two paths the same file: device and inode for an existing regular file (through
 * symlinks and hard links), the real path of its folder for a new one; undefined for a device
 * or a pipe (`--out /dev/null --rejects /dev/null` is fine).
 */
function fileIdentity(path: string): string | undefined {
  const st = statOf(path)
  if (st) return st.isFile() ? `inode ${st.dev}:${st.ino}` : undefined
  let folder = dirname(resolve(path))
  if (statOf(folder)) folder = realpathSync(folder)
  return `path ${join(folder, basename(path))}`
}

/**
 * Outputs that would overwrite what the run reads, or each other, refused before anything is
 * opened (an output is replaced when the run completes: `--out` naming the source would empty
 * it, or replace it with its own records).
 */
export function assertDistinctFiles(outputs: OutputFile[], inputs: InputFile[]): void {
  const seen = new Map<string, string>()
  for (const i of inputs) {
    const id = fileIdentity(i.path)
    if (id !== undefined && !seen.has(id)) seen.set(id, `${i.what} (${i.path})`)
  }
  for (const o of outputs) {
    const id = fileIdentity(o.path)
    if (id === undefined) continue
    const other = seen.get(id)
    if (other !== undefined) {
      throw new UsageError(`${o.flag} ${o.path} is ${other}: it would be overwritten`, {hint: `write ${o.flag} to another file`})
    }
    seen.set(id, `${o.flag} (${o.path})`)
  }
}

function stdoutOutput(): OpenedOutput {
  const output: OpenedOutput & {error: NodeJS.ErrnoException | undefined} = {
    stream: process.stdout,
    label: 'stdout',
    error: undefined,
    finish: async () => {},
    commit: () => {},
    discard: () => {},
  }
  // EPIPE (the reader went away, `| head -1`) is the caller's to end on quietly, not an
  // unhandled 'error' event with a stack
  process.stdout.on('error', (e: NodeJS.ErrnoException) => {
    output.error ??= e
  })
  return output
}

/**
 * Opens an output: stdout when `path` is undefined or `-` (not under `--json`), a device or a
 * pipe as it is, a file (a new one, or one to replace) as its partial file beside it.
 * `assertWritableFolder` (and `assertDistinctFiles`) should have run before any work.
 */
export function openOutput(path: string | undefined, json: boolean, what: string, flag = '--out'): OpenedOutput {
  if (path === undefined || path === '-') {
    if (json) throw new UsageError(`--json prints the summary on stdout, so ${what} need a file`, {hint: `add --out <file> (or --out /dev/null to discard ${what})`})
    return stdoutOutput()
  }
  assertWritableFolder(path, flag)
  const st = statOf(path)
  const inPlace = st !== undefined && !st.isFile()
  // an existing file is replaced where it really is (a symlink stays a symlink)
  const final = st ? realpathSync(path) : resolve(path)
  const partial = inPlace ? final : join(dirname(final), `.${basename(final)}.partial-${process.pid}`)
  if (!inPlace) {
    try {
      accessSync(dirname(final), constants.W_OK)
    } catch {
      throw new UsageError(`${flag} ${path}: the folder ${dirname(final)} is not writable (the file is written beside its name and renamed when complete)`, {
        hint: 'write to a folder this user may write to',
      })
    }
  }
  // a partial file is opened here, not by the stream in the background: a run that fails before
  // that open completes (another output refused) would remove nothing, and the open would then
  // leave the file behind. A device or a pipe is opened by the stream (a FIFO's open waits for its reader).
  let stream: Writable
  if (st?.isFIFO()) stream = new FifoWriter(final)
  else if (inPlace) stream = createWriteStream(partial)
  else {
    let fd: number
    try {
      fd = openSync(partial, 'w')
    } catch (e) {
      throw outputIoError(`${flag} ${path}`, e as NodeJS.ErrnoException)
    }
    stream = createWriteStream(partial, {fd})
  }
  let done = false
  const output: OpenedOutput & {error: NodeJS.ErrnoException | undefined} = {
    stream,
    label: `${flag} ${path}`,
    error: undefined,
    finish: async () => {
      if (!stream.errored) stream.end()
      await finished(stream)
    },
    commit: () => {
      if (!inPlace) renameSync(partial, final)
      done = true
    },
    discard: () => {
      if (done) return
      done = true
      if (stream instanceof FifoWriter && stream.opening) releaseFifoOpen(final, stream)
      stream.destroy()
      if (!inPlace) rmSync(partial, {force: true})
    },
  }
  // kept for the caller (outputFailure): never an unhandled 'error' event
  stream.on('error', (e: NodeJS.ErrnoException) => {
    output.error ??= e
  })
  return output
}

/**
 * A FIFO written as a pipe, as stdout is: its open(2) waits for a reader on a thread of libuv's
 * pool (there is nothing to write to before), then its writes go through the event loop
 * (net.Socket on the fd, non-blocking). An fs.WriteStream would write on a pool thread, where a
 * write to a reader that stopped reading blocks for ever: a run stopped by SIGINT/SIGTERM could
 * not end. destroy() closes it at once, whatever the reader does.
 */
class FifoWriter extends Writable {
  /** open(2) still waits for a reader */
  opening = true
  private socket: Socket | undefined

  constructor(private readonly path: string) {
    super()
  }

  override _construct(callback: (error?: Error | null) => void): void {
    open(this.path, constants.O_WRONLY, (err, fd) => {
      this.opening = false
      if (err) return callback(err)
      const socket = new Socket({fd, readable: false, writable: true})
      socket.on('error', (e) => this.destroy(e))
      this.socket = socket
      callback()
    })
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.socket!.write(chunk, callback)
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.socket!.end(() => callback())
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.socket?.destroy()
    callback(error)
  }
}

/**
 * A FIFO whose reader never came: its open(2) holds a thread of libuv's pool, and the process
 * could not exit while it waits. Opening the FIFO for reading, without waiting, lets that open
 * complete; the read end is closed once the stream is, so the FIFO never receives a byte of the
 * discarded run.
 */
function releaseFifoOpen(path: string, stream: Writable): void {
  let fd: number
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK)
  } catch {
    return // the FIFO is gone: nothing waits on it
  }
  stream.once('close', () => closeSync(fd))
}

/** Whether the run ended because stdout's reader went away (`| head -1`): to end quietly. */
export function readerWentAway(outputs: OpenedOutput[]): boolean {
  return outputs.some((o) => o.label === 'stdout' && o.error?.code === 'EPIPE')
}

/** A write, flush or rename of an output that failed: naming the output, its file and the OS error. */
function outputIoError(label: string, err: NodeJS.ErrnoException): CutoverError {
  const space = err.code === 'ENOSPC' || err.code === 'EDQUOT' || err.code === 'EFBIG'
  // DESIGN.md's exit codes have none for a failed write (not usage, not a service): the
  // project's INTERNAL one (70), with the OS error kept in `os_error` for scripts
  return new CutoverError('INTERNAL', `${label}: cannot write: ${err.message}`, {
    cause: err,
    exitCode: ExitCode.INTERNAL,
    hint: `${space ? 'free space on that disk, or write elsewhere' : 'check that file and its disk, or write elsewhere'}; files named by --out/--rejects were left as they were`,
    details: {os_error: err.code},
  })
}

/**
 * The error to report for a run over `outputs` that failed with `e`: the failure of an output
 * when one failed (the run's own error then follows from it); else `e`.
 */
export function outputFailure(outputs: OpenedOutput[], e: unknown): unknown {
  const failed = outputs.find((o) => o.error !== undefined)
  return failed ? outputIoError(failed.label, failed.error!) : e
}

/**
 * Completes every output or none: flushes each, then renames each partial file onto its name.
 * A failure (a write that failed on the last batch, a full disk at flush) removes the partial
 * files and throws an error naming the output.
 */
export async function commitOutputs(outputs: OpenedOutput[]): Promise<void> {
  let current: OpenedOutput | undefined
  try {
    for (const o of outputs) await (current = o).finish()
    for (const o of outputs) (current = o).commit()
  } catch (e) {
    discardOutputs(outputs)
    const failure = outputFailure(outputs, e)
    throw failure === e && current ? outputIoError(current.label, e as NodeJS.ErrnoException) : failure
  }
}

/** Drops every output's partial file: the names stay as they were. */
export function discardOutputs(outputs: OpenedOutput[]): void {
  for (const o of outputs) o.discard()
}

/**
 * How often plain progress lines are written: `CUTOVER_PROGRESS_EVERY` (a duration: 500ms, 30s,
 * 2m; at least 100ms), else every second on a terminal and every 5 s off one (a scheduler's log).
 * A value that is no such duration is exit 2 naming the variable.
 */
export function progressEveryMs(env: NodeJS.ProcessEnv = process.env, tty = Boolean(process.stderr.isTTY)): number {
  const raw = env.CUTOVER_PROGRESS_EVERY?.trim()
  if (raw === undefined || raw === '') return tty ? 1000 : 5000
  let ms: number | undefined
  try {
    ms = parseDuration(raw)
  } catch {
    ms = undefined
  }
  if (ms === undefined || ms < 100) {
    throw new UsageError(`CUTOVER_PROGRESS_EVERY=${JSON.stringify(raw)} is not a duration of 100ms or more`, {
      hint: 'give a duration such as 500ms, 30s or 2m (how often progress lines are written), or unset it for every 5 s (every second on a terminal)',
    })
  }
  return ms
}

/** Plain periodic progress lines on stderr (every `everyMs`: progressEveryMs); returns a stop function. */
export function startProgressLines(tracker: ProgressTracker, write: (line: string) => void, everyMs = progressEveryMs()): () => void {
  const timer = setInterval(() => write(formatProgress(tracker.snapshot())), everyMs)
  timer.unref()
  return () => clearInterval(timer)
}
