/**
 * What `dev status` reports: is the broker up (and is it ours), is PostgreSQL up, their
 * versions and addresses. Unreachable services are reported, not thrown; the command
 * decides the exit code (3, naming the one that is down).
 *
 * A service that answers but refuses what the settings ask (PostgreSQL refusing the login,
 * Kafka refusing SASL/TLS) is `refused`, not `down`: it is not unreachable, and restarting it
 * would not help. The command then exits 2 (the settings are wrong, as every other command
 * says of a refused login), not 3.
 */
import type {ConnectionSettings} from '../config/env.js'
import {describeDatabaseUrl} from '../config/env.js'
import {probeKafka} from '../kafka/client.js'
import {probeDatabase} from '../pg/pool.js'
import {describeError, ServiceUnavailableError} from '../errors.js'
import type {Logger} from '../log.js'
import {managedBroker, saslSslListener, type SaslSslListener} from './broker.js'

export interface ServiceStatus {
  /** down: unreachable; refused: it answers but refused the settings (login, SASL, TLS) */
  status: 'up' | 'down' | 'refused'
  address: string
  version: string | null
  error?: string
}

export interface DevStatusResult {
  kafka: ServiceStatus & {
    clusterId: string | null
    managed: boolean
    pid: number | null
    stateDir: string
    /** the SASL_SSL listener of the broker this state directory started (null: none, or not that broker) */
    saslSsl: SaslSslListener | null
  }
  postgresql: ServiceStatus
  unreachable: ('kafka' | 'postgresql')[]
  /** services that answer but refused the settings (login, SASL, TLS, sslmode): exit 2 */
  refused: ('kafka' | 'postgresql')[]
}

/** `down` when the service cannot be reached, `refused` when it answered with an error. */
function failedStatus(e: unknown): 'down' | 'refused' {
  return e instanceof ServiceUnavailableError ? 'down' : 'refused'
}

export async function devStatus(settings: ConnectionSettings, stateDir: string, logger?: Logger): Promise<DevStatusResult> {
  const managed = managedBroker(stateDir)
  const kafkaAddress = settings.kafka.brokers.join(',')
  const [k, p] = await Promise.allSettled([probeKafka(settings.kafka, logger), probeDatabase(settings.databaseUrl, undefined, logger)])
  const saslSsl = managed !== null ? saslSslListener(stateDir, managed) : null
  // the broker started from stateDir, whichever of its listeners (PLAINTEXT, SASL_SSL) the settings name
  const ours = managed !== null && (settings.kafka.brokers.includes(`${managed.host}:${managed.port}`) || (saslSsl !== null && settings.kafka.brokers.includes(saslSsl.address)))
  const kafka: DevStatusResult['kafka'] =
    k.status === 'fulfilled'
      ? {status: 'up', address: kafkaAddress, version: ours ? managed.version : null, clusterId: k.value.clusterId, managed: ours, pid: ours ? managed.pid : null, stateDir, saslSsl}
      : {status: failedStatus(k.reason), address: kafkaAddress, version: null, clusterId: null, managed: false, pid: null, stateDir, saslSsl, error: describeError(k.reason)}
  const postgresql: ServiceStatus =
    p.status === 'fulfilled'
      ? {status: 'up', address: p.value.address, version: p.value.version}
      : {status: failedStatus(p.reason), address: describeDatabaseUrl(settings.databaseUrl), version: null, error: describeError(p.reason)}
  const unreachable = [...(kafka.status === 'down' ? (['kafka'] as const) : []), ...(postgresql.status === 'down' ? (['postgresql'] as const) : [])]
  const refused = [...(kafka.status === 'refused' ? (['kafka'] as const) : []), ...(postgresql.status === 'refused' ? (['postgresql'] as const) : [])]
  return {kafka, postgresql, unreachable, refused}
}
