/**
 * Integration and e2e tests need the real broker and PostgreSQL. When either is missing the
 * run fails loudly here, with the fix, instead of skipping tests. `CUTOVER_TEST_SERVICES=none`
 * (used by `npm run test:unit`) runs only tests that need no service.
 */
import {spawnSync} from 'node:child_process'
import {connectionSettingsFromEnv} from '../src/config/env.js'
import {devStatus} from '../src/dev/status.js'
import {defaultStateDir} from '../src/dev/broker.js'
import {openDatabase} from '../src/pg/pool.js'

export default async function setup(): Promise<void> {
  if (process.env.CUTOVER_TEST_SERVICES === 'none') return
  const status = await devStatus(connectionSettingsFromEnv(), defaultStateDir())
  const problems: string[] = []
  // down (unreachable) or refused (it answers, but not to these settings): either way, no tests
  if (status.kafka.status !== 'up') problems.push(`Kafka at ${status.kafka.address}: ${status.kafka.error} (run \`npx cutover dev up\`)`)
  if (status.postgresql.status !== 'up') problems.push(`PostgreSQL at ${status.postgresql.address}: ${status.postgresql.error}`)
  if (spawnSync('kcat', ['-V']).error) problems.push('kcat is not installed (apt-get install -y kcat): tests read topics back with it')
  if (problems.length > 0) {
    throw new Error(`integration tests need real services, and some are missing:\n- ${problems.join('\n- ')}`)
  }
  // The test database (DATABASE_URL) is created and migrated once, as the CLI would on first use.
  const pool = await openDatabase(connectionSettingsFromEnv().databaseUrl)
  await pool.end()
}
