/**
 * A sink's `reject_sqlstates`: SQLSTATEs besides classes 22 and 23 by which its table refuses
 * one row, typically a trigger's `RAISE EXCEPTION` (P0001). Against the real broker and
 * PostgreSQL: `stream run` dead-letters the refused rows as SINK_REJECTED with the trigger's
 * message (read back with kcat) and commits the rest; without the option the same error is an
 * outage (the batch is retried, nothing dead-lettered); a trigger that raises at the end of the
 * statement (AFTER ROW) and one on the aggregate table are isolated too; and the spec refuses
 * codes that are never about one row.
 */
import {readFileSync, writeFileSync} from 'node:fs'
import {describe, expect, it} from 'vitest'
import {compareWithExpected, readSinkState} from '../../fixtures/generator/pipeline.js'
import {expectedState, generateTransactions} from '../../fixtures/generator/transactions.js'
import {parseSpec} from '../../src/config/spec.js'
import {SpecError} from '../../src/errors.js'
import {commitBatch} from '../../src/runtime/batch.js'
import type {StreamRunResult} from '../../src/runtime/run.js'
import {kcatConsume, runCli} from '../helpers.js'
import {batchFixture, fromGenerated, produce, sleep, startStream, streamFixture, type ProducedMessage} from './stream-support.js'

/** A BEFORE (or AFTER) ROW trigger on `table` refusing the rows whose `column` is `value`, with PL/pgSQL's default SQLSTATE P0001. */
function refusingTrigger(table: string, column: string, value: string, when: 'BEFORE' | 'AFTER' = 'BEFORE'): string[] {
  const fn = `${table.replace(/"/g, '').replace(/\./g, '_')}_refuse`
  return [
    `CREATE FUNCTION ${table.split('.')[0]}.${fn}() RETURNS trigger LANGUAGE plpgsql AS $$
     BEGIN
       IF NEW.${column}::text = '${value}' THEN RAISE EXCEPTION '${column} % is on the sanctions list', NEW.${column}; END IF;
       RETURN NEW;
     END $$`,
    `CREATE TRIGGER refuse ${when} INSERT OR UPDATE ON ${table} FOR EACH ROW EXECUTE FUNCTION ${table.split('.')[0]}.${fn}()`,
  ]
}

/** A stream fixture whose txn_clean refuses merchant 'SANCTIONED LLC' by a trigger (P0001), its spec edited (`from` -> `to`). */
async function sanctionedFixture(options: {partitions: number; prefix: string}, from: string, to: string) {
  const f = await streamFixture(options)
  for (const sql of refusingTrigger(`"${f.schema}".txn_clean`, 'merchant', 'SANCTIONED LLC')) await f.pool.query(sql)
  const spec = readFileSync(f.specFile, 'utf8')
  expect(spec).toContain(from)
  writeFileSync(f.specFile, spec.replace(from, to))
  return f
}

describe('stream run: reject_sqlstates (a trigger refusing rows)', () => {
  it('rows a trigger refuses with P0001 are dead-lettered as SINK_REJECTED with its message; the rest commits', async () => {
    const f = await sanctionedFixture({partitions: 3, prefix: 'stream-p0001'}, '  - table: txn_clean\n', '  - table: txn_clean\n    reject_sqlstates: [P0001]\n')

    const txns = generateTransactions(3000, {seed: 20261205, dirty: 0.05})
    const expected = expectedState(txns)
    const sanctioned: ProducedMessage[] = [1, 2, 3].map((i) => ({
      key: `SAN-${i}`,
      value: Buffer.from(JSON.stringify({id: `SAN-${i}`, acct: 'A00001', amt: '10.00', ts: '2026-11-20T10:00:00+03:00', merchant: 'SANCTIONED LLC'})),
      headers: {'x-trace': `sanctioned-${i}`},
    }))
    // spread over the run: the first, the middle and the last message
    const messages = fromGenerated(txns)
    await produce(f.topic, [sanctioned[0]!, ...messages.slice(0, 1500), sanctioned[1]!, ...messages.slice(1500), sanctioned[2]!])

    const r = await runCli(['stream', 'run', '--spec', f.specFile, '--schema', f.schema, '--until-idle', '--idle-ms', '1500', '--json'])
    expect(r.code, r.stderr).toBe(0)
    const out = JSON.parse(r.stdout) as StreamRunResult
    const dead: Record<string, number> = {...expected.deadLettered, SINK_REJECTED: 3}
    expect(out.dead_lettered).toEqual(dead)
    expect(out.read).toBe(txns.length + 3)
    expect(out.written).toBe(expected.rows.size)
    expect(out.read).toBe(out.written + Object.values(out.dead_lettered).reduce((a, b) => a + (b ?? 0), 0) + out.duplicates)
    // the sink rows and aggregates are exactly the generator's: the sanctioned records are in neither
    expect(compareWithExpected(await readSinkState(f.pool, f.schema), expected)).toEqual([])

    const letters = kcatConsume(f.dlqTopic)
    expect(letters).toHaveLength(Object.values(dead).reduce((a, b) => a + b, 0))
    const refused = letters.filter((l) => l.headers['cutover.error.code'] === 'SINK_REJECTED')
    expect(refused.map((l) => l.key).sort()).toEqual(['SAN-1', 'SAN-2', 'SAN-3'])
    for (const l of refused) {
      expect(l.headers['cutover.error.message']).toContain('merchant SANCTIONED LLC is on the sanctions list')
      expect(l.headers['cutover.error.stage']).toBe('sink')
      expect(l.headers['x-trace']).toMatch(/^sanctioned-\d$/)
    }
  })
})

/** One sanctioned record produced, `stream run` until its batch is retried, then SIGTERM: its `batch.retry` log lines. */
async function retryLogOfSanctioned(f: Awaited<ReturnType<typeof sanctionedFixture>>): Promise<string[]> {
  const value = Buffer.from(JSON.stringify({id: 'SAN-1', acct: 'A00001', amt: '10.00', ts: '2026-11-20T10:00:00+03:00', merchant: 'SANCTIONED LLC'}))
  await produce(f.topic, [{key: 'SAN-1', value}])
  const p = startStream(f, [])
  let stderr = ''
  p.child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()))
  for (let i = 0; i < 200 && !stderr.includes('batch.retry'); i++) await sleep(100)
  p.child.kill('SIGTERM')
  await p.exited
  return stderr.split('\n').filter((l) => l.includes('"batch.retry"'))
}

describe('stream run: a trigger code not in reject_sqlstates', () => {
  it("is an outage: the batch is retried, nothing dead-lettered, and the retry's log masks the sensitive values the trigger's message holds", async () => {
    const f = await sanctionedFixture({partitions: 1, prefix: 'stream-p0001-log'}, 'merchant:   { type: string, empty_as_null: true }', 'merchant:   { type: string, empty_as_null: true, sensitive: true }')
    const retries = await retryLogOfSanctioned(f)
    expect(retries.length).toBeGreaterThan(0)
    for (const l of retries) {
      expect(l).toContain('is on the sanctions list')
      expect(l).toContain('merchant *** is on the sanctions list')
      expect(l).not.toContain('SANCTIONED')
    }
    const outbox = await f.pool.query('SELECT count(*)::int AS n FROM cutover.outbox WHERE pipeline = $1', [f.name])
    expect(outbox.rows[0]).toEqual({n: 0})
  })

  it("withholds the trigger's message from the retry's log when a sensitive timestamp may be in it, and says its SQLSTATE", async () => {
    const f = await sanctionedFixture({partitions: 1, prefix: 'stream-p0001-ts'}, 'type: timestamp, required: true,', 'type: timestamp, required: true, sensitive: true,')
    const retries = await retryLogOfSanctioned(f)
    expect(retries.length).toBeGreaterThan(0)
    for (const l of retries) {
      expect(l).toContain("SQLSTATE P0001; the database's message is withheld: it may show the sensitive field event_time")
      expect(l).not.toContain('sanctions list')
    }
  })
})

const SPEC = (rejects: string) => `fields:
  id: {type: string, required: true}
  acct: {type: string, required: true}
  amount: {type: decimal, scale: 2, required: true}
key: id
dedupe: {by: id}
sinks:
  - table: t${rejects}
  - table: agg
    group_by: [acct]
    aggregates: {n: count, total: sum(amount)}${rejects}
`

async function setup(options: {rejects: boolean; triggers: (schema: string) => string[]}) {
  const f = await batchFixture({
    prefix: 'p0001',
    tables: (schema) => [
      `CREATE TABLE "${schema}".t (id text PRIMARY KEY, acct text NOT NULL, amount numeric(8,2) NOT NULL)`,
      `CREATE TABLE "${schema}".agg (acct text PRIMARY KEY, n bigint NOT NULL, total numeric(12,2) NOT NULL)`,
      ...options.triggers(`"${schema}"`),
    ],
    spec: SPEC(options.rejects ? '\n    reject_sqlstates: [P0001]' : ''),
  })
  const id = (o: number) => `k${String(o).padStart(4, '0')}`
  const rows = async () => (await f.pool.query<{id: string}>(`SELECT id FROM "${f.schema}".t ORDER BY id`)).rows.map((r) => r.id)
  const aggregates = async () => (await f.pool.query<{acct: string; n: string; total: string}>(`SELECT acct, n::text, total::text FROM "${f.schema}".agg ORDER BY acct`)).rows
  return {...f, id, rows, aggregates}
}

describe('reject_sqlstates in the batch transaction', () => {
  it('without it, P0001 is not a refused row: the batch fails (and is retried), nothing is dead-lettered or written', async () => {
    const s = await setup({rejects: false, triggers: (schema) => refusingTrigger(`${schema}.t`, 'amount', '13.00')})
    const batch = await s.batch(0, 0, 99, (o) => ({id: s.id(o), acct: 'A1', amount: o === 42 ? '13.00' : '1.00'}))
    await expect(commitBatch(s.deps, batch, 1)).rejects.toMatchObject({code: 'P0001', message: 'amount 13.00 is on the sanctions list'})
    expect(batch.items.filter((i) => i.status === 'dead')).toEqual([])
    expect(await s.rows()).toEqual([])
    const offsets = await s.pool.query('SELECT next_offset FROM cutover.stream_offsets WHERE pipeline = $1', [s.name])
    // the whole transaction rolled back: no offset stored for the pipeline
    expect(offsets.rows).toEqual([])
  })

  for (const when of ['BEFORE', 'AFTER'] as const) {
    it(`with it, the rows a ${when} ROW trigger refuses are isolated and dead-lettered; the upserts and aggregates of the rest commit`, async () => {
      const s = await setup({rejects: true, triggers: (schema) => refusingTrigger(`${schema}.t`, 'amount', '13.00', when)})
      const bad = [0, 42, 43, 170, 199]
      const outcome = await commitBatch(s.deps, await s.batch(0, 0, 199, (o) => ({id: s.id(o), acct: `A${o % 2}`, amount: bad.includes(o) ? '13.00' : '1.00'})), 1)
      expect(outcome).toMatchObject({kind: 'committed', next: 200n, counts: {read: 200, written: 195, dead: {SINK_REJECTED: 5}}})
      if (outcome.kind !== 'committed') throw new Error('not committed')
      const dead = outcome.items.filter((i) => i.status === 'dead')
      expect(dead.map((i) => Number(i.offset))).toEqual(bad)
      for (const i of dead) expect(i.dead!.message).toMatch(/^PostgreSQL rejected the row for t_\w+\.t: amount 13\.00 is on the sanctions list$/)
      const kept = Array.from({length: 200}, (_, o) => o).filter((o) => !bad.includes(o))
      expect(await s.rows()).toEqual(kept.map(s.id))
      const n0 = kept.filter((o) => o % 2 === 0).length
      const n1 = kept.length - n0
      expect(await s.aggregates()).toEqual([
        {acct: 'A0', n: String(n0), total: `${n0}.00`},
        {acct: 'A1', n: String(n1), total: `${n1}.00`},
      ])
    })
  }

  it("the aggregate's trigger refusing a record: that record is dead-lettered and neither its row nor its sum is written", async () => {
    const s = await setup({rejects: true, triggers: (schema) => refusingTrigger(`${schema}.agg`, 'acct', 'FROZEN')})
    const outcome = await commitBatch(s.deps, await s.batch(0, 0, 99, (o) => ({id: s.id(o), acct: o === 60 ? 'FROZEN' : 'A1', amount: '2.00'})), 1)
    expect(outcome).toMatchObject({kind: 'committed', counts: {read: 100, written: 99, dead: {SINK_REJECTED: 1}}})
    if (outcome.kind !== 'committed') throw new Error('not committed')
    expect(outcome.items.find((i) => i.status === 'dead')!.dead!.message).toMatch(/^PostgreSQL rejected the row for t_\w+\.agg: acct FROZEN is on the sanctions list$/)
    expect(await s.rows()).toEqual(Array.from({length: 100}, (_, o) => o).filter((o) => o !== 60).map(s.id))
    expect(await s.aggregates()).toEqual([{acct: 'A1', n: '99', total: '198.00'}])
  })
})

describe('reject_sqlstates in the spec', () => {
  const spec = (codes: string) => `version: 1
name: p
source: {topic: t}
fields: {id: {type: string}}
key: id
sinks:
  - table: t
    reject_sqlstates: ${codes}
`
  it('takes SQLSTATEs that may mean one row', () => {
    expect(parseSpec(spec('[P0001, U0001]'), 'p.yaml').spec.sinks[0]!.reject_sqlstates).toEqual(['P0001', 'U0001'])
    // unquoted digits are a YAML number: its five digits (01000 would be 1000 without the padding)
    expect(parseSpec(spec('[23514, 01000]'), 'p.yaml').spec.sinks[0]!.reject_sqlstates).toEqual(['23514', '01000'])
  })

  it.each([
    ['[40001]', /^p\.yaml:8:\d+: sinks\.0\.reject_sqlstates\.0: 40001 is a rollback: a serialization failure or a deadlock \(class 40\), retried/],
    ['[P0001, 57P01]', /reject_sqlstates\.1: 57P01 is an operator intervention/],
    ['[42501]', /42501 is a syntax error or a missing privilege/],
    ['[p0001]', /expected a 5-character SQLSTATE, e\.g\. P0001/],
  ])('refuses %s, naming the entry and why', (codes, message) => {
    let error: unknown
    try {
      parseSpec(spec(codes), 'p.yaml')
    } catch (e) {
      error = e
    }
    expect(error).toBeInstanceOf(SpecError)
    expect(`${(error as SpecError).message} ${JSON.stringify(error)}`).toMatch(message)
  })
})
