/**
 * `cutover normalize` of fixed: files whose layout a plain read gets wrong without a word:
 * records followed by line ends (a fixed-width file written or transferred as text), and
 * copybooks with USAGE on a group.
 */
import {mkdtempSync, readFileSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {describe, expect, it} from 'vitest'
import {runCli} from '../helpers.js'

const tmp = () => mkdtempSync(join(tmpdir(), 'cutover-fixed-layout-'))
const lines = (text: string) => text.split('\n').filter((l) => l.length > 0)

const TEXT_CPY = `       01  REC.
           05  REC-ID  PIC X(4).
           05  NAME    PIC X(6).
           05  CODE    PIC X(5).
`
const TEXT_SPEC = `version: 1
name: fixed-layout
source: { topic: fixed-layout, format: fixed, encoding: latin1, copybook: rec.cpy }
fields:
  rec_id: { type: string, required: true }
  name:   { type: string }
  code:   { type: string }
`

describe('normalize fixed: records followed by line ends', () => {
  for (const [name, eol] of [
    ['CRLF', '\r\n'],
    ['LF', '\n'],
  ] as const) {
    it(`${name} after each record: exit 2 naming record_length=, nothing misread; with it, every record right`, async () => {
      const dir = tmp()
      writeFileSync(join(dir, 'rec.cpy'), TEXT_CPY)
      writeFileSync(join(dir, 'spec.yaml'), TEXT_SPEC)
      writeFileSync(join(dir, 'REC.DAT'), ['A001Ivan  X1234', 'A002Petr  Y0050', 'A003Olga  Z1000'].map((r) => r + eol).join(''))
      const bad = await runCli(['normalize', 'fixed:REC.DAT?copybook=rec.cpy&encoding=ascii', '--spec', 'spec.yaml', '--out', 'out.ndjson', '--json'], {cwd: dir})
      expect(bad.code, bad.stdout + bad.stderr).toBe(2)
      const error = (bad.json as {error: {code: string; message: string; hint: string}}).error
      expect(error.code).toBe('USAGE')
      expect(error.message).toContain(`line end (${name} at bytes 15, ${15 + 15 + eol.length}`)
      expect(error.hint).toContain(`record_length=${15 + eol.length}`)

      const good = await runCli(['normalize', `fixed:REC.DAT?copybook=rec.cpy&encoding=ascii&record_length=${15 + eol.length}`, '--spec', 'spec.yaml', '--out', 'out.ndjson', '--rejects', 'rej.ndjson', '--json'], {cwd: dir})
      expect(good.code, good.stderr).toBe(0)
      expect(good.json).toMatchObject({read: 3, ok: 3, rejected: {}})
      expect(lines(readFileSync(join(dir, 'out.ndjson'), 'utf8')).map((l) => JSON.parse(l))).toEqual([
        {rec_id: 'A001', name: 'Ivan', code: 'X1234'},
        {rec_id: 'A002', name: 'Petr', code: 'Y0050'},
        {rec_id: 'A003', name: 'Olga', code: 'Z1000'},
      ])
    })
  }

  it('a file of fixed-length records without line ends is read as before, a short last record rejected', async () => {
    const dir = tmp()
    writeFileSync(join(dir, 'rec.cpy'), TEXT_CPY)
    writeFileSync(join(dir, 'spec.yaml'), TEXT_SPEC)
    // record 2 starts with LF by chance: one LF at a record boundary is not a line-ended file
    writeFileSync(join(dir, 'REC.DAT'), 'A001Ivan  X1234\nA02Petr  Y0050A003Olga  Z1000A00')
    const r = await runCli(['normalize', 'fixed:REC.DAT?copybook=rec.cpy&encoding=ascii', '--spec', 'spec.yaml', '--out', 'out.ndjson', '--rejects', 'rej.ndjson', '--json'], {cwd: dir})
    expect(r.code, r.stderr).toBe(0)
    expect(r.json).toMatchObject({read: 4, ok: 3, rejected: {SCHEMA_VIOLATION: 1}})
    expect(lines(readFileSync(join(dir, 'out.ndjson'), 'utf8')).map((l) => JSON.parse(l).rec_id)).toEqual(['A001', '\nA02', 'A003'])
  })
})

describe('normalize fixed: USAGE on a group', () => {
  it('reads the COMP-3 and binary items of a group with USAGE (bytes written by GnuCOBOL 3.1.2)', async () => {
    const dir = tmp()
    writeFileSync(
      join(dir, 'rec.cpy'),
      `       01  REC.
           05  REC-ID    PIC X(4).
           05  AMOUNTS   COMP-3.
               10  AMT1  PIC S9(5)V99.
               10  AMT2  PIC S9(5)V99.
           05  CNTS      USAGE IS BINARY.
               10  C1    PIC S9(4).
               10  C2    PIC S9(9).
           05  TAIL      PIC X(2).
`,
    )
    writeFileSync(
      join(dir, 'spec.yaml'),
      `version: 1
name: group-usage
source: { topic: group-usage, format: fixed, encoding: latin1, copybook: rec.cpy }
fields:
  rec_id: { type: string }
  amt1:   { type: decimal, scale: 2 }
  amt2:   { type: decimal, scale: 2 }
  c1:     { type: integer }
  c2:     { type: integer }
  tail:   { type: string }
`,
    )
    const one = Buffer.from('523030311234567d0076540cfb2e075bcd155a5a', 'hex')
    writeFileSync(join(dir, 'REC.DAT'), Buffer.concat([one, one]))
    const r = await runCli(['normalize', 'fixed:REC.DAT?copybook=rec.cpy&encoding=latin1', '--spec', 'spec.yaml', '--out', 'out.ndjson', '--rejects', 'rej.ndjson', '--json'], {cwd: dir})
    expect(r.code, r.stderr).toBe(0)
    expect(r.json).toMatchObject({read: 2, ok: 2, rejected: {}})
    const rec = {rec_id: 'R001', amt1: '-12345.67', amt2: '765.40', c1: '-1234', c2: '123456789', tail: 'ZZ'}
    expect(lines(readFileSync(join(dir, 'out.ndjson'), 'utf8')).map((l) => JSON.parse(l))).toEqual([rec, rec])
  })
})
