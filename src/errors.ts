/**
 * The project's errors. A few named errors steer the runtime (as kafkajs marks each error
 * `retriable` and its retry loop reads only that):
 *
 * - every error has a stable `code`, a `retriable` flag, the underlying `cause` (wrapped,
 *   never flattened) and a `hint` that says what to do next;
 * - `exitCode` maps it to the process exit codes of DESIGN.md: 0 success, 1 a check failed,
 *   2 bad usage or bad spec, 3 a service was unreachable;
 * - record-level codes (the dead-letter catalogue) are `RecordErrorCode`; a code, once
 *   shipped, keeps its meaning.
 */

export const ExitCode = {
  OK: 0,
  CHECK_FAILED: 1,
  USAGE: 2,
  UNAVAILABLE: 3,
  INTERNAL: 70,
} as const
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode]

/** Dead-letter codes (DESIGN.md). Stable: never renamed, never reused. */
export const RECORD_ERROR_CODES = [
  'DECODE_ERROR',
  'SCHEMA_VIOLATION',
  'REQUIRED_FIELD_EMPTY',
  'UNPARSEABLE_DATE',
  'AMBIGUOUS_DATE',
  'UNPARSEABLE_AMOUNT',
  'PATTERN_MISMATCH',
  'DUPLICATE_CONFLICT',
  'ENRICHMENT_MISSING',
  'ENRICHMENT_UNAVAILABLE',
  'LATE_EVENT',
  'RECORD_TOO_LARGE',
  'SINK_REJECTED',
] as const
export type RecordErrorCode = (typeof RECORD_ERROR_CODES)[number]

/** Codes of process-level errors. */
export type ProcessErrorCode =
  | 'USAGE'
  | 'SPEC_INVALID'
  | 'SERVICE_UNAVAILABLE'
  | 'CHECK_FAILED'
  | 'PREREQUISITE_MISSING'
  | 'PORT_IN_USE'
  | 'START_TIMEOUT'
  | 'KAFKA_ERROR'
  | 'PG_ERROR'
  | 'INTERNAL'

export type ErrorCode = RecordErrorCode | ProcessErrorCode

export interface CutoverErrorOptions {
  cause?: unknown
  retriable?: boolean
  hint?: string
  exitCode?: ExitCode
  /** Extra facts kept for logs and `--json` (never secrets). */
  details?: Record<string, unknown>
}

export class CutoverError extends Error {
  readonly code: ErrorCode
  readonly retriable: boolean
  readonly hint: string | undefined
  readonly exitCode: ExitCode
  readonly details: Record<string, unknown>

  constructor(code: ErrorCode, message: string, options: CutoverErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : {cause: options.cause})
    this.name = new.target.name
    this.code = code
    this.retriable = options.retriable ?? false
    this.hint = options.hint
    this.exitCode = options.exitCode ?? ExitCode.INTERNAL
    this.details = options.details ?? {}
  }

  toJSON(): Record<string, unknown> {
    return {
      code: this.code,
      message: this.message,
      ...(this.hint ? {hint: this.hint} : {}),
      retriable: this.retriable,
      ...this.details,
    }
  }
}

/** Bad flags or arguments. Exit 2. */
export class UsageError extends CutoverError {
  constructor(message: string, options: Omit<CutoverErrorOptions, 'exitCode'> = {}) {
    super('USAGE', message, {...options, exitCode: ExitCode.USAGE})
  }
}

export interface SpecLocation {
  file: string
  line?: number
  column?: number
}

/** A pipeline spec (or other input file) that cannot be used. Exit 2, with file:line:column. */
export class SpecError extends CutoverError {
  readonly location: SpecLocation
  /** the message without its file:line:column */
  readonly reason: string
  constructor(location: SpecLocation, message: string, options: Omit<CutoverErrorOptions, 'exitCode'> = {}) {
    const where = [location.file, location.line, location.column].filter((p) => p !== undefined).join(':')
    super('SPEC_INVALID', `${where}: ${message}`, {
      ...options,
      exitCode: ExitCode.USAGE,
      details: {...options.details, file: location.file, line: location.line, column: location.column},
    })
    this.location = location
    this.reason = message
  }

  /**
   * This error at `location`, when it names only its file (a check that ran after the spec was
   * parsed, against the database or the broker, knows the part of the spec at fault only by its
   * caller): the same message, hint and details, with line and column.
   */
  at(location: SpecLocation): SpecError {
    if (this.location.line !== undefined || location.file !== this.location.file || location.line === undefined) return this
    const {file: _file, line: _line, column: _column, ...details} = this.details
    return new SpecError(location, this.reason, {hint: this.hint, details, ...(this.cause === undefined ? {} : {cause: this.cause})})
  }
}

export type ServiceName = 'kafka' | 'postgresql'

/** A service (Kafka, PostgreSQL) could not be reached. Exit 3; retriable inside the runtime. */
export class ServiceUnavailableError extends CutoverError {
  readonly service: ServiceName
  readonly address: string
  constructor(service: ServiceName, address: string, message: string, options: Omit<CutoverErrorOptions, 'exitCode'> = {}) {
    super('SERVICE_UNAVAILABLE', `${service} at ${address} is unreachable: ${message}`, {
      retriable: true,
      ...options,
      exitCode: ExitCode.UNAVAILABLE,
      details: {...options.details, service, address},
    })
    this.service = service
    this.address = address
  }
}

/** A check ran and failed (parity under threshold, DLQ not empty when asked). Exit 1. */
export class CheckFailedError extends CutoverError {
  constructor(message: string, options: Omit<CutoverErrorOptions, 'exitCode'> = {}) {
    super('CHECK_FAILED', message, {...options, exitCode: ExitCode.CHECK_FAILED})
  }
}

/**
 * A record that cannot be processed: it goes to the dead-letter topic with this code.
 * `field`, `value` (already masked when the field is sensitive) and `position` say exactly
 * what and where.
 */
export class RecordError extends CutoverError {
  readonly recordCode: RecordErrorCode
  readonly field: string | undefined
  readonly value: string | undefined
  constructor(
    code: RecordErrorCode,
    message: string,
    options: Omit<CutoverErrorOptions, 'exitCode'> & {field?: string; value?: string} = {},
  ) {
    super(code, message, {...options, exitCode: ExitCode.CHECK_FAILED})
    this.recordCode = code
    this.field = options.field
    this.value = options.value
  }
}

export function isCutoverError(e: unknown): e is CutoverError {
  return e instanceof CutoverError
}

/** The exit code for any thrown value. */
export function exitCodeOf(e: unknown): ExitCode {
  return isCutoverError(e) ? e.exitCode : ExitCode.INTERNAL
}

/** One line for a person: message, then what to do next. */
export function describeError(e: unknown): string {
  if (isCutoverError(e)) return e.hint ? `${e.message}\n  fix: ${e.hint}` : e.message
  if (e instanceof Error) return e.message
  return String(e)
}

/**
 * Node's codes for a server certificate the client does not trust (OpenSSL's verify results, and
 * Node's own for a name that is not in the certificate): a setting to fix (the CA, the host name,
 * the server's certificate), not an outage. The broker's and PostgreSQL's errors both use it.
 */
export const TLS_UNTRUSTED_CODES: ReadonlySet<string> = new Set([
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_UNTRUSTED',
  'CERT_SIGNATURE_FAILURE',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'ERR_TLS_CERT_ALTNAME_INVALID',
])
