/**
 * Demo seed: creates the demo's tables in the `demo` schema (fresh each run): the sink tables
 * (txn_clean with the customer_id and segment that `enrich: account` adds) and `demo.accounts`,
 * the lookup table, filled for the generator's accounts but a handful (examples/demo-data.ts
 * MISSING_ACCOUNTS); forgets the demo pipeline's bookkeeping (offsets, dedupe keys, outbox,
 * window state and watermarks, rule firings); recreates the alerts and dead-letter topics empty;
 * and produces 20,000 generated card transactions (5% dirty: four date formats, empty required
 * fields, bad amounts, duplicates, non-JSON) plus two bursts of card testing, in event-time order
 * with a few late deliveries (demo-data.ts says why), to a fresh topic, printing its name. Run
 * through examples/demo.sh. DEMO_RECORDS changes the number of generated transactions.
 */
import {randomUUID} from 'node:crypto'
import type {Admin} from 'kafkajs'
import type pg from 'pg'
import {connectionSettingsFromEnv} from '../src/config/env.js'
import {createKafka, createTopicsReady} from '../src/kafka/client.js'
import {openDatabase} from '../src/pg/pool.js'
import {forgetWindowState} from '../src/runtime/stages/window.js'
import {createSinkTables, forgetPipeline} from '../fixtures/generator/pipeline.js'
import {DEMO_ALERTS_TOPIC, DEMO_DLQ_TOPIC, DEMO_PIPELINE, DEMO_RECORDS, demoAccounts, demoTransactions} from './demo-data.js'

const N = Number(process.env.DEMO_RECORDS ?? DEMO_RECORDS)
const PARTITIONS = 6
const settings = connectionSettingsFromEnv()
const topic = `demo.txn.raw.${randomUUID().slice(0, 8)}`

const pool: pg.Pool = await openDatabase(settings.databaseUrl)
await pool.query('DROP SCHEMA IF EXISTS demo CASCADE')
await pool.query('CREATE SCHEMA demo')
await createSinkTables(pool, 'demo', {extraTxnColumns: 'customer_id bigint, segment text'})
await pool.query('CREATE TABLE demo.accounts (account_id text PRIMARY KEY, customer_id bigint, segment text, daily_limit numeric(18,2))')
const accounts = demoAccounts()
await pool.query(
  `INSERT INTO demo.accounts (account_id, customer_id, segment, daily_limit)
   SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::numeric[])`,
  [accounts.map((a) => a.account_id), accounts.map((a) => a.customer_id), accounts.map((a) => a.segment), accounts.map((a) => a.daily_limit)],
)
await forgetPipeline(pool, DEMO_PIPELINE)
await forgetWindowState(pool, DEMO_PIPELINE)
// a window instance that fired in an earlier run would not fire again
await pool.query('DELETE FROM cutover.rule_firings WHERE pipeline = $1', [DEMO_PIPELINE])
await pool.end()

/** Deletes `name` if it exists and creates it again, empty (a deletion is applied asynchronously: waited out). */
async function recreateTopic(admin: Admin, name: string, numPartitions: number): Promise<void> {
  const deadline = Date.now() + 60_000
  for (;;) {
    if ((await admin.listTopics()).includes(name)) await admin.deleteTopics({topics: [name], timeout: 30_000})
    while ((await admin.listTopics()).includes(name)) {
      if (Date.now() > deadline) throw new Error(`Kafka topic ${name} is still listed 60 s after its deletion`)
      await new Promise((resolve) => setTimeout(resolve, 200))
    }
    // false: it existed after all (the broker had not applied the deletion everywhere yet)
    if (await createTopicsReady(admin, [{topic: name, numPartitions, replicationFactor: 1}])) return
    if (Date.now() > deadline) throw new Error(`Kafka topic ${name} could not be created again within 60 s of its deletion`)
  }
}

const kafka = createKafka(settings.kafka)
const admin = kafka.admin()
await admin.connect()
const old = (await admin.listTopics()).filter((t) => t.startsWith('demo.txn.raw.'))
if (old.length > 0) await admin.deleteTopics({topics: old}) // earlier demo runs
// this run's alerts and dead letters only (those of earlier runs name source topics deleted above)
for (const t of [DEMO_ALERTS_TOPIC, DEMO_DLQ_TOPIC]) await recreateTopic(admin, t, PARTITIONS)
await createTopicsReady(admin, [{topic, numPartitions: PARTITIONS, replicationFactor: 1}])
await admin.disconnect()
const producer = kafka.producer({idempotent: true})
await producer.connect()
let batch: {key: string; value: Buffer}[] = []
for (const t of demoTransactions(N)) {
  batch.push({key: t.key, value: t.value})
  if (batch.length === 2000) {
    await producer.send({topic, messages: batch})
    batch = []
  }
}
if (batch.length) await producer.send({topic, messages: batch})
await producer.disconnect()
process.stdout.write(topic + '\n')
