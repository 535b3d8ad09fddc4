/**
 * `backfill --from pg:...?order_by=id`, stopped (SIGTERM) and `--resume`d after rows before the
 * checkpoint were deleted from the table: a resume skips rows by their number, so it skipped as
 * many rows it never sent as were deleted, and said "completed", exit 0. It now refuses (exit 2)
 * before sending anything; an unchanged table still resumes, every row on the topic.
 */
import {describe, expect, it} from 'vitest'
import {createTestSchema, createTestTopic, kcatConsume, runCli, startCli, testPool, uniqueName} from '../helpers.js'

const ROWS = 3000

async function stoppedBackfill(pool: ReturnType<typeof testPool>, from: string, topic: string, id: string): Promise<number> {
  const run = startCli(['backfill', '--from', from, '--to', topic, '--key', 'id', '--rate', '1000', '--id', id, '--json'])
  let checkpointed = 0
  while (checkpointed === 0 && run.child.exitCode === null) {
    const r = await pool.query<{n: number}>(`SELECT (position->>'records')::int AS n FROM cutover.backfills WHERE id = $1`, [id])
    checkpointed = r.rows[0]?.n ?? 0
    await new Promise((r) => setTimeout(r, 50))
  }
  run.child.kill('SIGTERM')
  const first = await run.done
  expect(first.code, first.stderr).toBe(143)
  expect(first.json.status).toBe('stopped')
  expect(first.json.read).toBeLessThan(ROWS)
  return first.json.read as number
}

describe('backfill of a pg: source resumed after the table changed', () => {
  it('rows deleted before the checkpoint: the resume refuses (exit 2) instead of skipping rows never sent', async () => {
    const pool = testPool()
    const schema = await createTestSchema(pool)
    await pool.query(`CREATE TABLE "${schema}".h (id int PRIMARY KEY, amt numeric(12,2)); INSERT INTO "${schema}".h SELECT g, g / 100.0 FROM generate_series(1, ${ROWS}) g`)
    const topic = await createTestTopic({prefix: 'rv-bf-pg'})
    const id = uniqueName('rv-bf-pg')
    const from = `pg:${schema}.h?order_by=id`
    const stoppedAt = await stoppedBackfill(pool, from, topic, id)

    await pool.query(`DELETE FROM "${schema}".h WHERE id <= 100`)
    const resumed = await runCli(['backfill', '--resume', id, '--json'])
    expect(resumed.code, resumed.stdout + resumed.stderr).toBe(2)
    expect(resumed.json.error.message).toMatch(/changed before backfill .*checkpoint/)
    // nothing sent by the refused resume, and the rows after the checkpoint are not claimed as sent
    const keys = kcatConsume(topic).map((m) => Number(m.key))
    expect(Math.max(...keys)).toBeLessThanOrEqual(stoppedAt + 2000)
    const row = await pool.query<{status: string; n: number}>(`SELECT status, (position->>'records')::int AS n FROM cutover.backfills WHERE id = $1`, [id])
    expect(row.rows[0]!.status).not.toBe('completed')
  })

  it('an unchanged table resumes: every row on the topic', async () => {
    const pool = testPool()
    const schema = await createTestSchema(pool)
    await pool.query(`CREATE TABLE "${schema}".h (id int PRIMARY KEY, amt numeric(12,2)); INSERT INTO "${schema}".h SELECT g, g / 100.0 FROM generate_series(1, ${ROWS}) g`)
    const topic = await createTestTopic({prefix: 'rv-bf-pg'})
    const id = uniqueName('rv-bf-pg')
    await stoppedBackfill(pool, `pg:${schema}.h?order_by=id`, topic, id)
    const resumed = await runCli(['backfill', '--resume', id, '--json'])
    expect(resumed.code, resumed.stderr).toBe(0)
    expect(resumed.json).toMatchObject({status: 'completed', read: ROWS, sent: ROWS, rejected: 0})
    const keys = new Set(kcatConsume(topic).map((m) => m.key))
    expect(keys.size).toBe(ROWS)
  })
})
