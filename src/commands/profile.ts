import {Args, Flags} from '@oclif/core'
import {CutoverCommand} from '../cli/base.js'
import {connectionSettingsFromEnv} from '../config/env.js'
import {redactString} from '../log.js'
import {profileSource, type ProfileResult} from '../profile/profile.js'

export type {ProfileResult}

/** n of d as a percentage with one decimal, never "0.0%" for a few nor "100.0%" for almost all. */
function pctOf(n: number, d: number): string {
  if (d === 0 || n === 0) return '0.0%'
  if (n >= d) return '100.0%'
  const p = (n / d) * 100
  if (p < 0.05) return '<0.1%'
  if (p >= 99.95) return '>99.9%'
  return `${p.toFixed(1)}%`
}

export default class Profile extends CutoverCommand {
  static override summary = 'Profile a legacy source per column: types, date formats and ambiguity, nulls, distinct, duplicate keys, a suggested spec.'
  static override examples = [
    '<%= config.bin %> profile "csv:fixtures/legacy/txn-2026-11-20.csv?delimiter=;&encoding=windows-1251"',
    '<%= config.bin %> profile pg:legacy.daily_totals --json',
  ]
  static override args = {
    source: Args.string({required: true, description: 'source URI: csv:, fixed:, pg: or kafka:'}),
  }
  static override flags = {
    limit: Flags.integer({min: 1, description: 'read at most this many records (1 or more)'}),
    timezone: Flags.string({description: 'IANA zone in which local date-times are read, e.g. Europe/Moscow (default UTC)'}),
  }

  async run(): Promise<ProfileResult> {
    const {args, flags} = await this.parse(Profile)
    const settings = connectionSettingsFromEnv()
    let last = Date.now()
    const profiled = await profileSource({
      uri: args.source,
      ctx: {databaseUrl: settings.databaseUrl, kafka: settings.kafka, logger: this.logger},
      ...(flags.limit === undefined ? {} : {limit: flags.limit}),
      ...(flags.timezone === undefined ? {} : {timezone: flags.timezone}),
      onProgress: (rows, phase) => {
        if (phase !== undefined || Date.now() - last > 5000) {
          last = Date.now()
          this.progress(`profile: ${rows.toLocaleString('en-US')} records read${phase ? `; ${phase}` : ''}…`)
        }
      },
    })
    // the source as given is shown back (--json too), without a password it may hold (a query= with a dblink conninfo)
    const result: ProfileResult = {...profiled, source: redactString(profiled.source)}
    this.log(`${result.source}: ${result.rows} records${result.errors.length ? `, unreadable: ${result.errors.map((e) => `${e.code} ${e.count}`).join(', ')}` : ''}`)
    // what could not be read, and why (card numbers in them masked by the library), before the columns
    for (const e of result.errors) for (const x of e.examples.slice(0, 2)) this.log(`  ${e.code}: ${x}`)
    for (const n of result.notes) this.log(`note: ${n}`)
    this.log('')
    for (const c of result.columns) {
      const extra: string[] = []
      if (c.min !== undefined && c.max !== undefined) extra.push(`${c.min} .. ${c.max}`)
      if (c.scale !== undefined) extra.push(`scale ${c.scale}${c.decimal_comma ? ', decimal comma' : ''}`)
      if (c.date_formats) extra.push(`formats ${c.date_formats.map((f) => `${f.format} (${f.matches})`).join(', ')}`)
      if (c.ambiguous) extra.push(`AMBIGUOUS: ${c.ambiguity_note}`)
      else if (c.ambiguity_note) extra.push(c.ambiguity_note)
      if (c.duplicate_keys && c.duplicate_keys.count > 0) extra.push(`duplicate keys ${c.duplicate_keys.count} (${c.duplicate_keys.examples.join(', ')})`)
      if (c.non_fitting > 0) extra.push(`${c.non_fitting} (${pctOf(c.non_fitting, c.count - c.null_count - c.empty_count)}) do not fit, e.g. ${c.non_fitting_examples.map((e) => JSON.stringify(e)).join(', ')}`)
      const distinct = c.distinct_estimate !== undefined ? `~${c.distinct_estimate}` : String(c.distinct)
      this.log(`${c.name.padEnd(16)} ${c.inferred_type.padEnd(9)} null ${pctOf(c.null_count, c.count).padStart(6)}  empty ${pctOf(c.empty_count, c.count).padStart(6)}  distinct ${distinct.padStart(8)}  ${extra.join('; ')}`)
    }
    if (result.suggested_fields !== '') this.log(`\nSuggested fields (paste into a spec):\n\n${result.suggested_fields}`)
    return result
  }
}
