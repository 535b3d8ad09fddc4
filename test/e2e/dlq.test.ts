/** `cutover dlq` exit codes and errors, run as a user runs it (bin/run.js, built). */
import {describe, expect, it} from 'vitest'
import {createTestTopic, runCli} from '../helpers.js'

const SPEC = 'fixtures/specs/stream-card-transactions.yaml'
const DOWN = {KAFKA_BROKERS: '127.0.0.1:1'}

describe('cutover dlq: exit codes', () => {
  it('a topic that does not exist is bad usage: exit 2, --json error', async () => {
    for (const cmd of [['inspect'], ['stats'], ['replay', '--spec', SPEC, '--dry-run']]) {
      const r = await runCli(['dlq', ...cmd, '--topic', 'no-such-dlq-topic-e2e', '--json'])
      expect(r.code, r.stderr).toBe(2)
      expect(r.json.error).toMatchObject({code: 'USAGE', message: expect.stringContaining('no-such-dlq-topic-e2e does not exist')})
    }
  })

  it('an unreachable broker is exit 3 naming the address', async () => {
    for (const cmd of [['inspect'], ['stats'], ['replay', '--spec', SPEC]]) {
      const r = await runCli(['dlq', ...cmd, '--topic', 'txn.dlq', '--json'], {env: DOWN})
      expect(r.code, r.stderr).toBe(3)
      expect(r.json.error).toMatchObject({code: 'SERVICE_UNAVAILABLE', service: 'kafka', address: '127.0.0.1:1'})
    }
  })

  it('a spec that cannot be read is exit 2; bad flags are exit 2', async () => {
    const r = await runCli(['dlq', 'replay', '--topic', 'txn.dlq', '--spec', '/nonexistent/pipeline.yaml', '--json'])
    expect(r.code).toBe(2)
    expect(r.json.error.code).toBe('SPEC_INVALID')
    const t = await runCli(['dlq', 'inspect', '--topic', 'txn.dlq', '--since', 'yesterday'])
    expect(t.code).toBe(2)
    expect(t.stderr).toContain('--since yesterday is neither an ISO-8601 time nor a duration')
    // a window that ends before it starts selected nothing and finished the replay: a no-op for ever after
    const w = await runCli(['dlq', 'replay', '--topic', 'txn.dlq', '--spec', 'fixtures/specs/stream-card-transactions.yaml', '--since', '1h', '--until', '2h', '--json'])
    expect(w.code, w.stdout + w.stderr).toBe(2)
    expect(w.json.error.message).toContain('--since 1h is after --until 2h')
    // the same time (one day meant, --until taken as its end): an empty window too
    const d = await runCli(['dlq', 'replay', '--topic', 'txn.dlq', '--spec', 'fixtures/specs/stream-card-transactions.yaml', '--since', '2026-11-20', '--until', '2026-11-20', '--json'])
    expect(d.code, d.stdout + d.stderr).toBe(2)
    expect(d.json.error).toMatchObject({message: expect.stringContaining('--since 2026-11-20 is the same time as --until 2026-11-20'), hint: expect.stringContaining('--until 2026-11-21')})
  })

  it('an empty DLQ: zero counts, and stats --fail-if-not-empty passes', async () => {
    const topic = await createTestTopic({prefix: 'empty-dlq'})
    const i = await runCli(['dlq', 'inspect', '--topic', topic, '--json'])
    expect(i.code, i.stderr).toBe(0)
    expect(i.json).toMatchObject({topic, total: 0, first: null, last: null})
    // exactly empty: toMatchObject takes any object for {}
    expect(i.json.by_code).toEqual({})
    expect(i.json.samples).toEqual({})
    const s = await runCli(['dlq', 'stats', '--topic', topic, '--fail-if-not-empty', '--json'])
    expect(s.code, s.stderr).toBe(0)
    expect(s.json).toMatchObject({total: 0, records: 0, last_hour: {count: 0}})
  })
})
