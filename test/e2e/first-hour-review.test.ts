/**
 * What an engineer types on day one, through the built CLI:
 * - `pipeline validate --spec p.yaml` and `pipeline test --spec p.yaml cases/`: every other
 *   command takes the spec as --spec, and these said "Nonexistent flag: --spec" (exit 2);
 * - `profile` of a windows-1251 file without encoding=: the text report shows why records could
 *   not be read and the URI that reads them (it showed "unreadable: DECODE_ERROR 2" alone).
 */
import {mkdirSync, mkdtempSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import iconv from 'iconv-lite'
import {describe, expect, it, onTestFinished} from 'vitest'
import {runCli} from '../helpers.js'

const SPEC = 'fixtures/specs/card-transactions.yaml'
const CASES = 'fixtures/cases/card-transactions'

function tmp(): string {
  const dir = mkdtempSync(join(tmpdir(), 'cutover-first-hour-'))
  onTestFinished(() => rmSync(dir, {recursive: true, force: true}))
  return dir
}

describe('pipeline validate / test take --spec, as every other command', () => {
  it('validate --spec: the same result as the argument; both, or neither, is exit 2 with the usage', async () => {
    const flag = await runCli(['pipeline', 'validate', '--spec', SPEC, '--json'])
    expect(flag.code, flag.stdout + flag.stderr).toBe(0)
    const arg = await runCli(['pipeline', 'validate', SPEC, '--json'])
    expect(flag.json).toEqual(arg.json)

    const both = await runCli(['pipeline', 'validate', SPEC, '--spec', SPEC, '--json'])
    expect(both.code).toBe(2)
    expect(both.json.error).toMatchObject({code: 'USAGE', message: expect.stringMatching(/^two specs given/)})
    const none = await runCli(['pipeline', 'validate'])
    expect(none.code).toBe(2)
    expect(none.stderr).toContain('no spec given')
  })

  it('test --spec <spec> <cases>: the cases run (exit 0); a bad case is still exit 1', async () => {
    const r = await runCli(['pipeline', 'test', '--spec', SPEC, CASES, '--json'])
    expect(r.code, r.stdout + r.stderr).toBe(0)
    expect(r.json).toMatchObject({name: 'card-transactions', failed: 0})
    expect(r.json.passed).toBeGreaterThanOrEqual(2)

    const dir = tmp()
    mkdirSync(join(dir, 'one'))
    writeFileSync(join(dir, 'one', 'input.ndjson'), '{"id": "T1", "acct": "A", "amt": "1 234,50", "ts": "20.11.2026 12:15:00"}\n')
    writeFileSync(join(dir, 'one', 'expected.ndjson'), '{"txn_id": "T1", "account_id": "A", "amount": "1234.5", "currency": "RUB", "event_time": "2026-11-20T09:15:00.000Z", "merchant": null}\n')
    const bad = await runCli(['pipeline', 'test', '--spec', SPEC, dir])
    expect(bad.code).toBe(1)
    expect(bad.stdout).toContain('amount: expected "1234.5", got "1234.50"')

    const noCases = await runCli(['pipeline', 'test', '--spec', SPEC, '--json'])
    expect(noCases.code).toBe(2)
    expect(noCases.json.error.message).toBe(`no cases folder given (the spec is ${SPEC})`)
  })
})

describe('profile: records it could not read are shown, with the fix', () => {
  it('a windows-1251 file without encoding=: the reasons and the URI to give, before the columns', async () => {
    const csv = join(tmp(), 'rko.csv')
    writeFileSync(csv, iconv.encode('id;payer;amt\r\n1;ООО Ромашка;1 234,50\r\n2;;2,00\r\n3;ИП Иванов;3,00\r\n', 'windows-1251'))
    const r = await runCli(['profile', `csv:${csv}?delimiter=;`])
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout).toContain(`  DECODE_ERROR: ${csv}:2: field payer holds bytes that are not valid utf-8\n`)
    expect(r.stdout).toContain(`note: 2 record(s) hold bytes that are not UTF-8: if the source was written in another encoding, give it, e.g. csv:${csv}?delimiter=;&encoding=windows-1251`)

    // an empty file: the note, and no "fields: {}" to paste
    const empty = join(tmp(), 'empty.csv')
    writeFileSync(empty, '')
    const e = await runCli(['profile', `csv:${empty}`])
    expect(e.code, e.stderr).toBe(0)
    expect(e.stdout).toContain('note: the source has no records')
    expect(e.stdout).not.toContain('Suggested fields')
  })
})
