#!/usr/bin/env node
// Bundles the short compiled commands (dist/src/commands/**, see NOT_BUNDLED) with the modules they import into
// dist/bundle/ (esbuild, run by `npm run build` after tsc and scripts/manifest.js) and points
// oclif.manifest.json at the bundles. Node 20's module loader spends most of a command's start-up
// finding, reading and compiling the ~700 files kafkajs, zod, yaml, pg and our own code come in;
// one file per command (and chunks shared between commands) is read and compiled at once.
//
// @oclif/core is bundled too, once: dist/bundle/oclif-core.js re-exports it, bin/run.js imports
// it from there, the bundled commands share its chunk, and the compiled files that stay module by
// module (dist/src: `stream run`, the help class, the command_not_found hook) are rewritten after
// the build to import it from there as well. One instance runs every command (a command must
// extend the Command class of the copy that runs it), and oclif's ~110 CommonJS files, with
// semver and minimatch, are one file read and compiled at once (~0.1 s of CPU less per start).
//
// Kept out of the bundles, loaded from node_modules as before:
// - ink, react and their dependencies: imported lazily, only for a terminal UI;
// - chalk: ink draws through it, and NO_COLOR sets the level of that one instance (cli/base.ts);
// - pg-native: pg's optional native driver, not installed;
// - iconv-lite: its code page tables load only when a spec names one (see external below).
// The worker threads (normalize, parity sides, backfill's file reader) keep running dist/src's
// files: a module that names a file beside itself (`new URL('./x.js', import.meta.url)`) gets its
// own dist/src address as import.meta.url, rewritten below, so those names resolve as before.
import {readFileSync, readdirSync, rmSync, writeFileSync} from 'node:fs'
import {createRequire} from 'node:module'
import {dirname, join, relative, sep} from 'node:path'
import {fileURLToPath} from 'node:url'
import {build} from 'esbuild'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const dist = join(root, 'dist')
const out = join(dist, 'bundle')
const manifestFile = join(root, 'oclif.manifest.json')
const manifest = JSON.parse(readFileSync(manifestFile, 'utf8'))

// `stream run` keeps loading dist/src module by module: bundled, it was slower per record on the
// AMD machines (bench/stream-ab, the same commit bundled against not: unbundled x1.15 and x1.07;
// on Intel x1.00 and x0.95; cause not found), and its start-up is nothing beside a run's length.
// Every other command is bundled. The commands that move data with a worker thread (normalize,
// parity check's csv sides, backfill's reader) run that thread from dist/src either way, and the
// twenty-seventh session measured no difference in their own benches (bench/backfill 1.02 x bare
// bundled, 1.01 the session before; bench/parity 2.07 / 5.06 s bundled against 2.08 / 5.11 s),
// while the test suite starts them ~700 times (0.05-0.10 s of CPU less per start).
const NOT_BUNDLED = new Set(['stream:run'])

// one entry per bundled command, named by its id (dev:status -> dev-status.js): every output lands
// in dist/bundle itself, so import.meta.url's directory is the same in every bundle and chunk
const entryPoints = {}
// (from the id, not the manifest's relativePath: that points here once this script has run)
for (const id of Object.keys(manifest.commands)) {
  if (!NOT_BUNDLED.has(id)) entryPoints[id.replaceAll(':', '-')] = join(dist, 'src', 'commands', ...id.split(':')) + '.js'
}

// the entry that re-exports @oclif/core: a CommonJS module has no static export names, so they are
// listed here from the module itself (bin/run.js and dist/src import these names)
const OCLIF_ENTRY = 'cutover:oclif-core'
entryPoints['oclif-core'] = OCLIF_ENTRY
const oclifNames = Object.keys(createRequire(join(root, 'package.json'))('@oclif/core')).filter((n) => /^[A-Za-z_$][\w$]*$/.test(n) && n !== 'default')
const oclifEntry = {
  name: 'oclif-entry',
  setup(b) {
    b.onResolve({filter: /^cutover:oclif-core$/}, () => ({path: OCLIF_ENTRY, namespace: 'oclif-entry'}))
    // a dist/src file this script rewrote on an earlier build (tsc rewrites them all, but not if it fails half-way)
    b.onResolve({filter: /(^|\/)bundle\/oclif-core\.js$/}, () => ({path: OCLIF_ENTRY, namespace: 'oclif-entry'}))
    b.onLoad({filter: /.*/, namespace: 'oclif-entry'}, () => ({
      contents: `import * as core from '@oclif/core'\nexport const {${oclifNames.join(', ')}} = core\n`,
      resolveDir: root,
      loader: 'js',
    }))
  },
}

// zod's `z` namespace carries all ~45 of its message locales (`z.locales`, 366 KB of JavaScript that
// every start would parse); cutover's messages are English only, and zod itself sets `en` by
// importing it directly, so the bundles' `z.locales` holds `en` alone
const zodLocales = {
  name: 'zod-locales',
  setup(b) {
    b.onLoad({filter: /[\\/]node_modules[\\/]zod[\\/]v4[\\/]locales[\\/]index\.js$/}, () => ({contents: "export {default as en} from './en.js'\n", loader: 'js'}))
  },
}

// pg's lib/stream.js asks at load whether it runs in a Cloudflare Worker; where `navigator` is not
// defined (Node 20) it constructs a `Response`, which loads all of undici (50-70 ms of CPU per start).
// The bundles' copy answers "not Cloudflare" there without asking, as src/pg/no-cloudflare-probe.ts
// makes node_modules' copy answer for the files that stay module by module. A pg whose probe reads
// otherwise fails the build here, so an upgrade cannot drop this silently.
const PG_PROBE = 'function isCloudflareRuntime() {'
const pgNoCloudflareProbe = {
  name: 'pg-no-cloudflare-probe',
  setup(b) {
    b.onLoad({filter: /[\\/]node_modules[\\/]pg[\\/]lib[\\/]stream\.js$/}, (args) => {
      const text = readFileSync(args.path, 'utf8')
      if (!text.includes(PG_PROBE) || !text.includes("typeof navigator === 'object'")) {
        throw new Error(`${args.path}: pg's Cloudflare probe is not where scripts/bundle.js expects it; check pgNoCloudflareProbe and src/pg/no-cloudflare-probe.ts against this pg`)
      }
      return {contents: text.replace(PG_PROBE, `${PG_PROBE}\n  if (typeof navigator === 'undefined') return false // cutover: no Response, no undici (scripts/bundle.js)`), loader: 'js'}
    })
  },
}

const importMetaUrl = {
  name: 'import-meta-url',
  setup(b) {
    // every module's own address, ours and the dependencies' (an ES module may read files beside it)
    b.onLoad({filter: /\.m?js$/}, (args) => {
      const text = readFileSync(args.path, 'utf8')
      if (!text.includes('import.meta.url')) return undefined
      const own = relative(out, args.path).split(sep).join('/')
      return {contents: text.replaceAll('import.meta.url', `new URL(${JSON.stringify(own)}, import.meta.url).href`), loader: 'js'}
    })
  },
}

rmSync(out, {recursive: true, force: true})
const result = await build({
  entryPoints,
  outdir: out,
  entryNames: '[name]',
  chunkNames: 'chunk-[hash]',
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  // typescript: oclif reads a tsconfig.json with it in development only (never in a built CLI)
  // iconv-lite: from node_modules, it reads its code page tables (~550 KB of JavaScript) only when a
  // spec names windows-1251 or ibm866; in a bundle every start would parse them
  external: ['ink', 'react', 'react/*', 'chalk', 'pg-native', 'typescript', 'ts-node', 'tsx', 'tsx/*', 'iconv-lite'],
  // CommonJS dependencies (kafkajs, pg, iconv-lite, ...) call require() for Node's own modules
  banner: {js: "import {createRequire as __cutoverRequire} from 'node:module'; const require = __cutoverRequire(import.meta.url);"},
  plugins: [oclifEntry, zodLocales, pgNoCloudflareProbe, importMetaUrl],
  legalComments: 'none',
  // no keepNames: it wraps every function, closures made per record included, in a call that
  // sets its name (bench/stream-ab: R_stream x0.88, node CPU x1.19 with it). Our classes' names
  // are checked below instead (errors take theirs from new.target.name)
  logLevel: 'warning',
  metafile: true,
})

// tsc's output, read once: for the class names below and for the @oclif/core rewrite at the end
const compiled = new Map()
for (const dir of ['src', 'legacy-adapters']) {
  for (const file of readdirSync(join(dist, dir), {recursive: true})) {
    if (String(file).endsWith('.js')) compiled.set(join(dist, dir, String(file)), readFileSync(join(dist, dir, String(file)), 'utf8'))
  }
}

// esbuild renames a top-level name that two bundled modules both declare (UsageError ->
// UsageError2): refuse a build where one of our own classes lost its name that way
const ours = new Set()
for (const text of compiled.values()) {
  for (const m of text.matchAll(/\bclass\s+([A-Za-z_$][\w$]*)\s*(?:extends\b|\{)/g)) ours.add(m[1])
}
const renamed = []
for (const file of Object.keys(result.metafile.outputs)) {
  for (const m of readFileSync(join(root, file), 'utf8').matchAll(/\b(?:class|var|let|const)\s+([A-Za-z_$][\w$]*?)(\d+)\b/g)) {
    if (ours.has(m[1]) && !ours.has(m[1] + m[2])) renamed.push(`${m[1]} -> ${m[1]}${m[2]} in ${relative(root, join(root, file))}`)
  }
}
if (renamed.length > 0) {
  console.error(`scripts/bundle.js: esbuild renamed classes of ours (their name is what error names and logs show):\n  ${[...new Set(renamed)].join('\n  ')}\nrename one of the two declarations`)
  process.exit(1)
}

for (const id of Object.keys(manifest.commands)) {
  manifest.commands[id].relativePath = NOT_BUNDLED.has(id) ? ['dist', 'src', 'commands', ...`${id.replaceAll(':', '/')}.js`.split('/')] : ['dist', 'bundle', `${id.replaceAll(':', '-')}.js`]
}
writeFileSync(manifestFile, JSON.stringify(manifest, null, 2) + '\n')

// the files that stay module by module import @oclif/core from its bundle, as everything else does
// (after the build: esbuild read them as tsc wrote them)
let rewritten = 0
for (const [path, text] of compiled) {
  if (!text.includes("'@oclif/core'")) continue
  let to = relative(dirname(path), join(out, 'oclif-core.js')).split(sep).join('/')
  if (!to.startsWith('.')) to = `./${to}`
  writeFileSync(path, text.replace(/(\bfrom\s*|\bimport\s*\(\s*)'@oclif\/core'/g, `$1'${to}'`))
  rewritten++
}
console.log(`bundled ${Object.keys(entryPoints).length - 1} commands and @oclif/core into ${relative(root, out)}; ${rewritten} files of dist/ import @oclif/core from there`)
