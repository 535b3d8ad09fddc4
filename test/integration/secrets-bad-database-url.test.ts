/**
 * A DATABASE_URL that does not parse (a port typo) is quoted back in the error: its password must
 * not be, in --json, in the human error, or in the debug log, also when it holds a quote (which
 * encodeURIComponent leaves as it is) or a blank. Nothing is connected to: no service needed.
 */
import {describe, expect, it} from 'vitest'
import {runCli} from '../helpers.js'

const PASSWORDS = ["O'Brien-7x", 'Se"cret9', "O'Br ien-7x"]

describe('a DATABASE_URL that does not parse keeps its password', () => {
  for (const password of PASSWORDS) {
    it(`password ${JSON.stringify(password)}: db migrate --json and dev status say the URL is bad, without it`, async () => {
      const env = {DATABASE_URL: `postgres://rv_secret:${password}@127.0.0.1:5432x/cutover`, CUTOVER_LOG_LEVEL: 'debug'}
      const json = await runCli(['db', 'migrate', '--json'], {env})
      expect(json.code).toBe(2)
      expect(json.json.error).toMatchObject({code: 'USAGE', message: 'DATABASE_URL "postgres://rv_secret:***@127.0.0.1:5432x/cutover" is not a URL'})
      const human = await runCli(['dev', 'status'], {env})
      expect(human.code).toBe(2)
      expect(human.stderr).toContain('is not a URL')
      for (const out of [json.stdout, json.stderr, human.stdout, human.stderr]) {
        expect(out).not.toContain(password)
        expect(out).not.toContain(password.slice(2, 7))
      }
    })
  }
})
