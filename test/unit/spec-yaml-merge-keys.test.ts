/**
 * A spec whose fields share options through a YAML anchor and merge key (`<<: *text`), as
 * engineers write in docker-compose files and CI configs: it was refused with `unknown key
 * "<<"` and `missing required key "type"` on every field that used it. An alias naming no
 * anchor pointed at line 1.
 */
import {describe, expect, it} from 'vitest'
import {checkSpec} from '../../src/config/spec.js'

const MERGED = `version: 1
name: merged
source: {topic: t}
fields:
  txn_id:  &text { type: string, trim: true, empty_as_null: true }
  account: { <<: *text, from: acct, required: true }
  note:    *text
key: txn_id
`

describe('pipeline spec: YAML anchors and merge keys', () => {
  it('a field merging an anchored mapping gets its keys; its own keys win', () => {
    const r = checkSpec(MERGED, 'm.yaml')
    expect(r.problems).toEqual([])
    expect(r.spec!.fields.account).toMatchObject({type: 'string', trim: true, empty_as_null: true, required: true, from: 'acct'})
    expect(r.spec!.fields.note).toMatchObject({type: 'string', trim: true, from: 'note', required: false})
  })

  it('a typo beside a merge key is reported at its line, nothing about "<<"', () => {
    const r = checkSpec(MERGED.replace('required: true', 'requried: true'), 'm.yaml')
    expect(r.problems).toHaveLength(1)
    expect(r.problems[0]).toMatchObject({line: 6, path: 'fields.account.requried', message: expect.stringMatching(/did you mean "required"/)})
  })

  it('an alias naming no anchor is reported at its own line', () => {
    const r = checkSpec(MERGED.replace('<<: *text', '<<: *txt'), 'm.yaml')
    expect(r.problems).toEqual([{file: 'm.yaml', line: 6, column: 18, path: '', message: 'YAML: alias *txt names no anchor set before it (&txt)'}])
  })
})
