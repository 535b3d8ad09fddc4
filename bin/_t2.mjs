import pg from 'pg'
import QueryStream from 'pg-query-stream'
import {readFileSync} from 'node:fs'
const q = readFileSync('/tmp/q.sql','utf8')
const url = 'postgres://postgres@127.0.0.1:5432/cutover'
const S='parity_bench'
const M = process.argv[2] ?? 'T000500000'
const rq = (cond) => q.replaceAll('FROM (SELECT * FROM "parity_bench"."legacy") AS s) AS s)', `FROM (SELECT * FROM "parity_bench"."legacy") AS s WHERE s.id ${cond}) AS s)`).replaceAll('FROM (SELECT * FROM "parity_bench"."stream") AS s) AS s)', `FROM (SELECT * FROM "parity_bench"."stream") AS s WHERE s.id ${cond}) AS s)`)
async function conn() { const c = new pg.Client(url); await c.connect(); await c.query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET LOCAL enable_hashjoin=off; SET LOCAL jit=off; SET LOCAL cursor_tuple_fraction=1"); return c }
async function part(cond, withSum) {
  const c = await conn(); const t0 = performance.now(); let n = 0
  for await (const r of c.query(new QueryStream(rq(cond), [], {batchSize: 5000}))) n++
  const t1 = performance.now()
  if (withSum) await c.query(`SELECT count(*)::text, sum(hash_record_extended(ROW(d.id, d.account_id, d.amount, d.currency, d.event_time, d.merchant),0))::text FROM ${S}.legacy d WHERE d.id ${cond}`)
  const ms = performance.now() - t0
  await c.query('COMMIT'); await c.end(); return {n, join: Math.round(t1-t0), ms: Math.round(ms)}
}
for (let i = 0; i < 3; i++) {
  const t0 = performance.now()
  const r = await Promise.all([part(`< '${M}'`, true), part(`>= '${M}'`, true)])
  console.log('split+sums', Math.round(performance.now()-t0), JSON.stringify(r))
  const t1 = performance.now()
  const r2 = await Promise.all([part(`< '${M}'`, false), part(`>= '${M}'`, false)])
  console.log('split only', Math.round(performance.now()-t1), JSON.stringify(r2))
}
