/**
 * How a converter says no without throwing (throwing per bad value is slow and bad values
 * are data, not bugs): it returns a `Fail` instead of the value. `reason` completes the
 * sentence "<field> value "<text>" ..." and never repeats the value itself, so that the
 * record builder can mask it for sensitive fields.
 */
import type {RecordErrorCode} from '../errors.js'

export class Fail {
  constructor(
    readonly code: RecordErrorCode,
    readonly reason: string,
  ) {}
}

export function isFail(v: unknown): v is Fail {
  return v instanceof Fail
}
