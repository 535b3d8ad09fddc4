/**
 * Reads the demo's alerts back from Kafka (not from cutover's tables): a fresh consumer group
 * reads the topic (default demo.txn.alerts; another as the first argument) from the beginning
 * to the end offsets it had when this started, then prints how many alerts it holds and the
 * first one (the lowest partition's first) as JSON. Run by examples/demo.sh after the pipeline.
 *
 *   npx tsx examples/alerts.ts [topic]
 */
import {randomUUID} from 'node:crypto'
import {connectionSettingsFromEnv} from '../src/config/env.js'
import {createKafka} from '../src/kafka/client.js'
import {DEMO_ALERTS_TOPIC} from './demo-data.js'

const topic = process.argv[2] ?? DEMO_ALERTS_TOPIC
const kafka = createKafka(connectionSettingsFromEnv().kafka, {clientId: 'cutover-demo-alerts'})
const admin = kafka.admin()
await admin.connect()
// partition -> the offset after its last record, for the partitions that hold any
const ends = new Map<number, bigint>()
for (const p of await admin.fetchTopicOffsets(topic)) if (BigInt(p.high) > BigInt(p.low)) ends.set(p.partition, BigInt(p.high))

let count = 0
let first: {partition: number; offset: bigint; key: string | null; value: string} | undefined
if (ends.size > 0) {
  const groupId = `cutover-demo-alerts-${randomUUID().slice(0, 8)}`
  const consumer = kafka.consumer({groupId})
  await consumer.connect()
  await consumer.subscribe({topic, fromBeginning: true})
  const left = new Set(ends.keys())
  await new Promise<void>((resolve, reject) => {
    consumer
      .run({
        eachMessage: async ({partition, message}) => {
          const end = ends.get(partition)
          const offset = BigInt(message.offset)
          if (end === undefined || offset >= end) return
          count++
          if (!first || partition < first.partition || (partition === first.partition && offset < first.offset)) {
            first = {partition, offset, key: message.key?.toString('utf8') ?? null, value: message.value?.toString('utf8') ?? ''}
          }
          if (offset + 1n >= end && left.delete(partition) && left.size === 0) resolve()
        },
      })
      .catch(reject)
  })
  await consumer.disconnect()
  await admin.deleteGroups([groupId]).catch(() => undefined) // a one-off group: leave no trace of it
}
await admin.disconnect()

process.stdout.write(`alerts on ${topic}: ${count}\n`)
if (first) {
  let shown = first.value
  try {
    shown = JSON.stringify(JSON.parse(first.value), null, 2)
  } catch {
    // not JSON (not an alert of cutover's): shown as it is
  }
  process.stdout.write(`the first (partition ${first.partition}, offset ${first.offset}, key ${first.key ?? 'null'}):\n${shown}\n`)
}
