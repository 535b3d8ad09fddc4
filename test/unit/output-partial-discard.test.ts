/**
 * An output discarded at once (src/cli/output.ts openOutput): a run that fails right after
 * opening --out (its --rejects refused, say) leaves no `.<name>.partial-<pid>` behind, even when
 * the failure comes before the file's open would have completed in the background.
 */
import {mkdtempSync, readdirSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {describe, expect, it} from 'vitest'
import {openOutput} from '../../src/cli/output.js'

describe('openOutput: discard', () => {
  it('right after opening: no partial file is left, and a file of that name keeps its content', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'output-discard-'))
    writeFileSync(join(dir, 'kept.ndjson'), '{"x":1}\n')
    const outputs = [openOutput(join(dir, 'new.ndjson'), true, 'records'), openOutput(join(dir, 'kept.ndjson'), true, 'records')]
    for (const o of outputs) o.discard()
    // past the background open and close of the streams
    for (const o of outputs) await new Promise((resolve) => (o.stream.closed ? resolve(undefined) : o.stream.once('close', resolve)))
    expect(readdirSync(dir)).toEqual(['kept.ndjson'])
  })
})
