/**
 * The normalizer's public API: one path from raw records to typed records or rejections.
 *
 *   const normalize = createNormalizer(spec.fields)   // compile once per spec
 *   const result = normalize(rawRecord)               // per record: NormalizeResult
 */
export {createNormalizer, compileField, type Normalizer, type NormalizerOptions, type CompiledField} from './record.js'
export {parseDecimal, decimalFromNumber, decimalFromNumberText, fieldsJson, type DecimalOptions} from './decimal.js'
export {parseJsonExact, JsonNumberText} from './json.js'
export {parseInteger, integerFromNumber} from './integer.js'
export {parseBoolean, booleanFromNumber, BOOLEAN_WORDS} from './boolean.js'
export {maskValue, maskedKeyOf, fieldWithoutValue, showValue, charLength} from './text.js'
export {
  matchDateFormats,
  isoOf,
  DATE_TOKENS,
  compileDateFormat,
  DateMatcher,
  ZoneOffsets,
  type DateFormatMatch,
  type DateKind,
  type CompiledDateFormat,
} from './timestamp.js'
export {checkFieldSpec, type FieldProblem} from './check.js'
export {Fail, isFail} from './fail.js'
export type {NormalizedValue, NormalizeResult, NormalizeOk, NormalizeRejected, Rejection} from './types.js'
