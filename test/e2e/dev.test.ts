/**
 * The CLI as a user runs it (bin/run.js, built): exit codes and --json fields.
 * The broker is already up (CI runs `cutover dev up` before the tests).
 */
import {spawnSync} from 'node:child_process'
import {readFileSync, readdirSync} from 'node:fs'
import {join, relative} from 'node:path'
import {describe, expect, it} from 'vitest'
import {shebangNodeFlags, startStreamRun} from '../../fixtures/generator/stream-harness.js'
import {BIN, ROOT, runCli} from '../helpers.js'

describe('cutover dev and global behaviour', () => {
  it('--help lists every command with a summary', async () => {
    const r = await runCli(['--help'])
    expect(r.code).toBe(0)
    expect(r.stdout).toMatch(/dev up\s+Start a local single-node Apache Kafka broker/)
    expect(r.stdout).toMatch(/dev status\s+Report/)
    expect(r.stdout).toMatch(/dev down\s+Stop/)
  })

  it('the built manifest names every command in src/commands, each with the module it loads (a bundle for the short ones: scripts/bundle.js)', () => {
    const dir = join(ROOT, 'src', 'commands')
    const ids = (readdirSync(dir, {recursive: true}) as string[])
      .filter((f) => f.endsWith('.ts'))
      .map((f) => relative(dir, join(dir, f)).replace(/\.ts$/, '').split('/').join(':'))
      .sort()
    const manifest = JSON.parse(readFileSync(join(ROOT, 'oclif.manifest.json'), 'utf8')) as {commands: Record<string, {relativePath: string[]}>}
    expect(Object.keys(manifest.commands).sort()).toEqual(ids)
    // the short commands load their bundle; those that move data (stream run, backfill, ...) dist/src's modules
    for (const [id, c] of Object.entries(manifest.commands)) expect([`dist/bundle/${id.split(':').join('-')}.js`, `dist/src/commands/${id.split(':').join('/')}.js`]).toContain(c.relativePath.join('/'))
    expect(manifest.commands['pipeline:validate']!.relativePath.join('/')).toBe('dist/bundle/pipeline-validate.js')
    expect(manifest.commands['stream:run']!.relativePath.join('/')).toBe('dist/src/commands/stream/run.js')
    // each module's default export is its command, with the flags the manifest (written from dist/src's modules) gives it
    const script = `for (const [id, p] of JSON.parse(process.argv[1])) { const c = (await import(p)).default; const f = Object.keys({...c.baseFlags, ...c.flags, ...(c.enableJsonFlag ? {json: 1} : {})}); console.log(id + ' ' + f.sort().join(',')) }`
    const paths = Object.entries(manifest.commands).map(([id, c]) => [id, join(ROOT, ...c.relativePath)])
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script, JSON.stringify(paths)], {cwd: ROOT, encoding: 'utf8'})
    expect(r.status, r.stderr).toBe(0)
    const want = Object.entries(manifest.commands as Record<string, {flags?: Record<string, unknown>}>).map(([id, c]) => `${id} ${Object.keys(c.flags ?? {}).sort().join(',')}`)
    expect(r.stdout.trim().split('\n')).toEqual(want)
  })

  it('bin/run.js started as a command runs node with its shebang flags (the larger young generation), and the stream harness passes the same', async () => {
    const flags = shebangNodeFlags(BIN)
    expect(flags).toContain('--max-semi-space-size=64')
    // executed directly, as an installed `cutover` is: the kernel reads the shebang (env -S splits it)
    const r = spawnSync(BIN, ['--version'], {
      cwd: ROOT,
      encoding: 'utf8',
      env: {...process.env, NODE_OPTIONS: '--import=data:text/javascript,process.on(`exit`,()=>process.stderr.write(`EXECARGV`+JSON.stringify(process.execArgv)))'},
    })
    expect(r.status, r.stderr).toBe(0)
    expect(r.stdout).toMatch(/^cutover\//)
    expect(JSON.parse(/EXECARGV(.*)$/m.exec(r.stderr)![1]!)).toEqual(flags)
    // tests and benches start `node <flags> bin/run.js stream run ...` (node from process.execPath)
    const s = startStreamRun(['--help'])
    expect(s.child.spawnargs.slice(1, 1 + flags.length + 1)).toEqual([...flags, BIN])
    expect((await s.done).code).toBe(0)
  })

  it('an unknown command exits 2; under --json with one usage error document on stdout', async () => {
    const r = await runCli(['no-such-command'])
    expect(r.code).toBe(2)
    expect(r.stderr).toMatch(/not found/)
    const j = await runCli(['dlq', 'no-such', '--json'])
    expect(j.code).toBe(2)
    expect(j.json).toEqual({error: {code: 'USAGE', message: 'command dlq no-such not found', hint: 'run cutover --help for the commands'}})
  })

  it.each([
    [['status', '--json'], /Missing required flag group/, 'see cutover status --help'],
    [['status', '--group', 'g', '--bogus', '--json'], /Nonexistent flag: --bogus/, 'see cutover status --help'],
    [['dlq', 'inspect', '--topic', 't', '--limit', '-1', '--json'], /--limit/, 'see cutover dlq inspect --help'],
  ])('a flag oclif refuses under --json: exit 2 and one usage error document (%j)', async (args, message, hint) => {
    const r = await runCli(args)
    expect(r.code).toBe(2)
    expect(r.stdout.length).toBeLessThan(1000) // not oclif's whole error object (~145 KB)
    expect(r.json).toEqual({error: {code: 'USAGE', message: expect.stringMatching(message) as unknown, hint}})
  })

  it('dev status --json reports both services up with versions', async () => {
    const r = await runCli(['dev', 'status', '--json'])
    expect(r.code).toBe(0)
    expect(r.json.kafka.status).toBe('up')
    expect(r.json.kafka.clusterId).toEqual(expect.any(String))
    expect(r.json.postgresql.status).toBe('up')
    expect(r.json.postgresql.version).toMatch(/^\d+/)
    expect(r.json.unreachable).toEqual([])
  })

  it('dev up when a broker answers reuses it', async () => {
    const r = await runCli(['dev', 'up', '--json'])
    expect(r.code).toBe(0)
    expect(r.json.reused).toBe(true)
    expect(r.json.bootstrap).toBe('127.0.0.1:9092')
  })

  it('dev status exits 3 naming PostgreSQL when DATABASE_URL points at a closed port, without printing the password', async () => {
    const r = await runCli(['dev', 'status', '--json'], {env: {DATABASE_URL: 'postgres://bob:s3cret-pw@127.0.0.1:1/cutover'}})
    expect(r.code).toBe(3)
    expect(r.json.unreachable).toEqual(['postgresql'])
    expect(r.json.postgresql.address).toBe('127.0.0.1:1/cutover')
    expect(r.stdout + r.stderr).not.toContain('s3cret-pw')
  })

  it('dev status: PostgreSQL refusing the login is "refused" and exit 2 (the settings), not DOWN/unreachable and exit 3', async () => {
    const env = {DATABASE_URL: 'postgres://no_such_role_cutover:s3cret-pw@127.0.0.1:5432/cutover'}
    const r = await runCli(['dev', 'status', '--json'], {env})
    // before the fix: status "down", unreachable ["postgresql"], exit 3, although the server answered
    expect(r.code, r.stdout + r.stderr).toBe(2)
    expect(r.json.unreachable).toEqual([])
    expect(r.json.refused).toEqual(['postgresql'])
    expect(r.json.postgresql).toMatchObject({status: 'refused', address: '127.0.0.1:5432/cutover', error: expect.stringContaining('refused the login')})
    expect(r.json.kafka.status).toBe('up')
    const text = await runCli(['dev', 'status'], {env})
    expect(text.code).toBe(2)
    expect(text.stdout).toMatch(/postgresql\s+REFUSED\s+127\.0\.0\.1:5432\/cutover/)
    expect(text.stderr).toMatch(/refused: postgresql/)
    expect(r.stdout + r.stderr + text.stdout + text.stderr).not.toContain('s3cret-pw')
  })

  it('a DATABASE_URL whose password holds "@" then "/" unencoded is refused (exit 2), no piece of the password shown', async () => {
    // parsed as user postgres, password "Pa", host "ss", database "w0rd@127.0.0.1/cutover": every
    // message naming the host and database showed "ss:5432/w0rd@..."
    const env = {DATABASE_URL: 'postgres://postgres:Pa@ss/w0rd@127.0.0.1:5432/cutover'}
    for (const args of [['dev', 'status', '--json'], ['parity', 'report', '--json']]) {
      const r = await runCli(args, {env})
      expect(r.code, r.stdout + r.stderr).toBe(2)
      expect(r.stdout + r.stderr).toMatch(/percent-encode the password/)
      expect(r.stdout + r.stderr).not.toMatch(/w0rd|Pa@ss|ss:5432/)
    }
  })

  it('PostgreSQL with no connection to spare (53300) is exit 3 with that fix, not exit 70', async () => {
    const role = `cutover_nolimit_${process.pid}`
    const admin = (sql: string) => spawnSync('psql', ['-h', '127.0.0.1', '-U', 'postgres', '-d', 'postgres', '-Atc', sql], {encoding: 'utf8'})
    expect(admin(`CREATE ROLE ${role} LOGIN CONNECTION LIMIT 0`).status).toBe(0)
    try {
      const r = await runCli(['parity', 'report', '--json'], {env: {DATABASE_URL: `postgres://${role}@127.0.0.1:5432/cutover`}})
      expect(r.code, r.stdout + r.stderr).toBe(3)
      expect(r.json.error).toMatchObject({code: 'SERVICE_UNAVAILABLE', service: 'postgresql', hint: expect.stringMatching(/no connection to spare/)})
    } finally {
      admin(`DROP ROLE IF EXISTS ${role}`)
    }
  })

  it('KAFKA_SSL against the plaintext broker: the fix says TLS, not "start a broker"', async () => {
    const r = await runCli(['dev', 'status'], {env: {KAFKA_SSL: 'true'}})
    expect(r.code).toBe(3)
    expect(r.stdout + r.stderr).toMatch(/dropped the TLS handshake: point KAFKA_BROKERS at the broker's TLS listener, or unset KAFKA_SSL/)
    expect(r.stdout + r.stderr).not.toMatch(/start a broker/)
  })

  it('dev status exits 3 naming Kafka when KAFKA_BROKERS is unreachable, within seconds', async () => {
    const r = await runCli(['dev', 'status'], {env: {KAFKA_BROKERS: '127.0.0.1:1'}})
    expect(r.code).toBe(3)
    expect(r.stderr).toMatch(/unreachable: kafka/)
    expect(r.stdout).toMatch(/kafka\s+DOWN\s+127\.0\.0\.1:1/)
  })

  it('a malformed KAFKA_BROKERS is a usage error (exit 2) with the fix', async () => {
    const r = await runCli(['dev', 'status', '--json'], {env: {KAFKA_BROKERS: 'not a broker'}})
    expect(r.code).toBe(2)
    expect(r.json.error.code).toBe('USAGE')
    expect(r.json.error.hint).toMatch(/127\.0\.0\.1:9092/)
  })
})
