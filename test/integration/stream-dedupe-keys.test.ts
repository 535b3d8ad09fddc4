/**
 * `stream run`'s dedupe keys at the edges, through the built CLI against the real broker and
 * PostgreSQL (src/runtime/stages/dedupe.ts dedupeKeyOf):
 *
 * - a key holding a lone UTF-16 surrogate (a JSON "\ud800" escape, legal JSON) would be stored
 *   by PostgreSQL with U+FFFD: two such keys in one batch failed the batch for ever (the
 *   partition stalled), and a conflicting repeat in a later batch was written over the first
 *   record; such a value is now a DECODE_ERROR (src/normalize/json.ts parseJsonExact);
 * - a composite dedupe key is the JSON array of its values: "a|b" + "c" and "a" + "b|c" differ,
 *   and one whose escapes (a control character is six bytes) make it longer than the key table's
 *   index can hold used to fail its batch for ever; it is now one SCHEMA_VIOLATION.
 *
 * read = written + dead-lettered + duplicates in every run.
 */
import {readFileSync, writeFileSync} from 'node:fs'
import {describe, expect, it} from 'vitest'
import type {StreamRunResult} from '../../src/runtime/run.js'
import {kafka} from '../helpers.js'
import {exitedWithoutRetry, startStream, streamFixture, type StreamFixture} from './stream-support.js'

const deadTotal = (d: Record<string, number | undefined>) => Object.values(d).reduce<number>((a, b) => a + (b ?? 0), 0)

/** JSON text of a message (`id` may hold escapes: it is spliced in as given). */
const value = (idJson: string, extra: Record<string, string> = {}) => `{"id":${idJson},${JSON.stringify({acct: 'A1', amt: '1.50', ts: '2026-11-20T10:00:00+03:00', ...extra}).slice(1)}`

async function send(f: StreamFixture, values: string[]): Promise<void> {
  const p = kafka().producer({idempotent: true, maxInFlightRequests: 1})
  await p.connect()
  try {
    await p.send({topic: f.topic, acks: -1, messages: values.map((v, i) => ({partition: 0, key: `k${i}`, value: Buffer.from(v)}))})
  } finally {
    await p.disconnect()
  }
}

/** `stream run --until-idle --json`; fails at once when a batch is retried (its partition stalled on a record). */
async function runOnce(f: StreamFixture): Promise<StreamRunResult> {
  const s = startStream(f, ['--until-idle', '--idle-ms', '500', '--json'])
  const r = await exitedWithoutRetry(s)
  expect(r.code, r.stderr).toBe(0)
  const out = JSON.parse(r.stdout) as StreamRunResult
  expect(out.read).toBe(out.written + deadTotal(out.dead_lettered) + out.duplicates)
  return out
}

async function sinkRows(f: StreamFixture): Promise<{txn_id: string; amount: string; merchant: string | null}[]> {
  const r = await f.pool.query<{txn_id: string; amount: string; merchant: string | null}>(`SELECT txn_id, amount::text AS amount, merchant FROM "${f.schema}".txn_clean ORDER BY convert_to(txn_id, 'UTF8')`)
  return r.rows
}

async function deadLetters(f: StreamFixture): Promise<{code: string; message: string}[]> {
  const r = await f.pool.query<{code: string; message: string}>(
    `SELECT (SELECT convert_from(decode(h->>1, 'base64'), 'UTF8') FROM jsonb_array_elements(headers) h WHERE h->>0 = 'cutover.error.code') AS code,
            (SELECT convert_from(decode(h->>1, 'base64'), 'UTF8') FROM jsonb_array_elements(headers) h WHERE h->>0 = 'cutover.error.message') AS message
       FROM cutover.outbox WHERE pipeline = $1 ORDER BY id`,
    [f.name],
  )
  return r.rows
}

describe('stream run dedupe: keys as PostgreSQL stores them', () => {
  it('lone surrogates ("x\\ud800", "x\\udc00": both "x\\ufffd" in PostgreSQL) are DECODE_ERROR naming the member, never stored changed; a surrogate pair is text; nothing stalls', async () => {
    const f = await streamFixture({partitions: 1, prefix: 'review-dedupe-sur2'})
    await send(f, [value('"x\\ud800"'), value('"x\\udc00"'), value('"z\\ud83d\\ude00"'), value('"y"', {merchant: 'caf\udc00'}), value('"w"', {merchant: 'caf\u00e9'}), value('"x\\ud800"')])
    expect(await runOnce(f)).toMatchObject({read: 6, written: 2, duplicates: 0, dead_lettered: {DECODE_ERROR: 4}})
    expect(await sinkRows(f)).toEqual([
      {txn_id: 'w', amount: '1.50', merchant: 'caf\u00e9'},
      {txn_id: 'z\u{1f600}', amount: '1.50', merchant: null},
    ])
    const dead = await deadLetters(f)
    expect(dead.map((d) => d.code)).toEqual(['DECODE_ERROR', 'DECODE_ERROR', 'DECODE_ERROR', 'DECODE_ERROR'])
    expect(dead[0]!.message).toBe('the value is JSON, but member "id" holds a lone UTF-16 surrogate (\\ud800 without its pair): not Unicode text (PostgreSQL would store U+FFFD in its place)')
    expect(dead[2]!.message).toContain('member "merchant" holds a lone UTF-16 surrogate (\\udc00 without its pair)')
  })

  it('a composite key: "a|b"+"c" and "a"+"b|c" are two keys; one too long once escaped is SCHEMA_VIOLATION, not a stalled partition', async () => {
    const f = await streamFixture({partitions: 1, prefix: 'review-dedupe-comp'})
    writeFileSync(f.specFile, readFileSync(f.specFile, 'utf8').replace('dedupe: { by: txn_id, conflicting: dlq }', 'dedupe: { by: [txn_id, merchant] }'))
    // 1,990 characters, under the validate stage's 2,000 bytes; half of them control characters,
    // which the key (JSON) writes as \u00XX: ~6,000 bytes, too many for the index even compressed
    let seed = 12345
    const rnd = () => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648
    const memo = Array.from({length: 1990}, () => String.fromCharCode(rnd() < 0.5 ? 1 + Math.floor(rnd() * 31) : 33 + Math.floor(rnd() * 90))).join('')
    await send(f, [
      value('"a|b"', {merchant: 'c'}),
      value('"a"', {merchant: 'b|c'}),
      value('"long"', {merchant: memo}),
      value('"a"', {merchant: 'b|c'}),
      value('"a|b"', {merchant: 'c', amt: '2.00'}),
    ])
    const out = await runOnce(f)
    expect(out).toMatchObject({read: 5, written: 2, duplicates: 1, dead_lettered: {SCHEMA_VIOLATION: 1, DUPLICATE_CONFLICT: 1}})
    expect(await sinkRows(f)).toEqual([
      {txn_id: 'a', amount: '1.50', merchant: 'b|c'},
      {txn_id: 'a|b', amount: '1.50', merchant: 'c'},
    ])
    const dead = await deadLetters(f)
    expect(dead.map((d) => d.code)).toEqual(['SCHEMA_VIOLATION', 'DUPLICATE_CONFLICT'])
    expect(dead[0]!.message).toMatch(/dedupe key of fields txn_id, merchant is \d+ bytes long/)
  })
})
