/**
 * `bin/run.js backfill ... --json` as an operator runs it, against the real broker and
 * PostgreSQL: the dirty windows-1251 legacy CSV with --spec (rejects in the DLQ with their
 * codes, read = sent + rejected), --dry-run (nothing sent, nothing recorded), the checkpoint row,
 * and a resumed completed backfill that sends nothing.
 */
import {mkdtempSync, readFileSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import pg from 'pg'
import {describe, expect, it, onTestFinished} from 'vitest'
import {createTestSchema, createTestTopic, kafka, kcatConsume, mapConcurrent, ROOT, runCli, setGroupOffsets, testPool, uniqueName} from '../helpers.js'

const CSV = 'csv:fixtures/legacy/txn-2026-11-20.csv?delimiter=;&encoding=windows-1251'

describe('cutover backfill (e2e)', () => {
  it('dirty CSV with --spec: clean records keyed by the spec key, rejects in the DLQ with codes and headers, counted', async () => {
    const topic = await createTestTopic({partitions: 3, prefix: 'bf-e2e'})
    const dlq = await createTestTopic({partitions: 1, prefix: 'bf-e2e-dlq'})
    const dir = mkdtempSync(join(tmpdir(), 'cutover-bf-'))
    const spec = join(dir, 'spec.yaml')
    writeFileSync(spec, readFileSync(join(ROOT, 'fixtures/golden/csv-windows-1251/spec.yaml'), 'utf8').replace('dlq: { topic: txn.dlq }', `dlq: { topic: ${dlq} }`))

    // the dry runs (nothing sent, so side by side)
    const [dry, window, noSpec] = await Promise.all([
      runCli(['backfill', '--from', CSV, '--to', topic, '--spec', spec, '--dry-run', '--json']),
      // --since/--until on a file: by the spec's event_time; rejects (no usable time) still go to the DLQ
      runCli(['backfill', '--from', CSV, '--to', topic, '--spec', spec, '--since', '2026-11-20T07:00:00Z', '--until', '2026-11-20T11:00:00Z', '--dry-run', '--json']),
      runCli(['backfill', '--from', CSV, '--to', topic, '--since', '2026-11-20T07:00:00Z', '--dry-run', '--json']),
    ])
    expect(dry.code, dry.stderr).toBe(0)
    expect(dry.json).toMatchObject({dry_run: true, read: 15, sent: 11, rejected: 4})
    expect(kcatConsume(topic)).toHaveLength(0)
    expect(window.code, window.stderr).toBe(0)
    expect(window.json).toMatchObject({read: 9, sent: 5, rejected: 4, out_of_range: 6})
    expect(noSpec.code).toBe(2)
    expect(noSpec.json.error.message).toMatch(/event_time/)

    const r = await runCli(['backfill', '--from', CSV, '--to', topic, '--spec', spec, '--json'])
    expect(r.code, r.stderr).toBe(0)
    const out = r.json
    expect(Object.keys(out)).toEqual(expect.arrayContaining(['id', 'read', 'sent', 'rejected', 'elapsed_ms', 'rate_achieved', 'paused_ms', 'resumed_from']))
    // the normalizer rejects 3 rows, the reader 1 ragged row; the two duplicates go on (the pipeline's dedupe judges them)
    expect(out).toMatchObject({status: 'completed', read: 15, sent: 11, rejected: 4, resumed_from: null, dlq_topic: dlq})
    expect(out.rejected_by_code).toEqual({REQUIRED_FIELD_EMPTY: 1, UNPARSEABLE_AMOUNT: 1, UNPARSEABLE_DATE: 1, SCHEMA_VIOLATION: 1})
    expect(out.read).toBe(out.sent + out.rejected)

    // accepted records go as read (the raw fields the spec's `from:` names), keyed by the spec key
    const clean = kcatConsume(topic)
    expect(clean).toHaveLength(11)
    for (const m of clean) {
      const v = JSON.parse(m.payload!) as Record<string, unknown>
      expect(m.key).toBe(v.id)
      expect(Object.keys(v)).toEqual(['id', 'acct', 'amt', 'ts', 'currency', 'merchant'])
      expect(m.headers['cutover.backfill.id']).toBe(out.id)
      expect(m.headers['cutover.backfill.position']).toMatch(/^fixtures\/legacy\/txn-2026-11-20\.csv:\d+$/)
    }
    expect(clean.some((m) => JSON.parse(m.payload!).merchant === 'Пятёрочка №12')).toBe(true) // windows-1251 decoded

    const dead = kcatConsume(dlq)
    expect(dead).toHaveLength(4)
    const codes = dead.map((d) => d.headers['cutover.error.code']).sort()
    expect(codes).toEqual(['REQUIRED_FIELD_EMPTY', 'SCHEMA_VIOLATION', 'UNPARSEABLE_AMOUNT', 'UNPARSEABLE_DATE'])
    for (const d of dead) {
      expect(d.headers['cutover.error.message']).toBeTruthy()
      expect(['normalize', 'decode']).toContain(d.headers['cutover.error.stage'])
      expect(d.headers['cutover.pipeline']).toBe('legacy-csv-windows-1251')
      expect(d.headers['cutover.pipeline.version']).toMatch(/^[0-9a-f]{64}$/)
      expect(d.headers['cutover.source.topic']).toBe(topic)
      expect(d.headers['cutover.backfill.id']).toBe(out.id)
      expect(d.headers['cutover.backfill.position']).toMatch(/txn-2026-11-20\.csv:\d+$/)
    }
    const amount = dead.find((d) => d.headers['cutover.error.code'] === 'UNPARSEABLE_AMOUNT')!
    expect(JSON.parse(amount.payload!)).toMatchObject({amt: '12,3,4'}) // the raw fields, to fix and replay
    expect(amount.key).toBeTruthy()
    // a ragged row (the reader's reject) keeps what was read, as one CSV line (was: no value at all)
    const ragged = dead.find((d) => d.headers['cutover.error.code'] === 'SCHEMA_VIOLATION')!
    expect(ragged.payload).toBe('T000000012;A0620;99,99;20.11.2026 17:45:00;RUB;Детский мир;лишнее поле')

    // the checkpoint row
    const pool = testPool()
    const row = await pool.query<{status: string; position: {records: number}; counts: {read: number; sent: number; rejected: number}; target: string}>(
      'SELECT status, position, counts, target FROM cutover.backfills WHERE id = $1',
      [out.id],
    )
    expect(row.rows[0]).toMatchObject({status: 'completed', target: topic, position: {records: 15}, counts: {read: 15, sent: 11, rejected: 4}})

    // resuming a completed backfill sends nothing
    const again = await runCli(['backfill', '--resume', out.id, '--json'])
    expect(again.code, again.stderr).toBe(0)
    expect(again.json).toMatchObject({id: out.id, status: 'completed', read: 15, sent: 11})
    expect(kcatConsume(topic)).toHaveLength(11)
    await pool.query('DELETE FROM cutover.backfills WHERE id = $1', [out.id])
  })

  it('backfill --spec feeds `stream run` with the same spec: the sink holds what `normalize` says, each row once', async () => {
    const topic = await createTestTopic({partitions: 3, prefix: 'bf-e2e-story'})
    const dlq = await createTestTopic({partitions: 1, prefix: 'bf-e2e-story-dlq'})
    const pool = testPool()
    const schema = await createTestSchema(pool)
    await pool.query(`CREATE TABLE "${schema}".txn_clean (txn_id text PRIMARY KEY, account_id text NOT NULL, amount numeric(18,2) NOT NULL,
      currency text NOT NULL, event_time timestamptz NOT NULL, merchant text)`)
    const dir = mkdtempSync(join(tmpdir(), 'cutover-bf-story-'))
    const spec = join(dir, 'spec.yaml')
    writeFileSync(
      spec,
      readFileSync(join(ROOT, 'fixtures/golden/csv-windows-1251/spec.yaml'), 'utf8')
        .replace('dlq: { topic: txn.dlq }', `dlq: { topic: ${dlq} }`)
        .replace('topic: txn.raw, group: cutover-golden', `topic: ${topic}, group: ${uniqueName('g')}`)
        .replace('name: legacy-csv-windows-1251', `name: ${uniqueName('bf-story')}`),
    )
    const bf = await runCli(['backfill', '--from', CSV, '--to', topic, '--spec', spec, '--json'])
    expect(bf.code, bf.stderr).toBe(0)
    expect(bf.json).toMatchObject({read: 15, sent: 11, rejected: 4})

    // every record is on the topic before it starts: it exits once it has committed them all (up to
    // the high watermark) and the outbox is drained; --idle-ms is only the quiet time after that
    const run = await runCli(['stream', 'run', '--spec', spec, '--schema', schema, '--until-idle', '--idle-ms', '200', '--json'])
    expect(run.code, run.stderr).toBe(0)
    // 11 sent = 9 written + 1 identical repeat + 1 conflicting repeat (dead-lettered)
    expect(run.json).toMatchObject({read: 11, written: 9, duplicates: 1, dead_lettered: {DUPLICATE_CONFLICT: 1}})
    const rows = await pool.query(
      `SELECT txn_id, account_id, amount::text AS amount, currency, to_char(event_time AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS event_time, merchant FROM "${schema}".txn_clean ORDER BY txn_id`,
    )
    const golden = readFileSync(join(ROOT, 'fixtures/golden/csv-windows-1251/expected.ndjson'), 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l))
    expect(rows.rows).toEqual(golden)
  })

  it.each([
    {
      name: 'fixed (EBCDIC copybook records)',
      golden: 'fixed-ebcdic-cp037',
      from: 'fixed:fixtures/legacy/TXN.DAT?copybook=fixtures/legacy/txn.cpy&encoding=cp037',
      source: `format: fixed, encoding: cp037, copybook: ${join(ROOT, 'fixtures/legacy/txn.cpy')}`,
      table: `(txn_id text PRIMARY KEY, account_id text NOT NULL, event_time timestamptz NOT NULL, amount numeric(18,2) NOT NULL, currency text NOT NULL,
        merchant text, mcc integer, fee numeric(18,2), status_code text, auth_count integer)`,
      select: `txn_id, account_id, to_char(event_time AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS event_time, amount::text AS amount, currency, merchant,
        mcc::text AS mcc, fee::text AS fee, status_code, auth_count::text AS auth_count`,
      run: {read: 7, written: 6, duplicates: 1},
    },
    {
      name: 'csv (one windows-1251 line per message)',
      golden: 'csv-windows-1251',
      from: CSV,
      source: 'format: csv, encoding: windows-1251, delimiter: ";", columns: [id, acct, amt, ts, currency, merchant]',
      table: '(txn_id text PRIMARY KEY, account_id text NOT NULL, amount numeric(18,2) NOT NULL, currency text NOT NULL, event_time timestamptz NOT NULL, merchant text)',
      select: `txn_id, account_id, amount::text AS amount, currency, to_char(event_time AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS event_time, merchant`,
      run: {read: 11, written: 9, duplicates: 1, dead_lettered: {DUPLICATE_CONFLICT: 1}},
    },
  ])('--spec whose source.format is $name: backfill sends what `stream run` with that spec decodes; the sink holds the golden output (was: JSON, every record a DECODE_ERROR)', async (c) => {
    const topic = await createTestTopic({partitions: 2, prefix: 'bf-e2e-fmt'})
    const dlq = await createTestTopic({partitions: 1, prefix: 'bf-e2e-fmt-dlq'})
    const pool = testPool()
    const schema = await createTestSchema(pool)
    await pool.query(`CREATE TABLE "${schema}".txn_clean ${c.table}`)
    const dir = mkdtempSync(join(tmpdir(), 'cutover-bf-fmt-'))
    const spec = join(dir, 'spec.yaml')
    const text = readFileSync(join(ROOT, `fixtures/golden/${c.golden}/spec.yaml`), 'utf8')
      .replace(/^source: .*$/m, `source: { topic: ${topic}, group: ${uniqueName('g')}, ${c.source} }`)
      .replace('dlq: { topic: txn.dlq }', `dlq: { topic: ${dlq} }`)
      .replace(/^name: .*$/m, `name: ${uniqueName('bf-fmt')}`)
    expect(text).toContain(`topic: ${topic}`)
    writeFileSync(spec, text)
    const bf = await runCli(['backfill', '--from', c.from, '--to', topic, '--spec', spec, '--json'])
    expect(bf.code, bf.stderr).toBe(0)
    await pool.query('DELETE FROM cutover.backfills WHERE id = $1', [bf.json.id])
    expect(bf.json.sent).toBe(c.run.read)

    // as above: everything is on the topic before it starts; --idle-ms is only the quiet time after
    const run = await runCli(['stream', 'run', '--spec', spec, '--schema', schema, '--until-idle', '--idle-ms', '200', '--json'])
    expect(run.code, run.stderr).toBe(0)
    expect(run.json).toMatchObject({dead_lettered: {}, ...c.run})
    const rows = await pool.query(`SELECT ${c.select} FROM "${schema}".txn_clean ORDER BY txn_id`)
    const golden = readFileSync(join(ROOT, `fixtures/golden/${c.golden}/expected.ndjson`), 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Record<string, unknown>)
    expect(rows.rows).toEqual(golden)
  })

  it('--spec with source.format csv in windows-1251: a record with a character the encoding lacks is a DECODE_ERROR dead letter naming its column (not its value); read = sent + rejected', async () => {
    const topic = await createTestTopic({partitions: 1, prefix: 'bf-e2e-fmt-enc'})
    const dlq = await createTestTopic({partitions: 1, prefix: 'bf-e2e-fmt-enc-dlq'})
    const dir = mkdtempSync(join(tmpdir(), 'cutover-bf-fmt-enc-'))
    writeFileSync(join(dir, 'u.csv'), 'id;acct;amt;ts;currency;merchant\nU1;A1;1,00;20.11.2026 12:00:00;RUB;Кафе ☕\nU2;A1;2,00;20.11.2026 12:00:00;RUB;Кафе\n')
    const spec = join(dir, 'spec.yaml')
    writeFileSync(
      spec,
      readFileSync(join(ROOT, 'fixtures/golden/csv-windows-1251/spec.yaml'), 'utf8')
        .replace(/^source: .*$/m, `source: { topic: ${topic}, format: csv, encoding: windows-1251, delimiter: ";", columns: [id, acct, amt, ts, currency, merchant] }`)
        .replace('dlq: { topic: txn.dlq }', `dlq: { topic: ${dlq} }`),
    )
    const r = await runCli(['backfill', '--from', 'csv:u.csv?delimiter=;', '--to', topic, '--spec', spec, '--json'], {cwd: dir})
    expect(r.code, r.stderr).toBe(0)
    await testPool().query('DELETE FROM cutover.backfills WHERE id = $1', [r.json.id])
    expect(r.json).toMatchObject({read: 2, sent: 1, rejected: 1, rejected_by_code: {DECODE_ERROR: 1}})
    const clean = kcatConsume(topic)
    expect(clean.map((m) => m.key)).toEqual(['U2'])
    const dead = kcatConsume(dlq)
    expect(dead).toHaveLength(1)
    expect(dead[0]!.key).toBe('U1')
    expect(dead[0]!.headers['cutover.error.code']).toBe('DECODE_ERROR')
    expect(dead[0]!.headers['cutover.error.message']).toMatch(/^u\.csv:2: column merchant holds a character that windows-1251 has no byte for/)
    expect(dead[0]!.headers['cutover.error.message']).not.toContain('Кафе')
    expect(JSON.parse(dead[0]!.payload!)).toMatchObject({id: 'U1', merchant: 'Кафе ☕'}) // the fields, to fix and replay
  })

  it('--spec with source.format fixed and a source that has no copybook records: exit 2 at the spec\'s source.format, nothing sent', async () => {
    const topic = await createTestTopic({partitions: 1, prefix: 'bf-e2e-fmt-bad'})
    const dir = mkdtempSync(join(tmpdir(), 'cutover-bf-fmt-bad-'))
    const spec = join(dir, 'spec.yaml')
    writeFileSync(spec, readFileSync(join(ROOT, 'fixtures/golden/csv-windows-1251/spec.yaml'), 'utf8').replace(/^source: .*$/m, `source: { topic: ${topic}, format: fixed, encoding: cp037, copybook: ${join(ROOT, 'fixtures/legacy/txn.cpy')} }`))
    const r = await runCli(['backfill', '--from', CSV, '--to', topic, '--spec', spec, '--json'])
    expect(r.code, r.stderr).toBe(2)
    expect(r.json.error.code).toBe('SPEC_INVALID')
    expect(r.json.error.message).toMatch(/source\.format fixed: .* csv: source are not copybook records/)
    expect(r.json.error.line).toBeGreaterThan(0)
    expect(kcatConsume(topic)).toHaveLength(0)
  })

  it('--send normalized sends the typed record under the spec field names', async () => {
    const topic = await createTestTopic({partitions: 1, prefix: 'bf-e2e-norm'})
    const dlq = await createTestTopic({partitions: 1, prefix: 'bf-e2e-norm-dlq'})
    const dir = mkdtempSync(join(tmpdir(), 'cutover-bf-norm-'))
    const spec = join(dir, 'spec.yaml')
    writeFileSync(spec, readFileSync(join(ROOT, 'fixtures/golden/csv-windows-1251/spec.yaml'), 'utf8').replace('dlq: { topic: txn.dlq }', `dlq: { topic: ${dlq} }`))
    const r = await runCli(['backfill', '--from', CSV, '--to', topic, '--spec', spec, '--send', 'normalized', '--json'])
    expect(r.code, r.stderr).toBe(0)
    const clean = kcatConsume(topic)
    expect(clean).toHaveLength(11)
    for (const m of clean) {
      const v = JSON.parse(m.payload!) as Record<string, unknown>
      expect(m.key).toBe(v.txn_id)
      expect(Object.keys(v)).toEqual(['txn_id', 'account_id', 'amount', 'currency', 'event_time', 'merchant'])
    }
    expect(clean.map((m) => JSON.parse(m.payload!)).find((v) => v.txn_id === 'T000000001')).toMatchObject({amount: '1234.56', event_time: '2026-11-20T06:15:00.000Z'})
    await testPool().query('DELETE FROM cutover.backfills WHERE id = $1', [r.json.id])
    const noSpec = await runCli(['backfill', '--from', CSV, '--to', topic, '--send', 'normalized', '--dry-run', '--json'])
    expect(noSpec.code).toBe(2)
  })

  it('csv: without --spec is read in a worker thread: the same records, partitions, headers and dead letters as read in-thread', async () => {
    // the legacy windows-1251 file (a ragged row: SCHEMA_VIOLATION), and a run of generated rows over several batches
    const dir = mkdtempSync(join(tmpdir(), 'cutover-bf-worker-'))
    const lines = ['id;acct;amt']
    for (let i = 0; i < 5000; i++) lines.push(i % 1000 === 7 ? `T${i};A${i % 13}` : i % 1000 === 9 ? `;A${i % 13};${i}` : `T${i};Счёт ${i % 13};${i},50`)
    writeFileSync(join(dir, 'gen.csv'), lines.join('\n') + '\n')
    const sources = [CSV, `csv:${join(dir, 'gen.csv')}?delimiter=;`]
    const runs = ['1', '0'].flatMap((worker) => sources.map((from) => ({worker, from})))
    const pool = testPool()
    // each run to topics of its own, side by side
    const targets: {topic: string; dlq: string}[] = []
    for (const _ of runs) targets.push({topic: await createTestTopic({partitions: 3, prefix: 'bf-e2e-worker'}), dlq: await createTestTopic({partitions: 1, prefix: 'bf-e2e-worker-dlq'})})
    const results = await mapConcurrent(runs, 4, async ({worker, from}, i) => {
      const {topic, dlq} = targets[i]!
      const r = await runCli(['backfill', '--from', from, '--to', topic, '--dlq', dlq, '--key', 'id', '--batch-size', '700', '--json'], {env: {CUTOVER_BACKFILL_WORKER: worker}})
      expect(r.code, r.stderr).toBe(0)
      const json = r.json as Record<string, unknown>
      await pool.query('DELETE FROM cutover.backfills WHERE id = $1', [json.id])
      const id = String(json.id)
      // null keys are spread round-robin from a random partition: compare them without it
      const clean = kcatConsume(topic).map((m) => JSON.stringify([m.key === null ? '-' : m.partition, m.key, m.payload, m.headers['cutover.backfill.position'], m.headers['cutover.backfill.id'] === id]))
      const dead = kcatConsume(dlq).map((m) => JSON.stringify([m.key, m.payload, m.headers['cutover.error.code'], m.headers['cutover.error.message'], m.headers['cutover.backfill.position'], m.headers['cutover.backfill.id'] === id]))
      return {json: {read: json.read, sent: json.sent, rejected: json.rejected, rejected_by_code: json.rejected_by_code, status: json.status}, clean: clean.sort(), dead: dead.sort()}
    })
    expect(results[0]!.json).toMatchObject({status: 'completed', read: 15, sent: 14, rejected: 1, rejected_by_code: {SCHEMA_VIOLATION: 1}})
    expect(results[1]!.json).toMatchObject({status: 'completed', read: 5000, sent: 4995, rejected: 5, rejected_by_code: {SCHEMA_VIOLATION: 5}})
    expect(results[1]!.clean).toHaveLength(4995)
    expect(results[1]!.clean.filter((c) => c.startsWith('["-",null'))).toHaveLength(5)
    expect(results[1]!.dead.every((d) => (JSON.parse(d) as unknown[])[1] !== null)).toBe(true) // each ragged row keeps its line
    // worker (first two) and in-thread (last two) agree record for record
    expect(results[2]).toEqual(results[0])
    expect(results[3]).toEqual(results[1])
  })

  it('--max-lag with a --group that names no consumer: warned of (its lag would be the backfill\'s own records), the run goes on', async () => {
    const topic = await createTestTopic({partitions: 1, prefix: 'bf-e2e-nogroup'})
    const dlq = await createTestTopic({partitions: 1, prefix: 'bf-e2e-nogroup-dlq'})
    const r = await runCli(['backfill', '--from', CSV, '--to', topic, '--dlq', dlq, '--max-lag', '100000', '--group', uniqueName('no-such-group'), '--json'])
    expect(r.code, r.stderr).toBe(0)
    expect(r.json).toMatchObject({status: 'completed', read: 15, sent: 14, rejected: 1})
    expect(r.stderr.split('\n').filter((l) => l.includes('"backfill.group_unknown"'))).toHaveLength(1)
    await testPool().query('DELETE FROM cutover.backfills WHERE id = $1', [r.json.id])
  })

  it('a spec field or --key naming a column the source lacks: exit 2 naming the columns, nothing sent, no backfill row (was: the whole file dead-lettered, or sent unkeyed, exit 0)', async () => {
    const topic = await createTestTopic({partitions: 3, prefix: 'bf-e2e-cols'})
    const dlq = await createTestTopic({partitions: 1, prefix: 'bf-e2e-cols-dlq'})
    const pool = testPool()
    const dir = mkdtempSync(join(tmpdir(), 'cutover-bf-cols-'))
    const spec = join(dir, 'spec.yaml')
    // account_id reads a column `account`; the file's is `acct`
    writeFileSync(spec, readFileSync(join(ROOT, 'fixtures/golden/csv-windows-1251/spec.yaml'), 'utf8').replace('dlq: { topic: txn.dlq }', `dlq: { topic: ${dlq} }`).replace('from: acct,', 'from: account,'))
    const ids = [uniqueName('bf-cols'), uniqueName('bf-cols'), uniqueName('bf-cols')]
    const schema = await createTestSchema(pool)
    await pool.query(`CREATE TABLE "${schema}".legacy_txn AS SELECT 'P' || g AS id, g::numeric AS amt FROM generate_series(1, 5) g`)
    // the refused runs, and the right column's dry run, side by side
    const [bySpec, byKey, fromPg, ok] = await Promise.all([
      runCli(['backfill', '--from', CSV, '--to', topic, '--spec', spec, '--id', ids[0]!, '--json']),
      runCli(['backfill', '--from', CSV, '--to', topic, '--dlq', dlq, '--key', 'ID', '--id', ids[1]!, '--json']),
      runCli(['backfill', '--from', `pg:${schema}.legacy_txn?order_by=id`, '--to', topic, '--key', 'txn_id', '--id', ids[2]!, '--json']),
      runCli(['backfill', '--from', CSV, '--to', topic, '--dlq', dlq, '--key', 'id', '--dry-run', '--json']),
    ])
    expect(bySpec.code, bySpec.stderr).toBe(2)
    expect(bySpec.json.error.code).toBe('SPEC_INVALID')
    expect(bySpec.json.error.message).toContain('has no column account (field account_id); its columns: id, acct, amt, ts, currency, merchant')
    expect(bySpec.json.error.line).toBeGreaterThan(0) // at the field, in the spec
    expect(byKey.code, byKey.stderr).toBe(2)
    expect(byKey.json.error.message).toContain('--key ID: ')
    expect(byKey.json.error.message).toContain('has no column ID; its columns: id, acct')
    expect(fromPg.code, fromPg.stderr).toBe(2)
    expect(fromPg.json.error.message).toContain('has no column txn_id; its columns: id, amt')
    expect(kcatConsume(topic)).toHaveLength(0)
    expect(kcatConsume(dlq)).toHaveLength(0)
    expect((await pool.query('SELECT id FROM cutover.backfills WHERE id = ANY($1)', [ids])).rows).toEqual([])
    // the right column goes through
    expect(ok.code, ok.stderr).toBe(0)
    expect(ok.json).toMatchObject({read: 15, sent: 14, rejected: 1})
  })

  it('--id of an existing backfill: exit 2 saying so, with --resume as the fix; the row and the topic untouched (was: exit 70, a bare unique-constraint message)', async () => {
    const topic = await createTestTopic({partitions: 1, prefix: 'bf-e2e-dupid'})
    const pool = testPool()
    const schema = await createTestSchema(pool)
    await pool.query(`CREATE TABLE "${schema}".legacy_txn AS SELECT 'P' || lpad(g::text, 3, '0') AS id, g::numeric AS amt FROM generate_series(1, 20) g`)
    const id = uniqueName('bf-dupid')
    onTestFinished(async () => {
      await pool.query('DELETE FROM cutover.backfills WHERE id = $1', [id])
    })
    const from = `pg:${schema}.legacy_txn?order_by=id`
    const first = await runCli(['backfill', '--from', from, '--to', topic, '--key', 'id', '--id', id, '--json'])
    expect(first.code, first.stderr).toBe(0)
    expect(first.json).toMatchObject({id, status: 'completed', sent: 20})
    const again = await runCli(['backfill', '--from', from, '--to', topic, '--key', 'id', '--id', id, '--json'])
    expect(again.code, again.stderr).toBe(2)
    expect(again.json.error).toMatchObject({code: 'USAGE'})
    expect(again.json.error.message).toBe(`backfill ${id} exists already (completed, ${from} -> ${topic})`)
    expect(again.json.error.hint).toMatch(/another --id/)
    // a stopped one: the hint is --resume
    await pool.query(`UPDATE cutover.backfills SET status = 'stopped' WHERE id = $1`, [id])
    const stopped = await runCli(['backfill', '--from', from, '--to', topic, '--key', 'id', '--id', id, '--json'])
    expect(stopped.code, stopped.stderr).toBe(2)
    expect(stopped.json.error.hint).toContain(`--resume ${id}`)
    expect(kcatConsume(topic)).toHaveLength(20)
    const row = await pool.query<{status: string; runs: number; records: number}>(`SELECT status, runs, (position->>'records')::int AS records FROM cutover.backfills WHERE id = $1`, [id])
    expect(row.rows[0]).toEqual({status: 'stopped', runs: 1, records: 20})
  })

  it('--from kafka:T --to T (the source topic as the target): exit 2 with the fix, nothing sent, no backfill row (was: exit 0, the topic doubled)', async () => {
    const topic = await createTestTopic({partitions: 2, prefix: 'bf-e2e-self'})
    const producer = kafka().producer()
    await producer.connect()
    await producer.send({topic, messages: Array.from({length: 6}, (_, i) => ({key: `K${i}`, value: JSON.stringify({id: `S${i}`}), timestamp: String(Date.now() - (6 - i) * 3600_000)}))}) // recent: inside the broker's retention
    await producer.disconnect()
    const pool = testPool()
    const froms = [`kafka:${topic}`, `kafka:${topic}?from=2026-11-01T00:00:00Z`]
    // the refused runs side by side
    const [refused, dry] = await Promise.all([Promise.all(froms.map((from) => runCli(['backfill', '--from', from, '--to', topic, '--json']))), runCli(['backfill', '--from', `kafka:${topic}`, '--to', topic, '--dry-run', '--json'])])
    froms.forEach((from, i) => {
      const r = refused[i]!
      expect(r.code, r.stdout + r.stderr).toBe(2)
      expect(r.json.error).toMatchObject({code: 'USAGE', message: expect.stringContaining(`--from ${from} reads the topic that --to ${topic} writes`), hint: expect.stringContaining('another topic')})
    })
    expect(dry.code).toBe(2)
    expect(kcatConsume(topic)).toHaveLength(6)
    expect((await pool.query('SELECT id FROM cutover.backfills WHERE target = $1', [topic])).rows).toEqual([])
    // another topic of the same cluster is fine
    const other = await createTestTopic({partitions: 2, prefix: 'bf-e2e-self-copy'})
    const ok = await runCli(['backfill', '--from', `kafka:${topic}`, '--to', other, '--json'])
    expect(ok.code, ok.stderr).toBe(0)
    expect(ok.json).toMatchObject({read: 6, sent: 6})
    expect(kcatConsume(topic)).toHaveLength(6)
    await pool.query('DELETE FROM cutover.backfills WHERE id = $1', [ok.json.id])
  })

  it('--resume of a backfill without a spec or --dlq, whose <to>.dlq does not exist: no backfill.dlq_missing warning (was: on every resume); with a spec it still warns', async () => {
    const topic = await createTestTopic({partitions: 1, prefix: 'bf-e2e-resume-dlq'})
    const pool = testPool()
    const schema = await createTestSchema(pool)
    await pool.query(`CREATE TABLE "${schema}".legacy_txn AS SELECT 'P' || lpad(g::text, 3, '0') AS id, g::numeric AS amt FROM generate_series(1, 20) g`)
    const id = uniqueName('bf-resume-dlq')
    onTestFinished(async () => {
      await pool.query('DELETE FROM cutover.backfills WHERE id = ANY($1)', [[id, `${id}-spec`]])
    })
    const from = `pg:${schema}.legacy_txn?order_by=id`
    const first = await runCli(['backfill', '--from', from, '--to', topic, '--key', 'id', '--id', id, '--json'])
    expect(first.code, first.stderr).toBe(0)
    expect(first.stderr).not.toContain('backfill.dlq_missing') // warn is the default level
    // as if stopped after 10 records
    await pool.query(`UPDATE cutover.backfills SET status = 'stopped', position = '{"records": 10}', counts = '{"read": 10, "sent": 10, "rejected": 0, "rejected_by_code": {}, "out_of_range": 0}' WHERE id = $1`, [id])
    const resumed = await runCli(['backfill', '--resume', id, '--json'])
    expect(resumed.code, resumed.stderr).toBe(0)
    expect(resumed.json).toMatchObject({id, status: 'completed', read: 20, sent: 20, resumed_from: {records: 10}, runs: 2})
    expect(kcatConsume(topic)).toHaveLength(30)
    // before the fix: {"level":"warn",...,"event":"backfill.dlq_missing"} (the saved options always hold the dlq)
    expect(resumed.stderr).not.toContain('backfill.dlq_missing')
    const lines = (text: string) => text.split('\n').filter((l) => l.includes('"backfill.dlq_missing"')).map((l) => JSON.parse(l) as {level: string})
    await pool.query(`UPDATE cutover.backfills SET status = 'stopped' WHERE id = $1`, [id])
    const info = await runCli(['backfill', '--resume', id, '--log-level', 'info', '--json'])
    expect(info.code, info.stderr).toBe(0)
    expect(lines(info.stderr).map((l) => l.level)).toEqual(['info'])

    // with a spec, rejects are expected: the missing DLQ is a warning, on --resume too
    const dir = mkdtempSync(join(tmpdir(), 'cutover-bf-'))
    const spec = join(dir, 'spec.yaml')
    writeFileSync(spec, readFileSync(join(ROOT, 'fixtures/golden/csv-windows-1251/spec.yaml'), 'utf8').replace('dlq: { topic: txn.dlq }', `dlq: { topic: ${uniqueName('bf-no-such-dlq')} }`))
    const withSpec = await runCli(['backfill', '--from', CSV, '--to', topic, '--spec', spec, '--id', `${id}-spec`, '--json'])
    expect(withSpec.code).toBe(2) // the first reject stops it: its DLQ does not exist
    expect(lines(withSpec.stderr).map((l) => l.level)).toEqual(['warn'])
    const specResumed = await runCli(['backfill', '--resume', `${id}-spec`, '--json'])
    expect(specResumed.code).toBe(2)
    expect(lines(specResumed.stderr).map((l) => l.level)).toEqual(['warn'])
  })

  it('bad usage exits 2 with the fix; a missing topic too', async () => {
    const [r, lag] = await Promise.all([runCli(['backfill', '--from', CSV, '--to', 'bf-no-such-topic-x', '--json']), runCli(['backfill', '--from', CSV, '--to', 'x', '--max-lag', '10', '--json'])])
    expect(r.code).toBe(2)
    expect(r.json.error.message).toMatch(/does not exist/)
    expect(lag.code).toBe(2)
    expect(lag.json.error.message).toMatch(/--group/)
  })

  it('fixed: and pg: sources; status says STOP for a group with lag and no members', async () => {
    const topic = await createTestTopic({partitions: 1, prefix: 'bf-e2e-src'})
    const dlq = await createTestTopic({partitions: 1, prefix: 'bf-e2e-src-dlq'})
    const pool = testPool()
    const ids: string[] = []

    const schema = await createTestSchema(pool)
    await pool.query(`CREATE TABLE "${schema}".legacy_txn AS SELECT 'P' || lpad(g::text, 4, '0') AS id, 'A' || (g % 7) AS acct, (g * 1.25)::text AS amt FROM generate_series(1, 50) g`)
    // the two backfills side by side, into the one topic
    const [fixed, fromPg] = await Promise.all([
      // EBCDIC fixed-width records through the copybook, with the golden spec
      runCli(['backfill', '--from', 'fixed:fixtures/legacy/TXN.DAT?copybook=fixtures/legacy/txn.cpy&encoding=cp037', '--spec', 'fixtures/golden/fixed-ebcdic-cp037/spec.yaml', '--to', topic, '--dlq', dlq, '--json']),
      // a PostgreSQL table, in order
      runCli(['backfill', '--from', `pg:${schema}.legacy_txn?order_by=id`, '--to', topic, '--key', 'id', '--json']),
    ])
    expect(fixed.code, fixed.stderr).toBe(0)
    ids.push(fixed.json.id)
    expect(fixed.json).toMatchObject({read: 8, sent: 7, rejected: 1, rejected_by_code: {DECODE_ERROR: 1}})
    const dead = kcatConsume(dlq)
    expect(dead).toHaveLength(1)
    expect(dead[0]!.headers['cutover.error.code']).toBe('DECODE_ERROR')
    expect(dead[0]!.headers['cutover.error.stage']).toBe('decode')
    expect(dead[0]!.headers['cutover.backfill.position']).toMatch(/TXN\.DAT@\d+/)

    // the table's rows in order
    expect(fromPg.code, fromPg.stderr).toBe(0)
    ids.push(fromPg.json.id)
    expect(fromPg.json).toMatchObject({read: 50, sent: 50, rejected: 0})
    const onTopic = kcatConsume(topic).filter((m) => m.headers['cutover.backfill.id'] === fromPg.json.id)
    expect(onTopic).toHaveLength(50)
    expect(onTopic.map((m) => m.key)).toEqual(Array.from({length: 50}, (_, i) => `P${String(i + 1).padStart(4, '0')}`))
    expect(JSON.parse(onTopic[0]!.payload!)).toEqual({id: 'P0001', acct: 'A1', amt: '1.25'})

    // a group that committed 10 of the 57 records and has no members: STOP
    const group = uniqueName('bf-e2e-group')
    await setGroupOffsets(group, topic, [{partition: 0, offset: '10'}])
    const [st, text] = await Promise.all([runCli(['status', '--group', group, '--window', '0', '--json']), runCli(['status', '--group', group, '--window', '0'])])
    expect(st.code, st.stderr).toBe(0)
    expect(st.json).toMatchObject({group, status: 'STOP', total_lag: 47, members: 0})
    expect(st.json.partitions).toEqual([expect.objectContaining({topic, partition: 0, end: 57, committed: 10, lag: 47, status: 'STOP'})])
    expect(st.json.throughput.produced_last_minute).toBe(57)
    expect(text.stdout).toContain(`group ${group}: STOP`)
    await pool.query('DELETE FROM cutover.backfills WHERE id = ANY($1)', [ids])
  })

  it('pg: keyed (key=) by a sensitive field: positions in headers, the checkpoint, logs and normalize rejects give the row number, never the value', async () => {
    const topic = await createTestTopic({partitions: 1, prefix: 'bf-e2e-pan'})
    const dlq = await createTestTopic({partitions: 1, prefix: 'bf-e2e-pan-dlq'})
    const pool = testPool()
    const schema = await createTestSchema(pool)
    // five card numbers, in order; the fourth row has a bad amount
    await pool.query(`CREATE TABLE "${schema}".cards AS SELECT '411111111111' || lpad(g::text, 4, '0') AS pan, CASE WHEN g = 4 THEN '12,3,4' ELSE (g * 1.25)::text END AS amt FROM generate_series(1, 5) g`)
    const pans = Array.from({length: 5}, (_, i) => `411111111111${String(i + 1).padStart(4, '0')}`)
    const dir = mkdtempSync(join(tmpdir(), 'cutover-bf-pan-'))
    const spec = join(dir, 'spec.yaml')
    const specText = (sensitive: boolean) => `version: 1
name: cards-sensitive
source: { topic: ${topic}, format: json }
fields:
  pan:    { type: string, required: true, sensitive: ${sensitive} }
  amount: { from: amt, type: decimal, scale: 2, required: true }
key: pan
sinks:
  - table: cards_clean
dlq: { topic: ${dlq} }
`
    writeFileSync(spec, specText(true))
    const uri = `pg:${schema}.cards?order_by=pan&key=pan`
    const r = await runCli(['backfill', '--from', uri, '--to', topic, '--spec', spec, '--json'])
    expect(r.code, r.stderr).toBe(0)
    expect(r.json).toMatchObject({read: 5, sent: 4, rejected: 1, rejected_by_code: {UNPARSEABLE_AMOUNT: 1}})
    const sent = kcatConsume(topic)
    expect(sent.map((m) => m.headers['cutover.backfill.position'])).toEqual([1, 2, 3, 5].map((n) => `${schema}.cards[${n}]`))
    const dead = kcatConsume(dlq)
    expect(dead).toHaveLength(1)
    expect(dead[0]!.headers['cutover.backfill.position']).toBe(`${schema}.cards[4]`)
    const row = await pool.query<{position: {records: number; last: {key: string; record: number}}}>('SELECT position FROM cutover.backfills WHERE id = $1', [r.json.id])
    expect(row.rows[0]!.position).toMatchObject({records: 5, last: {key: '5', record: 5}})
    // said once on stderr, where the operator sees why positions are row numbers
    expect(r.stderr).toContain('pg.reader.key_sensitive')
    for (const text of [r.stdout, r.stderr, JSON.stringify(row.rows[0]), ...dead.map((d) => JSON.stringify(d.headers)), ...sent.map((m) => JSON.stringify(m.headers))]) {
      for (const pan of pans) expect(text).not.toContain(pan)
    }

    // normalize's rejects: the same position
    const rejects = join(dir, 'rejects.ndjson')
    const n = await runCli(['normalize', uri, '--spec', spec, '--out', join(dir, 'clean.ndjson'), '--rejects', rejects, '--json'])
    expect(n.code, n.stderr).toBe(0)
    const rejected = readFileSync(rejects, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as {code: string; position: unknown})
    expect(rejected).toEqual([expect.objectContaining({code: 'UNPARSEABLE_AMOUNT', position: {scheme: 'pg', source: `${schema}.cards`, record: 4, key: '4'}})])

    // the same field not sensitive: positions carry its values, as key= asks
    writeFileSync(spec, specText(false))
    const plain = await runCli(['normalize', uri, '--spec', spec, '--out', join(dir, 'clean.ndjson'), '--rejects', rejects, '--json'])
    expect(plain.code, plain.stderr).toBe(0)
    expect(JSON.parse(readFileSync(rejects, 'utf8').trim())).toMatchObject({position: {key: pans[3]}})
    await pool.query('DELETE FROM cutover.backfills WHERE id = $1', [r.json.id])
  })

  it.each([
    ['status', ['status', '--group', 'g', '--window', '0']],
    ['backfill', ['backfill', '--from', CSV, '--to', 't']],
  ])('%s with the broker unreachable: exit 3 after one quick attempt, not the resilient client\'s retries', async (_, args) => {
    const r = await runCli([...args, '--json', '--log-level', 'debug'], {env: {KAFKA_BROKERS: '127.0.0.1:9'}})
    expect(r.code, r.stderr).toBe(3)
    expect(r.json.error).toMatchObject({code: 'SERVICE_UNAVAILABLE', service: 'kafka'})
    // kafkajs logs each retry of a connection with its count: only the first attempt is made
    expect(r.stderr).toContain('"retryCount":0')
    expect(r.stderr).not.toMatch(/"retryCount":[1-9]/)
  })

  it('a checkpoint that fails once: the later ones and the last still save (was: every later save rejected, the row left at an old position, --resume sending the rest again)', async () => {
    const topic = await createTestTopic({partitions: 1, prefix: 'bf-e2e-ckpt'})
    const dir = mkdtempSync(join(tmpdir(), 'cutover-bf-ckpt-'))
    const n = 6000
    writeFileSync(join(dir, 'rows.csv'), ['id;amt', ...Array.from({length: n}, (_, i) => `R${i};${i}.00`)].join('\n') + '\n')
    const id = uniqueName('bf-ckpt')
    const pool = testPool()
    // the first checkpoint UPDATE of this backfill fails (a sequence is not rolled back with it)
    const seq = `"${id.replace(/[^a-z0-9_]/gi, '_')}_seq"`
    await pool.query(`CREATE SEQUENCE public.${seq}`)
    await pool.query(`CREATE FUNCTION public.${seq.slice(0, -1)}_fail"() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN IF NEW.id = ${pg.escapeLiteral(id)} AND nextval('public.${seq}') = 1 THEN RAISE EXCEPTION 'planted checkpoint failure'; END IF; RETURN NEW; END $$`)
    await pool.query(`CREATE TRIGGER ${seq.slice(0, -1)}_t" BEFORE UPDATE ON cutover.backfills FOR EACH ROW EXECUTE FUNCTION public.${seq.slice(0, -1)}_fail"()`)
    onTestFinished(async () => {
      await pool.query(`DROP TRIGGER IF EXISTS ${seq.slice(0, -1)}_t" ON cutover.backfills; DROP FUNCTION IF EXISTS public.${seq.slice(0, -1)}_fail"(); DROP SEQUENCE IF EXISTS public.${seq}`)
      await pool.query('DELETE FROM cutover.backfills WHERE id = $1', [id])
    })
    const r = await runCli(['backfill', '--from', 'csv:rows.csv?delimiter=;', '--to', topic, '--rate', '2000', '--id', id, '--json'], {cwd: dir})
    expect(r.code, r.stderr).toBe(0)
    expect(r.json).toMatchObject({id, status: 'completed', read: n, sent: n})
    expect(r.stderr.split('\n').filter((l) => l.includes('backfill.checkpoint_failed'))).toHaveLength(1)
    const row = await pool.query<{status: string; records: number}>(`SELECT status, (position->>'records')::int AS records FROM cutover.backfills WHERE id = $1`, [id])
    expect(row.rows[0]).toEqual({status: 'completed', records: n})
    expect(kcatConsume(topic)).toHaveLength(n)
  })

  it('--since/--until with --spec: a reject from outside the window is out of range, not dead-lettered (its day\'s run does that)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cutover-bf-window-'))
    // Moscow times; the window is 10:00-14:00 Moscow (07:00-11:00Z)
    writeFileSync(
      join(dir, 'w.csv'),
      ['id;acct;amt;ts;currency;merchant', 'W1;A1;1,00;20.11.2026 12:00:00;RUB;m', 'W2;A1;12,3,4;20.11.2026 12:05:00;RUB;m', 'W3;A1;12,3,4;20.11.2026 09:00:00;RUB;m', 'W4;;1,00;20.11.2026 15:00:00;RUB;m', 'W5;A1;1,00;31.11.2026 12:00:00;RUB;m', 'W6;A1;1,00;20.11.2026 16:00:00;RUB;m'].join('\n') + '\n',
    )
    const spec = join(ROOT, 'fixtures/golden/csv-windows-1251/spec.yaml')
    const r = await runCli(['backfill', '--from', 'csv:w.csv?delimiter=;', '--to', 't', '--spec', spec, '--since', '2026-11-20T07:00:00Z', '--until', '2026-11-20T11:00:00Z', '--dry-run', '--json'], {cwd: dir})
    expect(r.code, r.stderr).toBe(0)
    // W1 sent; W2 (bad amount, in the window) and W5 (no time) rejected; W3, W4 (rejects outside) and W6 out of range
    expect(r.json).toMatchObject({read: 3, sent: 1, rejected: 2, rejected_by_code: {UNPARSEABLE_AMOUNT: 1, UNPARSEABLE_DATE: 1}, out_of_range: 3})
  })

  it('kafka: source with --since/--until: only the records of the time range, key and headers kept', async () => {
    const source = await createTestTopic({partitions: 2, prefix: 'bf-e2e-range-src'})
    const topic = await createTestTopic({partitions: 2, prefix: 'bf-e2e-range'})
    // two days ago at 00:00 UTC: inside the broker's 7-day retention (records older than it may be deleted mid-test)
    const today = new Date()
    const base = Date.UTC(today.getUTCFullYear(), today.getUTCMonth(), today.getUTCDate() - 2)
    const iso = (ms: number) => new Date(ms).toISOString().replace('.000Z', 'Z')
    const producer = kafka().producer()
    await producer.connect()
    await producer.send({
      topic: source,
      messages: Array.from({length: 48}, (_, h) => ({key: `K${h % 5}`, value: JSON.stringify({id: `R${h}`, hour: h}), timestamp: String(base + h * 3600_000), headers: {'x-origin': `legacy-${h}`}})),
    })
    await producer.disconnect()
    const r = await runCli(['backfill', '--from', `kafka:${source}`, '--to', topic, '--since', iso(base + 10 * 3600_000), '--until', iso(base + 24 * 3600_000), '--json'])
    expect(r.code, r.stderr).toBe(0)
    expect(r.json).toMatchObject({read: 14, sent: 14, rejected: 0})
    const got = kcatConsume(topic)
    expect(got.map((m) => (JSON.parse(m.payload!) as {hour: number}).hour).sort((a, b) => a - b)).toEqual(Array.from({length: 14}, (_, i) => i + 10))
    for (const m of got) {
      const hour = (JSON.parse(m.payload!) as {hour: number}).hour
      expect(m.key).toBe(`K${hour % 5}`)
      expect(m.headers['x-origin']).toBe(`legacy-${hour}`)
      expect(m.headers['cutover.backfill.position']).toMatch(new RegExp(`^${source}/[01]@\\d+$`))
    }
    await testPool().query('DELETE FROM cutover.backfills WHERE id = $1', [r.json.id])
  })
})
