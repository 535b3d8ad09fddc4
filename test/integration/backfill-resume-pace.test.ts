/**
 * `backfill --resume` with a new pace, against the real broker and PostgreSQL.
 *
 * --rate, --burst, --max-lag, --group and --batch-size may change on a resume. Was: the resumed
 * run used the new ones but never wrote them to the checkpoint, so the next resume (without
 * flags) went back to the first run's pace, and nothing showed the pace in force. Now the resumed
 * run saves the pace it was given in options, and --json (rate, burst, max_lag, group) and the
 * text result (`pace: ...`) show the pace in force.
 */
import {mkdirSync, realpathSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'
import {describe, expect, it, onTestFinished} from 'vitest'
import {createTestTopic, kcatConsume, runCli, tempDir, testPool, uniqueName} from '../helpers.js'

describe('backfill --resume: a new pace is the backfill\'s from then on', () => {
  it('--rate/--burst given to a resume are saved, shown in --json and the text result, and kept by the next resume without flags', async () => {
    const topic = await createTestTopic({partitions: 1, prefix: 'bf-resume-pace'})
    const pool = testPool()
    const id = uniqueName('bf-resume-pace')
    onTestFinished(async () => {
      await pool.query('DELETE FROM cutover.backfills WHERE id = $1', [id])
    })
    const dir = realpathSync(tempDir('cutover-bf-resume-pace-'))
    mkdirSync(join(dir, 'data'))
    writeFileSync(join(dir, 'data', 'tx.csv'), ['id,amt', ...Array.from({length: 20}, (_, i) => `P${i + 1},${i + 1}.00`), ''].join('\n'))
    const options = async () => (await pool.query<{options: Record<string, unknown>}>('SELECT options FROM cutover.backfills WHERE id = $1', [id])).rows[0]!.options
    const stopAt = (records: number) =>
      pool.query(
        `UPDATE cutover.backfills SET status = 'stopped', position = jsonb_build_object('records', $2::int), counts = jsonb_build_object('read', $2::int, 'sent', $2::int, 'rejected', 0, 'rejected_by_code', '{}'::jsonb, 'out_of_range', 0) WHERE id = $1`,
        [id, records],
      )

    const first = await runCli(['backfill', '--from', 'csv:data/tx.csv', '--to', topic, '--key', 'id', '--rate', '1000', '--id', id, '--json'], {cwd: dir})
    expect(first.code, first.stderr).toBe(0)
    expect(first.json).toMatchObject({status: 'completed', sent: 20, rate: 1000, burst: null, max_lag: null, group: null})

    // resumed with a new pace: in force, shown, saved
    await stopAt(8)
    const slower = await runCli(['backfill', '--resume', id, '--rate', '50/s', '--burst', '2', '--batch-size', '1', '--json'], {cwd: dir})
    expect(slower.code, slower.stderr).toBe(0)
    expect(slower.json).toMatchObject({status: 'completed', sent: 20, rate: 50, burst: 2, max_lag: null, group: null, runs: 2})
    expect(await options()).toMatchObject({rate: 50, burst: 2, batchSize: 1, key: 'id', from: 'csv:data/tx.csv'})

    // resumed again without flags: the saved pace is the one in force (the pacer's, as backfill.start logs it) and shown
    await stopAt(14)
    const again = await runCli(['backfill', '--resume', id, '--log-level', 'info'], {cwd: dir})
    expect(again.code, again.stderr).toBe(0)
    expect(again.stdout).toContain('  pace: --rate 50/s --burst 2\n')
    const start = again.stderr.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as {event: string; rate?: number}).find((e) => e.event === 'backfill.start')
    expect(start).toMatchObject({rate: 50})
    expect(await options()).toMatchObject({rate: 50, burst: 2, batchSize: 1})
    expect(kcatConsume(topic)).toHaveLength(20 + 12 + 6)
  })
})
