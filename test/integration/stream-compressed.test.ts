/**
 * `stream run` consumes batches compressed as Java producers and brokers compress them: kcat
 * (librdkafka, an independent client) produces with LZ4, ZSTD, snappy and gzip, and the rows land
 * in PostgreSQL. kafkajs reads only gzip by itself: an LZ4 or ZSTD batch failed every read
 * ("LZ4 compression not implemented", src/kafka/codecs.ts), so such a topic could not be
 * consumed at all.
 */
import {spawnSync} from 'node:child_process'
import {describe, expect, it} from 'vitest'
import type {StreamRunResult} from '../../src/runtime/run.js'
import {kafkaSettings} from '../helpers.js'
import {exitedWithoutRetry, startStream, streamFixture} from './stream-support.js'

const CODECS = ['lz4', 'zstd', 'snappy', 'gzip'] as const

/** 200 records a codec, repetitive enough that librdkafka compresses them (it sends a batch uncompressed when that is smaller) */
function kcatProduce(topic: string, codec: (typeof CODECS)[number], amount: string): void {
  const lines = Array.from({length: 200}, (_, i) => {
    const id = `${codec}-${String(i).padStart(4, '0')}`
    return `${id}\t${JSON.stringify({id, acct: `A${i % 7}`, amt: amount, ts: '2026-11-20T10:00:00+03:00', merchant: 'PYATEROCHKA 0042 MOSCOW'})}`
  })
  const r = spawnSync('kcat', ['-b', kafkaSettings().brokers.join(','), '-P', '-t', topic, '-p', '0', '-z', codec, '-K', '\t'], {input: `${lines.join('\n')}\n`, encoding: 'utf8'})
  expect(r.status, r.stderr).toBe(0)
}

describe('stream run: compressed batches', () => {
  it('reads LZ4, ZSTD, snappy and gzip batches produced by kcat: every record written once', async () => {
    const f = await streamFixture({partitions: 1, prefix: 'stream-codecs'})
    for (const codec of CODECS) kcatProduce(f.topic, codec, '12.34')
    const s = startStream(f, ['--until-idle', '--idle-ms', '500', '--json'])
    const r = await exitedWithoutRetry(s)
    expect(r.code, r.stderr).toBe(0)
    const out = JSON.parse(r.stdout) as StreamRunResult
    expect(out).toMatchObject({read: 800, written: 800, duplicates: 0, dead_lettered: {}})
    const rows = await f.pool.query<{codec: string; n: number; total: string}>(
      `SELECT split_part(txn_id, '-', 1) AS codec, count(*)::int AS n, sum(amount)::text AS total FROM "${f.schema}".txn_clean GROUP BY 1 ORDER BY 1`,
    )
    expect(rows.rows).toEqual(['gzip', 'lz4', 'snappy', 'zstd'].map((codec) => ({codec, n: 200, total: '2468.00'})))
  })
})
