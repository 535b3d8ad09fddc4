/**
 * Booleans: true/false, 1/0, Y/N, yes/no, T/F, да/нет (any case, surrounding whitespace
 * ignored); JSON true/false and the JSON numbers 1/0. Anything else is SCHEMA_VIOLATION.
 */
import {Fail} from './fail.js'

const WORDS: ReadonlyMap<string, boolean> = new Map([
  ['true', true],
  ['false', false],
  ['1', true],
  ['0', false],
  ['y', true],
  ['n', false],
  ['yes', true],
  ['no', false],
  ['t', true],
  ['f', false],
  ['да', true],
  ['нет', false],
])

export const BOOLEAN_WORDS: readonly string[] = [...WORDS.keys()]

export function parseBoolean(text: string): boolean | Fail {
  const v = WORDS.get(text) ?? WORDS.get(text.trim().toLowerCase())
  return v === undefined ? new Fail('SCHEMA_VIOLATION', `is not a boolean (expected one of ${BOOLEAN_WORDS.join(', ')})`) : v
}

export function booleanFromNumber(n: number): boolean | Fail {
  return n === 1 ? true : n === 0 ? false : new Fail('SCHEMA_VIOLATION', 'is not a boolean (expected 1 or 0)')
}
