import {Args, Flags} from '@oclif/core'
import {CutoverCommand} from '../cli/base.js'
import {connectionSettingsFromEnv} from '../config/env.js'
import {profileSource, type ProfileResult} from '../profile/profile.js'

export type {ProfileResult}

const pct = (x: number) => `${(x * 100).toFixed(1)}%`

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
    const result = await profileSource({
      uri: args.source,
      ctx: {databaseUrl: settings.databaseUrl, kafka: settings.kafka, logger: this.logger},
      ...(flags.limit === undefined ? {} : {limit: flags.limit}),
      ...(flags.timezone === undefined ? {} : {timezone: flags.timezone}),
      onProgress: (rows) => {
        if (Date.now() - last > 5000) {
          last = Date.now()
          this.progress(`profile: ${rows.toLocaleString('en-US')} records read…`)
        }
      },
    })
    this.log(`${result.source}: ${result.rows} records${result.errors.length ? `, unreadable: ${result.errors.map((e) => `${e.code} ${e.count}`).join(', ')}` : ''}\n`)
    for (const c of result.columns) {
      const extra: string[] = []
      if (c.scale !== undefined) extra.push(`scale ${c.scale}${c.decimal_comma ? ', decimal comma' : ''}`)
      if (c.date_formats) extra.push(`formats ${c.date_formats.map((f) => `${f.format} (${f.matches})`).join(', ')}`)
      if (c.ambiguous) extra.push(`AMBIGUOUS: ${c.ambiguity_note}`)
      else if (c.ambiguity_note) extra.push(c.ambiguity_note)
      if (c.duplicate_keys && c.duplicate_keys.count > 0) extra.push(`duplicate keys ${c.duplicate_keys.count} (${c.duplicate_keys.examples.join(', ')})`)
      if (c.fit_rate < 1) extra.push(`${pct(1 - c.fit_rate)} do not fit, e.g. ${c.non_fitting_examples.map((e) => JSON.stringify(e)).join(', ')}`)
      this.log(`${c.name.padEnd(16)} ${c.inferred_type.padEnd(9)} null ${pct(c.null_rate).padStart(6)}  empty ${pct(c.empty_rate).padStart(6)}  distinct ${String(c.distinct).padStart(7)}${c.distinct_capped ? '+' : ' '}  ${extra.join('; ')}`)
    }
    this.log(`\nSuggested fields (paste into a spec):\n\n${result.suggested_fields}`)
    return result
  }
}
