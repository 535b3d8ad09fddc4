/**
 * Demo seed: creates the demo's sink tables in the `demo` schema (fresh each run), forgets
 * the demo pipeline's bookkeeping, and produces 20,000 generated card transactions (5% dirty:
 * four date formats, empty required fields, bad amounts, duplicates, non-JSON) to a fresh
 * topic, printing its name. Run through examples/demo.sh.
 */
import {randomUUID} from 'node:crypto'
import type pg from 'pg'
import {connectionSettingsFromEnv} from '../src/config/env.js'
import {createKafka, createTopicsReady} from '../src/kafka/client.js'
import {openDatabase} from '../src/pg/pool.js'
import {createSinkTables, forgetPipeline} from '../fixtures/generator/pipeline.js'
import {transactionStream} from '../fixtures/generator/transactions.js'

const N = Number(process.env.DEMO_RECORDS ?? 20_000)
const settings = connectionSettingsFromEnv()
const topic = `demo.txn.raw.${randomUUID().slice(0, 8)}`

const pool: pg.Pool = await openDatabase(settings.databaseUrl)
await pool.query('DROP SCHEMA IF EXISTS demo CASCADE')
await pool.query('CREATE SCHEMA demo')
await createSinkTables(pool, 'demo')
await forgetPipeline(pool, 'demo-card-transactions')
await pool.end()

const kafka = createKafka(settings.kafka)
const admin = kafka.admin()
await admin.connect()
const old = (await admin.listTopics()).filter((t) => t.startsWith('demo.txn.raw.'))
if (old.length > 0) await admin.deleteTopics({topics: old}) // earlier demo runs
await createTopicsReady(admin, [{topic, numPartitions: 6, replicationFactor: 1}])
await admin.disconnect()
const producer = kafka.producer({idempotent: true})
await producer.connect()
let batch: {key: string; value: Buffer}[] = []
for (const t of transactionStream(N, {seed: 2026})) {
  batch.push({key: t.key, value: t.value})
  if (batch.length === 2000) {
    await producer.send({topic, messages: batch})
    batch = []
  }
}
if (batch.length) await producer.send({topic, messages: batch})
await producer.disconnect()
process.stdout.write(topic + '\n')
