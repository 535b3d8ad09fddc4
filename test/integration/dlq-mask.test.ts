/**
 * `dlq inspect --spec` masks a sensitive field wherever the normalizer reads it from: a dotted
 * `from` ("card.number") names a nested member, or a member of that very name (read first).
 */
import {mkdtempSync, readFileSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {describe, expect, it} from 'vitest'
import type {DlqInspectResult} from '../../src/dlq/inspect.js'
import {createTestTopic, runCli} from '../helpers.js'
import {produce} from './stream-support.js'

describe('dlq inspect: masking', () => {
  it('masks a sensitive dotted field given as one flat member and as a nested one', async () => {
    const dlq = await createTestTopic({prefix: 'dlq-mask'})
    const spec = join(mkdtempSync(join(tmpdir(), 'cutover-dlq-mask-')), 'pipeline.yaml')
    const base = readFileSync('fixtures/specs/stream-card-transactions.yaml', 'utf8')
    const withPan = base.replace(/^( {2}merchant: .*)$/m, '$1\n  pan:        { from: card.number, type: string, sensitive: true }')
    expect(withPan).toContain('from: card.number')
    writeFileSync(spec, withPan)
    const headers = (i: number) => ({
      'cutover.error.code': 'UNPARSEABLE_DATE',
      'cutover.error.message': 'Field event_time value "soon" matches none of the formats.',
      'cutover.source.topic': 'txn.raw',
      'cutover.source.partition': '0',
      'cutover.source.offset': String(i),
      'cutover.failed.at': '2026-11-20T06:15:00.000Z',
    })
    await produce(dlq, [
      {key: 'T1', value: Buffer.from(JSON.stringify({id: 'T1', acct: 'A1', amt: '1.00', ts: 'soon', 'card.number': '4111111111111111'})), headers: headers(0)},
      {key: 'T2', value: Buffer.from(JSON.stringify({id: 'T2', acct: 'A1', amt: '1.00', ts: 'soon', card: {number: '5500000000000004'}})), headers: headers(1)},
    ])
    const r = await runCli(['dlq', 'inspect', '--topic', dlq, '--spec', spec, '--json'])
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout).not.toContain('4111111111111111')
    expect(r.stdout).not.toContain('5500000000000004')
    const [flat, nested] = (r.json as DlqInspectResult).samples.UNPARSEABLE_DATE!
    expect(flat!.value).toEqual({id: 'T1', acct: 'A1', amt: '1.00', ts: 'soon', 'card.number': '4111********1111'})
    expect(nested!.value).toEqual({id: 'T2', acct: 'A1', amt: '1.00', ts: 'soon', card: {number: '5500********0004'}})
    // the text output too
    const text = await runCli(['dlq', 'inspect', '--topic', dlq, '--spec', spec])
    expect(text.code, text.stderr).toBe(0)
    expect(text.stdout).toContain('4111********1111')
    expect(text.stdout).not.toContain('4111111111111111')
  })

  it('`--key` is not echoed in full in the --json filter when keys are masked (no spec): it may be a card number', async () => {
    const dlq = await createTestTopic({prefix: 'dlq-mask-key'})
    const headers = {'cutover.error.code': 'UNPARSEABLE_DATE', 'cutover.error.message': 'bad date', 'cutover.source.topic': 'txn.raw', 'cutover.source.partition': '0', 'cutover.source.offset': '0'}
    await produce(dlq, [
      {key: '4111111111111111', value: Buffer.from('{"ts":"soon"}'), headers},
      {key: '5500000000000004', value: Buffer.from('{"ts":"later"}'), headers: {...headers, 'cutover.source.offset': '1'}},
    ])
    const r = await runCli(['dlq', 'inspect', '--topic', dlq, '--key', '4111111111111111', '--json'])
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout).not.toContain('4111111111111111')
    const out = r.json as DlqInspectResult
    expect(out.filter.key).toBe('4111********1111')
    expect(out.samples.UNPARSEABLE_DATE!.map((s) => s.key)).toEqual(['4111********1111']) // the filter still selects by the whole key
  })
})
