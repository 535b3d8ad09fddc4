#!/usr/bin/env -S node --max-semi-space-size=64
// Production entry point: runs the compiled commands in dist/ (`npm run build`), found through
// oclif.manifest.json (written by the build) so that only the command being run is imported.
//
// --max-semi-space-size=64 (MB; node's default is 16): the stream runtime allocates a few hundred
// short-lived bytes per record (kafkajs' messages, parsed JSON, normalized records, hashes), and
// a larger young generation lets most of them die there instead of being copied and promoted.
// Measured with bench/stream-ab (1M records): R_stream x1.13 in 3 pairs, x1.02 in 5; node CPU per
// record x0.94 / x0.98; 128 MB was no better. Run as `node bin/run.js`, pass the flag yourself (the stream harness
// of the tests and benches reads it from this line: fixtures/generator/stream-harness.ts).
// pg without its Cloudflare probe, which loads all of undici on Node 20 (src/pg/no-cloudflare-probe.ts)
import '../dist/src/pg/no-cloudflare-probe.js'
// @oclif/core as bundled by the build (scripts/bundle.js): the one copy every command extends
import {execute, settings} from '../dist/bundle/oclif-core.js'

// always the compiled commands: no TypeScript source lookup (and no warnings about it) when the
// repository's tsconfig.json sits beside dist/; bin/dev.js is the entry point for the sources
settings.enableAutoTranspile = false
await execute({dir: import.meta.url})
