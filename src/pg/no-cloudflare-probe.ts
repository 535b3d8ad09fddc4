/**
 * Loads pg's `lib/stream.js` without its Cloudflare probe. When that module is first evaluated it
 * asks whether it runs in a Cloudflare Worker: where `navigator` is not defined (Node 20; Node 21+
 * defines it and answers there) it constructs a `Response`, and the first touch of that global
 * loads and compiles all of undici, Node's fetch, in a process that never fetches: 50-70 ms of CPU
 * per process or worker thread that loads pg (`dev status` 525 -> 465 ms, `db migrate` 470 -> 411
 * ms, `stream run` to its spec check 692 -> 642 ms; 2 x AMD EPYC, 10-12 alternating runs each; see
 * BENCHMARKS.md, bench/startup). The test suite starts ~1,200 such processes.
 *
 * Imported first by bin/run.js and by the worker threads' entry modules: it evaluates that one
 * small module (it requires nothing at load) with `Response` hidden, so the probe answers "not
 * Cloudflare", which is the truth here, and pg takes Node's sockets as it always did; every later
 * `require` of it (pg's own, from `import pg from 'pg'`) finds it in the CommonJS cache. The
 * bundles carry their own copy of pg, which scripts/bundle.js builds without the probe.
 */
import {createRequire} from 'node:module'

if (typeof (globalThis as {navigator?: unknown}).navigator === 'undefined') {
  const response = Object.getOwnPropertyDescriptor(globalThis, 'Response')
  // (a runtime whose Response cannot be redefined keeps the probe: slower to start, nothing else)
  if (response?.configurable) {
    Object.defineProperty(globalThis, 'Response', {value: undefined, configurable: true, writable: true})
    try {
      createRequire(import.meta.url)('pg/lib/stream.js')
    } finally {
      Object.defineProperty(globalThis, 'Response', response)
    }
  }
}
