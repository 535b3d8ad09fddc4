/**
 * `cutover normalize` of the mainframe extract TXN.DAT with binary (COMP) fields of EBCDIC spaces,
 * an uninitialised field: blank, as the COMP-3 of spaces beside it (null, or REQUIRED_FIELD_EMPTY
 * for a required field), never 16448 or 10779525.76; a COMP value with more digits than its PIC
 * (X'7FFF' = 32767 in S9(4) COMP) is a DECODE_ERROR naming the field and its bytes.
 */
import {mkdtempSync, readFileSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {describe, expect, it} from 'vitest'
import {ROOT, runCli} from '../helpers.js'

const lines = (text: string) => text.split('\n').filter((l) => l.length > 0)

describe('normalize fixed: binary fields of spaces', () => {
  it('reads COMP spaces as blank like COMP-3 spaces, and rejects a COMP value beyond its PIC', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cutover-review-comp-'))
    // txn.cpy with its two FILLERs named: bytes 75-78 (X'40404040' in every record) as a COMP
    // amount, bytes 94-99 (spaces too) as a COMP-3 one
    const cpy = readFileSync(join(ROOT, 'fixtures/legacy/txn.cpy'), 'utf8')
      .replace(/05 {2}FILLER {18}PIC X\(4\)\./, '05  CASHBACK                PIC S9(7)V99 COMP.')
      .replace(/05 {2}FILLER {18}PIC X\(6\)\./, '05  BONUS                   PIC S9(9)V99 COMP-3.')
    expect(cpy).toContain('CASHBACK')
    expect(cpy).toContain('BONUS')
    writeFileSync(join(dir, 'txn.cpy'), cpy)
    const dat = readFileSync(join(ROOT, 'fixtures/legacy/TXN.DAT'))
    expect(dat.subarray(75, 79)).toEqual(Buffer.alloc(4, 0x40))
    dat.fill(0x40, 73, 75) // record 1: AUTH-COUNT (bytes 73-74) uninitialised, X'4040'
    dat[173] = 0x7f // record 2: AUTH-COUNT X'7FFF' = 32767, more than S9(4) holds
    dat[174] = 0xff
    writeFileSync(join(dir, 'TXN.DAT'), dat)
    const spec = readFileSync(join(ROOT, 'fixtures/golden/fixed-ebcdic-cp037/spec.yaml'), 'utf8').replace(
      /^ {2}auth_count: .*$/m,
      '  auth_count:  { type: integer, required: true }\n  cashback:    { type: decimal, scale: 2 }\n  bonus:       { type: decimal, scale: 2 }',
    )
    expect(spec).toContain('cashback:')
    writeFileSync(join(dir, 'spec.yaml'), spec)

    const r = await runCli(['normalize', 'fixed:TXN.DAT?copybook=txn.cpy&encoding=cp037', '--spec', 'spec.yaml', '--out', 'out.ndjson', '--rejects', 'rej.ndjson', '--json'], {cwd: dir})
    expect(r.code, r.stderr).toBe(0)
    // 8 records: 1 (auth_count blank: required) and 2 (32767) and 6 (the fixture's bad nibble) rejected
    expect(r.json).toMatchObject({read: 8, ok: 5, rejected: {REQUIRED_FIELD_EMPTY: 1, DECODE_ERROR: 2}})
    const out = lines(readFileSync(join(dir, 'out.ndjson'), 'utf8')).map((l) => JSON.parse(l) as Record<string, unknown>)
    expect(out.map((o) => [o.txn_id, o.auth_count, o.cashback, o.bonus])).toEqual([
      ['M000000003', '1', null, null],
      ['M000000004', '-1', null, null],
      ['M000000005', '0', null, null],
      ['M000000001', '1', null, null], // record 7, the repeat of record 1: record 1 was rejected
      ['M000000007', '9999', null, null], // the largest S9(4) COMP holds
    ])
    expect(readFileSync(join(dir, 'out.ndjson'), 'utf8')).not.toMatch(/16448|10779525\.76/)
    const rejects = lines(readFileSync(join(dir, 'rej.ndjson'), 'utf8')).map((l) => JSON.parse(l) as {code: string; field?: string; value?: string; message: string; position: {record: number}})
    expect(rejects.map((x) => [x.position.record, x.code, x.field])).toEqual([
      [1, 'REQUIRED_FIELD_EMPTY', 'auth_count'],
      [2, 'DECODE_ERROR', 'auth_count'],
      [6, 'DECODE_ERROR', 'amount'],
    ])
    expect(rejects[1]!.value).toBe("X'7FFF'")
    expect(rejects[1]!.message).toMatch(/TXN\.DAT record 2, byte 173: field auth_count \(AUTH-COUNT PIC S9\(4\) binary\): binary value has 5 digits, more than the PIC's 4: .*declare it COMP-5/)

    // declared COMP-5 (native binary, TRUNC(BIN)), the same bytes are values
    writeFileSync(join(dir, 'txn.cpy'), cpy.replace('PIC S9(4) COMP.', 'PIC S9(4) COMP-5.'))
    const native = await runCli(['normalize', 'fixed:TXN.DAT?copybook=txn.cpy&encoding=cp037', '--spec', 'spec.yaml', '--out', 'out5.ndjson', '--rejects', 'rej5.ndjson', '--json'], {cwd: dir})
    expect(native.code, native.stderr).toBe(0)
    const out5 = lines(readFileSync(join(dir, 'out5.ndjson'), 'utf8')).map((l) => JSON.parse(l) as Record<string, unknown>)
    expect(out5.slice(0, 2).map((o) => [o.txn_id, o.auth_count])).toEqual([
      ['M000000001', '16448'],
      ['M000000002', '32767'],
    ])
  })
})
