/**
 * A real single-node Apache Kafka broker (KRaft) for development, tests and CI.
 *
 * No Docker, no tarball: `dev/kafka/pom.xml` names `org.apache.kafka:kafka_2.13` and its
 * logging binding; Maven copies the runtime class path into the state directory once
 * (cached), the storage directory is formatted on first start, and `kafka.Kafka` runs in the
 * background with a bounded heap. The pid is recorded so that `stopBroker` stops only the
 * broker that `startBroker` started.
 *
 * State directory layout (default ~/.cutover/dev/kafka):
 *   lib-<version>/        runtime jars (from Maven), `.complete` marks a finished copy
 *   data/                 KRaft metadata and topic logs
 *   logs/                 server.log (log4j) and server.out (stdout/stderr of the JVM)
 *   server.properties, log4j.properties, broker.json (pid, version, ports, started_at)
 */
import {spawn, spawnSync} from 'node:child_process'
import {randomBytes} from 'node:crypto'
import {existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync, closeSync, readdirSync} from 'node:fs'
import {createConnection} from 'node:net'
import {homedir} from 'node:os'
import {dirname, join, resolve} from 'node:path'
import {fileURLToPath} from 'node:url'
import {CutoverError, ExitCode, UsageError} from '../errors.js'
import type {KafkaSettings} from '../config/env.js'
import {probeKafka, type ClusterInfo} from '../kafka/client.js'
import {silentLogger, type Logger} from '../log.js'

export const KAFKA_VERSION = '3.9.1'

/** The pom that names the broker's jars, shipped with the package. */
export const POM_PATH = resolve(dirname(fileURLToPath(import.meta.url)), '../../../dev/kafka/pom.xml')

export interface BrokerOptions {
  stateDir: string
  host?: string
  port?: number
  controllerPort?: number
  heap?: string
  startTimeoutMs?: number
  logger?: Logger
  /** Progress lines for a person ("copying jars…"); commands route them to stderr. */
  onProgress?: (message: string) => void
}

export interface BrokerState {
  pid: number
  version: string
  host: string
  port: number
  controllerPort: number
  startedAt: string
  stateDir: string
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
  }
}

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

function serverProperties(o: {host: string; port: number; controllerPort: number; data: string}): string {
  return `# Written by \`cutover dev up\`: a single-node KRaft broker for development and CI.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@${o.host}:${o.controllerPort}
listeners=PLAINTEXT://${o.host}:${o.port},CONTROLLER://${o.host}:${o.controllerPort}
advertised.listeners=PLAINTEXT://${o.host}:${o.port}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
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
`
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

/** True when `pid` is a JVM running kafka.Kafka (guards against a recycled pid). */
function isKafkaProcess(pid: number): boolean {
  if (!processAlive(pid)) return false
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('kafka.Kafka')
  } catch {
    return true // no /proc (macOS): trust the recorded pid
  }
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
  return s && isKafkaProcess(s.pid) ? s : null
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

/** Starts the broker, or reuses one that already answers on host:port. */
export async function startBroker(options: BrokerOptions): Promise<UpResult> {
  const host = options.host ?? '127.0.0.1'
  const port = options.port ?? 9092
  const controllerPort = options.controllerPort ?? 9093
  const logger = (options.logger ?? silentLogger).namespace('dev.broker')
  const progress = options.onProgress ?? (() => {})
  const p = paths(options.stateDir)
  const t0 = Date.now()

  const reuse = (existing: ClusterInfo): UpResult => {
    const managed = managedBroker(options.stateDir)
    logger.info('dev.broker.reuse', {bootstrap: `${host}:${port}`})
    return {
      bootstrap: `${host}:${port}`,
      reused: true,
      managed: managed !== null,
      pid: managed?.pid ?? null,
      version: managed?.version ?? null,
      clusterId: existing.clusterId,
      stateDir: options.stateDir,
      startMs: Date.now() - t0,
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
    while (isKafkaProcess(running.pid)) {
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
  for (const [name, prt] of [['broker', port], ['controller', controllerPort]] as const) {
    if (await portOpen(host, prt)) {
      throw new CutoverError('PORT_IN_USE', `port ${host}:${prt} (Kafka ${name} listener) is taken by a process that is not a Kafka broker`, {
        exitCode: ExitCode.UNAVAILABLE,
        hint: `stop what listens there (ss -ltnp 'sport = :${prt}') or choose other ports with --port/--controller-port`,
      })
    }
  }
  const javaVersion = checkTool('java', ['-version'], 'install Java 17 or newer (apt-get install -y openjdk-17-jre-headless)')
  const lib = ensureJars(options.stateDir, progress)

  mkdirSync(p.data, {recursive: true})
  mkdirSync(p.logs, {recursive: true})
  writeFileSync(p.props, serverProperties({host, port, controllerPort, data: p.data}))
  writeFileSync(p.log4j, log4jProperties(p.logs))
  const classpath = `${lib}/*`
  const jvmBase = ['-cp', classpath, `-Dlog4j.configuration=file:${p.log4j}`, `-Dkafka.logs.dir=${p.logs}`]

  if (!existsSync(join(p.data, 'meta.properties'))) {
    progress('formatting the KRaft storage directory (first start)…')
    const clusterId = kafkaClusterId()
    const r = spawnSync('java', ['-Xmx256m', ...jvmBase, 'kafka.tools.StorageTool', 'format', '-t', clusterId, '-c', p.props], {
      encoding: 'utf8',
      timeout: 120_000,
    })
    if (r.status !== 0) {
      throw new CutoverError('START_TIMEOUT', `formatting the Kafka storage failed:\n${tail(`${r.stdout}\n${r.stderr}`, 20)}`, {
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
  const state: BrokerState = {pid, version: KAFKA_VERSION, host, port, controllerPort, startedAt: new Date().toISOString(), stateDir: options.stateDir}
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
      return {bootstrap: `${host}:${port}`, reused: false, managed: true, pid, version: KAFKA_VERSION, clusterId: info.clusterId, stateDir: options.stateDir, startMs: Date.now() - t0}
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

/** Stops the broker this state directory started (never another one). */
export async function stopBroker(options: {stateDir: string; wipe?: boolean; timeoutMs?: number; logger?: Logger}): Promise<DownResult> {
  const logger = (options.logger ?? silentLogger).namespace('dev.broker')
  const p = paths(options.stateDir)
  const state = readBrokerState(options.stateDir)
  let stopped = false
  let message: string
  if (state && isKafkaProcess(state.pid)) {
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
