/**
 * COBOL copybooks: the record layout of fixed-width mainframe files, and the codecs of its
 * numeric encodings.
 *
 * What a copybook says, and what this module makes of it:
 *
 *        01  TXN-RECORD.                              group: its children, in order
 *            05  TXN-ID          PIC X(12).           text, 12 bytes, in the file's code page
 *            05  ACCT-NO         PIC 9(10).           zoned decimal, 10 bytes, unsigned
 *            05  AMOUNT          PIC S9(9)V99 COMP-3. packed decimal, 11 digits, 6 bytes
 *            05  FEE             PIC S9(5)V99.        zoned, 7 bytes, sign overpunched on the last
 *            05  COUNT           PIC S9(4) COMP.      big-endian two's complement, 2 bytes
 *            05  FILLER          PIC X(3).            skipped (its bytes still count)
 *            05  LAST-AMTS       PIC S9(5)V99 COMP-3  OCCURS 3 TIMES.
 *                                                     last_amts_1, last_amts_2, last_amts_3
 *            88  IS-REFUND       VALUE 'R'.           condition names: ignored
 *
 *   fixed format      columns 1-6 sequence numbers, column 7 `*` or `/` marks a comment and
 *                     `-` a continuation, code in columns 8-72, 73-80 ignored; lines that do
 *                     not look like fixed format are read whole (free format, `*>` comments)
 *   level numbers     01-49 nest by number; 77 is a stand-alone item; 88 is skipped;
 *                     66 (RENAMES) is rejected
 *   PIC X(n) / A(n)   text of n bytes, decoded in the file's encoding, trailing spaces removed
 *   PIC 9(n)          unsigned DISPLAY integers come out as the digits written, leading
 *                     zeros kept ("091500", "0000117"): they are dates, times and numbers
 *                     of accounts more often than quantities
 *   PIC 9(n)V9(m)     DISPLAY (zoned): one digit per byte; `S` adds a sign overpunched on
 *                     the last byte (EBCDIC zone C/F = +, D = -; ASCII `{`,A-I = +0..9,
 *                     `}`,J-R = -0..9, also p-y = -0..9), or a separate sign byte with
 *                     SIGN [IS] LEADING|TRAILING SEPARATE
 *   COMP-3            packed decimal: two digits per byte, sign in the last nibble
 *                     (C, A, E, F = +; D, B = -), (digits / 2 + 1) bytes
 *   COMP, COMP-4,     big-endian binary, 2 bytes for 1-4 digits, 4 for 5-9, 8 for 10-18;
 *   COMP-5, BINARY    signed (two's complement) with `S`, unsigned without. COMP, COMP-4 and
 *                     BINARY hold at most the PIC's digits (IBM's TRUNC(STD), the default): a
 *                     value with more (X'4041' = 16449 in PIC S9(4) COMP) is a DECODE_ERROR,
 *                     never a number the PIC cannot hold; COMP-5 is native binary, the full
 *                     range of its bytes (also the field to declare when the program was
 *                     compiled with TRUNC(BIN))
 *   SYNC              on a binary item already on its natural boundary (2, 4, 8 bytes from the
 *                     start of the record): accepted; one that needs slack bytes: rejected,
 *                     with the FILLER to write instead; on DISPLAY and COMP-3: no effect
 *   edited pictures   (Z, comma, period, +, -, CR, DB, $, B, 0, /) are read as text
 *   USAGE, SIGN       on a group: apply to each elementary item under it (05 AMTS COMP-3.
 *                     over 10 AMT1 PIC S9(5)V99. is packed); an item's own SIGN wins, an
 *                     item's USAGE that contradicts its group's is rejected
 *   OCCURS n [TIMES]  on an item or a group: the fields repeat, named NAME_1 .. NAME_n
 *                     (nested: NAME_1_2)
 *   groups            a group (below 01) made only of text and unsigned DISPLAY integers is
 *                     also given whole, as text (TXN-TS = TXN-DATE + TXN-TIME -> txn_ts)
 *   names             lower_snake_case (TXN-ID -> txn_id); a leaf name used twice is
 *                     prefixed with its group's name (START-DATE/YY -> start_date_yy)
 *   rejected          REDEFINES, OCCURS DEPENDING ON, RENAMES, COMP-1/COMP-2 (floats), the
 *                     scaling `P`: each with file:line and what to do instead
 *
 * Numbers come out as exact decimal strings ("-1234.56", "42"), never floats; a numeric
 * field that is all spaces (blank) comes out as "" for the normalizer to judge (the reader,
 * ./fixed.ts, decides what is blank: for a binary field, spaces its PIC cannot hold).
 */
import {RecordError, SpecError} from '../src/errors.js'

export type FieldKind = 'text' | 'zoned' | 'packed' | 'binary'

export interface CopybookField {
  /** lower_snake_case, with _1.._n for OCCURS */
  name: string
  /** the COBOL name as written (with (1) subscripts for OCCURS) */
  cobolName: string
  kind: FieldKind
  /** byte offset within the record */
  offset: number
  /** bytes */
  length: number
  /** numeric: total digits (integer + fraction) */
  digits: number
  /** numeric: digits after the implied decimal point (V) */
  scale: number
  signed: boolean
  /** zoned with SIGN SEPARATE */
  signSeparate?: 'leading' | 'trailing'
  /** zoned with SIGN LEADING (overpunch on the first byte) */
  signLeading?: boolean
  /** the PIC clause as written */
  picture: string
  /** copybook line where the item is declared */
  line: number
  /** a group of DISPLAY items, also given whole as text (its leaves follow it) */
  group?: boolean
  /**
   * binary: COMP-5, native binary holding any value of its bytes; COMP, COMP-4 and BINARY
   * (this flag absent) hold at most the PIC's digits
   */
  nativeBinary?: boolean
}

export interface Copybook {
  /** the 01 record's name (lower_snake_case), or undefined when the copybook has no group */
  name: string | undefined
  /** elementary items in record order, FILLER excluded */
  fields: CopybookField[]
  /** bytes of one record, FILLER included */
  recordLength: number
}

interface Item {
  level: number
  name: string
  filler: boolean
  occurs: number
  picture?: string
  usage: 'display' | 'comp-3' | 'binary'
  /** binary: COMP-5 (native binary, not limited to the PIC's digits) */
  native?: boolean
  /** the item has a USAGE of its own (or one it inherits from a group: see inheritGroupClauses) */
  usageSet?: boolean
  signSeparate?: 'leading' | 'trailing'
  signLeading?: boolean
  /** the item has a SIGN clause of its own (or inherits one) */
  signSet?: boolean
  /** SYNC / SYNCHRONIZED (on a group: on each of its elementary items) */
  sync?: boolean
  line: number
  children: Item[]
}

/** `TXN-ID` -> `txn_id` */
export function toSnakeCase(cobolName: string): string {
  return cobolName
    .trim()
    .replace(/[^A-Za-z0-9]+/g, '_')
    .replace(/^_+|_+$/g, '')
    .toLowerCase()
}

interface Statement {
  text: string
  line: number
}

/**
 * Strips sequence and identification areas and comments; splits into `.`-terminated statements.
 * A period ends a statement when followed by a space or the end of the line (not 9.99), and
 * outside literals: `VALUE 'U.S. '` and `VALUE "N. A."` do not end theirs. A literal ends with
 * its line, unless the next line continues it (`-` in column 7).
 */
function statements(text: string): Statement[] {
  const out: Statement[] = []
  let current = ''
  let startLine = 0
  let quote = '' // the quote of the literal open at the end of `current`, '' outside literals
  const lines = text.split(/\r?\n/)
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i]!.replace(/\t/g, '    ')
    let code: string
    let continued = false
    if (/^(\d{6}| {6})[ *\-/D]/.test(raw)) {
      const indicator = raw[6]
      if (indicator === '*' || indicator === '/') continue
      code = raw.slice(7, 72)
      if (indicator === 'D') code = '' // debugging lines
      if (indicator === '-') {
        // continuation of a literal: its text goes on after the quote that opens this line
        continued = quote !== ''
        code = code.replace(/^\s*['"]?/, '')
      }
    } else {
      if (/^\s*\*/.test(raw)) continue
      code = raw
    }
    if (!continued) quote = ''
    // an inline comment `*>` outside literals
    for (let k = 0, q = quote; k < code.length; k++) {
      const c = code[k]!
      if (q !== '') {
        if (c === q) q = ''
      } else if (c === "'" || c === '"') {
        q = c
      } else if (c === '*' && code[k + 1] === '>') {
        code = code.slice(0, k)
        break
      }
    }
    if (code.trim() === '') continue
    if (current.trim() === '') startLine = i + 1
    let scan = current.length + (continued ? 0 : 1)
    current += (continued ? '' : ' ') + code
    let from = 0
    for (; scan < current.length; scan++) {
      const c = current[scan]!
      if (quote !== '') {
        if (c === quote) quote = '' // a doubled quote ('IT''S') closes and opens again
      } else if (c === "'" || c === '"') {
        quote = c
      } else if (c === '.' && (scan + 1 === current.length || /\s/.test(current[scan + 1]!))) {
        const stmt = current.slice(from, scan).trim()
        if (stmt) out.push({text: stmt, line: startLine})
        from = scan + 1
        startLine = i + 1
      }
    }
    current = current.slice(from)
  }
  if (current.trim()) out.push({text: current.trim(), line: startLine})
  return out
}

function tokenize(s: string): string[] {
  return s.match(/'[^']*'|"[^"]*"|\S+/g) ?? []
}

/**
 * Parses a copybook. `file` names it in errors (SpecError with file:line and the fix).
 */
export function parseCopybook(text: string, file = 'copybook'): Copybook {
  const fail = (line: number, message: string, hint: string): never => {
    throw new SpecError({file, line}, message, {hint})
  }
  const roots: Item[] = []
  const stack: Item[] = []
  for (const st of statements(text)) {
    const tokens = tokenize(st.text)
    const levelText = tokens.shift()!
    if (!/^\d{1,2}$/.test(levelText)) {
      fail(st.line, `expected a level number, found "${levelText}"`, 'each entry starts with a level number (01-49, 77, 88), e.g. 05 TXN-ID PIC X(12).')
    }
    const level = Number(levelText)
    if (level === 88) continue
    if (level === 66) fail(st.line, 'RENAMES (level 66) is not supported', 'describe the renamed bytes as ordinary items instead')
    if (!(level >= 1 && level <= 49) && level !== 77) fail(st.line, `level ${level} is not a data level`, 'use 01-49 or 77')
    let name = 'FILLER'
    if (tokens[0] && !/^(PIC|PICTURE|OCCURS|REDEFINES|USAGE|COMP|VALUE|SIGN)/i.test(tokens[0])) name = tokens.shift()!
    const item: Item = {level: level === 77 ? 1 : level, name, filler: name.toUpperCase() === 'FILLER', occurs: 1, usage: 'display', line: st.line, children: []}
    for (let k = 0; k < tokens.length; k++) {
      const t = tokens[k]!.toUpperCase()
      const next = () => tokens[++k]
      if (t === 'PIC' || t === 'PICTURE') {
        let p = next()
        if (p?.toUpperCase() === 'IS') p = next()
        if (!p) fail(st.line, `${name}: PIC without a picture`, 'write e.g. PIC X(10) or PIC S9(7)V99')
        item.picture = p!
      } else if (t === 'REDEFINES') {
        fail(st.line, `${name} REDEFINES ${tokens[k + 1] ?? ''}: REDEFINES is not supported`, 'keep one layout per copybook: read the file once per layout, with a copybook that describes it')
      } else if (t === 'OCCURS') {
        const n = next()
        if (!n || !/^\d+$/.test(n)) fail(st.line, `${name}: OCCURS needs a count`, 'write OCCURS 12 TIMES')
        if (tokens[k + 1]?.toUpperCase() === 'TO' || tokens.some((x) => x.toUpperCase() === 'DEPENDING')) {
          fail(st.line, `${name}: OCCURS ... DEPENDING ON is not supported`, 'describe the maximum number of occurrences with a fixed OCCURS n TIMES')
        }
        item.occurs = Number(n)
        if (tokens[k + 1]?.toUpperCase() === 'TIMES') k++
      } else if (t === 'USAGE') {
        if (tokens[k + 1]?.toUpperCase() === 'IS') k++
      } else if (t === 'COMP-3' || t === 'COMPUTATIONAL-3' || t === 'PACKED-DECIMAL') {
        item.usage = 'comp-3'
        item.usageSet = true
      } else if (['COMP', 'COMP-4', 'COMP-5', 'COMPUTATIONAL', 'COMPUTATIONAL-4', 'COMPUTATIONAL-5', 'BINARY'].includes(t)) {
        item.usage = 'binary'
        item.usageSet = true
        if (t === 'COMP-5' || t === 'COMPUTATIONAL-5') item.native = true
        else delete item.native
      } else if (['COMP-1', 'COMP-2', 'COMPUTATIONAL-1', 'COMPUTATIONAL-2'].includes(t)) {
        fail(st.line, `${name}: ${t} (floating point) is not supported`, 'money is exact: ask for the field as COMP-3 or zoned decimal')
      } else if (t === 'DISPLAY') {
        item.usage = 'display'
        item.usageSet = true
      } else if (t === 'SIGN') {
        item.signSet = true
        if (tokens[k + 1]?.toUpperCase() === 'IS') k++
        const where = next()?.toUpperCase()
        if (where !== 'LEADING' && where !== 'TRAILING') fail(st.line, `${name}: SIGN must be LEADING or TRAILING`, 'write SIGN IS TRAILING SEPARATE')
        if (tokens[k + 1]?.toUpperCase() === 'SEPARATE') {
          k++
          if (tokens[k + 1]?.toUpperCase() === 'CHARACTER') k++
          item.signSeparate = where === 'LEADING' ? 'leading' : 'trailing'
        } else if (where === 'LEADING') {
          item.signLeading = true
        }
      } else if (t === 'VALUE' || t === 'VALUES') {
        break // initial values do not change the layout
      } else if (t === 'SYNC' || t === 'SYNCHRONIZED') {
        item.sync = true
      } else if (['JUST', 'JUSTIFIED', 'RIGHT', 'LEFT', 'BLANK', 'WHEN', 'ZERO', 'ZEROS', 'ZEROES', 'IS', 'TIMES', 'GLOBAL', 'EXTERNAL'].includes(t)) {
        continue
      } else if (t === 'INDEXED' || t === 'ASCENDING' || t === 'DESCENDING') {
        break // INDEXED BY / KEY IS name lists: no layout
      } else {
        fail(st.line, `${name}: unexpected "${tokens[k]}"`, 'supported clauses: PIC, USAGE/COMP/COMP-3/BINARY, OCCURS n TIMES, SIGN, VALUE')
      }
    }
    while (stack.length > 0 && stack[stack.length - 1]!.level >= item.level) stack.pop()
    const parent = stack[stack.length - 1]
    if (parent) {
      if (parent.picture) fail(st.line, `${name} is nested under ${parent.name}, which has a PIC`, 'only groups (items without PIC) have children; check the level numbers')
      parent.children.push(item)
    } else {
      roots.push(item)
    }
    stack.push(item)
  }
  if (roots.length === 0) fail(1, 'the copybook describes no items', 'write at least 01 RECORD. 05 FIELD PIC X(10).')
  const groups = roots.filter((r) => r.children.length > 0)
  if (groups.length > 1) {
    fail(groups[1]!.line, `the copybook describes ${groups.length} records (${groups.map((r) => r.name).join(', ')})`, 'keep one 01 record per copybook (REDEFINES at 01 level is not supported)')
  }
  for (const r of roots) inheritGroupClauses(r, file)
  const fields: CopybookField[] = []
  const paths: string[][] = []
  let offset = 0
  const walk = (item: Item, suffix: string, path: string[], syncGroup = false): void => {
    const sync = syncGroup || item.sync === true
    for (let n = 1; n <= item.occurs; n++) {
      const sfx = item.occurs > 1 ? `${suffix}_${n}` : suffix
      const here = item.filler ? path : [...path, toSnakeCase(item.name)]
      if (item.children.length > 0) {
        if (item.picture) fail(item.line, `${item.name} has both a PIC and children`, 'only groups have children')
        const firstField = fields.length
        const groupOffset = offset
        for (const c of item.children) walk(c, sfx, here, sync)
        // A group of text and unsigned DISPLAY digits is also text, as in COBOL: TXN-TS made of
        // TXN-DATE 9(8) and TXN-TIME 9(6) is also txn_ts "20261120091500".
        const leaves = fields.slice(firstField)
        if (item.level > 1 && !item.filler && leaves.length > 1 && leaves.every((f) => f.kind === 'text' || (f.kind === 'zoned' && !f.signed && f.scale === 0))) {
          fields.splice(firstField, 0, {
            name: toSnakeCase(item.name) + sfx,
            cobolName: item.occurs > 1 ? `${item.name}(${n})` : item.name,
            kind: 'text',
            offset: groupOffset,
            length: offset - groupOffset,
            digits: 0,
            scale: 0,
            signed: false,
            group: true,
            picture: `X(${offset - groupOffset})`,
            line: item.line,
          })
          paths.splice(firstField, 0, [...path])
        }
        continue
      }
      if (!item.picture) {
        if (item.level === 1 && roots.length === 1) return
        fail(item.line, `${item.name} has no PIC and no children`, 'give elementary items a PIC clause, e.g. PIC X(10)')
      }
      const layout = pictureLayout(item, file)
      if (sync && layout.kind === 'binary') checkSynchronized(item, toSnakeCase(item.name) + sfx, layout.length, offset, file)
      if (!item.filler) {
        const cobolName = item.occurs > 1 ? `${item.name}(${n})` : item.name
        fields.push({
          name: toSnakeCase(item.name) + sfx,
          cobolName,
          kind: layout.kind,
          offset,
          length: layout.length,
          digits: layout.digits,
          scale: layout.scale,
          signed: layout.signed,
          ...(item.signSeparate ? {signSeparate: item.signSeparate} : {}),
          ...(item.signLeading ? {signLeading: true} : {}),
          ...(layout.kind === 'binary' && item.native ? {nativeBinary: true} : {}),
          picture: item.picture!,
          line: item.line,
        })
        paths.push([...path])
      }
      offset += layout.length
    }
  }
  for (const r of roots) walk(r, '', [])
  // Leaf names used twice are qualified by their groups, innermost first.
  const qualify = () => {
    const count = new Map<string, number>()
    for (const f of fields) count.set(f.name, (count.get(f.name) ?? 0) + 1)
    let changed = false
    fields.forEach((f, i) => {
      if ((count.get(f.name) ?? 0) > 1) {
        const parent = paths[i]!.pop()
        if (parent !== undefined) {
          f.name = `${parent}_${f.name}`
          changed = true
        }
      }
    })
    return changed
  }
  // The 01 level name is not used as a qualifier (every field has it).
  for (const p of paths) if (roots.length === 1 && roots[0]!.children.length > 0) p.shift()
  while (qualify());
  const dup = fields.find((f, i) => fields.findIndex((g) => g.name === f.name) !== i)
  if (dup) fail(dup.line, `field name ${dup.name} is used twice`, 'rename one of the items')
  const root = roots.length === 1 && roots[0]!.children.length > 0 ? roots[0]! : undefined
  return {name: root ? toSnakeCase(root.name) : undefined, fields, recordLength: offset}
}

/**
 * USAGE and SIGN written on a group apply to every elementary item in it, as in COBOL:
 * `05 AMOUNTS COMP-3.` over `10 AMT1 PIC S9(5)V99.` makes AMT1 packed (4 bytes, not 7 zoned),
 * and `05 SGN SIGN LEADING SEPARATE.` gives its signed items a leading sign byte (unsigned ones
 * have no sign to place). An item's own USAGE that contradicts its group's is a SpecError, as a
 * COBOL compiler refuses it; an item's own SIGN clause wins over the group's.
 */
function inheritGroupClauses(group: Item, file: string): void {
  for (const c of group.children) {
    if (group.usageSet) {
      if (!c.usageSet) {
        c.usage = group.usage
        c.usageSet = true
        if (group.native) c.native = true
      } else if (c.usage !== group.usage || c.native !== group.native) {
        throw new SpecError({file, line: c.line}, `${c.name} is ${usageName(c)} inside ${group.name}, whose USAGE is ${usageName(group)}`, {
          hint: `an item's USAGE must agree with its group's: drop one of the two USAGE clauses (line ${group.line} or ${c.line})`,
        })
      }
    }
    if (group.signSet && !c.signSet && (c.children.length > 0 || (c.picture !== undefined && expandPicture(c.picture).startsWith('S')))) {
      c.signSet = true
      if (group.signSeparate) c.signSeparate = group.signSeparate
      if (group.signLeading) c.signLeading = true
    }
    inheritGroupClauses(c, file)
  }
}

/** `BINARY`, `COMP-5`, `COMP-3`, `DISPLAY`: an item's USAGE in messages */
function usageName(item: Item): string {
  return item.native ? 'COMP-5' : item.usage.toUpperCase()
}

/**
 * SYNC on a binary item: IBM Enterprise COBOL aligns it on its natural boundary (2 bytes for
 * 1-4 digits, 4 for 5-9, 8 for 10-18) from the start of the 01 record, with slack bytes before
 * it, and pads each occurrence of an OCCURS group so that every occurrence is aligned alike.
 * Compilers and their options differ on the details (8-byte items on 8 or on 4; Micro Focus
 * aligns the enclosing group instead), so this reader inserts no slack bytes: an item already on
 * its boundary (every occurrence of it) needs none under IBM's rules and is accepted; one that
 * would need slack bytes is a SpecError saying how many and where to write them, never a read
 * from the wrong offsets. (SYNC on DISPLAY and COMP-3 items has no effect.)
 */
function checkSynchronized(item: Item, field: string, length: number, offset: number, file: string): void {
  const slack = (length - (offset % length)) % length
  if (slack === 0) return
  const name = item.name
  throw new SpecError(
    {file, line: item.line},
    `${name} PIC ${item.picture} (field ${field}) is binary with SYNC at byte ${offset} of the record: COBOL aligns it on a ${length}-byte boundary with ${slack} slack byte${slack === 1 ? '' : 's'} before it, which this reader does not insert`,
    {
      hint: `write the slack bytes as FILLER: ${slack} byte${slack === 1 ? '' : 's'} before ${name} (05 FILLER PIC X(${slack}).; inside an OCCURS group, at the end of each occurrence), checked against the data map of the compiler listing; or drop SYNC if the file was written without it`,
    },
  )
}

interface Layout {
  kind: FieldKind
  length: number
  digits: number
  scale: number
  signed: boolean
}

/** Expands `X(3)9(2)` to `XXX99`. */
function expandPicture(p: string): string {
  return p.toUpperCase().replace(/(.)\((\d+)\)/g, (_m, c: string, n: string) => c.repeat(Number(n)))
}

function pictureLayout(item: Item, file: string): Layout {
  const pic = item.picture!
  const fail = (message: string, hint: string): never => {
    throw new SpecError({file, line: item.line}, `${item.name} PIC ${pic}: ${message}`, {hint})
  }
  const x = expandPicture(pic)
  if (/^[XA]+$/.test(x)) {
    if (item.usage !== 'display') fail(`${item.usage.toUpperCase()} needs a numeric picture`, 'use PIC 9 / S9 with COMP or COMP-3')
    return {kind: 'text', length: x.length, digits: 0, scale: 0, signed: false}
  }
  const m = /^(S?)(9*)(?:V(9*))?$/.exec(x)
  if (!m) {
    if (x.includes('P')) fail('the scaling position P is not supported', 'describe the digits with 9 and V')
    if (/^[9XAZB0/,.+\-*$CRDB]+$/.test(x) && item.usage === 'display') {
      // An edited picture: printed text such as "  1,234.56-".
      return {kind: 'text', length: x.length, digits: 0, scale: 0, signed: false}
    }
    fail('unrecognised picture', 'use X(n), 9(n), S9(n)V9(m), or an edited picture for text')
  }
  const signed = m![1] === 'S'
  const intDigits = m![2]!.length
  const scale = (m![3] ?? '').length
  const digits = intDigits + scale
  if (digits === 0) fail('no digits', 'write e.g. 9(5)')
  if (digits > 38) fail(`${digits} digits`, 'at most 38 digits are supported')
  switch (item.usage) {
    case 'comp-3':
      return {kind: 'packed', length: Math.floor(digits / 2) + 1, digits, scale, signed}
    case 'binary':
      if (digits > 18) fail('binary items hold at most 18 digits', 'use COMP-3 for longer numbers')
      return {kind: 'binary', length: digits <= 4 ? 2 : digits <= 9 ? 4 : 8, digits, scale, signed}
    default: {
      if (item.signSeparate && !signed) fail('SIGN SEPARATE needs S in the picture', 'write PIC S9(n)')
      return {kind: 'zoned', length: digits + (item.signSeparate ? 1 : 0), digits, scale, signed}
    }
  }
}

// ---------------------------------------------------------------------------------------
// Exact decimal strings

/** `digits` (no sign, may have leading zeros) and `scale` -> "-123.45" */
export function formatDecimal(digits: string, scale: number, negative: boolean): string {
  if (digits.length <= scale) digits = digits.padStart(scale + 1, '0')
  const intEnd = digits.length - scale
  let i = 0
  while (i < intEnd - 1 && digits.charCodeAt(i) === 48) i++
  const int = digits.slice(i, intEnd)
  const frac = scale > 0 ? digits.slice(intEnd) : ''
  let zero = int === '0'
  for (let k = 0; zero && k < frac.length; k++) if (frac.charCodeAt(k) !== 48) zero = false
  return (negative && !zero ? '-' : '') + int + (scale > 0 ? '.' + frac : '')
}

/** "-123.4" with scale 2 -> {negative: true, digits: "12340"}; RangeError when it does not fit. */
function splitDecimal(value: string, digits: number, scale: number, signed: boolean): {negative: boolean; digits: string} {
  const m = /^([+-]?)(\d*)(?:\.(\d*))?$/.exec(value.trim())
  if (!m || (m[2] === '' && (m[3] ?? '') === '')) throw new RangeError(`"${value}" is not a decimal`)
  const negative = m[1] === '-' && /[1-9]/.test((m[2] ?? '') + (m[3] ?? ''))
  if (negative && !signed) throw new RangeError(`"${value}" is negative but the field is unsigned`)
  const frac = (m[3] ?? '').replace(/0+$/, '')
  if (frac.length > scale) throw new RangeError(`"${value}" has more than ${scale} decimals`)
  const int = (m[2] ?? '').replace(/^0+/, '')
  if (int.length > digits - scale) throw new RangeError(`"${value}" has more than ${digits - scale} integer digits`)
  return {negative, digits: int.padStart(digits - scale, '0') + frac.padEnd(scale, '0')}
}

function decodeError(message: string, byteOffset: number): RecordError {
  return new RecordError('DECODE_ERROR', message, {details: {byteOffset}})
}

// ---------------------------------------------------------------------------------------
// COMP-3 (packed decimal): two BCD digits per byte, the sign in the last nibble.
//
//   +1234.56 as S9(5)V99 COMP-3 (7 digits, 4 bytes):  01 23 45 6C
//   -1234.56                                          01 23 45 6D
//   unsigned 9(4) COMP-3 (3 bytes), 1234:              00 12 34 F... -> 01 23 4F

/**
 * Decodes packed decimal from `buf` (or its `length` bytes at `start`). A bad nibble throws
 * DECODE_ERROR with its byte offset (from `start`). Given the field's PIC (`pic`), a value the
 * PIC cannot hold is a DECODE_ERROR too, never a silent change: a negative sign (B, D) in an
 * unsigned field, and a pad nibble other than 0 before an even number of digits (PIC 9(4) in 3
 * bytes: 0d dd dd s, the leading d a fifth digit).
 */
export function decodePacked(buf: Uint8Array, scale: number, start = 0, length = buf.length - start, pic: {digits?: number; signed?: boolean} = {}): string {
  const last = start + length - 1
  if (pic.digits !== undefined && pic.digits < length * 2 - 1 && buf[start]! >> 4 !== 0) {
    throw decodeError(`packed-decimal pad nibble ${(buf[start]! >> 4).toString(16).toUpperCase()} at offset 0 is not 0: more digits than the PIC's ${pic.digits}`, 0)
  }
  // Up to 15 digits (8 bytes) fit a double exactly: one number, one string at the end.
  const small = length <= 8
  let v = 0
  let digits = ''
  for (let i = start; i < last; i++) {
    const b = buf[i]!
    const hi = b >> 4
    const lo = b & 0x0f
    if (hi > 9 || lo > 9) throw decodeError(`bad packed-decimal byte 0x${hex(b)} at offset ${i - start}`, i - start)
    if (small) v = v * 100 + hi * 10 + lo
    else digits += String.fromCharCode(48 + hi, 48 + lo)
  }
  const b = buf[last]!
  const hi = b >> 4
  const sign = b & 0x0f
  if (hi > 9) throw decodeError(`bad packed-decimal byte 0x${hex(b)} at offset ${last - start}`, last - start)
  if (sign < 0x0a) throw decodeError(`bad packed-decimal sign nibble ${sign.toString(16).toUpperCase()} at offset ${last - start}`, last - start)
  if (pic.signed === false && (sign === 0x0d || sign === 0x0b)) {
    throw decodeError(`negative packed-decimal sign nibble ${sign.toString(16).toUpperCase()} at offset ${last - start} in an unsigned field (PIC without S)`, last - start)
  }
  if (small) digits = String(v * 10 + hi)
  else digits += String.fromCharCode(48 + hi)
  return formatDecimal(digits, scale, sign === 0x0d || sign === 0x0b)
}

/** Encodes a decimal string as packed decimal of `digits` digits (C/D sign; F when unsigned). */
export function encodePacked(value: string, digits: number, scale: number, signed = true): Buffer {
  const d = splitDecimal(value, digits, scale, signed)
  const len = Math.floor(digits / 2) + 1
  const nibbles = d.digits.padStart(len * 2 - 1, '0')
  const out = Buffer.alloc(len)
  for (let i = 0; i < len; i++) {
    const hi = nibbles.charCodeAt(i * 2) - 48
    const lo = i === len - 1 ? (signed ? (d.negative ? 0x0d : 0x0c) : 0x0f) : nibbles.charCodeAt(i * 2 + 1) - 48
    out[i] = (hi << 4) | lo
  }
  return out
}

// ---------------------------------------------------------------------------------------
// Zoned decimal (DISPLAY): one digit per byte, the sign overpunched on the last byte.
//
//   EBCDIC:  digits F0-F9; last byte C0-C9 = +0..9, D0-D9 = -0..9, F0-F9 = unsigned
//            +1234.56 as S9(5)V99: F0 F1 F2 F3 F4 F5 C6;  -1234.56: ... F5 D6
//   ASCII:   digits 30-39; last byte '{' A-I = +0..9, '}' J-R = -0..9 (also p-y = -0..9)

export type ZonedCharset = 'ebcdic' | 'ascii'

const ASCII_POS = '{ABCDEFGHI'
const ASCII_NEG = '}JKLMNOPQR'

export interface ZonedOptions {
  charset: ZonedCharset
  signed?: boolean
  /** the sign is overpunched on the first byte instead of the last */
  leading?: boolean
  /** a separate sign byte ('+' / '-') before or after the digits */
  separate?: 'leading' | 'trailing'
}

/**
 * Decodes zoned decimal from `buf` (or its `length` bytes at `start`). A byte that is not a
 * digit throws DECODE_ERROR with its offset (from `start`).
 */
export function decodeZoned(buf: Uint8Array, scale: number, options: ZonedOptions, start = 0, length = buf.length - start): string {
  const ebcdic = options.charset === 'ebcdic'
  let negative = false
  let from = start
  let end = start + length
  if (options.separate) {
    const at = options.separate === 'leading' ? from : end - 1
    const s = buf[at]!
    const plus = ebcdic ? 0x4e : 0x2b
    const minus = ebcdic ? 0x60 : 0x2d
    if (s === minus) negative = true
    else if (s !== plus) throw decodeError(`bad sign byte 0x${hex(s)} at offset ${at - start}`, at - start)
    if (options.separate === 'leading') from++
    else end--
  }
  const signAt = options.separate ? -1 : options.leading ? from : end - 1
  const small = end - from <= 15 // fits a double exactly
  let v = 0
  let digits = ''
  for (let i = from; i < end; i++) {
    const b = buf[i]!
    let d: number
    if (ebcdic) {
      const zone = b >> 4
      d = b & 0x0f
      if (d > 9) throw decodeError(`bad zoned-decimal byte 0x${hex(b)} at offset ${i - start}`, i - start)
      if (zone === 0x0f) {
        // unsigned digit
      } else if (i === signAt && (zone === 0x0c || zone === 0x0a || zone === 0x0e)) {
        // positive overpunch
      } else if (i === signAt && (zone === 0x0d || zone === 0x0b)) {
        if (options.signed === false) throw decodeError(`negative zoned-decimal sign 0x${hex(b)} at offset ${i - start} in an unsigned field (PIC without S)`, i - start)
        negative = true
      } else {
        throw decodeError(`bad zoned-decimal byte 0x${hex(b)} at offset ${i - start}`, i - start)
      }
    } else if (b >= 0x30 && b <= 0x39) {
      d = b - 0x30
    } else if (i === signAt && ASCII_POS.includes(String.fromCharCode(b))) {
      d = ASCII_POS.indexOf(String.fromCharCode(b))
    } else if (i === signAt && (ASCII_NEG.includes(String.fromCharCode(b)) || (b >= 0x70 && b <= 0x79))) {
      if (options.signed === false) throw decodeError(`negative zoned-decimal sign '${String.fromCharCode(b)}' at offset ${i - start} in an unsigned field (PIC without S)`, i - start)
      d = b >= 0x70 && b <= 0x79 ? b - 0x70 : ASCII_NEG.indexOf(String.fromCharCode(b))
      negative = true
    } else {
      throw decodeError(`bad zoned-decimal byte 0x${hex(b)} at offset ${i - start}`, i - start)
    }
    if (small) v = v * 10 + d
    else digits += String.fromCharCode(48 + d)
  }
  return formatDecimal(small ? String(v) : digits, scale, negative)
}

/** Encodes a decimal string as zoned decimal of `digits` digits. */
export function encodeZoned(value: string, digits: number, scale: number, options: ZonedOptions): Buffer {
  const signed = options.signed ?? true
  const d = splitDecimal(value, digits, scale, signed)
  const ebcdic = options.charset === 'ebcdic'
  const body = Buffer.alloc(digits)
  for (let i = 0; i < digits; i++) body[i] = (ebcdic ? 0xf0 : 0x30) + (d.digits.charCodeAt(i) - 48)
  if (options.separate) {
    const sign = Buffer.from([d.negative ? (ebcdic ? 0x60 : 0x2d) : ebcdic ? 0x4e : 0x2b])
    return options.separate === 'leading' ? Buffer.concat([sign, body]) : Buffer.concat([body, sign])
  }
  if (signed) {
    const at = options.leading ? 0 : digits - 1
    const digit = d.digits.charCodeAt(at) - 48
    if (ebcdic) body[at] = ((d.negative ? 0xd0 : 0xc0) | digit) & 0xff
    else body[at] = (d.negative ? ASCII_NEG : ASCII_POS).charCodeAt(digit)
  }
  return body
}

// ---------------------------------------------------------------------------------------
// Binary (COMP, COMP-4, COMP-5, BINARY): big-endian, two's complement when signed.
//
//   +1234 as S9(4) COMP (2 bytes):  04 D2        -2: FF FE
//   123.45 as S9(7)V99 COMP (4 bytes, the integer 12345):  00 00 30 39
//   COMP, COMP-4 and BINARY hold the PIC's digits (TRUNC(STD)): 40 40 (16448) in S9(4) COMP is
//   no value of the field (EBCDIC spaces: an uninitialised field); COMP-5 holds any value.

/**
 * Decodes big-endian binary from `buf` (or its `length` bytes at `start`). Given the field's
 * PIC digits (`pic.digits`), a value with more digits than the PIC's is a DECODE_ERROR, unless
 * the field is COMP-5 (`pic.native`): COMP, COMP-4 and BINARY fields never hold one, so such
 * bytes are not what the copybook says (spaces, another layout, a TRUNC(BIN) program).
 */
export function decodeBinary(buf: Uint8Array, scale: number, signed: boolean, start = 0, length = buf.length - start, pic: {digits?: number; native?: boolean} = {}): string {
  const limit = pic.digits !== undefined && !pic.native ? pic.digits : undefined
  if (length <= 4) {
    // Fits a double exactly: no BigInt on the common 2- and 4-byte fields.
    let v = 0
    for (let i = start; i < start + length; i++) v = v * 256 + buf[i]!
    if (signed && length > 0 && buf[start]! & 0x80) v -= 2 ** (length * 8)
    const abs = String(Math.abs(v))
    if (limit !== undefined && abs.length > limit) throw tooManyBinaryDigits(abs.length, limit, buf, start, length)
    return formatDecimal(abs, scale, v < 0)
  }
  let v = 0n
  for (let i = start; i < start + length; i++) v = (v << 8n) | BigInt(buf[i]!)
  if (signed && length > 0 && buf[start]! & 0x80) v -= 1n << BigInt(length * 8)
  const negative = v < 0n
  const abs = (negative ? -v : v).toString()
  if (limit !== undefined && abs.length > limit) throw tooManyBinaryDigits(abs.length, limit, buf, start, length)
  return formatDecimal(abs, scale, negative)
}

/** The DECODE_ERROR of a COMP / COMP-4 / BINARY value with more digits than its PIC. */
function tooManyBinaryDigits(digits: number, limit: number, buf: Uint8Array, start: number, length: number): RecordError {
  let spaces = ''
  const first = buf[start]
  if (first === 0x40 || first === 0x20) {
    let all = true
    for (let i = start + 1; i < start + length && all; i++) all = buf[i] === first
    if (all) spaces = ` (${first === 0x40 ? 'EBCDIC' : 'ASCII'} spaces: an uninitialised field?)`
  }
  return decodeError(
    `binary value has ${digits} digits, more than the PIC's ${limit}${spaces}: a COMP, COMP-4 or BINARY field holds at most its PIC's digits; declare it COMP-5 if the program writes full binary values (TRUNC(BIN))`,
    0,
  )
}

export function encodeBinary(value: string, digits: number, scale: number, signed: boolean): Buffer {
  const d = splitDecimal(value, digits, scale, signed)
  const len = digits <= 4 ? 2 : digits <= 9 ? 4 : 8
  let v = BigInt(d.digits) * (d.negative ? -1n : 1n)
  if (v < 0n) v += 1n << BigInt(len * 8)
  const out = Buffer.alloc(len)
  for (let i = len - 1; i >= 0; i--) {
    out[i] = Number(v & 0xffn)
    v >>= 8n
  }
  return out
}

function hex(b: number): string {
  return b.toString(16).toUpperCase().padStart(2, '0')
}
