/**
 * `stream run` of records carrying a Kafka header without a value (length -1: Kafka Connect
 * writes one for an exception without a message; any producer may), produced by kcat, an
 * independent client: a record dead-lettered with such a header used to fail its batch for ever
 * (Buffer.from(null) in the outbox's headers: the partition stalled); it is dead-lettered with
 * the header kept, empty (kafkajs cannot write a header without a value), and the rest is written.
 */
import {spawnSync} from 'node:child_process'
import {describe, expect, it} from 'vitest'
import type {StreamRunResult} from '../../src/runtime/run.js'
import {createTestTopic, kafkaSettings, kcatConsume, runCli} from '../helpers.js'
import {exitedWithoutRetry, startStream, streamFixture} from './stream-support.js'

describe('stream run: a header without a value', () => {
  it('a poison record carrying one is dead-lettered with it (empty), a good one written; nothing stalls', async () => {
    const f = await streamFixture({partitions: 1, prefix: 'stream-null-header'})
    const good = JSON.stringify({id: 'T1', acct: 'A1', amt: '1.50', ts: '2026-11-20T10:00:00+03:00'})
    const produced = spawnSync('kcat', ['-b', kafkaSettings().brokers.join(','), '-P', '-t', f.topic, '-p', '0', '-H', 'connect.note', '-H', 'trace=abc'], {input: `not json\n${good}\n`, encoding: 'utf8'})
    expect(produced.status, produced.stderr).toBe(0)
    // kcat wrote the header without a value: kcat reads it back as null
    expect(kcatConsume(f.topic).map((r) => r.headers)).toEqual([
      {'connect.note': null, trace: 'abc'},
      {'connect.note': null, trace: 'abc'},
    ])
    const s = startStream(f, ['--until-idle', '--idle-ms', '500', '--json'])
    const r = await exitedWithoutRetry(s)
    expect(r.code, r.stderr).toBe(0)
    const out = JSON.parse(r.stdout) as StreamRunResult
    expect(out).toMatchObject({read: 2, written: 1, duplicates: 0, dead_lettered: {DECODE_ERROR: 1}})
    const rows = await f.pool.query(`SELECT txn_id FROM "${f.schema}".txn_clean`)
    expect(rows.rows).toEqual([{txn_id: 'T1'}])
    const dead = kcatConsume(f.dlqTopic)
    expect(dead).toHaveLength(1)
    expect(dead[0]!.payload).toBe('not json')
    expect(dead[0]!.headers).toMatchObject({'connect.note': '', trace: 'abc', 'cutover.error.code': 'DECODE_ERROR'})
    // a backfill of that topic (a copy) passes the header on, empty, instead of failing its send
    const copy = await createTestTopic({partitions: 1, prefix: 'stream-null-header-copy'})
    const bf = await runCli(['backfill', '--from', `kafka:${f.topic}`, '--to', copy, '--json'])
    expect(bf.code, bf.stdout + bf.stderr).toBe(0)
    expect(bf.json).toMatchObject({read: 2, sent: 2})
    expect(kcatConsume(copy).map((m) => [m.payload, m.headers['connect.note'], m.headers.trace])).toEqual([
      ['not json', '', 'abc'],
      [good, '', 'abc'],
    ])
  })
})
