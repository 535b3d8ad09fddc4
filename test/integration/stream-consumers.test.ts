/**
 * `stream run` runs two kafkajs consumers by default (issue 4, throughput: one fetches and
 * decodes while the other's transactions run), each a member of the spec's group with its own
 * share of the partitions; `--consumers 1` runs one. Seen from outside: the group's members as
 * an independent admin client describes them, and the final state of the run.
 */
import {describe, expect, it} from 'vitest'
import {compareWithExpected, readSinkState} from '../../fixtures/generator/pipeline.js'
import {expectedState, generateTransactions} from '../../fixtures/generator/transactions.js'
import type {StreamRunResult} from '../../src/runtime/run.js'
import {fromGenerated, groupAssignments, produce, sleep, startStream, streamFixture} from './stream-support.js'

const N = 3_000

/**
 * Runs `stream run` over N records and checks that it read them all into the expected state;
 * meanwhile describes the group every 100 ms. Returns the stable state with the most members
 * (a second consumer may join a moment after the first).
 */
async function runAndDescribe(args: string[]): Promise<number[][]> {
  const f = await streamFixture({partitions: 6, prefix: 'stream-consumers'})
  const txns = generateTransactions(N, {seed: 4242, idPrefix: 'CN'})
  const expected = expectedState(txns)
  await produce(f.topic, fromGenerated(txns))
  // idle long enough for the group to be described while the process is in it
  const s = startStream(f, ['--until-idle', '--idle-ms', '4000', '--json', ...args])
  let exited = false
  void s.exited.then(() => (exited = true))
  let members: number[][] = []
  while (!exited) {
    const now = await groupAssignments(`${f.name}-group`)
    if (now.length > members.length) members = now
    await sleep(100)
  }
  const exit = await s.exited
  expect(exit.code, exit.stderr.slice(-3000)).toBe(0)
  const result = JSON.parse(exit.stdout) as StreamRunResult
  expect(result.read).toBe(N)
  expect(compareWithExpected(await readSinkState(f.pool, f.schema), expected)).toEqual([])
  return members
}

describe('stream run: consumers per process', () => {
  it('two by default, each a member of the group with half of the partitions; the run is complete', async () => {
    const members = await runAndDescribe([])
    expect(members).toHaveLength(2)
    expect(members.every((p) => p.length === 3)).toBe(true)
    expect(members.flat().sort((a, b) => a - b)).toEqual([0, 1, 2, 3, 4, 5])
  })

  it('--consumers 1: one member with every partition', async () => {
    const members = await runAndDescribe(['--consumers', '1'])
    expect(members).toEqual([[0, 1, 2, 3, 4, 5]])
  })
})
