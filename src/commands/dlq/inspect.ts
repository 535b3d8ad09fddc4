import {Flags} from '@oclif/core'
import {CutoverCommand} from '../../cli/base.js'
import {connectionSettingsFromEnv} from '../../config/env.js'
import {inspectDlq, type DlqInspectResult} from '../../dlq/inspect.js'
import {parseCodeFlags, parseTimeFlag} from '../../dlq/reader.js'

export type {DlqInspectResult}

export default class DlqInspect extends CutoverCommand {
  static override summary = 'Show what is in a dead-letter topic and why: counts by code, source, hour and pipeline version, with masked samples.'
  static override description =
    "Reads the topic up to its end offsets at the start (never commits a group offset). Reads cutover's headers and Kafka Connect's (__connect.errors.*) and Spring's (kafka_dlt-*) the same way. Values in samples: with --spec only its sensitive fields are masked; without, every value is, and the Kafka key too (with --spec, the key when the spec's key field is sensitive). On a terminal an interactive browser (Enter: samples, /: filter, q: quit); --json or a pipe prints the result."
  static override examples = [
    '<%= config.bin %> dlq inspect --topic txn.dlq',
    '<%= config.bin %> dlq inspect --topic txn.dlq --spec pipeline.yaml --since 2h --code UNPARSEABLE_DATE --limit 5 --json',
  ]
  static override flags = {
    topic: Flags.string({required: true, description: 'dead-letter topic'}),
    since: Flags.string({description: 'dead letters written at or after (ISO-8601, or 2h / 30m / 7d back from now)'}),
    until: Flags.string({description: 'dead letters written before (ISO-8601 or a duration back from now)'}),
    code: Flags.string({multiple: true, description: 'only this error code (repeatable)'}),
    key: Flags.string({description: 'only dead letters with this Kafka key'}),
    limit: Flags.integer({default: 3, min: 0, description: 'samples per code'}),
    spec: Flags.string({description: 'pipeline spec: its sensitive fields are masked, the others shown'}),
  }

  async run(): Promise<DlqInspectResult> {
    const {flags} = await this.parse(DlqInspect)
    const since = parseTimeFlag(flags.since, '--since')
    const until = parseTimeFlag(flags.until, '--until')
    const codes = parseCodeFlags(flags.code)
    let lastLine = Date.now()
    const result = await inspectDlq({
      topic: flags.topic,
      kafka: connectionSettingsFromEnv().kafka,
      ...(since === undefined ? {} : {since}),
      ...(until === undefined ? {} : {until}),
      ...(codes ? {codes} : {}),
      ...(flags.key === undefined ? {} : {key: flags.key}),
      limit: flags.limit,
      ...(flags.spec ? {spec: flags.spec} : {}),
      logger: this.logger,
      onProgress: (n) => {
        if (Date.now() - lastLine < 5000) return
        lastLine = Date.now()
        this.progress(`read ${n.toLocaleString('en-US')} dead letters`)
      },
    })
    if (this.jsonEnabled()) return result
    // a terminal of 0 columns (`script` without a terminal of its own, some CI runners) is no
    // terminal: ink would draw the browser one character per line; the printed result there
    if (process.stdout.isTTY && process.stdin.isTTY && (process.stdout.columns ?? 0) > 0) {
      const {browseDlq} = await import('../../ui/dlq-browser.js')
      await browseDlq(result)
    } else {
      const {formatInspect} = await import('../../ui/dlq-text.js')
      this.log(formatInspect(result))
    }
    return result
  }
}
