/**
 * `cutover pipeline validate` of a spec whose rule condition does not parse or names what does not
 * exist: exit 2 at the file:line:column of `when`, with the character of the condition at fault
 * (src/config/rule-expression.ts, called by the spec's checks); the same spec is refused by
 * `stream run` the same way, before it connects to anything.
 */
import {mkdtemp, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {describe, expect, it} from 'vitest'
import {runCli} from '../helpers.js'

function specWith(when: string): string {
  return [
    'version: 1',
    'name: t',
    'source: {topic: t.raw}',
    'fields:',
    '  id: {type: string}',
    '  amount: {type: decimal, scale: 2}',
    '  currency: {type: string}',
    'key: id',
    'rules:',
    '  - name: big',
    `    when: ${JSON.stringify(when)}`,
    '    emit: t.alerts',
    'sinks: [{table: t}]',
    '',
  ].join('\n')
}

describe('pipeline validate: rule conditions', () => {
  it('a syntax error in `when`: exit 2 with file:line:column and the position in the condition', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'rules-validate-'))
    const file = join(dir, 'p.yaml')
    await writeFile(file, specWith("amount >= 10000 and (currency == 'RUB'"))
    const r = await runCli(['pipeline', 'validate', file, '--json'])
    expect(r.code).toBe(2)
    expect(r.json).toMatchObject({
      error: {
        code: 'SPEC_INVALID',
        message: `${file}:11:11: rules.0.when: expected ")", found the end of the condition (at character 39 of the condition, its end)`,
        file,
        line: 11,
        column: 11,
      },
    })
    const human = await runCli(['pipeline', 'validate', file])
    expect(human.code).toBe(2)
    expect(human.stderr).toContain(`${file}:11:11: rules.0.when: expected ")", found the end of the condition (at character 39 of the condition, its end)`)

    // stream run refuses it the same way, exit 2, before reaching Kafka or PostgreSQL (none named here)
    const run = await runCli(['stream', 'run', '--spec', file, '--json'], {env: {KAFKA_BROKERS: '127.0.0.1:1', DATABASE_URL: 'postgres://nobody@127.0.0.1:1/none'}})
    expect(run.code).toBe(2)
    expect(run.json.error.message).toBe(`${file}:11:11: rules.0.when: expected ")", found the end of the condition (at character 39 of the condition, its end)`)
  })

  it('an unknown name and a type error: each with its position', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'rules-validate-'))
    const file = join(dir, 'p.yaml')
    await writeFile(file, specWith("amout > 5 or currency == 643"))
    const r = await runCli(['pipeline', 'validate', file, '--json'])
    expect(r.code).toBe(2)
    expect(r.json.error.errors).toEqual([
      expect.objectContaining({line: 11, column: 11, path: 'rules.0.when', message: expect.stringMatching(/^"amout" is not a defined field \(fields: id, amount, currency; .*\) \(at character 1 of the condition\)$/)}),
      expect.objectContaining({line: 11, column: 11, path: 'rules.0.when', message: "currency is a text and 643 is a number: they do not compare; quote it ('643') (at character 23 of the condition)"}),
    ])
  })
})
