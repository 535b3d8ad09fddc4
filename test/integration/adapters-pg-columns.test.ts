/**
 * pg: results whose column names collide (a join's a.id, b.id) would keep one value per name and
 * feed a field the other column without a word; normalize refuses them (exit 2) naming the column.
 */
import {mkdtempSync, readFileSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {describe, expect, it} from 'vitest'
import {runCli, settings} from '../helpers.js'

const SPEC = `version: 1
name: pg-columns
source: { topic: pg-columns }
fields:
  id:  { type: string, required: true }
  amt: { type: decimal, scale: 2 }
`

describe('pg: columns of one name', () => {
  it('normalize exits 2 naming the column, and reads the query once its columns have distinct names', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cutover-pg-columns-'))
    writeFileSync(join(dir, 'spec.yaml'), SPEC)
    const env = {DATABASE_URL: settings().databaseUrl}
    const query = (select: string) => `pg:query=SELECT ${select} FROM (VALUES ('A1', 'B1', 1.5), ('A2', 'B2', 2)) v(a, b, amt)`
    const bad = await runCli(['normalize', query('a AS id, b AS id, amt'), '--spec', 'spec.yaml', '--out', 'out.ndjson', '--json'], {cwd: dir, env})
    expect(bad.code, bad.stdout + bad.stderr).toBe(2)
    expect((bad.json as {error: {message: string; hint: string}}).error.message).toContain('more than one column named id')

    const good = await runCli(['normalize', query('a AS id, b AS other_id, amt'), '--spec', 'spec.yaml', '--out', 'out.ndjson', '--json'], {cwd: dir, env})
    expect(good.code, good.stderr).toBe(0)
    expect(good.json).toMatchObject({read: 2, ok: 2})
    const out = readFileSync(join(dir, 'out.ndjson'), 'utf8').trim().split('\n').map((l) => JSON.parse(l))
    expect(out).toEqual([
      {id: 'A1', amt: '1.50'},
      {id: 'A2', amt: '2.00'},
    ])
  })
})
