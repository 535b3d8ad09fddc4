/**
 * Sensitive fields in the dead letters of rows the database refuses (SINK_REJECTED) and of
 * conflicting repeats (DUPLICATE_CONFLICT), against the real PostgreSQL: its texts show values of
 * the row (a CHECK's "Failing row contains (...)", a unique index's "Key (pan)=(...)"), and a
 * field marked `sensitive` is masked there as everywhere else (src/runtime/sinks/sensitive.ts).
 */
import {describe, expect, it} from 'vitest'
import {parseSpec} from '../../src/config/spec.js'
import {commitBatch} from '../../src/runtime/batch.js'
import {batchTextMasker, rowTextMasker} from '../../src/runtime/sinks/sensitive.js'
import {decodeStage} from '../../src/runtime/stages/decode.js'
import type {PipelineContext, WorkItem} from '../../src/runtime/types.js'
import {silentLogger} from '../../src/log.js'
import {batchFixture} from './stream-support.js'

const PAN = '4111111111111111'
const OTHER_PAN = '5500000000000004'

async function setup(spec: string) {
  const f = await batchFixture({
    prefix: 'sensitive',
    tables: (schema) => [
      `CREATE TABLE "${schema}".t (id text PRIMARY KEY, pan text NOT NULL UNIQUE, amount numeric(12,4) NOT NULL CHECK (amount >= 0), born date CHECK (born > '1900-01-01'))`,
    ],
    spec,
  })
  const deadOf = async (records: Record<string, string>[]) => {
    const outcome = await commitBatch(f.deps, await f.batch(0, 0, records.length - 1, (o) => ({...records[o]!, id: records[o]!.id!})), 1)
    if (outcome.kind !== 'committed') throw new Error(`not committed: ${outcome.kind}`)
    return outcome.items.filter((i) => i.status === 'dead').map((i) => ({offset: Number(i.offset), code: i.dead!.code, message: i.dead!.message}))
  }
  return {...f, deadOf}
}

const spec = (sensitive: {pan?: boolean; amount?: boolean; born?: boolean}, dedupeBy = 'id') => `fields:
  id: {type: string, required: true}
  pan: {type: string, required: true, sensitive: ${sensitive.pan ?? false}}
  amount: {type: decimal, scale: 2, required: true, sensitive: ${sensitive.amount ?? false}}
  born: {type: date, sensitive: ${sensitive.born ?? false}}
key: id
dedupe: {by: ${dedupeBy}}
sinks: [{table: t}]
`

describe('SINK_REJECTED and sensitive fields', () => {
  it("a CHECK's failing row and a unique index's key are shown with the sensitive values masked", async () => {
    const s = await setup(spec({pan: true, amount: true}))
    const dead = await s.deadOf([
      {id: 'a', pan: PAN, amount: '-1.50'}, // CHECK (amount >= 0): the detail is the whole row
      {id: 'b', pan: OTHER_PAN, amount: '2.00'},
      {id: 'c', pan: OTHER_PAN, amount: '3.00'}, // the unique index on pan, met by b
    ])
    expect(dead.map((d) => [d.offset, d.code])).toEqual([
      [0, 'SINK_REJECTED'],
      [2, 'SINK_REJECTED'],
    ])
    const [check, unique] = dead.map((d) => d.message)
    // PostgreSQL shows the row with the column's scale (-1.5000): masked too
    expect(check).toMatch(/violates check constraint "t_amount_check" \(Failing row contains \(a, 4111\*{8}1111, \*\*\*, null\)\.\)$/)
    expect(unique).toMatch(/violates unique constraint "t_pan_key" \(Key \(pan\)=\(5500\*{8}0004\) already exists\.\)$/)
    for (const m of [check, unique]) {
      expect(m).not.toContain(PAN)
      expect(m).not.toContain(OTHER_PAN)
      expect(m).not.toMatch(/1\.50/)
    }
  })

  it('without sensitive fields the texts are shown as the database wrote them', async () => {
    const s = await setup(spec({}))
    const [d] = await s.deadOf([{id: 'a', pan: PAN, amount: '-1.50'}])
    expect(d!.message).toContain(`(Failing row contains (a, ${PAN}, -1.5000, null).)`)
  })

  it("a sensitive date, which PostgreSQL shows in its own format: the database's texts are withheld, the constraint and SQLSTATE said", async () => {
    const s = await setup(spec({born: true}))
    const [d] = await s.deadOf([{id: 'a', pan: PAN, amount: '1.00', born: '1899-12-31'}])
    expect(d!.message).toMatch(/^PostgreSQL rejected the row for t_\w+\.t: constraint "t_born_check", SQLSTATE 23514; the database's message is withheld: it may show the sensitive field born$/)
    expect(d!.message).not.toContain('1899')
  })

  it('DUPLICATE_CONFLICT names a sensitive dedupe key masked', async () => {
    const s = await setup(spec({pan: true}, 'pan'))
    const dead = await s.deadOf([
      {id: 'a', pan: PAN, amount: '1.00'},
      {id: 'b', pan: PAN, amount: '2.00'},
    ])
    expect(dead).toEqual([{offset: 1, code: 'DUPLICATE_CONFLICT', message: 'pan "4111********1111" was already seen earlier in the same batch with a different payload'}])
  })
})

describe('DECODE_ERROR and sensitive fields', () => {
  const notJson = (sensitive: boolean) => {
    const loaded = parseSpec(spec({pan: sensitive}).replace(/^/, 'version: 1\nname: p\nsource: {topic: t}\n'), 'p.yaml')
    const ctx: PipelineContext = {loaded, pipeline: 'p', schema: 'public', maxRecordBytes: 1 << 20, dedupeRetentionMs: 1000, logger: silentLogger}
    const value = Buffer.from(`{"id":"T1","pan":"${PAN}","amount":`)
    const item = {message: {key: null, value, timestamp: '0', attributes: 0, offset: '0', headers: {}}, topic: 't', partition: 0, offset: 0n, status: 'ok'} as WorkItem
    void decodeStage(ctx).run([item], null)
    return item.dead!
  }

  it('a value that is not JSON is not quoted when the spec has a sensitive field', () => {
    expect(notJson(true)).toMatchObject({code: 'DECODE_ERROR', message: 'the value is not JSON (45 bytes, not quoted: the spec has sensitive fields)'})
    expect(notJson(false)).toMatchObject({code: 'DECODE_ERROR', message: `the value is not JSON: "{"id":"T1","pan":"${PAN}","amo…"`})
  })
})

describe('rowTextMasker', () => {
  const fields = parseSpec(`version: 1
name: p
source: {topic: t}
fields:
  code: {type: string, sensitive: true}
  n: {type: integer, sensitive: true}
  amt: {type: decimal, scale: 2, sensitive: true}
  note: {type: string}
`, 'p.yaml').spec.fields
  const mask = rowTextMasker(fields)!

  it('masks whole tokens only, numbers with the zeros a scale adds, and leaves the rest', () => {
    const out = mask({message: 'm', detail: 'Failing row contains (AB12, XAB12, 42, 420, 7.10, 7.1000, 17.10, plain).'}, {code: 'AB12', n: '42', amt: '7.10', note: 'plain'}, {})
    expect(out.detail).toBe('Failing row contains (***, XAB12, ***, 420, ***, ***, 17.10, plain).')
  })

  it('withholds the texts when the record is unknown', () => {
    expect(mask({message: 'x AB12'}, undefined, {code: '23514', constraint: 'c'}).message).toBe("constraint \"c\", SQLSTATE 23514; the database's message is withheld: it may show the sensitive fields code, n, amt")
  })

  it('is undefined for a spec without sensitive fields', () => {
    expect(rowTextMasker({note: fields.note!})).toBeUndefined()
  })
})

describe('batchTextMasker', () => {
  const fields = parseSpec(spec({pan: true, amount: true, born: true}).replace(/^/, 'version: 1\nname: p\nsource: {topic: t}\n'), 'p.yaml').spec.fields
  it("masks the batch's sensitive strings and numbers where they occur, and keeps the rest of the text", () => {
    const mask = batchTextMasker(fields)!
    const records = [{id: 'a', pan: PAN, amount: '7.10', born: null}, {id: 'b', pan: OTHER_PAN, amount: '3.00', born: '1980-01-02'}, undefined]
    expect(mask(`card ${PAN} refused (limit 7.1000, a)`, records)).toBe('card 4111********1111 refused (limit ***, a)')
    expect(mask('connect ECONNREFUSED 127.0.0.1:5432', records)).toBe('connect ECONNREFUSED 127.0.0.1:5432')
  })

  it("withholds a database text about the rows (not an outage's) when a sensitive field cannot be found in it; undefined without sensitive fields", () => {
    const mask = batchTextMasker({born: fields.born!, amount: fields.amount!})!
    const records = [{id: 'a', pan: PAN, amount: '7.10', born: '1980-01-02'}]
    // a trigger's RAISE (P0001) may show the date in any format
    expect(mask('born 02.01.1980 is too early', records, 'P0001')).toBe("SQLSTATE P0001; the database's message is withheld: it may show the sensitive field born")
    // outages and retries of the transaction say nothing of the rows: kept (amounts still masked)
    expect(mask('terminating connection due to administrator command', records, '57P01')).toBe('terminating connection due to administrator command')
    expect(mask('could not serialize access (7.10)', records, '40001')).toBe('could not serialize access (***)')
    expect(mask('connect ECONNREFUSED 127.0.0.1:5432', records)).toBe('connect ECONNREFUSED 127.0.0.1:5432')
    // with only findable sensitive fields a text is masked, not withheld
    expect(batchTextMasker({pan: fields.pan!})!(`card ${PAN} refused`, records, 'P0001')).toBe('card 4111********1111 refused')
    expect(batchTextMasker({id: fields.id!})).toBeUndefined()
  })
})
