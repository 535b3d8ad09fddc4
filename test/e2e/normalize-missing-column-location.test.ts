/**
 * `cutover normalize` refusing a spec field whose column the source lacks (exit 2) named only
 * the spec file: the error now points at file:line:column of the field's `from:` (of the field
 * itself when it reads its own name), as every other spec error does.
 */
import {mkdtempSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {describe, expect, it} from 'vitest'
import {runCli} from '../helpers.js'

const SPEC = `version: 1
name: cols
source: {topic: t}
fields:
  id:       { type: string, required: true }
  amount:   { from: amount_rub, type: decimal, scale: 2 }
  merchnt:  { type: string }
key: id
`

describe('normalize: a field whose column the source lacks', () => {
  it('exits 2 at the line and column of its from:, or of the field without one', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cutover-normalize-missing-column-'))
    writeFileSync(join(dir, 'a.csv'), 'id;amt;merchant\n1;1,00;Лента\n')
    const spec = join(dir, 'spec.yaml')
    writeFileSync(spec, SPEC)
    const r = await runCli(['normalize', `csv:${join(dir, 'a.csv')}?delimiter=;`, '--spec', spec, '--out', '/dev/null', '--json'])
    expect(r.code, r.stdout + r.stderr).toBe(2)
    expect(r.json.error).toMatchObject({code: 'SPEC_INVALID', file: spec, line: 6, column: 21, message: expect.stringContaining(`${spec}:6:21: `)})
    expect(r.json.error.message).toContain('has no column amount_rub (field amount), merchnt; its columns: id, amt, merchant')

    writeFileSync(spec, SPEC.replace('from: amount_rub', 'from: amt'))
    const own = await runCli(['normalize', `csv:${join(dir, 'a.csv')}?delimiter=;`, '--spec', spec, '--out', '/dev/null', '--json'])
    expect(own.code, own.stdout + own.stderr).toBe(2)
    expect(own.json.error).toMatchObject({line: 7, column: 13})
  })
})
