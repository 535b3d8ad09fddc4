/**
 * `dev down` stops only the broker its state directory started. A state directory copied while
 * its broker ran (cp -r ~/.cutover /tmp/ci-home) holds that broker's pid in broker.json; `dev down`
 * on the copy used to stop the original, since any process whose command line named kafka.Kafka
 * passed for "ours". No real broker runs here: the "brokers" are node processes whose command
 * lines read `kafka.Kafka <properties file>`, as the JVM's does.
 */
import {spawn} from 'node:child_process'
import {writeFileSync} from 'node:fs'
import {join} from 'node:path'
import {describe, expect, it, onTestFinished} from 'vitest'
import {KAFKA_VERSION, managedBroker, processAlive, stopBroker} from '../../src/dev/broker.js'
import {tempDir} from '../helpers.js'

async function fakeBroker(propertiesFile: string): Promise<number> {
  const p = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1e9)', 'kafka.Kafka', propertiesFile], {stdio: 'ignore'})
  onTestFinished(() => void p.kill('SIGKILL'))
  await new Promise((done) => p.once('spawn', done))
  return p.pid!
}

function recordBroker(stateDir: string, pid: number): void {
  writeFileSync(join(stateDir, 'broker.json'), JSON.stringify({pid, version: KAFKA_VERSION, host: '127.0.0.1', port: 19092, saslPort: 19093, controllerPort: 19094, startedAt: new Date().toISOString(), stateDir}))
}

describe('dev down with a broker.json naming a broker of another state directory', () => {
  it('does not stop it, and dev status does not call it ours', async () => {
    const original = tempDir('cutover-dev-original-')
    const copy = tempDir('cutover-dev-copy-')
    const pid = await fakeBroker(join(original, 'server.properties'))
    recordBroker(copy, pid) // the copy's broker.json, as cp -r left it
    expect(managedBroker(copy)).toBeNull()
    const down = await stopBroker({stateDir: copy, timeoutMs: 2000})
    expect(down.stopped).toBe(false)
    expect(down.message).toBe('no broker started by cutover is running')
    expect(processAlive(pid)).toBe(true)
  })

  it('still stops the broker of its own state directory', async () => {
    const stateDir = tempDir('cutover-dev-own-')
    const pid = await fakeBroker(join(stateDir, 'server.properties'))
    recordBroker(stateDir, pid)
    expect(managedBroker(stateDir)?.pid).toBe(pid)
    const down = await stopBroker({stateDir, timeoutMs: 5000})
    expect(down).toMatchObject({stopped: true, pid})
    expect(processAlive(pid)).toBe(false)
  })
})
