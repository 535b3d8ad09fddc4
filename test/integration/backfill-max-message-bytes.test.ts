/**
 * `backfill` into topics that take Kafka's default max.message.bytes (1,048,588 bytes per record
 * batch), against the real broker (whose own default here is 10 MiB), read back with kcat:
 * - wide records: a batch of 2,000 records of ~1 KB was one record batch of ~2 MB per partition,
 *   which the broker refused (MESSAGE_TOO_LARGE): the backfill ended at its first batch, exit 70.
 *   Now a batch goes out in as many sends as keep each under the limit, every record in order.
 * - a record larger than the topic takes even alone and compressed (a 1.5 MB incompressible
 *   memo; two in one batch): its RECORD_TOO_LARGE dead letter, with the fix and its own record
 *   number as cutover.source.offset, and the rest is sent (read = sent +
 *   rejected); the dead letter keeps the value when the DLQ topic takes it, else it goes without
 *   it, with cutover.value.omitted saying why. Was: exit 70 for the whole file.
 * Both ways a csv: backfill reads: with --spec (in the main thread) and without (the worker).
 * - `--dry-run` counts the same RECORD_TOO_LARGE records as the run (it predicted none): against the
 *   target's max.message.bytes as the broker says it, or Kafka's default when no broker answers.
 */
import {randomBytes} from 'node:crypto'
import {mkdtempSync, realpathSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {describe, expect, it, onTestFinished} from 'vitest'
import {createTestTopic, kcatConsume, runCli, testPool, uniqueName, writeBackfillSpec} from '../helpers.js'

const KAFKA_DEFAULT = '1048588'

describe('backfill into a topic with Kafka\'s default max.message.bytes', () => {
  it('cuts wide batches to fit, and dead-letters the records no batch can hold, each under its own record number; with --spec and without', async () => {
    const dir = realpathSync(mkdtempSync(join(tmpdir(), 'cutover-bf-max-bytes-')))
    // 2,500 records of ~1 KB (incompressible), the 1,234th and the 1,240th (in one batch) with a 1.5 MB memo, the 2,000th ragged
    const big = new Set([1234, 1240])
    const memo = (i: number) => (big.has(i) ? randomBytes(1_100_000).toString('base64') : randomBytes(750).toString('base64'))
    const lines = ['id;acct;amt;memo']
    for (let i = 1; i <= 2500; i++) lines.push(i === 2000 ? `T${i};A${i % 7}` : `T${i};A${i % 7};${i},50;${memo(i)}`)
    writeFileSync(join(dir, 'wide.csv'), lines.join('\n') + '\n')
    const pool = testPool()
    const ids: string[] = []
    onTestFinished(async () => {
      await pool.query('DELETE FROM cutover.backfills WHERE id = ANY($1)', [ids])
    })

    for (const withSpec of [true, false]) {
      const how = withSpec ? 'with --spec' : 'without --spec'
      // the DLQ takes the big record's value with --spec (the dev broker's 10 MiB), not without (Kafka's default)
      const topic = await createTestTopic({prefix: 'bf-max-bytes', config: {'max.message.bytes': KAFKA_DEFAULT}})
      const dlq = await createTestTopic({prefix: 'bf-max-bytes-dlq', ...(withSpec ? {} : {config: {'max.message.bytes': KAFKA_DEFAULT}})})
      const id = uniqueName('bf-max-bytes-id')
      ids.push(id)
      const spec = writeBackfillSpec(dir, {prefix: 'bf-max-bytes', topic, dlq, text: 'memo'})
      const args = ['backfill', '--from', 'csv:wide.csv?delimiter=;', '--to', topic, '--id', id, '--json', ...(withSpec ? ['--spec', spec] : ['--dlq', dlq])]
      // the dry run first: it counts what the run below does
      const dry = await runCli([...args, '--dry-run'], {cwd: dir})
      expect(dry.code, `${how}: ${dry.stderr}`).toBe(0)
      expect(dry.json, how).toMatchObject({dry_run: true, read: 2500, sent: 2497, rejected: 3, rejected_by_code: {RECORD_TOO_LARGE: 2, SCHEMA_VIOLATION: 1}, max_message_bytes: 1048588, max_message_bytes_source: 'broker', target_exists: true, dlq_exists: true})
      const run = await runCli(args, {cwd: dir})
      expect(run.code, `${how}: ${run.stderr}`).toBe(0)
      expect(run.json, how).toMatchObject({status: 'completed', read: 2500, sent: 2497, rejected: 3, rejected_by_code: {RECORD_TOO_LARGE: 2, SCHEMA_VIOLATION: 1}, max_message_bytes: 1048588, max_message_bytes_source: 'broker'})

      // every other record on the topic, in file order (one partition), none twice
      const sent = kcatConsume(topic).map((r) => JSON.parse(r.payload!) as Record<string, string>)
      const want = Array.from({length: 2500}, (_, k) => `T${k + 1}`).filter((t) => !['T1234', 'T1240', 'T2000'].includes(t))
      expect(sent.map((r) => r.txn_id ?? r.id), how).toEqual(want)

      const dead = kcatConsume(dlq)
      expect(dead.map((d) => d.headers['cutover.error.code']).sort(), how).toEqual(['RECORD_TOO_LARGE', 'RECORD_TOO_LARGE', 'SCHEMA_VIOLATION'])
      const tooLarge = dead.filter((d) => d.headers['cutover.error.code'] === 'RECORD_TOO_LARGE')
      // each with its own record number as cutover.source.offset: two dead letters of one batch, failed in the same
      // millisecond, are two to dlq inspect and dlq replay, not one and its relay repeat
      expect(tooLarge.map((d) => [d.headers['cutover.backfill.position'], d.headers['cutover.source.offset']]), how).toEqual([
        ['wide.csv:1235', '1234'],
        ['wide.csv:1241', '1240'],
      ])
      for (const d of tooLarge) {
        const line = d.headers['cutover.backfill.position']!.replace('wide.csv:', '').replace('.', '\\.')
        expect(d.headers['cutover.error.message'], how).toMatch(
          new RegExp(`^wide\\.csv:${line}: the record is \\d+ bytes \\(\\d+ compressed\\), more than ${topic} takes in one record batch \\(max\\.message\\.bytes 1048588\\): raise it \\(kafka-configs\\.sh --bootstrap-server \\S+ --alter --entity-type topics --entity-name ${topic} --add-config max\\.message\\.bytes=\\d+\\), then send the record again$`),
        )
        if (withSpec) {
          // the record as it was sent: its normalized JSON, the memo whole
          expect((JSON.parse(d.payload!) as {memo: string}).memo.length, how).toBe(memo(1234).length)
          expect(d.headers['cutover.value.omitted'], how).toBeUndefined()
        } else {
          expect(d.payload, how).toBeNull()
          expect(d.headers['cutover.value.omitted'], how).toMatch(new RegExp(`^\\d+ bytes: more than ${dlq} accepts \\(max\\.message\\.bytes 1048588\\)$`))
        }
      }
      const inspect = await runCli(['dlq', 'inspect', '--topic', dlq, '--json'], {cwd: dir})
      expect(inspect.code, inspect.stderr).toBe(0)
      expect(inspect.json.by_code, how).toMatchObject({RECORD_TOO_LARGE: 2, SCHEMA_VIOLATION: 1})
    }
  })

  it('--dry-run predicts RECORD_TOO_LARGE against the topic\'s own max.message.bytes, and against Kafka\'s default when no broker answers', async () => {
    const dir = realpathSync(mkdtempSync(join(tmpdir(), 'cutover-bf-dry-bytes-')))
    // 20 records, the 7th with a 1.5 MB incompressible memo
    const lines = ['id;acct;amt;memo']
    for (let i = 1; i <= 20; i++) lines.push(`T${i};A1;${i},50;${i === 7 ? randomBytes(1_100_000).toString('base64') : 'card-present'}`)
    writeFileSync(join(dir, 'w.csv'), lines.join('\n') + '\n')
    const roomy = await createTestTopic({prefix: 'bf-dry-bytes-roomy', config: {'max.message.bytes': '4000000'}})
    const strict = await createTestTopic({prefix: 'bf-dry-bytes-strict', config: {'max.message.bytes': KAFKA_DEFAULT}})
    const args = (topic: string) => ['backfill', '--from', 'csv:w.csv?delimiter=;', '--to', topic, '--key', 'id', '--json']
    const missing = uniqueName('bf-dry-bytes-missing')
    const [toRoomy, toStrict, noBroker, toMissing] = await Promise.all([
      runCli([...args(roomy), '--dry-run'], {cwd: dir}),
      runCli([...args(strict), '--dry-run'], {cwd: dir}),
      runCli([...args(strict), '--dry-run'], {cwd: dir, env: {KAFKA_BROKERS: '127.0.0.1:1'}}),
      runCli([...args(missing).filter((a) => a !== '--json'), '--dry-run'], {cwd: dir}),
    ])
    for (const r of [toRoomy, toStrict, noBroker, toMissing]) expect(r.code, r.stdout + r.stderr).toBe(0)
    // a target that does not exist: predicted against Kafka's default, and said (a real run refuses to start)
    expect(toMissing.stdout).toContain(`read 20 = sent 19 + rejected 1 (RECORD_TOO_LARGE 1)`)
    expect(toMissing.stdout).toContain(`${missing} does not exist: a real run refuses to start (exit 2); create it first`)
    expect(toMissing.stdout).toContain(`${missing}.dlq does not exist: a real run stops at its first rejected record (exit 2); create it first`)
    expect(toRoomy.json).toMatchObject({dry_run: true, read: 20, sent: 20, rejected: 0, rejected_by_code: {}, max_message_bytes: 4000000, max_message_bytes_source: 'broker', target_exists: true, dlq_exists: false})
    expect(toStrict.json).toMatchObject({dry_run: true, read: 20, sent: 19, rejected: 1, rejected_by_code: {RECORD_TOO_LARGE: 1}, max_message_bytes: 1048588, max_message_bytes_source: 'broker', target_exists: true, dlq_exists: false})
    expect(noBroker.json).toMatchObject({dry_run: true, read: 20, sent: 19, rejected: 1, rejected_by_code: {RECORD_TOO_LARGE: 1}, max_message_bytes: 1048588, max_message_bytes_source: 'kafka_default', target_exists: null, dlq_exists: null})
    // neither DLQ topic exists: the dry run that rejected a record says a real run would stop there, with the command that creates it
    expect(toStrict.stderr).toMatch(new RegExp(`"event":"backfill\\.dry_run\\.dlq_missing"`))
    expect(toStrict.stderr).toContain(`kafka-topics.sh --bootstrap-server`)
    expect(toStrict.stderr).toContain(`--create --topic ${strict}.dlq`)
    expect(toRoomy.stderr).not.toContain('dlq_missing')
    expect(noBroker.stderr).not.toContain('dlq_missing')
    // said once, as cutover's warning (kafkajs' own connection errors are not shown)
    expect(noBroker.stderr.match(/backfill\.dry_run\.max_message_bytes_unknown/g)?.length, noBroker.stderr).toBe(1)
    expect(noBroker.stderr).toContain('no broker answered')
    expect(noBroker.stderr).not.toMatch(/kafkajs|BrokerPool|Connection error: connect ECONNREFUSED 127\.0\.0\.1:1"[^}]*"level":"error"/)
    // and the run into the roomy topic sends all 20, the big one too, as predicted
    const run = await runCli(args(roomy), {cwd: dir})
    expect(run.code, run.stderr).toBe(0)
    expect(run.json).toMatchObject({read: 20, sent: 20, rejected: 0})
    expect(kcatConsume(roomy).map((r) => r.key)).toEqual(Array.from({length: 20}, (_, k) => `T${k + 1}`))
  })
})
