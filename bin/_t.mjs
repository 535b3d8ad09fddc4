import pg from 'pg'
import QueryStream from 'pg-query-stream'
import {readFileSync} from 'node:fs'
const q = readFileSync('/tmp/q.sql','utf8')
const url = 'postgres://postgres@127.0.0.1:5432/cutover'
const S='parity_bench'
async function join(mode) {
  const c = new pg.Client(url); await c.connect()
  await c.query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET LOCAL enable_hashjoin=off; SET LOCAL jit=off; SET LOCAL cursor_tuple_fraction=1")
  const t0 = performance.now(); let n = 0
  if (mode === 'stream') { for await (const r of c.query(new QueryStream(q, [], {batchSize: 5000}))) n++ }
  else { n = (await c.query(q)).rowCount }
  const ms = performance.now() - t0
  await c.query('COMMIT'); await c.end(); return {mode, n, ms: Math.round(ms)}
}
async function sums() {
  const c = new pg.Client(url); await c.connect()
  const t0 = performance.now()
  for (const t of ['legacy','stream']) await c.query(`SELECT count(*)::text, sum(hash_record_extended(ROW(d.id, d.account_id, d.amount, d.currency, d.event_time, d.merchant),0))::text FROM ${S}.${t} d`)
  const ms = performance.now() - t0; await c.end(); return {sums: Math.round(ms)}
}
for (const mode of ['stream','plain']) {
  console.log(await join(mode))
  console.log(await Promise.all([join(mode), sums()]))
}
