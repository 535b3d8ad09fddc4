/**
 * pg's Cloudflare probe (src/pg/no-cloudflare-probe.ts, and the bundles' copy of pg, built without
 * it by scripts/bundle.js): a CLI process or worker thread that loads pg must not load undici,
 * Node's fetch, which that probe pulled in on Node 20 at 50-70 ms of CPU per start. Each process
 * reports, at exit, whether undici was loaded and whether node_modules' pg was.
 */
import {readFileSync, rmSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'
import {Worker} from 'node:worker_threads'
import {describe, expect, it} from 'vitest'
import {ROOT, runCli, tempDir} from '../helpers.js'

/** A `--require` preload that writes {undici, pgFromNodeModules} of the process to `out` at exit. */
function reporter(dir: string): {env: Record<string, string>; report(): {undici: boolean; pgFromNodeModules: boolean}} {
  const out = join(dir, 'loaded.json')
  const preload = join(dir, 'report.cjs')
  writeFileSync(
    preload,
    `process.on('exit', () => require('fs').writeFileSync(${JSON.stringify(out)}, JSON.stringify({
      undici: process.moduleLoadList.some((m) => /undici/.test(m)),
      pgFromNodeModules: Object.keys(require.cache).some((f) => /node_modules[\\\\/]pg[\\\\/]lib[\\\\/]client\\.js$/.test(f)),
    })))\n`,
  )
  return {env: {NODE_OPTIONS: `--require ${preload}`}, report: () => JSON.parse(readFileSync(out, 'utf8'))}
}

/** Runs `source` (an ES module in ROOT) in a worker thread; it posts whether undici is loaded. */
function inWorker(name: string, source: string): Promise<boolean> {
  const file = join(ROOT, 'dist', `.${name}-${process.pid}.mjs`)
  writeFileSync(file, source + "\nimport {parentPort} from 'node:worker_threads'\nparentPort.postMessage(process.moduleLoadList.some((m) => /undici/.test(m)))\n")
  return new Promise<boolean>((resolve, reject) => {
    const w = new Worker(file)
    w.once('message', (m: boolean) => resolve(m))
    w.once('error', reject)
  }).finally(() => rmSync(file, {force: true}))
}

describe('pg loads without undici', () => {
  it('a bundled command that queries PostgreSQL (db migrate --json): exit 0, undici not loaded', async () => {
    const r = reporter(tempDir('cutover-undici-'))
    const res = await runCli(['db', 'migrate', '--json'], {env: r.env})
    expect(res.code, res.stderr).toBe(0)
    expect(res.json).toBeTypeOf('object')
    expect(r.report().undici).toBe(false)
  })

  it('stream run (dist/src module by module, pg from node_modules): pg loaded, undici not', async () => {
    const r = reporter(tempDir('cutover-undici-'))
    const res = await runCli(['stream', 'run', '--spec', join(ROOT, 'no-such-spec.yaml'), '--json'], {env: r.env})
    expect(res.code).toBe(2)
    expect(r.report()).toEqual({undici: false, pgFromNodeModules: true})
  })

  it('a worker thread that imports the probe first, then pg: undici not loaded (without the probe, on Node 20, it is)', async () => {
    expect(await inWorker('with-probe', "import './src/pg/no-cloudflare-probe.js'\nimport 'pg'")).toBe(false)
    // the control: Node 21+ defines `navigator`, where pg answers without a Response
    const without = await inWorker('without-probe', "import 'pg'")
    expect(without).toBe(typeof (globalThis as {navigator?: unknown}).navigator === 'undefined')
  })
})
