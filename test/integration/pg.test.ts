import {createHash, randomUUID} from 'node:crypto'
import pg from 'pg'
import {describe, expect, it} from 'vitest'
import {keyDigest} from '../../src/dlq/mask.js'
import {silentLogger} from '../../src/log.js'
import {MIGRATIONS, migrate} from '../../src/pg/migrations.js'
import {openDatabase} from '../../src/pg/pool.js'
import {pruneDedupeKeys, storedKeys} from '../../src/runtime/stages/dedupe.js'
import {endPool, settings} from '../helpers.js'

describe('PostgreSQL access', () => {
  it('creates a missing database, runs migrations once, and is idempotent', async () => {
    const base = new URL(settings().databaseUrl)
    const dbName = `cutover_test_${randomUUID().slice(0, 8)}`
    base.pathname = `/${dbName}`
    const url = base.toString()
    const pool1 = await openDatabase(url)
    const first = await pool1.query('SELECT version FROM cutover.schema_migrations ORDER BY version')
    await pool1.end()
    const pool2 = await openDatabase(url) // second start: nothing applied twice
    const second = await pool2.query('SELECT version FROM cutover.schema_migrations ORDER BY version')
    await pool2.end()
    // every migration, each once
    expect(first.rows.map((r: {version: number}) => Number(r.version))).toEqual(MIGRATIONS.map((m) => m.version))
    expect(second.rows).toEqual(first.rows)
    base.pathname = '/postgres'
    const admin = new pg.Client({connectionString: base.toString()})
    await admin.connect()
    await admin.query(`DROP DATABASE "${dbName}" WITH (FORCE)`)
    await admin.end()
  })

  it('migration 9 keeps a replay\'s --key as its digest in rows written before it (a card number, in plain text until then)', async () => {
    const base = new URL(settings().databaseUrl)
    const dbName = `cutover_test_${randomUUID().slice(0, 8)}`
    base.pathname = '/postgres'
    const admin = new pg.Client({connectionString: base.toString()})
    await admin.connect()
    await admin.query(`CREATE DATABASE "${dbName}"`)
    base.pathname = `/${dbName}`
    const pool = new pg.Pool({connectionString: base.toString(), max: 1})
    try {
      await migrate(pool, silentLogger, MIGRATIONS.filter((m) => m.version <= 8))
      const insert = (id: string, key: string | null) =>
        pool.query(
          `INSERT INTO cutover.replays (id, dlq_topic, pipeline, spec_sha256, selection, group_id, targets, run_by) VALUES ($1, 'd', 'p', 's', $2, 'g', '[]', 'me')`,
          [id, JSON.stringify({codes: [], since: null, until: null, key, to: 'source', max_replays: 3})],
        )
      const digest = `sha256:${createHash('sha256').update('4111111111111111', 'utf8').digest('hex')}`
      await insert('old', '4111111111111111')
      await insert('none', null)
      await insert('new', digest)
      expect(await migrate(pool, silentLogger, MIGRATIONS.filter((m) => m.version <= 9))).toEqual([9])
      const rows = await pool.query<{id: string; key: string | null; text: string}>(`SELECT id, selection ->> 'key' AS key, selection::text AS text FROM cutover.replays ORDER BY id`)
      expect(rows.rows.map((r) => [r.id, r.key])).toEqual([
        ['new', digest],
        ['none', null],
        ['old', digest], // the same digest `dlq replay --key 4111111111111111` computes (src/dlq/mask.ts keyDigest)
      ])
      expect(rows.rows.map((r) => r.text).join('\n')).not.toContain('4111111111111111')
      expect(keyDigest('4111111111111111')).toBe(digest)
    } finally {
      await endPool(pool)
      await admin.query(`DROP DATABASE "${dbName}" WITH (FORCE)`)
      await admin.end()
    }
  })

  it('keeps dedupe keys in the "C" collation (migration 7), and the lookup still probes the primary key', async () => {
    const pool = await openDatabase(settings().databaseUrl)
    try {
      const cols = await pool.query<{column_name: string; collation_name: string | null}>(
        `SELECT column_name, collation_name FROM information_schema.columns
          WHERE table_schema = 'cutover' AND table_name = 'stream_dedupe' AND column_name IN ('pipeline', 'key') ORDER BY column_name`,
      )
      expect(cols.rows).toEqual([
        {column_name: 'key', collation_name: 'C'},
        {column_name: 'pipeline', collation_name: 'C'},
      ])
      const plan = await pool.query<{'QUERY PLAN': string}>(`EXPLAIN ${storedKeys('unnest($2::text[])')}`.replace(/\$1/g, "'p'").replace(/\$2/g, "ARRAY['a', 'b']"))
      expect(plan.rows.map((r) => r['QUERY PLAN']).join('\n')).toMatch(/Index Scan using stream_dedupe_pkey/)
    } finally {
      await pool.end()
    }
  })

  it('prunes dedupe keys past the retention, of its own pipeline only', async () => {
    const pool = await openDatabase(settings().databaseUrl)
    try {
      const a = `prune-a-${randomUUID().slice(0, 8)}`
      const b = `prune-b-${randomUUID().slice(0, 8)}`
      const insert = (pipeline: string, n: number, age: string) =>
        pool.query(
          `INSERT INTO cutover.stream_dedupe (pipeline, key, payload_sha256, seen_at)
           SELECT $1, $2 || g, '\\x00'::bytea, now() - $3::interval FROM generate_series(1, $4::int) AS g`,
          [pipeline, age, age, n],
        )
      await insert(a, 300, '3 days')
      await insert(a, 200, '1 hour')
      await insert(b, 100, '3 days')
      try {
        expect(await pruneDedupeKeys(pool, a, 24 * 3600 * 1000)).toBe(300)
        const left = await pool.query<{pipeline: string; n: number}>('SELECT pipeline, count(*)::int AS n FROM cutover.stream_dedupe WHERE pipeline = ANY($1) GROUP BY 1 ORDER BY 1', [[a, b]])
        expect(left.rows).toEqual([
          {pipeline: a, n: 200},
          {pipeline: b, n: 100},
        ])
      } finally {
        await pool.query('DELETE FROM cutover.stream_dedupe WHERE pipeline = ANY($1)', [[a, b]])
      }
    } finally {
      await pool.end()
    }
  })

  it('an unreachable server is ServiceUnavailableError naming the address', async () => {
    await expect(openDatabase('postgres://postgres:pw@127.0.0.1:1/cutover', {connectionTimeoutMillis: 1000})).rejects.toMatchObject({
      code: 'SERVICE_UNAVAILABLE',
      exitCode: 3,
      address: '127.0.0.1:1/cutover',
    })
  })
})
