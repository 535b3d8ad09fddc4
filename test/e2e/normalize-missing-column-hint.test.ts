/**
 * The hint of a spec field whose column the source lacks (exit 2) told every source to check its
 * `encoding=`, a pg: source too, which has no encoding= parameter. The hint now fits the scheme:
 * pg: a column's name as PostgreSQL gives it (case folding; the column of the same name in
 * another case named as the `from:` to write; an expression of query= named with AS), csv: the
 * header row (encoding=, delimiter=, header=false), fixed: the copybook's names.
 */
import {writeFileSync} from 'node:fs'
import {join} from 'node:path'
import {describe, expect, it} from 'vitest'
import {createTestSchema, ROOT, runCli, tempDir, testPool} from '../helpers.js'

const spec = (from: string) => `version: 1
name: cols
source: {topic: t}
fields:
  id:  { type: string, required: true }
  txn: { from: ${from}, type: string }
key: id
`

describe('normalize: the hint of a missing column fits the source', () => {
  it('pg: names the column in its case, or AS in query=; csv: encoding=, delimiter=; fixed: the copybook', async () => {
    const pool = testPool()
    const s = await createTestSchema(pool)
    await pool.query(`CREATE TABLE "${s}".t (id text PRIMARY KEY, "TxnId" text, amt numeric); INSERT INTO "${s}".t VALUES ('1', 'T1', 5)`)
    const dir = tempDir('cutover-missing-column-hint-')
    const file = join(dir, 'spec.yaml')
    const run = async (source: string, from: string) => {
      writeFileSync(file, spec(from))
      const r = await runCli(['normalize', source, '--spec', file, '--out', '/dev/null', '--json'])
      expect(r.code, r.stdout + r.stderr).toBe(2)
      expect(r.json.error).toMatchObject({code: 'SPEC_INVALID'})
      return r.json.error as {message: string; hint: string}
    }

    const cased = await run(`pg:${s}.t`, 'txnid')
    expect(cased.message).toContain('has no column txnid (field txn); its columns: id, TxnId, amt')
    expect(cased.hint).toBe("write from: TxnId (not txnid): `from:` is matched with the column's name as PostgreSQL gives it, case and all")

    const query = await run(`pg:query=SELECT id, amt * 2 FROM "${s}".t`, 'amt2')
    expect(query.message).toContain('its columns: id, ?column?')
    expect(query.hint).toContain('name an expression of query= with AS')
    expect(query.hint).toContain('folded to lower case')
    for (const h of [cased.hint, query.hint]) expect(h).not.toContain('encoding=')

    writeFileSync(join(dir, 'a.csv'), 'id;txn_id\n1;T1\n')
    const csv = await run(`csv:${join(dir, 'a.csv')}?delimiter=;`, 'txnid')
    expect(csv.hint).toContain('check encoding= of the source')
    expect(csv.hint).toContain('check delimiter=')

    const fixed = await run(`fixed:${join(ROOT, 'fixtures/legacy/TXN.DAT')}?copybook=${join(ROOT, 'fixtures/legacy/txn.cpy')}`, 'TXN-ID')
    expect(fixed.message).toContain('has no column id, TXN-ID (field txn); its columns: txn_id, acct_id')
    expect(fixed.hint).toContain('a name of the copybook (copybook=) in lower_snake_case (TXN-ID is txn_id')
    expect(fixed.hint).not.toContain('encoding=')
  })
})
