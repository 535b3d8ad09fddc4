/**
 * Day-one defects of the source readers, through the built CLI (run `npm run build` first):
 *
 * - a csv: source without delimiter= whose header is one column holding ";", a tab or "|" is
 *   refused (exit 2, USAGE) by every command that reads csv, naming the delimiter and the
 *   source URI with delimiter= added (its other parameters kept); it used to read every record
 *   as SCHEMA_VIOLATION with exit 0 (normalize) or as one column named `id;acct;amt` (profile);
 * - an unknown source parameter names the nearest known one ("did you mean") and lists them;
 * - a kafka: source with the broker down fails at start with one quick connection attempt
 *   (exit 3 naming the broker and KAFKA_BROKERS), not after the resilient client's ~30 s of
 *   retries. The time is not asserted (no time limits in tests); the attempts are counted.
 */
import {existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync} from 'node:fs'
import {createServer, type Server} from 'node:net'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {afterAll, describe, expect, it} from 'vitest'
import {createTestTopic, kcatConsume, runCli, type CliResult} from '../helpers.js'

const dir = mkdtempSync(join(tmpdir(), 'cutover-adapters-day-one-'))
afterAll(() => rmSync(dir, {recursive: true, force: true}))

function cli(args: string[], env: Record<string, string> = {}): Promise<CliResult> {
  return runCli(args, {cwd: dir, env})
}

const SPEC = [
  'version: 1',
  'name: adapters-day-one',
  'source:',
  '  topic: adapters-day-one.raw',
  'fields:',
  '  txn_id: { from: id, type: string, required: true }',
  '  acct: { from: acct, type: string }',
  '  amount: { from: amt, type: decimal, scale: 2 }',
  'key: txn_id',
  '',
].join('\n')

writeFileSync(join(dir, 'spec.yaml'), SPEC)
// legacy exports: ";" with decimal commas (every row also holds a ","), a tab, "|"
writeFileSync(join(dir, 'semi.csv'), 'id;acct;amt\nT1;A1;12,50\nT2;A2;3,10\n')
writeFileSync(join(dir, 'tab.csv'), 'id\tacct\tamt\nT1\tA1\t12,50\n')
writeFileSync(join(dir, 'pipe.csv'), 'id|acct|amt\nT1|A1|12.50\n')
writeFileSync(join(dir, 'comma.csv'), 'id,acct,amt\nT1,A1,12.50\n')

/** The usage error of a refused csv source, --json: code, message, hint and the fixed URI. */
function expectDelimiterRefused(r: CliResult, o: {source: string; shown: string; fixed: string}): void {
  expect(r.code, r.stdout + r.stderr).toBe(2)
  expect(r.json?.error, r.stdout).toBeDefined()
  expect(r.json.error.code).toBe('USAGE')
  expect(r.json.error.message).toBe(`source "${o.source}": its header is one column with ${o.shown} in it (3 columns when split at ${o.shown}): the file is delimited by ${o.shown}, not by "," (the default without delimiter=)`)
  expect(r.json.error.hint).toContain(`add delimiter=${o.fixed.split('delimiter=')[1]} to the source: ${o.fixed} `)
  expect(r.json.error.source_fixed).toBe(o.fixed)
}

describe('adapters day one: a csv whose delimiter is not given', () => {
  it('normalize: ";" with decimal commas, a tab, "|": exit 2 naming the delimiter and the URI to use, nothing written; that URI then reads every record', async () => {
    const cases = [
      {source: 'csv:semi.csv', shown: '";"', fixed: 'csv:semi.csv?delimiter=;'},
      {source: 'csv:semi.csv?encoding=utf-8&skip_empty_lines=true', shown: '";"', fixed: 'csv:semi.csv?encoding=utf-8&skip_empty_lines=true&delimiter=;'},
      {source: 'csv:tab.csv', shown: 'a tab', fixed: 'csv:tab.csv?delimiter=tab'},
      {source: 'csv:pipe.csv?encoding=latin1', shown: '"|"', fixed: 'csv:pipe.csv?encoding=latin1&delimiter=|'},
    ]
    for (const c of cases) {
      const out = `clean-${cases.indexOf(c)}.ndjson`
      const r = await cli(['normalize', c.source, '--spec', 'spec.yaml', '--out', out, '--json'])
      expectDelimiterRefused(r, c)
      expect(existsSync(join(dir, out)), c.source).toBe(false)
      if (c.source === 'csv:semi.csv') continue // the next case reads the same file
      // the URI the error gives is the one that works
      const ok = await cli(['normalize', r.json.error.source_fixed, '--spec', 'spec.yaml', '--out', out, '--json'])
      expect(ok.code, ok.stdout + ok.stderr).toBe(0)
      expect(ok.json.read, c.source).toBeGreaterThan(0)
      expect(ok.json).toMatchObject({ok: ok.json.read, rejected: {}})
    }
    const lines = readFileSync(join(dir, 'clean-1.ndjson'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as unknown)
    expect(lines).toEqual([
      {txn_id: 'T1', acct: 'A1', amount: '12.50'},
      {txn_id: 'T2', acct: 'A2', amount: '3.10'},
    ])
    // without --json: the same, on stderr
    const plain = await cli(['normalize', 'csv:semi.csv', '--spec', 'spec.yaml', '--out', 'plain.ndjson'])
    expect(plain.code).toBe(2)
    expect(plain.stderr).toContain('the file is delimited by ";", not by ","')
    expect(plain.stderr).toContain('add delimiter=; to the source: csv:semi.csv?delimiter=;')
  })

  it('profile, parity check (either side) and backfill refuse it too; backfill sends nothing', async () => {
    const semi = {source: 'csv:semi.csv', shown: '";"', fixed: 'csv:semi.csv?delimiter=;'}
    // profile used to report one column named "id;acct;amt", exit 0
    expectDelimiterRefused(await cli(['profile', 'csv:semi.csv', '--json']), semi)
    expectDelimiterRefused(await cli(['parity', 'check', '--left', 'csv:semi.csv', '--right', 'csv:semi.csv?delimiter=;', '--key', 'id', '--no-ledger', '--json']), semi)
    expectDelimiterRefused(await cli(['parity', 'check', '--left', 'csv:semi.csv?delimiter=;', '--right', 'csv:semi.csv', '--key', 'id', '--no-ledger', '--json']), semi)
    expectDelimiterRefused(await cli(['backfill', '--from', 'csv:semi.csv', '--to', 'adapters-day-one.none', '--spec', 'spec.yaml', '--dry-run', '--json']), semi)
    const topic = await createTestTopic({prefix: 'adapters-day-one'})
    expectDelimiterRefused(await cli(['backfill', '--from', 'csv:semi.csv', '--to', topic, '--id', `${topic}-bf`, '--json']), semi)
    expect(kcatConsume(topic)).toEqual([])
  })

  it('what is not refused: a "," file, delimiter= given (delimiter=, reads the one column as it is), header=false', async () => {
    const comma = await cli(['profile', 'csv:comma.csv', '--json'])
    expect(comma.code, comma.stdout + comma.stderr).toBe(0)
    expect(comma.json.columns.map((c: {name: string}) => c.name)).toEqual(['id', 'acct', 'amt'])
    const asIs = await cli(['profile', 'csv:pipe.csv?delimiter=,', '--json'])
    expect(asIs.code, asIs.stdout + asIs.stderr).toBe(0)
    expect(asIs.json.columns.map((c: {name: string}) => c.name)).toEqual(['id|acct|amt'])
    // no header, so nothing to tell the delimiter by: read as the URI says
    const noHeader = await cli(['profile', 'csv:pipe.csv?header=false&columns=line', '--json'])
    expect(noHeader.code, noHeader.stdout + noHeader.stderr).toBe(0)
    expect(noHeader.json.rows).toBe(2)
  })
})

describe('adapters day one: an unknown source parameter', () => {
  it('exit 2 naming the nearest known parameter and listing the scheme\'s', async () => {
    const cases: {args: string[]; name: string; near?: string; takes: string}[] = [
      {args: ['normalize', 'csv:semi.csv?delimter=;', '--spec', 'spec.yaml', '--out', 'x.ndjson'], name: 'delimter', near: 'delimiter', takes: 'csv: takes delimiter, quote, escape, encoding, header, columns, skip_empty_lines, comment, max_record_bytes'},
      {args: ['profile', 'kafka:txn.raw?form=2026-11-01T00:00:00Z'], name: 'form', near: 'from', takes: 'kafka: takes from, to, format, encoding'},
      {args: ['profile', 'pg:legacy.t?were=id>1'], name: 'were', near: 'where', takes: 'pg: takes query, where, order_by, key, batch_size'},
      {args: ['profile', 'fixed:T.DAT?Copybok=t.cpy'], name: 'Copybok', near: 'copybook', takes: 'fixed: takes copybook, encoding, record_length, rdw'},
      {args: ['parity', 'check', '--left', 'csv:comma.csv?encodng=utf-8', '--right', 'csv:comma.csv', '--key', 'id', '--no-ledger'], name: 'encodng', near: 'encoding', takes: 'csv: takes'},
      // nothing near: the list alone; a name of Object.prototype is no parameter either
      {args: ['profile', 'csv:semi.csv?bogus=1'], name: 'bogus', takes: 'csv: takes delimiter,'},
      {args: ['profile', 'csv:semi.csv?toString=1'], name: 'toString', takes: 'csv: takes delimiter,'},
    ]
    for (const c of cases) {
      const r = await cli([...c.args, '--json'])
      expect(r.code, r.stdout + r.stderr).toBe(2)
      expect(r.json.error.code).toBe('USAGE')
      expect(r.json.error.message).toContain(`unknown parameter "${c.name}"`)
      expect(r.json.error.hint).toContain(c.takes)
      if (c.near) {
        expect(r.json.error.message).toContain(`(did you mean "${c.near}"?)`)
        expect(r.json.error.hint).toContain(`write ${c.near}=, not ${c.name}=`)
        expect(r.json.error.did_you_mean).toBe(c.near)
      } else {
        expect(r.json.error.message).not.toContain('did you mean')
        expect(r.json.error.did_you_mean).toBeUndefined()
      }
    }
    const plain = await cli(['profile', 'csv:semi.csv?delimter=;'])
    expect(plain.code).toBe(2)
    expect(plain.stderr).toContain('unknown parameter "delimter" for csv: (did you mean "delimiter"?)')
  })
})

/** A port nothing listens on (taken from the system, then released). */
async function closedPort(): Promise<number> {
  const s = createServer()
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve))
  const port = (s.address() as {port: number}).port
  await new Promise<void>((resolve) => s.close(() => resolve()))
  return port
}

describe('adapters day one: a kafka: source with the broker down', () => {
  it('normalize, profile and parity check: exit 3 naming the broker and KAFKA_BROKERS', async () => {
    const address = `127.0.0.1:${await closedPort()}`
    const runs = [
      ['normalize', 'kafka:adapters-day-one.raw', '--spec', 'spec.yaml', '--out', 'k.ndjson'],
      ['profile', 'kafka:adapters-day-one.raw'],
      ['parity', 'check', '--left', 'csv:comma.csv', '--right', 'kafka:adapters-day-one.raw', '--key', 'id', '--no-ledger'],
    ]
    for (const args of runs) {
      const r = await cli([...args, '--json'], {KAFKA_BROKERS: address})
      expect(r.code, `${args[0]}: ${r.stdout}${r.stderr}`).toBe(3)
      expect(r.json.error).toMatchObject({code: 'SERVICE_UNAVAILABLE', service: 'kafka', address})
      expect(r.json.error.message).toContain(`kafka at ${address} is unreachable`)
      expect(r.json.error.hint).toContain('KAFKA_BROKERS')
    }
    const plain = await cli(['profile', 'kafka:adapters-day-one.raw'], {KAFKA_BROKERS: address})
    expect(plain.code).toBe(3)
    expect(plain.stderr).toContain(`kafka at ${address} is unreachable`)
  })

  it('one connection attempt, not the resilient client\'s retries: a "broker" that resets every connection is tried once', async () => {
    let attempts = 0
    const server: Server = createServer((socket) => {
      attempts++
      socket.resetAndDestroy() // an RST, always (a plain close races the client's first request: FIN or RST)
    })
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    const address = `127.0.0.1:${(server.address() as {port: number}).port}`
    try {
      const r = await cli(['profile', 'kafka:adapters-day-one.raw', '--json'], {KAFKA_BROKERS: address})
      expect(r.code, r.stdout + r.stderr).toBe(3)
      expect(r.json.error).toMatchObject({code: 'SERVICE_UNAVAILABLE', service: 'kafka', address})
      expect(r.json.error.hint).toContain('KAFKA_BROKERS')
      // the resilient client (retries: 8) would connect 9 times, over ~30 s
      expect(attempts).toBe(1)
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()))
    }
  })
})
