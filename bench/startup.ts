/**
 * bench/startup: the CPU and wall time a `cutover` command takes to start, as built (each command
 * bundled, scripts/bundle.js) beside the same dist/ loaded module by module (the build before the
 * bundles: a manifest pointing at dist/src/commands), and beside bare `node -e 0`, the floor no
 * command goes under. Ratios are bundled / modules.
 *
 *   npm run build && npm run bench:startup       # BENCH_ROUNDS (15) runs of each, interleaved
 *
 * No service is needed: the commands are ones that end before connecting to anything (`--version`;
 * `pipeline validate` of examples/pipeline.yaml, which reads and checks the spec; `dlq inspect` with
 * a spec file that does not exist, which is exit 2 once its modules are loaded; `parity check` and
 * `backfill` of a csv file that does not exist). Only `stream run` is not bundled
 * (scripts/bundle.js NOT_BUNDLED). CPU is the
 * children's user + system time (/proc/self/stat cutime + cstime around each waited child), in
 * clock ticks of 10 ms: summed over the rounds, then divided.
 */
import {spawnSync} from 'node:child_process'
import {copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync} from 'node:fs'
import {cpus, loadavg, tmpdir} from 'node:os'
import {dirname, join} from 'node:path'
import {fileURLToPath} from 'node:url'

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..')
const OUT = join(ROOT, 'bench', 'out')
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 15)
const TICK_MS = 10 // USER_HZ = 100 on Linux

const COMMANDS: {label: string; args: string[]; exit: number}[] = [
  {label: '--version', args: ['--version'], exit: 0},
  {label: 'pipeline validate (examples/pipeline.yaml)', args: ['pipeline', 'validate', '--spec', join(ROOT, 'examples', 'pipeline.yaml'), '--json'], exit: 0},
  {label: 'dlq inspect (spec not found: modules loaded, exit 2)', args: ['dlq', 'inspect', '--spec', '/nonexistent/pipeline.yaml', '--json'], exit: 2},
  {label: 'parity check (csv file not found, exit 2)', args: ['parity', 'check', '--left', 'csv:/nonexistent/l.csv', '--right', 'csv:/nonexistent/r.csv', '--key', 'id', '--json'], exit: 2},
  {label: 'backfill (csv file not found, exit 2)', args: ['backfill', '--from', 'csv:/nonexistent/l.csv', '--to', 't', '--json'], exit: 2},
]

/** The children's CPU so far, in ms (fields 16 and 17 of /proc/self/stat: cutime, cstime). */
function childrenCpuMs(): number {
  const stat = readFileSync('/proc/self/stat', 'utf8')
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return (Number(fields[13]) + Number(fields[14])) * TICK_MS
}

function timed(argv: string[], exit: number): {cpu: number; wall: number} {
  const cpu0 = childrenCpuMs()
  const t0 = performance.now()
  const r = spawnSync(process.execPath, argv, {cwd: ROOT, encoding: 'utf8', env: {...process.env, NODE_ENV: 'production'}})
  const wall = performance.now() - t0
  if (r.status !== exit) throw new Error(`${argv.join(' ')}: exit ${r.status} (expected ${exit})\n${r.stderr}`)
  return {cpu: childrenCpuMs() - cpu0, wall}
}

/**
 * The same dist/ and node_modules, with oclif.manifest.json pointing at dist/src's command
 * modules: how `cutover` started before the bundles, except that @oclif/core comes from its bundle
 * on both sides (the build rewrites dist/src to import it from dist/bundle/oclif-core.js).
 */
function unbundledRoot(): string {
  const dir = mkdtempSync(join(tmpdir(), 'cutover-startup-'))
  for (const name of ['dist', 'node_modules', 'examples']) symlinkSync(join(ROOT, name), join(dir, name))
  mkdirSync(join(dir, 'bin'))
  copyFileSync(join(ROOT, 'bin', 'run.js'), join(dir, 'bin', 'run.js'))
  copyFileSync(join(ROOT, 'package.json'), join(dir, 'package.json'))
  const manifest = JSON.parse(readFileSync(join(ROOT, 'oclif.manifest.json'), 'utf8')) as {commands: Record<string, {relativePath: string[]}>}
  if (manifest.commands['pipeline:validate']?.relativePath[1] !== 'bundle') throw new Error('oclif.manifest.json does not point at dist/bundle: run npm run build')
  for (const [id, c] of Object.entries(manifest.commands)) {
    if (c.relativePath[1] !== 'bundle') continue
    c.relativePath = ['dist', 'src', 'commands', ...`${id.replaceAll(':', '/')}.js`.split('/')]
  }
  writeFileSync(join(dir, 'oclif.manifest.json'), JSON.stringify(manifest))
  return dir
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!
const fmt = (ms: number): string => `${ms.toFixed(0).padStart(5)} ms`

const plain = unbundledRoot()
try {
  const load0 = loadavg()[0]!
  const floor = {cpu: 0, wall: [] as number[]}
  const rows: {label: string; bundled: {cpu: number; wall: number[]}; modules: {cpu: number; wall: number[]}}[] = []
  for (const c of COMMANDS) rows.push({label: c.label, bundled: {cpu: 0, wall: []}, modules: {cpu: 0, wall: []}})
  for (let round = 0; round < ROUNDS; round++) {
    const bare = timed(['-e', '0'], 0)
    floor.cpu += bare.cpu
    floor.wall.push(bare.wall)
    COMMANDS.forEach((c, i) => {
      // alternate which build goes first, so that neither always runs right after the other
      const order = round % 2 === 0 ? (['bundled', 'modules'] as const) : (['modules', 'bundled'] as const)
      for (const side of order) {
        const bin = side === 'bundled' ? join(ROOT, 'bin', 'run.js') : join(plain, 'bin', 'run.js')
        const t = timed([bin, ...c.args], c.exit)
        rows[i]![side].cpu += t.cpu
        rows[i]![side].wall.push(t.wall)
      }
    })
  }
  const load1 = loadavg()[0]!
  const cpuName = cpus()[0]?.model.trim() ?? 'unknown CPU'
  console.log(`bench/startup — ${ROUNDS} rounds, ${cpus().length} × ${cpuName}, node ${process.version}, load ${load0.toFixed(2)} -> ${load1.toFixed(2)}`)
  console.log(`bare node -e 0: CPU ${fmt(floor.cpu / ROUNDS)}, wall ${fmt(median(floor.wall))} (median)`)
  const result: Record<string, unknown>[] = []
  for (const r of rows) {
    const b = {cpu: r.bundled.cpu / ROUNDS, wall: median(r.bundled.wall)}
    const m = {cpu: r.modules.cpu / ROUNDS, wall: median(r.modules.wall)}
    console.log(`${r.label}`)
    console.log(`  modules (dist/src)   CPU ${fmt(m.cpu)}, wall ${fmt(m.wall)}`)
    console.log(`  bundled (dist/bundle) CPU ${fmt(b.cpu)}, wall ${fmt(b.wall)}   bundled / modules: CPU ${(b.cpu / m.cpu).toFixed(2)}, wall ${(b.wall / m.wall).toFixed(2)}; above bare node: CPU ${(b.cpu - floor.cpu / ROUNDS).toFixed(0)} ms against ${(m.cpu - floor.cpu / ROUNDS).toFixed(0)} ms`)
    result.push({command: r.label, bundled_cpu_ms: b.cpu, bundled_wall_ms: b.wall, modules_cpu_ms: m.cpu, modules_wall_ms: m.wall, cpu_ratio: b.cpu / m.cpu, wall_ratio: b.wall / m.wall})
  }
  mkdirSync(OUT, {recursive: true})
  writeFileSync(join(OUT, 'startup.json'), JSON.stringify({rounds: ROUNDS, cpu: cpuName, cores: cpus().length, node: process.version, load: [load0, load1], bare_node_cpu_ms: floor.cpu / ROUNDS, bare_node_wall_ms: median(floor.wall), commands: result}, null, 2) + '\n')
  console.log('wrote bench/out/startup.json')
} finally {
  rmSync(plain, {recursive: true, force: true})
}
