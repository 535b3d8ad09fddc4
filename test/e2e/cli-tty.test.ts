/**
 * The CLI on a terminal (a pseudo-terminal from util-linux `script`): what a person sees of the
 * ink progress, with and without NO_COLOR (no-color.org).
 */
import {spawn} from 'node:child_process'
import {mkdtempSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {describe, expect, it, onTestFinished} from 'vitest'
import {forgetReplays, sendDeadLetters} from '../../fixtures/dlq/cleanup.js'
import {BIN, ROOT, createTestTopic, testPool} from '../helpers.js'

/**
 * Runs `bin/run.js args` with stderr and stdout on a 100x30 (or `size`) pseudo-terminal (nothing
 * typed on it); resolves to what the terminal got. Asynchronous, so that runs can go side by side.
 */
function onTerminal(args: string[], env: Record<string, string | undefined>, size = {cols: 100, rows: 30}): Promise<{code: number | null; screen: string}> {
  const quote = (s: string) => `'${s.replaceAll("'", `'\\''`)}'`
  const command = `stty cols ${size.cols} rows ${size.rows}; ${[process.execPath, BIN, ...args].map(quote).join(' ')}`
  const merged: Record<string, string | undefined> = {...process.env, NODE_ENV: 'production', ...env}
  for (const [k, v] of Object.entries(merged)) if (v === undefined) delete merged[k]
  return new Promise((resolve, reject) => {
    const child = spawn('script', ['-qec', command, '/dev/null'], {cwd: ROOT, env: merged, stdio: ['pipe', 'pipe', 'pipe']})
    let screen = ''
    child.stdout.on('data', (d: Buffer) => (screen += d.toString()))
    child.stderr.resume()
    child.on('error', reject)
    child.on('close', (code) => resolve({code, screen}))
    child.stdin.end() // as spawnSync without input: stdin at its end at once
  })
}

/**
 * As `onTerminal`, with a person typing `key` on it (without echo) every 500 ms until the run
 * ends: an interactive screen that opens is quit, and the run ends either way.
 */
function onTerminalTyping(args: string[], env: Record<string, string | undefined>, size: {cols: number; rows: number}, key: string): Promise<{code: number | null; screen: string}> {
  const quote = (s: string) => `'${s.replaceAll("'", `'\\''`)}'`
  const command = `stty cols ${size.cols} rows ${size.rows} -echo; ${[process.execPath, BIN, ...args].map(quote).join(' ')}`
  const merged: Record<string, string | undefined> = {...process.env, NODE_ENV: 'production', ...env}
  for (const [k, v] of Object.entries(merged)) if (v === undefined) delete merged[k]
  return new Promise((resolve, reject) => {
    const child = spawn('script', ['-qec', command, '/dev/null'], {cwd: ROOT, env: merged, stdio: ['pipe', 'pipe', 'inherit']})
    let screen = ''
    child.stdout.on('data', (d: Buffer) => (screen += d.toString()))
    const typing = setInterval(() => child.stdin.write(key), 500)
    // the run may end between two keys: a key typed into its closed terminal (EPIPE) is no error
    // of the test (uncaught, it failed a CI run of a suite where every test passed)
    child.stdin.on('error', () => {})
    child.on('exit', () => clearInterval(typing))
    child.on('error', reject)
    child.on('close', (code) => {
      clearInterval(typing)
      resolve({code, screen})
    })
  })
}

// eslint-disable-next-line no-control-regex
const SGR = /\u001b\[[0-9;]*m/
// eslint-disable-next-line no-control-regex
const CSI = /^\u001b\[([?0-9;]*)([A-Za-z])/

/**
 * What a terminal `width` columns wide shows once it has received `raw`: the rows of text, after
 * the cursor moves and erasures ink redraws with (CR, LF, CSI n A up, G column, 2K erase the row,
 * J/H clear). Colors and modes are dropped. Long rows wrap, as a terminal wraps them.
 */
function screenOf(raw: string, width = 100): string[] {
  let rows: string[][] = [[]]
  // rows that continue on the next one (the terminal wrapped them)
  let wrapped = new Set<number>()
  let r = 0
  let c = 0
  const row = () => (rows[r] ??= [])
  for (let i = 0; i < raw.length; ) {
    const ch = raw[i]!
    if (ch === '\u001b') {
      const m = CSI.exec(raw.slice(i, i + 24))
      i += m ? m[0].length : 2
      if (!m) continue
      const [, arg, cmd] = m
      if (cmd === 'K') {
        rows[r] = arg === '2' ? [] : row().slice(0, c)
        if (arg === '2') wrapped.delete(r)
      } else if (cmd === 'A') r = Math.max(0, r - Number(arg || 1))
      else if (cmd === 'G') c = Number(arg || 1) - 1
      else if (cmd === 'J') {
        rows = [[]]
        wrapped = new Set()
      } else if (cmd === 'H') r = c = 0
      continue
    }
    i++
    if (ch === '\r') c = 0
    else if (ch === '\n') {
      r++
      row()
    } else {
      if (c >= width) {
        wrapped.add(r)
        r++
        c = 0
      }
      row()[c++] = ch
    }
  }
  // a row that wrapped is one line of text again
  const lines: string[] = []
  let joined = ''
  for (let k = 0; k < rows.length; k++) {
    joined += Array.from(rows[k] ?? [], (x) => x ?? ' ').join('')
    if (!wrapped.has(k)) {
      lines.push(joined.trimEnd())
      joined = ''
    }
  }
  if (joined) lines.push(joined.trimEnd())
  return lines
}

describe('progress on a terminal', () => {
  it('NO_COLOR: the backfill progress bar is drawn without colors or dim text; without it, with', async () => {
    const topic = await createTestTopic({prefix: 'tty-nocolor'})
    const args = ['backfill', '--from', 'csv:fixtures/legacy/txn-utf8.csv?delimiter=;', '--to', topic, '--dlq', topic, '--rate', '50', '--log-level', 'error']
    // CI (set by the test runner) makes chalk draw without colors: a person's terminal has no CI
    // the two runs side by side, each on its own terminal
    const [plain, colored] = await Promise.all([onTerminal(args, {NO_COLOR: '1', FORCE_COLOR: undefined, CI: undefined}), onTerminal(args, {NO_COLOR: undefined, FORCE_COLOR: undefined, CI: undefined})])
    expect(plain.code, plain.screen).toBe(0)
    expect(plain.screen).toMatch(/sent 6/) // the ink frame was drawn (a terminal)
    // before the fix: \e[2m (dim), \e[32m (green bar)
    expect(plain.screen).not.toMatch(SGR)

    expect(colored.code, colored.screen).toBe(0)
    expect(colored.screen).toMatch(SGR)
  })
})

describe('backfill on a terminal: lines beside the progress', () => {
  it('the header and the log\'s warnings printed while ink draws stay on the screen (were erased by its next redraw)', async () => {
    const topic = await createTestTopic({prefix: 'tty-lines'})
    // no --key: the backfill.unkeyed warning comes while the bar is drawn; --rate 5: several redraws after it
    const args = ['backfill', '--from', 'csv:fixtures/legacy/txn-utf8.csv?delimiter=;', '--to', topic, '--dlq', topic, '--rate', '5']
    const r = await onTerminal(args, {NO_COLOR: '1', FORCE_COLOR: undefined, CI: undefined})
    expect(r.code, r.screen).toBe(0)
    const lines = screenOf(r.screen)
    const shown = lines.join('\n')
    const header = lines.find((l) => /^backfill bf-\S+: csv:fixtures\/legacy\/txn-utf8\.csv\?delimiter=; -> /.test(l))
    expect(header, shown).toMatch(new RegExp(`^backfill bf-[0-9a-f-]+: csv:fixtures/legacy/txn-utf8\\.csv\\?delimiter=; -> ${topic}$`))
    const warning = lines.find((l) => l.includes('"event":"backfill.unkeyed"'))
    expect(warning, shown).toBeDefined()
    expect(JSON.parse(warning!)).toMatchObject({level: 'warn', event: 'backfill.unkeyed'})
    // the last frame of the bar, below them, and the result
    const frame = lines.findIndex((l) => /read 6 · sent 6 · rejected 0/.test(l))
    expect(frame, shown).toBeGreaterThan(lines.indexOf(header!))
    expect(frame).toBeGreaterThan(lines.indexOf(warning!))
    expect(lines.filter((l) => /read \d+ · sent/.test(l)), shown).toHaveLength(1) // one frame left, the others redrawn over
    expect(shown).toMatch(/completed: .* -> /)
  })

  it('a resume without --rate shows the saved rate it paces at (was: "unthrottled")', async () => {
    const topic = await createTestTopic({prefix: 'tty-resume'})
    const id = `bf-tty-resume-${topic}`
    const pool = testPool()
    onTestFinished(() => pool.query('DELETE FROM cutover.backfills WHERE id = $1', [id]).then(() => undefined))
    const first = await onTerminal(['backfill', '--from', 'csv:fixtures/legacy/txn-utf8.csv?delimiter=;', '--to', topic, '--dlq', topic, '--id', id, '--rate', '8', '--json'], {CI: undefined})
    expect(first.code, first.screen).toBe(0)
    // as a run stopped after its second record leaves it
    await pool.query(`UPDATE cutover.backfills SET status = 'stopped', position = '{"records": 2}' WHERE id = $1`, [id])
    const r = await onTerminal(['backfill', '--resume', id], {NO_COLOR: '1', FORCE_COLOR: undefined, CI: undefined})
    expect(r.code, r.screen).toBe(0)
    const pace = screenOf(r.screen).find((l) => /^\s*rate [\d,]+\/s/.test(l))
    expect(pace, screenOf(r.screen).join('\n')).toMatch(/^\s*rate [\d,]+\/s of 8\/s/)
  })

  it('a terminal of 0 columns (script without a terminal): plain lines, not ink drawing one character per line', async () => {
    const topic = await createTestTopic({prefix: 'tty-zero'})
    const args = ['backfill', '--from', 'csv:fixtures/legacy/txn-utf8.csv', '--to', topic, '--key', 'id', '--rate', '20']
    const r = await onTerminal(args, {NO_COLOR: '1', FORCE_COLOR: undefined, CI: undefined}, {cols: 0, rows: 0})
    expect(r.code, r.screen).toBe(0)
    const raw = r.screen.split(/\r?\n/)
    // before the fix: "r", "e", "a", "d", ... one per line, and ink's escapes
    expect(raw.filter((l) => l.trim().length === 1), r.screen).toEqual([])
    expect(r.screen).not.toContain('\u001b[?2026h')
    expect(raw).toContain(raw.find((l) => /^backfill bf-\S+: csv:fixtures\/legacy\/txn-utf8\.csv -> /.test(l)))
    expect(r.screen).toMatch(/completed: csv:fixtures\/legacy\/txn-utf8\.csv -> .*\r?\n {2}read 5 = sent 5 \+ rejected 0/)
  })
})

/** `n` dead letters of pipeline `tty-dlq` on a new one-partition DLQ, and a spec of that pipeline that now passes them. */
async function deadLetters(n: number): Promise<{dlq: string; spec: string}> {
  const pool = testPool() // ended after the clean-up below (hooks run last registered first)
  const dlq = await createTestTopic({prefix: 'tty-dlq'})
  const source = await createTestTopic({prefix: 'tty-dlq-src'})
  onTestFinished(() => forgetReplays(pool, dlq))
  await sendDeadLetters(dlq, source, n, 'tty-dlq')
  const spec = join(mkdtempSync(join(tmpdir(), 'cutover-tty-dlq-')), 'spec.yaml')
  writeFileSync(spec, `version: 1\nname: tty-dlq\nsource: { topic: ${source}, format: json }\nfields:\n  id: { type: string, required: true }\n  amt: { type: decimal, scale: 2 }\n  ts: { type: timestamp, formats: [iso] }\nkey: id\nsinks:\n  - table: t\ndlq: { topic: ${dlq} }\n`)
  return {dlq, spec}
}

describe('dlq on a terminal: lines beside the progress, terminals of 0 columns', () => {
  it('dlq replay: the log\'s lines printed while ink draws stay on the screen (were erased by its next redraw)', async () => {
    const {dlq, spec} = await deadLetters(10)
    // --log-level info: replay.started comes once the bar is drawn; --rate 5: redraws for 2 s after it
    const r = await onTerminal(['dlq', 'replay', '--topic', dlq, '--spec', spec, '--rate', '5', '--log-level', 'info'], {NO_COLOR: '1', FORCE_COLOR: undefined, CI: undefined})
    expect(r.code, r.screen).toBe(0)
    const lines = screenOf(r.screen)
    const shown = lines.join('\n')
    const started = lines.find((l) => l.includes('"event":"replay.started"'))
    expect(started, shown).toBeDefined()
    expect(JSON.parse(started!)).toMatchObject({level: 'info', event: 'replay.started'})
    // the last frame of the bar, below it, and the result
    const frame = lines.findIndex((l) => /selected 10 · sent 10 · parked 0/.test(l))
    expect(frame, shown).toBeGreaterThan(lines.indexOf(started!))
    expect(lines.filter((l) => /^selected \d+ · sent/.test(l)), shown).toHaveLength(1) // one frame left, the others redrawn over
    // no log line cut short by a redraw drawn over its end
    for (const l of lines.filter((x) => x.startsWith('{'))) expect(() => JSON.parse(l), l).not.toThrow()
    expect(shown).toMatch(/^replay \S+ completed; selected 10, sent 10, parked 0/m)
  })

  it('dlq replay on a terminal of 0 columns (script without a terminal): plain lines, not ink drawing one character per line', async () => {
    const {dlq, spec} = await deadLetters(10)
    const r = await onTerminal(['dlq', 'replay', '--topic', dlq, '--spec', spec, '--rate', '5'], {NO_COLOR: '1', FORCE_COLOR: undefined, CI: undefined}, {cols: 0, rows: 0})
    expect(r.code, r.screen).toBe(0)
    const raw = r.screen.split(/\r?\n/)
    // before the fix: "r", "e", "p", "l", ... one per line, and ink's escapes
    expect(raw.filter((l) => l.trim().length === 1), r.screen).toEqual([])
    expect(r.screen).not.toContain('\u001b[?2026h')
    expect(raw.some((l) => /^replayed \d+ of 10 dead letters: selected \d+, sent \d+, parked 0$/.test(l)), r.screen).toBe(true)
    expect(raw.some((l) => /^replay \S+ completed; selected 10, sent 10, parked 0/.test(l)), r.screen).toBe(true)
  })

  it('dlq inspect on a terminal of 0 columns: the printed result, not the browser drawn one character per line', async () => {
    const {dlq} = await deadLetters(2)
    // q: quits the browser if it opens (before the fix), so the run ends either way
    const r = await onTerminalTyping(['dlq', 'inspect', '--topic', dlq], {NO_COLOR: '1', FORCE_COLOR: undefined, CI: undefined}, {cols: 0, rows: 0}, 'q')
    expect(r.code, r.screen).toBe(0)
    const raw = r.screen.split(/\r?\n/)
    // before the fix: "t", "t", "y", "-", ... one per line, and ink's escapes
    expect(raw.filter((l) => l.trim().length === 1), r.screen).toEqual([])
    expect(r.screen).not.toContain('\u001b[?2026h')
    expect(raw).toContain(`${dlq}: 2 dead letters`)
    expect(raw.some((l) => /^UNPARSEABLE_DATE\s+2$/.test(l)), r.screen).toBe(true)
  })
})
