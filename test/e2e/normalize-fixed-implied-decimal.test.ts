/**
 * `cutover normalize` of a mainframe file whose COMP-3 and zoned fields have three decimals
 * (PIC S9(3)V999): 1.234 and 12.500 are exact values of the copybook, never "ambiguous" printed
 * text, and never 1234 when the field says decimal_separator ",".
 */
import {mkdtempSync, readFileSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {describe, expect, it} from 'vitest'
import {encodePacked, encodeZoned} from '../../legacy-adapters/copybook.js'
import {encodeString} from '../../src/normalize/encoding.js'
import {runCli} from '../helpers.js'

const lines = (text: string) => text.split('\n').filter((l) => l.length > 0)

describe('normalize fixed: numbers with three implied decimals', () => {
  it('gives 1.234 and 12.500 from a PIC S9(3)V999 COMP-3 and a 9(3)V999 zoned field, with no reject', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cutover-implied-decimal-'))
    writeFileSync(join(dir, 'rate.cpy'), ['       01  RATE-REC.', '           05  RATE-ID        PIC X(4).', '           05  RATE           PIC S9(3)V999 COMP-3.', '           05  WEIGHT         PIC 9(3)V999.', ''].join('\n'))
    const rec = (id: string, rate: string, weight: string) =>
      Buffer.concat([encodeString(id, 'cp037'), encodePacked(rate, 6, 3, true), encodeZoned(weight, 6, 3, {charset: 'ebcdic', signed: false})])
    writeFileSync(join(dir, 'RATE.DAT'), Buffer.concat([rec('R001', '1.234', '12.5'), rec('R002', '0.125', '0.75'), rec('R003', '-123.456', '999.999')]))
    writeFileSync(
      join(dir, 'spec.yaml'),
      [
        'version: 1',
        'name: rates',
        'source: { topic: rates.raw, group: rates, format: json, encoding: utf-8 }',
        'fields:',
        '  rate_id: { type: string, required: true }',
        '  rate:    { type: decimal, scale: 3, required: true }',
        '  weight:  { type: decimal, scale: 3, required: true, decimal_separator: "," }',
        'key: rate_id',
        'sinks:',
        '  - table: rates_clean',
        'dlq: { topic: rates.dlq }',
        '',
      ].join('\n'),
    )
    const r = await runCli(['normalize', 'fixed:RATE.DAT?copybook=rate.cpy&encoding=cp037', '--spec', 'spec.yaml', '--out', 'out.ndjson', '--rejects', 'rej.ndjson', '--json'], {cwd: dir})
    expect(r.code, r.stderr).toBe(0)
    expect(r.json).toMatchObject({read: 3, ok: 3, rejected: {}})
    expect(lines(readFileSync(join(dir, 'out.ndjson'), 'utf8')).map((l) => JSON.parse(l) as unknown)).toEqual([
      {rate_id: 'R001', rate: '1.234', weight: '12.500'},
      {rate_id: 'R002', rate: '0.125', weight: '0.750'},
      {rate_id: 'R003', rate: '-123.456', weight: '999.999'},
    ])
    expect(readFileSync(join(dir, 'rej.ndjson'), 'utf8')).toBe('')
  })
})
