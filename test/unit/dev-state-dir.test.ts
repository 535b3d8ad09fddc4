/**
 * `dev up` (startBroker) with a state directory whose broker is still running but does not
 * answer on the port asked: it must not start a second JVM on the same data directory (that JVM
 * dies on the data directory's lock, and its pid replaced the running broker's in broker.json,
 * so `dev down` no longer found the running broker). No real broker runs here: the "broker" is a
 * process whose command line names kafka.Kafka, and `java` on PATH is a stand-in that dies as a
 * second broker on a locked data directory does.
 */
import {spawn} from 'node:child_process'
import {chmodSync, mkdirSync, readFileSync, writeFileSync} from 'node:fs'
import {createServer} from 'node:net'
import {join} from 'node:path'
import {afterEach, beforeEach, describe, expect, it, onTestFinished} from 'vitest'
import {KAFKA_VERSION, managedBroker, startBroker} from '../../src/dev/broker.js'
import {CutoverError} from '../../src/errors.js'
import {tempDir} from '../helpers.js'

async function freePort(): Promise<number> {
  const server = createServer()
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done))
  const port = (server.address() as {port: number}).port
  await new Promise((done) => server.close(done))
  return port
}

/** A state directory (jars and storage already there) whose broker.json names a live "kafka.Kafka" process on `port`. */
async function stateDirWithRunningBroker(port: number): Promise<{stateDir: string; pid: number}> {
  const stateDir = tempDir('cutover-dev-state-')
  mkdirSync(join(stateDir, `lib-${KAFKA_VERSION}`), {recursive: true})
  writeFileSync(join(stateDir, `lib-${KAFKA_VERSION}`, '.complete'), 'test')
  mkdirSync(join(stateDir, 'data'), {recursive: true})
  writeFileSync(join(stateDir, 'data', 'meta.properties'), 'test')
  const broker = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1e9)', 'kafka.Kafka'], {stdio: 'ignore'})
  onTestFinished(() => void broker.kill('SIGKILL'))
  await new Promise((done) => broker.once('spawn', done))
  const pid = broker.pid!
  writeFileSync(join(stateDir, 'broker.json'), JSON.stringify({pid, version: KAFKA_VERSION, host: '127.0.0.1', port, controllerPort: port + 1, startedAt: new Date().toISOString(), stateDir}))
  return {stateDir, pid}
}

const brokerPid = (stateDir: string) => (JSON.parse(readFileSync(join(stateDir, 'broker.json'), 'utf8')) as {pid: number}).pid

describe('dev up with the state directory of a broker that runs', () => {
  let path: string | undefined
  beforeEach(() => {
    // a `java` that answers -version and otherwise dies at once, as a second broker on a locked data directory does
    const bin = tempDir('cutover-fake-java-')
    writeFileSync(join(bin, 'java'), '#!/bin/sh\nfor a in "$@"; do [ "$a" = "-version" ] && { echo \'openjdk version "17"\' >&2; exit 0; }; done\necho "Failed to acquire lock on file .lock" >&2\nexit 1\n')
    chmodSync(join(bin, 'java'), 0o755)
    path = process.env.PATH
    process.env.PATH = `${bin}:${path}`
  })
  afterEach(() => {
    process.env.PATH = path
  })

  it('on another port: a usage error naming the running broker; broker.json still names it', async () => {
    const running = await freePort()
    const {stateDir, pid} = await stateDirWithRunningBroker(running)
    const other = await freePort()
    const error = await startBroker({stateDir, port: other, controllerPort: await freePort(), startTimeoutMs: 3000}).catch((e: unknown) => e)
    expect(error).toBeInstanceOf(CutoverError)
    expect(error).toMatchObject({code: 'USAGE', exitCode: 2, message: expect.stringContaining(`running on 127.0.0.1:${running} (pid ${pid})`)})
    expect((error as CutoverError).hint).toContain(`cutover dev down --state-dir ${stateDir}`)
    // before the fix: broker.json named the dead second JVM, and `dev down` missed the running broker
    expect(brokerPid(stateDir)).toBe(pid)
    expect(managedBroker(stateDir)?.pid).toBe(pid)
  })

  it('on its own port, not answering yet: waits for it, then says it does not answer; broker.json still names it', async () => {
    const port = await freePort()
    const {stateDir, pid} = await stateDirWithRunningBroker(port)
    const progress: string[] = []
    const error = await startBroker({stateDir, port, controllerPort: await freePort(), startTimeoutMs: 1500, onProgress: (m) => progress.push(m)}).catch((e: unknown) => e)
    expect(error).toMatchObject({code: 'START_TIMEOUT', exitCode: 3, message: expect.stringContaining(`(pid ${pid}) does not answer on 127.0.0.1:${port}`)})
    expect(progress.join('\n')).toContain('waiting for it')
    expect(brokerPid(stateDir)).toBe(pid)
  })
})
