#!/usr/bin/env node
// Production entry point: runs the compiled commands in dist/ (`npm run build`), found through
// oclif.manifest.json (written by the build) so that only the command being run is imported.
import {execute, settings} from '@oclif/core'

// always the compiled commands: no TypeScript source lookup (and no warnings about it) when the
// repository's tsconfig.json sits beside dist/; bin/dev.js is the entry point for the sources
settings.enableAutoTranspile = false
await execute({dir: import.meta.url})
