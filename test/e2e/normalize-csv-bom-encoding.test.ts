/**
 * `cutover normalize "csv:...?encoding=windows-1251" --json` on a file that starts with a UTF-8
 * BOM. Was: the BOM was read as windows-1251 text, the header's first column was `п»їid`, and the
 * spec's `from: id` was reported missing (SPEC_INVALID); a UTF-8 file so mislabelled had every
 * Cyrillic letter read as mojibake. Now: windows-1251 after the BOM is read right (in the main
 * thread and in normalize's worker thread); UTF-8 after it is refused with exit 2 naming the fix.
 */
import {mkdtempSync, readFileSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {describe, expect, it} from 'vitest'
import {encodeString} from '../../src/normalize/encoding.js'
import {runCli} from '../helpers.js'

const SPEC = `version: 1
name: csv-bom-encoding
source: {topic: unused, group: unused, format: json}
fields:
  id: {from: id, type: string, required: true}
  name: {from: name, type: string}
key: id
dlq: {topic: unused.dlq}
`
const BOM = Buffer.from([0xef, 0xbb, 0xbf])
const TEXT = 'id;name\r\n1;Иван\r\n2;Пётр\r\n'

describe('normalize: a csv: file of encoding=windows-1251 that starts with a UTF-8 BOM', () => {
  it('windows-1251 after the BOM: read right, in the main thread and the worker; UTF-8 after it: exit 2 before any record', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cutover-csv-bom-'))
    const spec = join(dir, 'spec.yaml')
    writeFileSync(spec, SPEC)
    writeFileSync(join(dir, 'cp.csv'), Buffer.concat([BOM, encodeString(TEXT, 'windows-1251')]))
    writeFileSync(join(dir, 'utf8.csv'), Buffer.concat([BOM, Buffer.from(TEXT)]))
    const run = (file: string, threads: string) =>
      runCli(['normalize', `csv:${join(dir, file)}?delimiter=;&encoding=windows-1251`, '--spec', spec, '--out', join(dir, `${file}-${threads}.ndjson`), '--json'], {
        env: {CUTOVER_NORMALIZE_THREADS: threads},
      })
    const [single, worker, mislabelled] = await Promise.all([run('cp.csv', '0'), run('cp.csv', '1'), run('utf8.csv', '1')])
    for (const [r, threads] of [
      [single, '0'],
      [worker, '1'],
    ] as const) {
      expect(r.code, r.stdout + r.stderr).toBe(0)
      expect(r.json).toMatchObject({read: 2, ok: 2, rejected: {}})
      const out = readFileSync(join(dir, `cp.csv-${threads}.ndjson`), 'utf8')
      expect(out.trimEnd().split('\n').map((l) => JSON.parse(l) as unknown)).toEqual([
        {id: '1', name: 'Иван'},
        {id: '2', name: 'Пётр'},
      ])
    }
    expect(mislabelled.code, mislabelled.stdout + mislabelled.stderr).toBe(2)
    const error = (mislabelled.json as {error: {code: string; message: string; hint: string}}).error
    expect(error.code).toBe('USAGE')
    expect(error.message).toContain(`${join(dir, 'utf8.csv')}: starts with a UTF-8 byte order mark (EF BB BF) and is UTF-8 text after it, not windows-1251`)
    expect(error.hint).toBe('drop encoding= from the source, or give encoding=utf-8')
  })
})
