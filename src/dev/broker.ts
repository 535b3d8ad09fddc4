/**
 * A real single-node Apache Kafka broker (KRaft) for development, tests and CI.
 *
 * No Docker, no tarball: `dev/kafka/pom.xml` names `org.apache.kafka:kafka_2.13` and its
 * logging binding; Maven copies the runtime class path into the state directory once
 * (cached), the storage directory is formatted on first start, and `kafka.Kafka` runs in the
 * background with a bounded heap. The pid is recorded so that `stopBroker` stops only the
 * broker that `startBroker` started.
 *
 * Two client listeners: PLAINTEXT on --port (9092), and SASL_SSL on --sasl-port (9093: SCRAM-SHA-256
 * and SCRAM-SHA-512 over TLS, as banks run Kafka) with a self-signed CA made once per state
 * directory (./tls.ts) and a SCRAM user `cutover` whose random password is made once per state
 * directory too. The credential is added when the storage is formatted (`--add-scram`), or, for a
 * state directory formatted before the listener existed, over PLAINTEXT the first time the SASL
 * login fails after a start. Inter-broker and controller traffic stay PLAINTEXT.
 *
 * State directory layout (default ~/.cutover/dev/kafka):
 *   lib-<version>/        runtime jars (from Maven), `.complete` marks a finished copy
 *   data/                 KRaft metadata and topic logs
 *   logs/                 server.log (log4j) and server.out (stdout/stderr of the JVM)
 *   tls/ca.pem            the CA certificate clients trust (KAFKA_SSL_CA)
 *   tls/broker.pem        the broker's key and certificate chain (mode 0600; Kafka's PEM key store)
 *   sasl-password         the SCRAM password of user `cutover` (mode 0600; never printed)
 *   server.properties, log4j.properties, broker.json (pid, version, ports, started_at)
 */
import {spawn, spawnSync} from 'node:child_process'
import {randomBytes} from 'node:crypto'
import {chmodSync, existsSync, mkdirSync, openSync, readFileSync, readlinkSync, realpathSync, rmSync, writeFileSync, closeSync, readdirSync} from 'node:fs'
import {createConnection} from 'node:net'
import {homedir} from 'node:os'
import {dirname, join, resolve} from 'node:path'
import {fileURLToPath} from 'node:url'
import {CutoverError, describeError, ExitCode, UsageError} from '../errors.js'
import type {KafkaSettings} from '../config/env.js'
import {isSaslAuthenticationError, probeKafka, type ClusterInfo} from '../kafka/client.js'
import {silentLogger, type Logger} from '../log.js'
import {makeDevTls} from './tls.js'

export const KAFKA_VERSION = '3.9.1'

/** The SCRAM user of the dev broker's SASL_SSL listener. */
export const DEV_SASL_USERNAME = 'cutover'
const SCRAM_MECHANISMS = ['SCRAM-SHA-256', 'SCRAM-SHA-512'] as const

/** The pom that names the broker's jars, shipped with the package. */
export const POM_PATH = resolve(dirname(fileURLToPath(import.meta.url)), '../../../dev/kafka/pom.xml')

export interface BrokerOptions {
  stateDir: string
  host?: string
  port?: number
  /** the SASL_SSL listener's port (default: the first port after `port` that is not the controller's) */
  saslPort?: number
  /** default: the first port after `port` that is not the SASL_SSL listener's */
  controllerPort?: number
  heap?: string
  startTimeoutMs?: number
  logger?: Logger
  /** Progress lines for a person ("copying jars…"); commands route them to stderr. */
  onProgress?: (message: string) => void
  /**
   * Extra server.properties lines, appended after (and so overriding) dev up's own; for tests that
   * need a broker set up otherwise (an authorizer with ACLs). `cutover dev up` never sets it.
   */
  extraProperties?: Record<string, string>
}

export interface BrokerState {
  pid: number
  version: string
  host: string
  port: number
  /** absent for a broker started before dev up opened a SASL_SSL listener */
  saslPort?: number
  controllerPort: number
  startedAt: string
  stateDir: string
}

/** Where the dev broker's SASL_SSL listener is, and the settings that use it (never the password itself). */
export interface SaslSslListener {
  address: string
  securityProtocol: 'SASL_SSL'
  mechanisms: ('scram-sha-256' | 'scram-sha-512')[]
  username: string
  /** the file holding the password (mode 0600) */
  passwordFile: string
  /** the CA certificate (PEM) that signed the broker's certificate */
  caFile: string
  /** the KAFKA_* settings for it, but KAFKA_SASL_PASSWORD: read it from `passwordFile` */
  env: {KAFKA_BROKERS: string; KAFKA_SASL_MECHANISM: string; KAFKA_SASL_USERNAME: string; KAFKA_SSL_CA: string}
}

export interface UpResult {
  bootstrap: string
  reused: boolean
  managed: boolean
  pid: number | null
  version: string | null
  clusterId: string
  stateDir: string
  startMs: number
  /** the SASL_SSL listener; null when the broker reused was not started by this state directory, or before dev up opened one */
  saslSsl: SaslSslListener | null
}

export interface DownResult {
  stopped: boolean
  pid: number | null
  wiped: boolean
  message: string
}

export function defaultStateDir(env: Record<string, string | undefined> = process.env): string {
  return join(env.CUTOVER_HOME ?? join(homedir(), '.cutover'), 'dev', 'kafka')
}

function paths(stateDir: string) {
  return {
    lib: join(stateDir, `lib-${KAFKA_VERSION}`),
    data: join(stateDir, 'data'),
    logs: join(stateDir, 'logs'),
    props: join(stateDir, 'server.properties'),
    log4j: join(stateDir, 'log4j.properties'),
    state: join(stateDir, 'broker.json'),
    tls: join(stateDir, 'tls'),
    ca: join(stateDir, 'tls', 'ca.pem'),
    keystore: join(stateDir, 'tls', 'broker.pem'),
    password: join(stateDir, 'sasl-password'),
  }
}

/** The SASL_SSL listener of a broker started from `stateDir` (its recorded state), or null. */
export function saslSslListener(stateDir: string, state: BrokerState | null = readBrokerState(stateDir)): SaslSslListener | null {
  const p = paths(stateDir)
  if (!state?.saslPort || !existsSync(p.password) || !existsSync(p.ca)) return null
  const address = `${state.host}:${state.saslPort}`
  return {
    address,
    securityProtocol: 'SASL_SSL',
    mechanisms: ['scram-sha-256', 'scram-sha-512'],
    username: DEV_SASL_USERNAME,
    passwordFile: p.password,
    caFile: p.ca,
    env: {KAFKA_BROKERS: address, KAFKA_SASL_MECHANISM: 'scram-sha-256', KAFKA_SASL_USERNAME: DEV_SASL_USERNAME, KAFKA_SSL_CA: p.ca},
  }
}

/** One shell line that points cutover at the listener; the password is read from its file, not shown. */
export function saslSslEnvLine(l: SaslSslListener): string {
  const q = (v: string) => (/^[\w@%+=:,./-]+$/.test(v) ? v : `'${v.replace(/'/g, `'\\''`)}'`)
  return [...Object.entries(l.env).map(([k, v]) => `${k}=${q(v)}`), `KAFKA_SASL_PASSWORD="$(cat ${q(l.passwordFile)})"`].join(' ')
}

/** Settings for a client of the listener (the dev broker's own checks). */
export function saslSslSettings(l: SaslSslListener, mechanism: 'scram-sha-256' | 'scram-sha-512' = 'scram-sha-256'): KafkaSettings {
  return {
    brokers: [l.address],
    clientId: 'cutover-dev',
    sasl: {mechanism, username: l.username, password: readFileSync(l.passwordFile, 'utf8').trim()},
    ssl: {ca: l.caFile, rejectUnauthorized: true},
  }
}

/**
 * The CA, the broker's key store and the SCRAM password, each made when missing (once per state
 * directory: `dev down --wipe` keeps them, so clients keep working across a wipe). The key store
 * and the password are written 0600.
 */
function ensureSaslSslFiles(stateDir: string, host: string): {password: string} {
  const p = paths(stateDir)
  if (!existsSync(p.ca) || !existsSync(p.keystore)) {
    mkdirSync(p.tls, {recursive: true})
    const hosts = [...new Set([host, '127.0.0.1', 'localhost', '::1'])]
    const tls = makeDevTls(hosts)
    writeSecret(p.keystore, tls.brokerKeystorePem)
    writeFileSync(p.ca, tls.caPem)
  }
  if (!existsSync(p.password)) writeSecret(p.password, randomBytes(18).toString('base64url'))
  return {password: readFileSync(p.password, 'utf8').trim()}
}

function writeSecret(file: string, content: string): void {
  writeFileSync(file, content, {mode: 0o600})
  chmodSync(file, 0o600) // a file that existed keeps its mode through writeFileSync
}

/**
 * Runs a Kafka tool class whose arguments hold a secret: they go in a java @argfile (mode 0600,
 * removed after), not on the command line, where `ps` would show them to every local user.
 */
async function runKafkaTool(stateDir: string, jvm: string[], mainClass: string, args: string[], timeoutMs = 120_000): Promise<{status: number | null; output: string}> {
  const argfile = join(stateDir, `.args-${process.pid}-${randomBytes(4).toString('hex')}`)
  writeSecret(argfile, [mainClass, ...args].map((a) => `"${a.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`).join('\n') + '\n')
  try {
    return await new Promise((done) => {
      const child = spawn('java', [...jvm, `@${argfile}`], {stdio: ['ignore', 'pipe', 'pipe'], timeout: timeoutMs})
      let output = ''
      child.stdout.on('data', (d: Buffer) => (output += d.toString()))
      child.stderr.on('data', (d: Buffer) => (output += d.toString()))
      child.on('error', (e) => done({status: null, output: `${output}\n${e.message}`}))
      child.on('close', (status) => done({status, output}))
    })
  } finally {
    rmSync(argfile, {force: true})
  }
}

/** `kafka-storage format --add-scram` values: the user's credential for each mechanism. */
const scramAtFormat = (password: string) => SCRAM_MECHANISMS.flatMap((m) => ['--add-scram', `${m}=[name=${DEV_SASL_USERNAME},password=${password}]`])

function prerequisite(message: string, hint: string, cause?: unknown): CutoverError {
  return new CutoverError('PREREQUISITE_MISSING', message, {hint, exitCode: ExitCode.USAGE, ...(cause ? {cause} : {})})
}

function checkTool(cmd: string, args: string[], hint: string): string {
  const r = spawnSync(cmd, args, {encoding: 'utf8', timeout: 30_000})
  if (r.error || r.status !== 0) throw prerequisite(`${cmd} is not installed or does not run`, hint, r.error)
  return `${r.stdout}${r.stderr}`.split('\n')[0]?.trim() ?? ''
}

/** Copies the broker's jars from Maven (once). */
export function ensureJars(stateDir: string, onProgress: (m: string) => void = () => {}): string {
  const {lib} = paths(stateDir)
  if (existsSync(join(lib, '.complete'))) return lib
  checkTool('mvn', ['-v'], 'install Apache Maven (apt-get install -y maven) so that dev up can fetch the Kafka jars')
  if (!existsSync(POM_PATH)) throw prerequisite(`the broker pom is missing at ${POM_PATH}`, 'reinstall cutover')
  onProgress(`fetching Apache Kafka ${KAFKA_VERSION} jars with Maven (once)…`)
  mkdirSync(lib, {recursive: true})
  const copy = () =>
    spawnSync(
      'mvn',
      ['-q', '-B', '-f', POM_PATH, 'dependency:copy-dependencies', '-DincludeScope=runtime', `-DoutputDirectory=${lib}`, `-Dkafka.version=${KAFKA_VERSION}`],
      {encoding: 'utf8', timeout: 600_000},
    )
  // Two `dev up`s fetching at once share ~/.m2, whose local repository is not safe for
  // concurrent writers: a failed first attempt is retried once before it is reported.
  let r = copy()
  if (r.status !== 0) {
    onProgress('Maven failed; retrying once…')
    spawnSync('sleep', [String(1 + Math.random() * 2)])
    r = copy()
  }
  if (r.status !== 0) {
    throw new CutoverError('PREREQUISITE_MISSING', `Maven could not fetch the Kafka jars:\n${tail(`${r.stdout}\n${r.stderr}`, 20)}`, {
      exitCode: ExitCode.UNAVAILABLE,
      hint: 'check access to Maven Central (or a mirror in ~/.m2/settings.xml) and run `cutover dev up` again',
    })
  }
  if (!readdirSync(lib).some((f) => f.startsWith('kafka_2.13-'))) {
    throw prerequisite(`Maven ran but ${lib} holds no kafka_2.13 jar`, `remove ${lib} and run \`cutover dev up\` again`)
  }
  writeFileSync(join(lib, '.complete'), new Date().toISOString())
  return lib
}

function tail(text: string, n: number): string {
  return text.trimEnd().split('\n').slice(-n).join('\n')
}

function readTail(file: string, n: number): string {
  try {
    return tail(readFileSync(file, 'utf8'), n)
  } catch {
    return '(no log written)'
  }
}

/**
 * A cluster id as Kafka makes one (`kafka-storage random-uuid`): 16 random bytes in base64url,
 * drawn again when it starts with '-', which the storage tool's argument parser would take for
 * an option (1 start in 64: a clean CI run failed on it once).
 */
export function kafkaClusterId(random: () => Buffer = () => randomBytes(16)): string {
  for (;;) {
    const id = random().toString('base64url')
    if (!id.startsWith('-')) return id
  }
}

function serverProperties(o: {host: string; port: number; saslPort: number; controllerPort: number; data: string; keystore: string; extra?: Record<string, string>}): string {
  const extra = Object.entries(o.extra ?? {})
  for (const [k, v] of extra) {
    if (!/^[\w.-]+$/.test(k) || /[\r\n]/.test(v)) throw new UsageError(`extra broker property ${JSON.stringify(k)} is not one key=value line`)
  }
  const added = extra.length ? `# Extra properties given to startBroker (a test's broker):\n${extra.map(([k, v]) => `${k}=${v}`).join('\n')}\n` : ''
  return `# Written by \`cutover dev up\`: a single-node KRaft broker for development and CI.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@${o.host}:${o.controllerPort}
listeners=PLAINTEXT://${o.host}:${o.port},SASL_SSL://${o.host}:${o.saslPort},CONTROLLER://${o.host}:${o.controllerPort}
advertised.listeners=PLAINTEXT://${o.host}:${o.port},SASL_SSL://${o.host}:${o.saslPort}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SASL_SSL:SASL_SSL
# SASL_SSL: SCRAM over TLS, as banks run Kafka. The users' credentials live in the cluster
# metadata (kafka-storage format --add-scram, or kafka-configs --alter --entity-type users).
sasl.enabled.mechanisms=${SCRAM_MECHANISMS.join(',')}
listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
# Kafka's PEM key store: the unencrypted PKCS#8 key, then the chain (tls/broker.pem, mode 0600)
listener.name.sasl_ssl.ssl.keystore.type=PEM
listener.name.sasl_ssl.ssl.keystore.location=${o.keystore}
log.dirs=${o.data}
num.partitions=1
default.replication.factor=1
# A single node: internal topics cannot have more than one replica.
offsets.topic.replication.factor=1
offsets.topic.num.partitions=10
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=10
min.insync.replicas=1
# Consumers join at once instead of waiting 3 s for others.
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=true
delete.topic.enable=true
# Poison-record tests send values of several MB.
message.max.bytes=10485760
replica.fetch.max.bytes=10485760
log.retention.hours=168
log.segment.bytes=268435456
${added}`
}

function log4jProperties(logs: string): string {
  return `log4j.rootLogger=INFO, file
log4j.appender.file=org.apache.log4j.RollingFileAppender
log4j.appender.file.File=${join(logs, 'server.log')}
log4j.appender.file.MaxFileSize=20MB
log4j.appender.file.MaxBackupIndex=2
log4j.appender.file.layout=org.apache.log4j.PatternLayout
log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka=INFO
log4j.logger.org.apache.kafka=INFO
log4j.logger.state.change.logger=WARN
log4j.logger.kafka.request.logger=WARN
`
}

function portOpen(host: string, port: number, timeoutMs = 1000): Promise<boolean> {
  return new Promise((done) => {
    const socket = createConnection({host, port})
    const finish = (open: boolean) => {
      socket.destroy()
      done(open)
    }
    socket.setTimeout(timeoutMs, () => finish(false))
    socket.once('connect', () => finish(true))
    socket.once('error', () => finish(false))
  })
}

export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM'
  }
}

/**
 * True when `pid` is the JVM running kafka.Kafka on THIS state directory's server.properties
 * (guards against a recycled pid). A broker of another state directory is not ours: a state
 * directory copied while its broker ran (cp -r ~/.cutover /tmp/ci-home) holds that broker's pid,
 * and `dev down` on the copy stopped the original (or a broker that took a recycled pid). The
 * properties path is compared resolved against the process's working directory (a relative
 * --state-dir is recorded as given).
 */
function isKafkaProcess(pid: number, stateDir: string): boolean {
  if (!processAlive(pid)) return false
  let args: string[]
  try {
    args = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0')
  } catch {
    return true // no /proc (macOS): trust the recorded pid
  }
  const i = args.indexOf('kafka.Kafka')
  if (i < 0) return false
  const props = args[i + 1]
  // kafka.Kafka always takes its properties file; without one there is nothing to tell it by
  if (!props) return true
  let cwd = process.cwd()
  try {
    cwd = readlinkSync(`/proc/${pid}/cwd`)
  } catch {
    /* another user's process: its path is compared as written, resolved against ours */
  }
  const real = (f: string) => {
    try {
      return realpathSync(f)
    } catch {
      return resolve(f)
    }
  }
  return real(resolve(cwd, props)) === real(paths(stateDir).props)
}

export function readBrokerState(stateDir: string): BrokerState | null {
  try {
    return JSON.parse(readFileSync(paths(stateDir).state, 'utf8')) as BrokerState
  } catch {
    return null
  }
}

/** The recorded broker, if its process is still alive. */
export function managedBroker(stateDir: string): BrokerState | null {
  const s = readBrokerState(stateDir)
  return s && isKafkaProcess(s.pid, stateDir) ? s : null
}

function settingsFor(host: string, port: number): KafkaSettings {
  return {brokers: [`${host}:${port}`], clientId: 'cutover-dev'}
}

async function answers(host: string, port: number, logger: Logger): Promise<ClusterInfo | null> {
  if (!(await portOpen(host, port))) return null
  try {
    return await probeKafka(settingsFor(host, port), logger)
  } catch {
    return null
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/**
 * The broker's three ports: PLAINTEXT `port` (9092), then the SASL_SSL listener and the
 * controller, each on the first port after `port` that the other was not given (9093, 9094; with
 * only --controller-port P+1, as tests give it, SASL_SSL takes P+2). Three different ports, or a usage error.
 */
export function devPorts(o: {port?: number; saslPort?: number; controllerPort?: number}): {port: number; saslPort: number; controllerPort: number} {
  const port = o.port ?? 9092
  const next = (taken: number | undefined) => (port + 1 === taken ? port + 2 : port + 1)
  const saslPort = o.saslPort ?? next(o.controllerPort)
  const controllerPort = o.controllerPort ?? next(saslPort)
  if (new Set([port, saslPort, controllerPort]).size < 3) {
    throw new UsageError(`the PLAINTEXT (${port}), SASL_SSL (${saslPort}) and controller (${controllerPort}) ports must differ`, {
      hint: 'give --port, --sasl-port and --controller-port three different ports (or only --port: the other two follow it)',
    })
  }
  return {port, saslPort, controllerPort}
}

/** Starts the broker, or reuses one that already answers on host:port. */
export async function startBroker(options: BrokerOptions): Promise<UpResult> {
  const host = options.host ?? '127.0.0.1'
  const {port, saslPort, controllerPort} = devPorts(options)
  const logger = (options.logger ?? silentLogger).namespace('dev.broker')
  const progress = options.onProgress ?? (() => {})
  const p = paths(options.stateDir)
  const t0 = Date.now()

  // the tools' JVM options (kafka-storage, kafka-configs): the broker's class path and log4j
  const jvm = ['-Xmx256m', '-cp', `${p.lib}/*`, `-Dlog4j.configuration=file:${p.log4j}`, `-Dkafka.logs.dir=${p.logs}`]

  const reuse = async (existing: ClusterInfo): Promise<UpResult> => {
    const managed = managedBroker(options.stateDir)
    const same = managed !== null && managed.host === host && managed.port === port
    logger.info('dev.broker.reuse', {bootstrap: `${host}:${port}`})
    const saslSsl = same ? saslSslListener(options.stateDir, managed) : null
    // a broker of this state directory: its SASL_SSL login is checked (and its user added if missing) as at start
    if (saslSsl) await ensureScramUser({stateDir: options.stateDir, jvm, bootstrap: `${host}:${port}`, listener: saslSsl, password: readFileSync(p.password, 'utf8').trim(), logger, progress})
    return {
      bootstrap: `${host}:${port}`,
      reused: true,
      managed: managed !== null,
      pid: managed?.pid ?? null,
      version: managed?.version ?? null,
      clusterId: existing.clusterId,
      stateDir: options.stateDir,
      startMs: Date.now() - t0,
      saslSsl,
    }
  }
  const existing = await answers(host, port, logger)
  if (existing) return reuse(existing)
  // One state directory holds one broker: a second JVM on its data directory dies on the lock
  // the running one holds, and its pid would replace the running broker's in broker.json,
  // leaving that broker running where `dev down` no longer finds it.
  const running = managedBroker(options.stateDir)
  if (running) {
    const down = `cutover dev down --state-dir ${options.stateDir}`
    if (running.host !== host || running.port !== port) {
      throw new UsageError(`a broker started from ${options.stateDir} is running on ${running.host}:${running.port} (pid ${running.pid}); one state directory holds one broker`, {
        hint: `use that one (KAFKA_BROKERS=${running.host}:${running.port}), stop it first (${down}), or give this one its own --state-dir`,
      })
    }
    // started, not answering yet (another `dev up` is starting it): wait for it instead
    progress(`the broker started from ${options.stateDir} (pid ${running.pid}) does not answer yet; waiting for it on ${host}:${port}…`)
    const deadline = t0 + (options.startTimeoutMs ?? 90_000)
    while (isKafkaProcess(running.pid, options.stateDir)) {
      const info = await answers(host, port, logger)
      if (info) return reuse(info)
      if (Date.now() >= deadline) {
        throw new CutoverError('START_TIMEOUT', `the broker started from ${options.stateDir} (pid ${running.pid}) does not answer on ${host}:${port} within ${Math.round((options.startTimeoutMs ?? 90_000) / 1000)} s`, {
          exitCode: ExitCode.UNAVAILABLE,
          hint: `read ${p.logs}/server.log; stop it with \`${down}\` and run dev up again`,
        })
      }
      await sleep(500)
    }
    // it exited meanwhile: start one below
  }
  for (const [name, prt] of [['broker', port], ['SASL_SSL', saslPort], ['controller', controllerPort]] as const) {
    if (await portOpen(host, prt)) {
      throw new CutoverError('PORT_IN_USE', `port ${host}:${prt} (Kafka ${name} listener) is taken by a process that is not a Kafka broker`, {
        exitCode: ExitCode.UNAVAILABLE,
        hint: `stop what listens there (ss -ltnp 'sport = :${prt}') or choose other ports with --port/--sasl-port/--controller-port`,
      })
    }
  }
  const javaVersion = checkTool('java', ['-version'], 'install Java 17 or newer (apt-get install -y openjdk-17-jre-headless)')
  const lib = ensureJars(options.stateDir, progress)

  mkdirSync(p.data, {recursive: true})
  mkdirSync(p.logs, {recursive: true})
  const {password} = ensureSaslSslFiles(options.stateDir, host)
  writeFileSync(p.props, serverProperties({host, port, saslPort, controllerPort, data: p.data, keystore: p.keystore, ...(options.extraProperties ? {extra: options.extraProperties} : {})}))
  writeFileSync(p.log4j, log4jProperties(p.logs))
  const jvmBase = ['-cp', `${lib}/*`, `-Dlog4j.configuration=file:${p.log4j}`, `-Dkafka.logs.dir=${p.logs}`]

  if (!existsSync(join(p.data, 'meta.properties'))) {
    progress('formatting the KRaft storage directory (first start)…')
    const clusterId = kafkaClusterId()
    const r = await runKafkaTool(options.stateDir, jvm, 'kafka.tools.StorageTool', ['format', '-t', clusterId, '-c', p.props, ...scramAtFormat(password)])
    if (r.status !== 0) {
      throw new CutoverError('START_TIMEOUT', `formatting the Kafka storage failed:\n${tail(r.output, 20)}`, {
        exitCode: ExitCode.UNAVAILABLE,
        hint: `remove ${p.data} (cutover dev down --wipe) and try again`,
      })
    }
  }

  progress(`starting Apache Kafka ${KAFKA_VERSION} (${javaVersion}) on ${host}:${port}…`)
  const outFile = join(p.logs, 'server.out')
  const out = openSync(outFile, 'a')
  const child = spawn(
    'java',
    [`-Xms256m`, `-Xmx${options.heap ?? '1g'}`, '-XX:+UseG1GC', '-XX:MaxGCPauseMillis=20', '-Djava.awt.headless=true', ...jvmBase, 'kafka.Kafka', p.props],
    {detached: true, stdio: ['ignore', out, out]},
  )
  closeSync(out)
  const pid = child.pid
  if (pid === undefined) throw new CutoverError('START_TIMEOUT', 'the JVM did not start', {exitCode: ExitCode.UNAVAILABLE})
  child.unref()
  const state: BrokerState = {pid, version: KAFKA_VERSION, host, port, saslPort, controllerPort, startedAt: new Date().toISOString(), stateDir: options.stateDir}
  writeFileSync(p.state, JSON.stringify(state, null, 2))
  logger.info('dev.broker.spawned', {pid})

  const deadline = Date.now() + (options.startTimeoutMs ?? 90_000)
  while (Date.now() < deadline) {
    if (!processAlive(pid)) {
      throw new CutoverError('START_TIMEOUT', `the broker exited during start-up. Last lines of its log:\n${readTail(join(p.logs, 'server.log'), 15)}\n${readTail(outFile, 10)}`, {
        exitCode: ExitCode.UNAVAILABLE,
        hint: `read ${p.logs}/server.log; a corrupt data directory is reset with \`cutover dev down --wipe\``,
      })
    }
    const info = await answers(host, port, logger)
    if (info) {
      const saslSsl = saslSslListener(options.stateDir, state)!
      await ensureScramUser({stateDir: options.stateDir, jvm, bootstrap: `${host}:${port}`, listener: saslSsl, password, logger, progress})
      return {bootstrap: `${host}:${port}`, reused: false, managed: true, pid, version: KAFKA_VERSION, clusterId: info.clusterId, stateDir: options.stateDir, startMs: Date.now() - t0, saslSsl}
    }
    await sleep(500)
  }
  try {
    process.kill(pid, 'SIGKILL')
  } catch {
    /* already gone */
  }
  throw new CutoverError('START_TIMEOUT', `the broker did not answer on ${host}:${port} within ${Math.round((options.startTimeoutMs ?? 90_000) / 1000)} s. Last lines of its log:\n${readTail(join(p.logs, 'server.log'), 15)}`, {
    exitCode: ExitCode.UNAVAILABLE,
    hint: 'raise --timeout on a slow machine, or read the log above',
  })
}

/**
 * Logs in on the SASL_SSL listener as the dev user; when the broker refuses the login (a state
 * directory formatted before dev up opened the listener has no SCRAM user), adds the user's
 * credential over PLAINTEXT (kafka-configs --alter --entity-type users) and waits until the
 * login succeeds. Any other failure of the listener that lasts 30 s fails `dev up`, with the broker's log.
 */
async function ensureScramUser(o: {stateDir: string; jvm: string[]; bootstrap: string; listener: SaslSslListener; password: string; logger: Logger; progress: (m: string) => void}): Promise<void> {
  const login = async (): Promise<unknown> => {
    try {
      await probeKafka(saslSslSettings(o.listener), o.logger)
      return null
    } catch (e) {
      return e
    }
  }
  // The listener is probed as soon as PLAINTEXT answers. On a busy machine a TLS handshake with a
  // JVM that has just started can outlast the probe's 2 s connect timeout, or the listener can
  // answer a moment later: anything but a refused login is tried again, for up to 30 s.
  const settleDeadline = Date.now() + 30_000
  let failed = await login()
  while (failed !== null && !isSaslAuthenticationError(failed) && Date.now() < settleDeadline) {
    o.logger.info('dev.broker.sasl_ssl_retry', {error: describeError(failed)})
    await sleep(500)
    failed = await login()
  }
  if (failed !== null && isSaslAuthenticationError(failed)) {
    o.progress(`adding the SCRAM user ${DEV_SASL_USERNAME} (this state directory was formatted before dev up opened a SASL_SSL listener; once)…`)
    // the broker refuses two credentials of one user in one request: one run per mechanism, side by side
    const runs = await Promise.all(
      SCRAM_MECHANISMS.map(async (m) => ({
        m,
        r: await runKafkaTool(o.stateDir, o.jvm, 'kafka.admin.ConfigCommand', ['--bootstrap-server', o.bootstrap, '--alter', '--entity-type', 'users', '--entity-name', DEV_SASL_USERNAME, '--add-config', `${m}=[iterations=4096,password=${o.password}]`]),
      })),
    )
    for (const {m, r} of runs) {
      if (r.status !== 0) {
        throw new CutoverError('START_TIMEOUT', `the broker is up, but adding the ${m} credential of user ${DEV_SASL_USERNAME} failed:\n${tail(r.output, 20)}`, {
          exitCode: ExitCode.UNAVAILABLE,
          hint: `read ${join(o.stateDir, 'logs')}/server.log; \`cutover dev down --wipe --state-dir ${o.stateDir}\` then dev up formats the storage with the user`,
        })
      }
    }
    // the credential reaches the broker through the metadata log: a moment after the tool returns
    const deadline = Date.now() + 15_000
    for (failed = await login(); failed !== null && Date.now() < deadline; failed = await login()) await sleep(200)
  }
  if (failed !== null) {
    throw new CutoverError('START_TIMEOUT', `the broker is up at ${o.bootstrap}, but its SASL_SSL listener at ${o.listener.address} refuses the dev user: ${describeError(failed)}`, {
      exitCode: ExitCode.UNAVAILABLE,
      cause: failed,
      hint: `read ${join(o.stateDir, 'logs')}/server.log; \`cutover dev down --wipe --state-dir ${o.stateDir}\` then dev up starts afresh (the CA and the password are kept)`,
    })
  }
  o.logger.info('dev.broker.sasl_ssl', {address: o.listener.address})
}

/** Stops the broker this state directory started (never another one). */
export async function stopBroker(options: {stateDir: string; wipe?: boolean; timeoutMs?: number; logger?: Logger}): Promise<DownResult> {
  const logger = (options.logger ?? silentLogger).namespace('dev.broker')
  const p = paths(options.stateDir)
  const state = readBrokerState(options.stateDir)
  let stopped = false
  let message: string
  if (state && isKafkaProcess(state.pid, options.stateDir)) {
    process.kill(state.pid, 'SIGTERM')
    const deadline = Date.now() + (options.timeoutMs ?? 30_000)
    while (processAlive(state.pid) && Date.now() < deadline) await sleep(200)
    if (processAlive(state.pid)) {
      logger.warn('dev.broker.kill', {pid: state.pid})
      process.kill(state.pid, 'SIGKILL')
      while (processAlive(state.pid)) await sleep(100)
    }
    stopped = true
    message = `stopped the broker (pid ${state.pid})`
  } else {
    message = 'no broker started by cutover is running'
  }
  rmSync(p.state, {force: true})
  if (options.wipe) {
    rmSync(p.data, {recursive: true, force: true})
    rmSync(p.logs, {recursive: true, force: true})
    message += '; data wiped'
  }
  logger.info('dev.broker.down', {stopped, wiped: options.wipe === true})
  return {stopped, pid: state?.pid ?? null, wiped: options.wipe === true, message}
}
