/**
 * Any two URIs: a Kafka topic (JSON values, in arrival order, so externally sorted) against
 * a CSV file, through bin/run.js. JSON numbers become their text and go through the same
 * decimal normalizer as the file's decimal commas.
 */
import {writeFileSync} from 'node:fs'
import {join} from 'node:path'
import {describe, expect, it} from 'vitest'
import {createTestTopic, kcatProduce, runCli, tempDir} from '../helpers.js'

describe('parity check with a kafka: side', () => {
  it('compares a topic with a file', async () => {
    const topic = await createTestTopic()
    kcatProduce(topic, [
      JSON.stringify({id: 'T3', amt: 30.5, ccy: 'RUB'}),
      JSON.stringify({id: 'T1', amt: '10.00', ccy: 'RUB'}),
      JSON.stringify({id: 'T2', amt: 20, ccy: 'usd'}),
      JSON.stringify({id: 'T5', amt: 1, ccy: 'RUB'}),
    ])
    const dir = tempDir('parity-kafka-')
    writeFileSync(join(dir, 'legacy.csv'), 'id;amt;ccy\nT1;10,00;RUB\nT2;20,00;USD\nT3;30,55;RUB\nT4;4,00;RUB\n')
    const r = await runCli(['parity', 'check', '--left', 'csv:legacy.csv?delimiter=;', '--right', `kafka:${topic}`, '--key', 'id', '--type', 'amt=decimal', '--normalize', 'ccy=upper', '--json', '--no-ledger'], {cwd: dir})
    expect(r.stderr).toBe('')
    expect(r.code).toBe(0)
    expect(r.json).toMatchObject({strategy: 'merge', left_rows: 4, right_rows: 4, matched: 2, mismatched: 1, missing_in_right: 1, extra_in_right: 1, unexplained: 3})
    expect(r.json.columns.amt).toEqual({mismatches: 1, explained: 0, max_abs_diff: '0.05'})
    expect(r.json.samples.map((s: {key: {id: string}; kind: string}) => [s.key.id, s.kind])).toEqual([
      ['T3', 'mismatch'],
      ['T4', 'missing_in_right'],
      ['T5', 'extra_in_right'],
    ])
  })
})
