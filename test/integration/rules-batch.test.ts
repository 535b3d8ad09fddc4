/**
 * The rules stage inside the batch transaction (src/runtime/stages/rules.ts, batch.ts), against
 * the real PostgreSQL, without Kafka: one statement per batch claims the window instances and
 * writes the alerts to the outbox; a window rule fires once per instance across batches; a
 * `sensitive` field's value is masked in the alert (record, window key, an aggregate of it); a
 * rule reads an enrich lookup's columns.
 */
import {describe, expect, it, onTestFinished} from 'vitest'
import {commitBatch} from '../../src/runtime/batch.js'
import {toKafkaHeaders, type StoredHeaders} from '../../src/runtime/outbox.js'
import {alertsOf} from '../../src/runtime/stages/rules.js'
import {startStages} from '../../src/runtime/stages/index.js'
import {batchFixture, recordingPool} from './stream-support.js'

const SPEC = `fields:
  id: {type: string, required: true}
  card: {type: string, required: true, sensitive: true}
  amount: {type: decimal, scale: 2, required: true}
  ts: {type: timestamp, formats: [iso], required: true}
key: [id, card]
event_time: ts
dedupe: {by: id}
windows:
  - {name: w, by: card, size: 10m, aggregates: {n: count, top: max(card)}}
rules:
  - {name: repeat_card, when: "w.n > 1 and amount > 0", emit: rb.alerts}
  - {name: big, when: "amount > 1000.005", emit: rb.big}
sinks: [{table: t}]
`

describe('rules stage: in the batch transaction', () => {
  it('one statement per batch; a window rule once per instance across batches; sensitive values masked', async () => {
    const f = await batchFixture({
      prefix: 'rulesbatch',
      tables: (schema) => [`CREATE TABLE "${schema}".t (id text, card text, amount numeric(12,2) NOT NULL, ts timestamptz NOT NULL, PRIMARY KEY (id, card))`],
      spec: SPEC,
    })
    onTestFinished(async () => {
      for (const table of ['stream_offsets', 'stream_dedupe', 'outbox', 'rule_firings', 'window_state', 'window_watermarks']) await f.pool.query(`DELETE FROM cutover.${table} WHERE pipeline = $1`, [f.name])
    })
    const seen: string[] = []
    const deps = {...f.deps, pool: recordingPool(f.pool, seen)}
    const PAN = '4111111111111111'
    const rec = (o: number) => ({id: `r${o}`, card: o < 5 ? PAN : '5500000000000004', amount: o === 2 ? '1000.01' : o === 3 ? '1000.00' : '5.00', ts: `2026-11-20T10:0${o}:00Z`})
    const first = await commitBatch(deps, await f.batch(0, 0, 3, rec), 1)
    expect(first).toMatchObject({kind: 'committed', counts: {read: 4, written: 4}})
    if (first.kind !== 'committed') throw new Error('not committed')
    // offset 1 is the card's second record (w.n = 2): repeat_card fires there, once; big at offset 2 (1000.01 > 1000.005), not 3
    expect(first.items.map((i) => alertsOf(i) ?? [])).toEqual([[], ['repeat_card'], ['big'], []])
    expect(seen.filter((q) => q.includes('cutover.rule_firings'))).toHaveLength(1)

    // a later batch: the same window instance (the card's n is 3, 4) fires nothing; another card's second record fires
    const second = await commitBatch(deps, await f.batch(0, 4, 6, rec), 1)
    if (second.kind !== 'committed') throw new Error('not committed')
    expect(second.items.map((i) => alertsOf(i) ?? [])).toEqual([[], [], ['repeat_card']])

    const rows = await f.pool.query<{topic: string; key: Buffer | null; value: Buffer; headers: StoredHeaders}>('SELECT topic, key, value, headers FROM cutover.outbox WHERE pipeline = $1 ORDER BY id', [f.name])
    expect(rows.rows.map((r) => r.topic)).toEqual(['rb.alerts', 'rb.big', 'rb.alerts'])
    const [repeat, big, other] = rows.rows.map((r) => ({key: r.key?.toString(), value: JSON.parse(r.value.toString()) as Record<string, unknown>, headers: toKafkaHeaders(r.headers)}))
    // the Kafka key of a window rule: the window key, masked as in the value (the window is kept by a sensitive field)
    expect(repeat!.key).toBe('4111********1111')
    expect(repeat!.value).toEqual({
      rule: 'repeat_card',
      pipeline: f.name,
      when: 'w.n > 1 and amount > 0',
      record: {id: 'r1', card: '4111********1111', ts: '2026-11-20T10:01:00.000Z'},
      windows: {w: {start: '2026-11-20T10:00:00.000Z', end: '2026-11-20T10:10:00.000Z', key: '4111********1111', values: {n: '2', top: '4111********1111'}}},
      source: {topic: f.topic, partition: 0, offset: '1'},
    })
    expect(JSON.stringify(rows.rows.map((r) => [r.key?.toString(), r.value.toString(), r.headers]))).not.toContain(PAN)
    expect(Object.fromEntries(Object.entries(repeat!.headers).map(([k, v]) => [k, v!.toString()]))).toEqual({
      'cutover.pipeline': f.name,
      'cutover.pipeline.version': expect.stringMatching(/^[0-9a-f]{64}$/), // the spec text's SHA-256
      'cutover.rule': 'repeat_card',
      'cutover.source.topic': f.topic,
      'cutover.source.partition': '0',
      'cutover.source.offset': '1',
    })
    // a rule without windows: the record's Kafka key, no windows
    expect(big!.key).toBe('r2')
    expect(big!.value).toMatchObject({rule: 'big', record: {id: 'r2', card: '4111********1111'}, windows: {}, source: {offset: '2'}})
    expect(other!.value).toMatchObject({rule: 'repeat_card', record: {id: 'r6'}, windows: {w: {values: {n: '2'}}}})
    const firings = await f.pool.query<{rule: string; instance: string}>('SELECT rule, instance FROM cutover.rule_firings WHERE pipeline = $1 ORDER BY instance', [f.name])
    expect(firings.rows).toEqual([
      {rule: 'repeat_card', instance: JSON.stringify([['w', '2026-11-20T10:00:00.000Z', PAN]])},
      {rule: 'repeat_card', instance: JSON.stringify([['w', '2026-11-20T10:00:00.000Z', '5500000000000004']])},
    ])
  })

  it('a rule on lookup columns (enrich): text compared as text, and as an exact number against one; null never fires', async () => {
    const f = await batchFixture({
      prefix: 'rulesenrich',
      tables: (schema) => [
        `CREATE TABLE "${schema}".accounts (acct text PRIMARY KEY, segment text, daily_limit numeric(12,2))`,
        `INSERT INTO "${schema}".accounts VALUES ('A1', 'vip', 100.00), ('A2', 'retail', 1.00), ('A3', 'vip', NULL)`,
        `CREATE TABLE "${schema}".t (id text PRIMARY KEY, acct text, amount numeric(12,2), segment text, daily_limit text)`,
      ],
      spec: `fields:
  id: {type: string, required: true}
  acct: {type: string, required: true}
  amount: {type: decimal, scale: 2, required: true}
key: id
enrich:
  - {name: account, table: accounts, on: acct, select: [segment, daily_limit]}
rules:
  - {name: over_limit, when: "account.segment = 'vip' and amount > account.daily_limit", emit: re.alerts}
sinks: [{table: t}]
`,
    })
    onTestFinished(async () => {
      for (const table of ['stream_offsets', 'outbox']) await f.pool.query(`DELETE FROM cutover.${table} WHERE pipeline = $1`, [f.name])
    })
    await startStages({prepare: [], transact: [...f.deps.transact]}, {pool: f.pool})
    const recs = [
      {id: 'e0', acct: 'A1', amount: '100.01'}, // vip, over 100.00: fires
      {id: 'e1', acct: 'A1', amount: '100.00'}, // not over
      {id: 'e2', acct: 'A2', amount: '500.00'}, // retail
      {id: 'e3', acct: 'A3', amount: '500.00'}, // vip, no limit (null): unknown, no alert
    ]
    const out = await commitBatch(f.deps, await f.batch(0, 0, 3, (o) => recs[o]!), 1)
    if (out.kind !== 'committed') throw new Error('not committed')
    expect(out.items.map((i) => alertsOf(i) ?? [])).toEqual([['over_limit'], [], [], []])
    const rows = await f.pool.query<{topic: string; value: Buffer}>('SELECT topic, value FROM cutover.outbox WHERE pipeline = $1', [f.name])
    expect(rows.rows.map((r) => [r.topic, (JSON.parse(r.value.toString()) as {record: unknown}).record])).toEqual([['re.alerts', {id: 'e0'}]])
  })

  it('a record the sink refuses raises no alert: the transaction runs again with it dead from the start', async () => {
    const f = await batchFixture({
      prefix: 'rulesrefused',
      tables: (schema) => [`CREATE TABLE "${schema}".t (id text PRIMARY KEY, amount numeric(12,2) CHECK (amount < 5000))`],
      spec: `fields:
  id: {type: string, required: true}
  amount: {type: decimal, scale: 2, required: true}
key: id
rules:
  - {name: big, when: "amount >= 1000", emit: rr.big}
sinks: [{table: t}]
`,
    })
    onTestFinished(async () => {
      for (const table of ['stream_offsets', 'outbox']) await f.pool.query(`DELETE FROM cutover.${table} WHERE pipeline = $1`, [f.name])
    })
    const recs = [
      {id: 'x0', amount: '2000.00'}, // big, written: an alert
      {id: 'x1', amount: '6000.00'}, // big, refused by the CHECK: a dead letter, no alert
      {id: 'x2', amount: '10.00'},
    ]
    const out = await commitBatch(f.deps, await f.batch(0, 0, 2, (o) => recs[o]!), 1)
    if (out.kind !== 'committed') throw new Error('not committed')
    expect(out.counts).toMatchObject({written: 2, dead: {SINK_REJECTED: 1}})
    expect(out.items.map((i) => alertsOf(i) ?? [])).toEqual([['big'], [], []])
    const rows = await f.pool.query<{topic: string; value: Buffer}>('SELECT topic, value FROM cutover.outbox WHERE pipeline = $1 ORDER BY id', [f.name])
    // the outbox: the one alert and the dead letter of x1
    expect(rows.rows.map((r) => r.topic)).toEqual(['rr.big', `${f.name}.dlq`])
    expect((JSON.parse(rows.rows[0]!.value.toString()) as {record: unknown}).record).toEqual({id: 'x0'})
  })
})
