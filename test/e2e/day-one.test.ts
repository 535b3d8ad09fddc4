/**
 * A bank engineer's first day with cutover, run from a directory of their own (not the
 * repository): the mistakes a newcomer makes, and what the CLI must then say. Each answer is a
 * usage error (exit 2) that names the fix, one JSON document under --json, and never shows a
 * password. None of these needs the broker or PostgreSQL to answer: they fail before, or on a
 * closed port (exit 3).
 */
import {mkdtempSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {afterAll, describe, expect, it} from 'vitest'
import {runCli, type CliResult} from '../helpers.js'

const dir = mkdtempSync(join(tmpdir(), 'cutover-day-one-'))
const SECRET = 'Sekr3tDayOne'
afterAll(() => rmSync(dir, {recursive: true, force: true}))

function cli(args: string[], env: Record<string, string> = {}): Promise<CliResult> {
  return runCli(args, {cwd: dir, env})
}

/** One JSON document on stdout, and nothing of the secret anywhere. */
function expectOneDocument(r: CliResult): void {
  expect(r.json, r.stdout).toBeDefined()
  expect(r.stdout + r.stderr).not.toContain(SECRET)
}

const SPEC = [
  'version: 1',
  'name: day-one',
  'source:',
  '  topic: day-one.raw',
  'fields:',
  '  txn_id: { from: id, type: string, required: true }',
  '  amount: { from: amt, type: decimal, scale: 2 }',
  'key: txn_id',
  '',
].join('\n')

describe('day one: a spec with a mistake', () => {
  it('a YAML syntax error: the fix is the syntax at that line, not "the key at fault"', async () => {
    writeFileSync(join(dir, 'tabs.yaml'), 'version: 1\nname: x\nfields:\n\tid: {type: string}\n')
    const r = await cli(['pipeline', 'validate', 'tabs.yaml'])
    expect(r.code).toBe(2)
    expect(r.stderr).toContain('Error: tabs.yaml:4:1: YAML: Tabs are not allowed as indentation')
    expect(r.stderr).toContain('fix: the file is not valid YAML at the line above: fix the syntax there (indent with spaces, never tabs;')
    expect(r.stderr).not.toContain('key at fault')
    const j = await cli(['pipeline', 'validate', 'tabs.yaml', '--json'])
    expect(j.code).toBe(2)
    expectOneDocument(j)
    expect(j.json.error).toMatchObject({code: 'SPEC_INVALID', file: 'tabs.yaml', line: 4, column: 1, hint: expect.stringContaining('not valid YAML')})
  })

  it('an empty spec: the fix is to write its keys, not "the key at fault"', async () => {
    writeFileSync(join(dir, 'empty.yaml'), '')
    const j = await cli(['pipeline', 'validate', 'empty.yaml', '--json'])
    expect(j.code).toBe(2)
    expectOneDocument(j)
    expect(j.json.error).toMatchObject({
      code: 'SPEC_INVALID',
      message: 'empty.yaml:1:1: a pipeline spec is a YAML mapping (version: 1, name: ..., source: ..., fields: ...)',
      hint: 'write the spec as a YAML mapping of its keys (version: 1, name, source, fields, ...): docs/spec-reference.md lists them',
    })
  })

  it('two letters swapped in a key ("kye"): did you mean "key"', async () => {
    writeFileSync(join(dir, 'kye.yaml'), SPEC.replace('key: txn_id', 'kye: txn_id'))
    const j = await cli(['pipeline', 'validate', 'kye.yaml', '--json'])
    expect(j.code).toBe(2)
    expect(j.json.error).toMatchObject({code: 'SPEC_INVALID', line: 8, column: 1})
    expect(j.json.error.message).toBe('kye.yaml:8:1: kye: unknown key "kye" (did you mean "key"?); allowed keys: version, name, source, fields, key, event_time, dedupe, enrich, windows, rules, sinks, dlq, retry')
  })
})

describe('day one: a typo on the command line', () => {
  it('a command: did you mean it, exit 2 (text and --json)', async () => {
    const r = await cli(['stream', 'runn', '--spec', 'p.yaml'])
    expect(r.code).toBe(2)
    expect(r.stderr).toContain('command stream runn not found (did you mean stream run?)')
    expect(r.stderr).toContain('run cutover stream run --help for its flags')
    const j = await cli(['normalise', 'csv:x.csv', '--json'])
    expect(j.code).toBe(2)
    expectOneDocument(j)
    // a source URI after it (oclif's id is then normalise:csv:x.csv, and its argv lost --json)
    expect(j.json.error).toEqual({code: 'USAGE', message: 'command normalise not found (did you mean normalize?)', hint: 'run cutover normalize --help for its flags, or cutover --help for the commands'})
    expect(j.stderr).toBe('')
    const far = await cli(['nothing-like-it', '--json'])
    expect(far.json.error).toEqual({code: 'USAGE', message: 'command nothing-like-it not found', hint: 'run cutover --help for the commands'})
  })

  it('a flag: did you mean it, exit 2 (text and --json)', async () => {
    const r = await cli(['normalize', 'csv:x.csv', '--spc', 'p.yaml'])
    expect(r.code).toBe(2)
    expect(r.stderr).toContain('Nonexistent flag: --spc (did you mean --spec?)')
    const j = await cli(['status', '--grup', 'g', '--json'])
    expect(j.code).toBe(2)
    expectOneDocument(j)
    expect(j.json.error).toEqual({code: 'USAGE', message: 'Nonexistent flag: --grup (did you mean --group?)\nSee more help with --help', hint: 'see cutover status --help'})
  })

  it('a group of commands given as a command under --json: one usage error document, exit 2', async () => {
    const j = await cli(['dlq', '--json'])
    expect(j.code).toBe(2)
    expectOneDocument(j)
    expect(j.json.error).toEqual({
      code: 'USAGE',
      message: 'dlq is a group of commands, not a command: name one of dlq inspect, dlq replay, dlq republish, dlq stats',
      hint: 'put the command after dlq; cutover dlq --help says what each one does',
    })
    const help = await cli(['dlq']) // without --json: its help, as before
    expect(help.code).toBe(0)
    expect(help.stdout).toContain('dlq inspect')
  })
})

describe('day one: a csv whose delimiter is not given', () => {
  it('";" with the default ",": exit 2, and the message says to add delimiter=;', async () => {
    writeFileSync(join(dir, 'spec.yaml'), SPEC)
    writeFileSync(join(dir, 'semi.csv'), 'id;amt\nT1;10\nT2;1,50\n')
    const r = await cli(['normalize', 'csv:semi.csv', '--spec', 'spec.yaml', '--out', 'clean.ndjson'])
    expect(r.code).toBe(2)
    // the csv reader refuses the header (test/integration/adapters-day-one.test.ts has the cases)
    expect(r.stderr).toContain('the file is delimited by ";", not by ","')
    expect(r.stderr).toContain('add delimiter=; to the source: csv:semi.csv?delimiter=;')
    const j = await cli(['normalize', 'csv:semi.csv?encoding=utf-8', '--spec', 'spec.yaml', '--out', 'clean.ndjson', '--json'])
    expect(j.code).toBe(2)
    expectOneDocument(j)
    expect(j.json.error.code).toBe('USAGE')
    expect(j.json.error.hint).toContain('add delimiter=; to the source: csv:semi.csv?encoding=utf-8&delimiter=;')
    // and the advice works
    const ok = await cli(['normalize', 'csv:semi.csv?delimiter=;', '--spec', 'spec.yaml', '--out', 'clean.ndjson', '--json'])
    expect(ok.code, ok.stdout + ok.stderr).toBe(0)
    expect(ok.json).toMatchObject({read: 2, ok: 2, rejected: {}})
  })
})

describe('day one: connection settings', () => {
  it('KAFKA_BROKERS holding user:password@: exit 2, the entry not shown, the fix named', async () => {
    const env = {KAFKA_BROKERS: `bob:${SECRET}@127.0.0.1:9092`}
    const r = await cli(['dlq', 'stats', '--topic', 'x'], env)
    expect(r.code).toBe(2)
    expect(r.stdout + r.stderr).not.toContain(SECRET)
    expect(r.stderr).toContain('a KAFKA_BROKERS entry holds "@": credentials do not go in KAFKA_BROKERS')
    expect(r.stderr).toContain('KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD')
    const j = await cli(['dlq', 'stats', '--topic', 'x', '--json'], env)
    expect(j.code).toBe(2)
    expectOneDocument(j)
    expect(j.json.error.code).toBe('USAGE')
  })

  it('KAFKA_BROKERS with a listener scheme: the hint gives the entry without it', async () => {
    const j = await cli(['dlq', 'stats', '--topic', 'x', '--json'], {KAFKA_BROKERS: 'SASL_SSL://127.0.0.1:9093'})
    expect(j.code).toBe(2)
    expect(j.json.error.hint).toContain('drop the "SASL_SSL://": KAFKA_BROKERS=127.0.0.1:9093')
  })

  it('DATABASE_URL without postgres://: exit 2 saying so, never the address garbled nor the password', async () => {
    for (const url of [`bob:${SECRET}@127.0.0.1:5432/cutover`, 'localhost:5432/cutover']) {
      const j = await cli(['parity', 'report', '--json'], {DATABASE_URL: url})
      expect(j.code, url).toBe(2)
      expectOneDocument(j)
      expect(j.json.error).toMatchObject({code: 'USAGE', message: expect.stringContaining('DATABASE_URL does not start with postgres://')})
      expect(j.json.error.hint).toContain('postgres://user@host:port/database')
    }
  })

  it('CUTOVER_LEFT/RIGHT_DATABASE_URL of parity check are checked as DATABASE_URL is: exit 2 naming the variable, no piece of the password', async () => {
    const args = ['parity', 'check', '--left', 'pg:public.a', '--right', 'pg:public.b', '--key', 'id', '--no-ledger', '--json']
    const cases: [string, string, string][] = [
      ['CUTOVER_LEFT_DATABASE_URL', `bob:${SECRET}@127.0.0.1:5432/cutover`, 'CUTOVER_LEFT_DATABASE_URL does not start with postgres://'],
      ['CUTOVER_RIGHT_DATABASE_URL', `postgres://bob:p@${SECRET}/x@127.0.0.1:5432/cutover`, 'CUTOVER_RIGHT_DATABASE_URL has an "@" after its host'],
    ]
    for (const [name, url, message] of cases) {
      const j = await cli(args, {[name]: url})
      expect(j.code, name).toBe(2)
      expectOneDocument(j)
      expect(j.json.error).toMatchObject({code: 'USAGE', message: expect.stringContaining(message)})
    }
  })

  it('an unreachable broker or database with a password set: exit 3 naming it, no password anywhere', async () => {
    const kafka = {KAFKA_BROKERS: '127.0.0.1:1', KAFKA_SASL_MECHANISM: 'scram-sha-256', KAFKA_SASL_USERNAME: 'bob', KAFKA_SASL_PASSWORD: SECRET}
    const k = await cli(['dlq', 'stats', '--topic', 'x', '--json', '--log-level', 'debug'], kafka)
    expect(k.code).toBe(3)
    expectOneDocument(k)
    expect(k.json.error).toMatchObject({code: 'SERVICE_UNAVAILABLE', service: 'kafka', address: '127.0.0.1:1'})
    const pg = await cli(['parity', 'report', '--log-level', 'debug'], {DATABASE_URL: `postgres://bob:${SECRET}@127.0.0.1:1/cutover`})
    expect(pg.code).toBe(3)
    expect(pg.stdout + pg.stderr).not.toContain(SECRET)
    expect(pg.stderr).toContain('postgresql at 127.0.0.1:1/cutover is unreachable')
  })
})
