#!/usr/bin/env node
// Writes oclif.manifest.json from the compiled commands in dist/ (run by `npm run build`).
// With the manifest, `cutover <command>` imports only that command's module instead of every
// command (and kafkajs, pg, ink, React with them) to find it: start-up drops by about half.
import {writeFileSync} from 'node:fs'
import {dirname, join} from 'node:path'
import {fileURLToPath} from 'node:url'
import {Plugin, settings} from '@oclif/core'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
settings.enableAutoTranspile = false
const plugin = new Plugin({root, type: 'core', ignoreManifest: true, errorOnManifestCreate: true, respectNoCacheDefault: true})
await plugin.load()
const file = join(root, 'oclif.manifest.json')
writeFileSync(file, JSON.stringify(plugin.manifest, null, 2) + '\n')
console.log(`wrote ${file}: ${Object.keys(plugin.manifest.commands).length} commands`)
