/**
 * `dlq inspect` shows a dead letter's JSON numbers as written: `0.30000000000000001` (the very
 * value the dead letter's message quotes) and a 20-digit account number, not the doubles
 * JSON.parse makes of them (0.3, 40817810099910000000); masked numbers are masked text, never
 * an object {"text": "***"}. Real broker, real CLI.
 */
import {mkdtempSync, readFileSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {describe, expect, it} from 'vitest'
import type {DlqInspectResult} from '../../src/dlq/inspect.js'
import {createTestTopic, runCli} from '../helpers.js'
import {produce} from './stream-support.js'

const headers = (i: number, code = 'UNPARSEABLE_AMOUNT', message = 'Field amount value "0.30000000000000001" has 17 digits') => ({
  'cutover.error.code': code,
  'cutover.error.message': message,
  'cutover.source.topic': 'txn.raw',
  'cutover.source.partition': '0',
  'cutover.source.offset': String(i),
  'cutover.failed.at': '2026-11-20T06:15:00.000Z',
})

// 0.30000000000000001 and 40817810099910004312 are not doubles: written here as text
const EXACT = '{"id":"T1","acct":40817810099910004312,"amt":0.30000000000000001,"ts":"2026-11-20T09:15:00+03:00","pan":6011000990139424123,"n":[1,12345678901234567890]}'

describe('dlq inspect: JSON numbers as written', () => {
  it('shows 17-digit amounts and 20-digit account numbers exactly in --json and text, masks them as text, and a repeated member as JSON.parse reads it', async () => {
    const dlq = await createTestTopic({prefix: 'review-dlq-exact'})
    const dir = mkdtempSync(join(tmpdir(), 'cutover-dlq-exact-'))
    const spec = join(dir, 'pipeline.yaml')
    const base = readFileSync('fixtures/specs/stream-card-transactions.yaml', 'utf8')
    // a sensitive field whose value is a JSON number a double cannot hold (19 digits)
    const withPan = base.replace(/^( {2}merchant: .*)$/m, '$1\n  pan:        { type: string, sensitive: true }')
    expect(withPan).toContain('pan:        { type: string, sensitive: true }')
    writeFileSync(spec, withPan)
    await produce(dlq, [
      {key: 'T1', value: Buffer.from(EXACT), headers: headers(0)},
      {key: 'T2', value: Buffer.from('{"id":"T2","amt":"1.00","amt":"2.00","n":7}'), headers: headers(1, 'SCHEMA_VIOLATION', 'the member name "amt" is given twice')},
    ])

    const r = await runCli(['dlq', 'inspect', '--topic', dlq, '--spec', spec, '--json'])
    expect(r.code, r.stderr).toBe(0)
    const out = r.json as DlqInspectResult
    const [exact] = out.samples.UNPARSEABLE_AMOUNT!
    expect(exact!.message).toContain('0.30000000000000001')
    expect(exact!.value).toEqual({
      id: 'T1',
      acct: '40817810099910004312',
      amt: '0.30000000000000001',
      ts: '2026-11-20T09:15:00+03:00',
      pan: '6011***********4123',
      n: [1, '12345678901234567890'],
    })
    expect(r.stdout).not.toContain('40817810099910000000')
    expect(r.stdout).not.toContain('6011000990139424123')
    // a member given twice (parseJsonExact refuses it): as before, the last one, as JSON.parse reads it
    const [repeated] = out.samples.SCHEMA_VIOLATION!
    expect(repeated!.value).toEqual({id: 'T2', amt: '2.00', n: 7})

    // the text view (not a TTY: plain text) shows the same digits
    const text = await runCli(['dlq', 'inspect', '--topic', dlq, '--spec', spec])
    expect(text.code, text.stderr).toBe(0)
    expect(text.stdout).toContain('"amt":"0.30000000000000001"')
    expect(text.stdout).toContain('"acct":"40817810099910004312"')
    expect(text.stdout).toContain('"pan":"6011***********4123"')
    expect(text.stdout).not.toContain('0.3,')

    // without a spec every leaf is masked: a long number too, as text, never {"text": "***"}
    const all = await runCli(['dlq', 'inspect', '--topic', dlq, '--json'])
    expect(all.code, all.stderr).toBe(0)
    const [masked] = (all.json as DlqInspectResult).samples.UNPARSEABLE_AMOUNT!
    expect(masked!.value).toEqual({id: '***', acct: '***', amt: '***', ts: '***', pan: '6011***********4123', n: ['***', '***']})
    expect(all.stdout).not.toContain('"text"')
  })
})
