/**
 * `dlq replay --dry-run --max-record-bytes N`, against the real broker and PostgreSQL: a record
 * dead-lettered as RECORD_TOO_LARGE by `stream run` (1 MiB by default) is predicted to fail again
 * under the default, and to pass under the `stream run --max-record-bytes` the operator will run
 * the replay into (the dry run always predicted with 1 MiB).
 */
import {describe, expect, it} from 'vitest'
import {runCli} from '../helpers.js'
import {produce, streamFixture} from './stream-support.js'

describe('dlq replay --dry-run --max-record-bytes', () => {
  it('predicts RECORD_TOO_LARGE under the default, would_pass under a larger limit; the flag needs --dry-run', async () => {
    const f = await streamFixture({partitions: 1, prefix: 'dlq-dry-bytes'})
    const big = JSON.stringify({id: 'BIG-1', acct: 'A00001', amt: '1.00', ts: '2026-11-20T10:00:00+03:00', memo: 'x'.repeat(1536 * 1024)})
    await produce(f.topic, [{key: 'BIG-1', value: Buffer.from(big)}])
    const run = await runCli(['stream', 'run', '--spec', f.specFile, '--schema', f.schema, '--until-idle', '--idle-ms', '500', '--json'])
    expect(run.code, run.stderr).toBe(0)
    expect(run.json).toMatchObject({read: 1, dead_lettered: {RECORD_TOO_LARGE: 1}})
    const replay = (extra: string[]) => runCli(['dlq', 'replay', '--topic', f.dlqTopic, '--spec', f.specFile, ...extra, '--json'])
    const dflt = await replay(['--dry-run'])
    expect(dflt.code, dflt.stderr).toBe(0)
    expect(dflt.json.prediction).toEqual({RECORD_TOO_LARGE: {selected: 1, would_pass: 0, duplicates: 0, still_failing: {RECORD_TOO_LARGE: 1}, would_park: 0}})
    const larger = await replay(['--dry-run', '--max-record-bytes', String(2 * 1024 * 1024)])
    expect(larger.code, larger.stderr).toBe(0)
    expect(larger.json.prediction).toEqual({RECORD_TOO_LARGE: {selected: 1, would_pass: 1, duplicates: 0, still_failing: {}, would_park: 0}})
    const alone = await replay(['--max-record-bytes', '2097152'])
    expect(alone.code, alone.stdout + alone.stderr).toBe(2)
  })
})
