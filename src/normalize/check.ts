/**
 * Checks of one field spec that the schema cannot express, each naming the key at fault
 * (the spec loader maps it to file:line:column): a decimal has a scale, a timestamp has
 * formats and they compile, the timezone is a real IANA zone, the pattern is a valid regular
 * expression, the default is a valid value of the field.
 */
import type {FieldSpec} from '../config/spec.js'
import {compileField} from './record.js'
import {compileDateFormat, ZoneOffsets} from './timestamp.js'

export interface FieldProblem {
  /** path below the field, e.g. ['formats', 1] */
  key: (string | number)[]
  message: string
}

export function checkFieldSpec(name: string, f: FieldSpec): FieldProblem[] {
  const out: FieldProblem[] = []
  const dated = f.type === 'timestamp' || f.type === 'date'
  if (f.type === 'decimal' && f.scale === undefined) out.push({key: ['type'], message: `decimal field "${name}" needs \`scale\` (digits after the point, e.g. scale: 2)`})
  if (f.type !== 'decimal' && f.scale !== undefined) out.push({key: ['scale'], message: `scale applies only to decimal fields ("${name}" is ${f.type})`})
  if (f.type !== 'decimal' && f.decimal_separator !== undefined) out.push({key: ['decimal_separator'], message: `decimal_separator applies only to decimal fields ("${name}" is ${f.type})`})
  if (f.type === 'decimal' && f.scale !== undefined && f.precision < f.scale) out.push({key: ['precision'], message: `precision ${f.precision} is less than scale ${f.scale}`})
  if (f.type === 'timestamp' && f.formats === undefined) {
    out.push({key: ['type'], message: `timestamp field "${name}" needs \`formats\`, e.g. formats: ["iso", "dd.MM.yyyy HH:mm:ss", "epoch_ms"]`})
  }
  if (!dated && f.formats !== undefined) out.push({key: ['formats'], message: `formats apply only to timestamp and date fields ("${name}" is ${f.type})`})
  if (dated) {
    f.formats?.forEach((fmt, i) => {
      try {
        compileDateFormat(fmt)
      } catch (e) {
        out.push({key: ['formats', i], message: (e as Error).message})
      }
    })
    try {
      new ZoneOffsets(f.timezone)
    } catch (e) {
      out.push({key: ['timezone'], message: (e as Error).message})
    }
  }
  if (f.pattern !== undefined) {
    try {
      new RegExp(f.pattern)
    } catch (e) {
      out.push({key: ['pattern'], message: `not a valid regular expression: ${(e as Error).message}`})
    }
  }
  if (out.length === 0 && f.default !== undefined) {
    try {
      compileField(name, f)
    } catch (e) {
      out.push({key: ['default'], message: (e as Error).message})
    }
  }
  return out
}
