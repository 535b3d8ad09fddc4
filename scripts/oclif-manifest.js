#!/usr/bin/env node
// Writes oclif.manifest.json (part of `npm run build`, after tsc): with it, oclif finds a command
// without importing every command module first (kafkajs, pg, ink, ...), which cost about 0.3 s
// of CPU at the start of every `cutover` run. It is what a published package ships ("files" in
// package.json). Generated from dist/, so it always matches the build it sits beside.
import {writeFileSync} from 'node:fs'
import {dirname, join} from 'node:path'
import {fileURLToPath} from 'node:url'
import {Config} from '@oclif/core'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const config = await Config.load({root})
const plugin = config.getPluginsList().find((p) => p.isRoot)
if (!plugin) throw new Error('oclif-manifest: the root plugin was not found')
writeFileSync(join(root, 'oclif.manifest.json'), JSON.stringify(plugin.manifest, null, 2) + '\n')
