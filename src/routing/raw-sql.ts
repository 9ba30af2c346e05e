import {
  type Classification,
  type ClassificationReason,
  type ClassifyOptions,
  READ,
} from './classification.js'
import { SESSION_READING_FUNCTIONS } from './primary-functions.js'
import type { StatementEffect } from './statement-effect.js'
import { type TransactionControl, Verdict } from './verdict.js'

/*
 * A single-pass classifier for raw SQL text. A scanner walks the text by char codes and yields one
 * token at a time (no token arrays, no regexes); the statement logic pulls tokens and only slices
 * out the few words it must compare as strings (a statement's first keyword, a name before `(`).
 *
 * "When unsure, it is a write": anything not recognised as a read goes to the primary.
 */

const UNCLASSIFIED: Classification = Object.freeze({
  read: false,
  reason: 'unclassified',
  effect: 'unknown',
  pinsSession: true,
  readsSession: true,
})

// Token kinds.
const T_END = 0
const T_WORD = 1 // keyword, identifier, number, `$1`
const T_QUOTED = 2 // quoted identifier: `x` (mysql), "x" (postgres; a string or identifier on mysql)
const T_STRING = 3 // '...', E'...', $tag$...$tag$
const T_PUNCT = 4 // one character (`tokChar`), or `:=` on mysql

// Character codes.
const LPAREN = 40
const RPAREN = 41
const DOT = 46
const SEMI = 59
const AT = 64
const COLON_EQ = 0x10000

// Character classes (ASCII; every code unit >= 128 is an identifier character). The classes
// from C_IDENT up continue a word.
const C_SPACE = 0
const C_OTHER = 1 // one-character punctuation
const C_SPECIAL = 2 // may start a comment, a quoted token or `:=`: - # / * ' " ` :
const C_IDENT = 3
const C_DIGIT = 4
const C_DOLLAR = 5
const CHAR_CLASS = new Uint8Array(128)
for (let c = 0; c < 128; c++) {
  CHAR_CLASS[c] =
    c <= 32
      ? C_SPACE
      : (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === 95
        ? C_IDENT
        : c >= 48 && c <= 57
          ? C_DIGIT
          : c === 36
            ? C_DOLLAR
            : c === 45 ||
                c === 35 ||
                c === 47 ||
                c === 42 ||
                c === 39 ||
                c === 34 ||
                c === 96 ||
                c === 58
              ? C_SPECIAL
              : C_OTHER
}

// What the previous tokens of a body were: a keyword id, a plain word, a quoted token or
// `PUNCT + char code`.
const K_WORD = 1
const K_QUOTED = 2
const K_FOR = 10
const K_UPDATE = 11
const K_SHARE = 12
const K_NO = 13 // FOR NO KEY UPDATE
const K_KEY = 14
const K_LOCK = 15
const K_IN = 16
const K_INTO = 17
const K_INSERT = 18
const K_DELETE = 19
const K_REPLACE = 20
const K_MERGE = 21
const K_VALUE = 22
const K_NEXT = 23
const K_PREVIOUS = 24
const K_OUTFILE = 25
const K_DUMPFILE = 26
const K_TEMP = 27
const K_CALC_FOUND_ROWS = 29
const K_BEGIN = 30
const K_TO = 31
const K_FROM = 32
const K_STDOUT = 33
const PUNCT = 1000

/**
 * Bit `n` of entry `c`: a keyword the body rules look for starts with character `c` (either case)
 * and has length `n`. A word outside these shapes needs no comparison at all. Frequent words that
 * matter only to some statements (FROM, TO, STDOUT for COPY; BEGIN for CREATE) have their own sets.
 */
function keywordShapes(keywords: readonly string[]): Uint32Array {
  const shapes = new Uint32Array(128)
  for (const kw of keywords) {
    const c = kw.charCodeAt(0)
    shapes[c] = shapes[c - 32] = shapes[c]! | (1 << kw.length)
  }
  return shapes
}

const READ_KEYWORDS = [
  'delete',
  'dumpfile',
  'for',
  'in',
  'into',
  'insert',
  'key',
  'lock',
  'merge',
  'no',
  'next',
  'outfile',
  'previous',
  'replace',
  'share',
  'sql_calc_found_rows',
  'temp',
  'temporary',
  'update',
  'value',
]
/** Keywords that count in every body: MariaDB's `NEXT VALUE FOR s` / `PREVIOUS VALUE FOR s`. */
const SEQUENCE_KEYWORDS = ['next', 'previous', 'value', 'for']
const READ_SHAPES = keywordShapes(READ_KEYWORDS)
const COPY_SHAPES = keywordShapes([...READ_KEYWORDS, 'from', 'to', 'stdout'])
const CREATE_SHAPES = keywordShapes(['begin', ...SEQUENCE_KEYWORDS])
const WRITE_SHAPES = keywordShapes(SEQUENCE_KEYWORDS)

/**
 * Words that can mean something to the classifier, alone or next to the text around them: every
 * keyword of the body rules, and the words COPY and CREATE look for. A raw fragment made only of
 * other words (`desc`, `btree`, `true`) cannot change how its statement is classified.
 */
const ATTENTION_WORDS: ReadonlySet<string> = new Set([
  ...READ_KEYWORDS,
  ...SEQUENCE_KEYWORDS,
  'from',
  'to',
  'stdout',
  'begin',
  'identity',
  'last_insert_id',
])

/** Name and effect of each data-modifying keyword. */
const DML: Readonly<Record<number, readonly [string, StatementEffect]>> = {
  [K_INSERT]: ['insert', 'insert'],
  [K_DELETE]: ['delete', 'delete'],
  [K_REPLACE]: ['replace', 'insert'],
  [K_MERGE]: ['merge', 'merge'],
  [K_UPDATE]: ['update', 'update'],
}

/**
 * MySQL/MariaDB system variables that hold the session's own state, read bare (`@@warning_count`)
 * or as `@@session.x`. (Any `@@session.x` / `@@local.x` reads the session; `@@global.x` does not.)
 */
const SESSION_VARIABLES: ReadonlySet<string> = new Set([
  'warning_count',
  'error_count',
  'last_gtid',
  'insert_id',
  'in_transaction',
])

// Body modes: which signals count.
const M_READ = 0 // every signal can send the statement to the primary
const M_WRITE = 1 // the statement already goes to the primary; only session-pinning signals count
const M_IGNORE = 2 // tokenise only (the statement is not executed, or is already unclassified)

// Body kinds: statement-specific rules.
const B_PLAIN = 0
const B_COPY = 1 // postgres COPY: TO STDOUT is a read, FROM / TO file is a write
const B_CREATE = 2 // CREATE ... BEGIN: a routine body; `;` no longer separates statements

/** How deeply EXPLAIN ANALYZE / ANALYZE may nest before the text is left unclassified. */
const MAX_NESTING = 4

/**
 * A cheap pre-filter over the function names that matter (the primary-only set and
 * `SESSION_READING_FUNCTIONS`), so most calls (`count(`) need no string.
 */
interface FunctionIndex {
  readonly maxLength: number
  /** Bit n set when some name has length n (n < 32). */
  readonly lengths: number
  /** Bit `firstBit(c)` set when some name starts with character c. */
  readonly firsts: number
}

/** 1-26 for the letters (either case), 0 for anything else. */
function firstBit(c: number): number {
  const lower = c | 0x20
  return c < 128 && lower >= 97 && lower <= 122 ? lower - 96 : 0
}

let cachedSet: ReadonlySet<string> | undefined
let cachedSize = -1
let cachedIndex: FunctionIndex = { maxLength: 0, lengths: 0, firsts: 0 }

function functionIndex(set: ReadonlySet<string>): FunctionIndex {
  if (set === cachedSet && set.size === cachedSize) return cachedIndex
  let maxLength = 0
  let lengths = 0
  let firsts = 0
  for (const names of [set, SESSION_READING_FUNCTIONS]) {
    for (const name of names) {
      if (name.length > maxLength) maxLength = name.length
      if (name.length < 32) lengths |= 1 << name.length
      firsts |= 1 << firstBit(name.charCodeAt(0))
    }
  }
  cachedSet = set
  cachedSize = set.size
  cachedIndex = { maxLength, lengths, firsts }
  return cachedIndex
}

/** The tokenizer and the statement rules; the signals found accumulate in `verdict`. */
class RawSqlScanner {
  private readonly sql: string
  private readonly len: number
  private readonly mysql: boolean
  /** Read strings the other way round: postgres with backslash escapes, mysql without. */
  private readonly alt: boolean
  private readonly options: ClassifyOptions
  private fnIndex: FunctionIndex | undefined = undefined

  private pos = 0
  /** Index of the next backslash at or after the last position asked for (`len` when none). */
  private nextBackslash = -1
  /** Index of the next line feed and carriage return, likewise. */
  private nextNl = -1
  private nextCr = -1
  private tok = T_END
  private tokStart = 0
  private tokEnd = 0
  private tokChar = 0
  /** Inside a MySQL executable comment `/*! ... *\/`. */
  private execComment = false
  /** Inside a routine body: `;` does not end the statement. */
  private swallow = false
  private nesting = 0

  /** The text could not be tokenised. */
  failed = false
  /** A string held a backslash before a quote: its end depends on the server's escaping mode. */
  ambiguous = false
  statements = 0
  /** What the text holds, created at the first signal (most statements are plain reads). */
  verdict: Verdict | undefined = undefined

  constructor(sql: string, options: ClassifyOptions, alt: boolean) {
    this.sql = sql
    this.len = sql.length
    this.mysql = options.flavor === 'mysql'
    this.options = options
    this.alt = alt
  }

  /** Whole statements, separated by `;`. */
  runStatements(): void {
    this.next()
    this.statementList()
  }

  /** A fragment of a builder query; anything after a `;` is read as whole statements. */
  runFragment(): void {
    this.next()
    this.body(M_READ, B_PLAIN)
    this.statementList()
  }

  private statementList(): void {
    for (;;) {
      if (this.tok === T_END) return
      if (this.punct(SEMI)) {
        this.next()
        continue
      }
      this.statements++
      this.statement()
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Tokenizer

  private fail(): void {
    this.failed = true
    this.tok = T_END
    this.pos = this.tokStart = this.tokEnd = this.len
  }

  /** Advances to the next token. Plain words and punctuation are read here, the rest below. */
  private next(): void {
    const sql = this.sql
    const len = this.len
    let pos = this.pos
    let c = 0
    while (pos < len && (c = sql.charCodeAt(pos)) <= 32) pos++
    if (pos < len && c < 128) {
      const cls = CHAR_CLASS[c]!
      if (cls === C_IDENT || cls === C_DIGIT) {
        if ((c !== 101 && c !== 69) /* e E */ || this.mysql || sql.charCodeAt(pos + 1) !== 39) {
          this.tokStart = pos
          while (++pos < len) {
            const d = sql.charCodeAt(pos)
            if (d < 128 && CHAR_CLASS[d]! < C_IDENT) break
          }
          this.tok = T_WORD
          this.pos = this.tokEnd = pos
          return
        }
      } else if (cls === C_OTHER) {
        this.tokStart = pos
        this.tok = T_PUNCT
        this.tokChar = c
        this.pos = this.tokEnd = pos + 1
        return
      }
    }
    this.nextSlow(pos)
  }

  /** Comments, quoted tokens, `$`, `:=`, `-`, `/`, `*`, non-ASCII words and the end. */
  private nextSlow(pos: number): void {
    const sql = this.sql
    const len = this.len
    let c = 0
    for (;;) {
      if (pos >= len) {
        if (this.execComment) {
          this.fail()
          return
        }
        this.tok = T_END
        this.pos = this.tokStart = this.tokEnd = len
        return
      }
      c = sql.charCodeAt(pos)
      if (c <= 32) {
        pos++
      } else if (c === 45 /* - */) {
        if (
          sql.charCodeAt(pos + 1) !== 45 ||
          (this.mysql && pos + 2 < len && sql.charCodeAt(pos + 2) > 32)
        ) {
          break
        }
        pos = this.lineEnd(pos + 2)
      } else if (c === 35 /* # */ && this.mysql) {
        pos = this.lineEnd(pos + 1)
      } else if (c === 47 /* / */ && sql.charCodeAt(pos + 1) === 42 /* * */) {
        pos = this.blockComment(pos)
        if (pos < 0) {
          this.fail()
          return
        }
      } else if (c === 42 && this.execComment && sql.charCodeAt(pos + 1) === 47) {
        this.execComment = false
        pos += 2
      } else {
        break
      }
    }
    this.tokStart = pos
    const cls = c < 128 ? CHAR_CLASS[c]! : C_IDENT
    if (cls === C_IDENT || cls === C_DIGIT || (cls === C_DOLLAR && this.mysql)) {
      if ((c === 101 || c === 69) /* e E */ && !this.mysql && sql.charCodeAt(pos + 1) === 39) {
        this.quoted(pos + 1, 39, true, false, T_STRING)
        return
      }
      while (++pos < len) {
        const d = sql.charCodeAt(pos)
        if (d < 128 && CHAR_CLASS[d]! < C_IDENT) break
      }
      this.tok = T_WORD
      this.pos = this.tokEnd = pos
      return
    }
    switch (c) {
      case 39 /* ' */:
        this.quoted(pos, 39, this.mysql !== this.alt, true, T_STRING)
        return
      case 34 /* " */:
        if (this.mysql) this.quoted(pos, 34, !this.alt, true, T_QUOTED)
        else this.quoted(pos, 34, false, false, T_QUOTED)
        return
      case 96 /* ` */:
        if (this.mysql) {
          this.quoted(pos, 96, false, false, T_QUOTED)
          return
        }
        break
      case 36 /* $ (postgres) */:
        this.dollar(pos)
        return
      case 58 /* : */:
        if (this.mysql && sql.charCodeAt(pos + 1) === 61) {
          this.tok = T_PUNCT
          this.tokChar = COLON_EQ
          this.pos = this.tokEnd = pos + 2
          return
        }
        break
    }
    this.tok = T_PUNCT
    this.tokChar = c
    this.pos = this.tokEnd = pos + 1
  }

  /** The end of a line comment starting at `pos`: the newline's index, or the text's end. */
  private lineEnd(pos: number): number {
    if (this.nextNl < pos) {
      const nl = this.sql.indexOf('\n', pos)
      this.nextNl = nl < 0 ? this.len : nl
    }
    if (this.mysql) return this.nextNl // a MySQL comment runs to \n; a postgres one to \n or \r
    if (this.nextCr < pos) {
      const cr = this.sql.indexOf('\r', pos)
      this.nextCr = cr < 0 ? this.len : cr
    }
    return Math.min(this.nextCr, this.nextNl)
  }

  private backslashFrom(pos: number): number {
    if (this.nextBackslash < pos) {
      const i = this.sql.indexOf('\\', pos)
      this.nextBackslash = i < 0 ? this.len : i
    }
    return this.nextBackslash
  }

  /** Skips a block comment at `pos` (`/*`); returns the position after it, or -1 when unterminated. */
  private blockComment(pos: number): number {
    const sql = this.sql
    if (this.mysql) {
      let p = pos + 2
      const c = sql.charCodeAt(p)
      // `/*! ... */` and MariaDB's `/*M! ... */` execute: their content is SQL.
      if (c === 33 || (c === 77 && sql.charCodeAt(p + 1) === 33)) {
        p += c === 33 ? 1 : 2
        while (p < this.len && CHAR_CLASS[sql.charCodeAt(p)] === C_DIGIT) p++ // version
        this.execComment = true
        return p
      }
      const end = sql.indexOf('*/', pos + 2)
      return end < 0 ? -1 : end + 2
    }
    // Postgres block comments nest.
    // Each search resumes where the last one stopped, so the comment is scanned once.
    let depth = 1
    let p = pos + 2
    let open = sql.indexOf('/*', p)
    let close = sql.indexOf('*/', p)
    for (;;) {
      if (close < 0) return -1
      if (open >= 0 && open < close) {
        depth++
        p = open + 2
        open = sql.indexOf('/*', p)
        if (close < p) close = sql.indexOf('*/', p) // `/*/` does not close
      } else {
        p = close + 2
        if (--depth === 0) return p
        close = sql.indexOf('*/', p)
        if (open >= 0 && open < p) open = sql.indexOf('/*', p) // `*/*` does not open
      }
    }
  }

  /**
   * A quoted token whose opening quote is at `open`. `backslash`: a backslash escapes the next
   * character. `modal`: the escaping depends on the server's mode, so a backslash before the quote
   * makes the text ambiguous.
   */
  private quoted(open: number, quote: number, backslash: boolean, modal: boolean, kind: number) {
    const sql = this.sql
    const quoteText = quote === 39 ? "'" : quote === 34 ? '"' : '`'
    const escapes = backslash || modal
    // Searches resume where they stopped (no rescans): next quote `q`, next backslash.
    let p = open + 1
    let q = sql.indexOf(quoteText, p)
    for (;;) {
      if (q < 0) {
        this.fail()
        return
      }
      if (escapes) {
        const b = this.backslashFrom(p)
        if (b < q) {
          if (modal && sql.charCodeAt(b + 1) === quote) this.ambiguous = true
          p = backslash ? b + 2 : b + 1
          if (q < p) q = sql.indexOf(quoteText, p)
          continue
        }
      }
      if (sql.charCodeAt(q + 1) !== quote) {
        this.tok = kind
        this.pos = this.tokEnd = q + 1
        return
      }
      p = q + 2
      q = sql.indexOf(quoteText, p)
    }
  }

  /** Postgres `$`: a dollar-quoted string, a `$1` parameter or an operator character. */
  private dollar(pos: number): void {
    const sql = this.sql
    const len = this.len
    let p = pos + 1
    let c = sql.charCodeAt(p)
    if (c !== 36) {
      const cls = c < 128 ? CHAR_CLASS[c] : C_IDENT
      if (cls === C_DIGIT) {
        while (p < len && CHAR_CLASS[sql.charCodeAt(p)] === C_DIGIT) p++
        this.tok = T_WORD
        this.pos = this.tokEnd = p
        return
      }
      if (cls === C_IDENT) {
        while (p < len) {
          c = sql.charCodeAt(p)
          if (c < 128 && CHAR_CLASS[c] !== C_IDENT && CHAR_CLASS[c] !== C_DIGIT) break
          p++
        }
      }
      if (cls !== C_IDENT || c !== 36) {
        this.tok = T_PUNCT
        this.tokChar = 36
        this.pos = this.tokEnd = pos + 1
        return
      }
    }
    const tag = sql.slice(pos, p + 1)
    const end = sql.indexOf(tag, p + 1)
    if (end < 0) {
      this.fail()
      return
    }
    this.tok = T_STRING
    this.pos = this.tokEnd = end + tag.length
  }

  // ---------------------------------------------------------------------------------------------
  // Word helpers

  /** The current word matches lower-case `kw` (ASCII case-insensitive). */
  private is(kw: string): boolean {
    return this.tok === T_WORD && this.tokEnd - this.tokStart === kw.length && this.m(kw)
  }

  /** The current token's text from its start matches lower-case `kw` (length checked by caller). */
  private m(kw: string): boolean {
    const sql = this.sql
    const s = this.tokStart
    for (let i = 0; i < kw.length; i++) {
      let c = sql.charCodeAt(s + i)
      if (c >= 65 && c <= 90) c |= 0x20
      if (c !== kw.charCodeAt(i)) return false
    }
    return true
  }

  private punct(ch: number): boolean {
    return this.tok === T_PUNCT && this.tokChar === ch
  }

  private lowerWord(): string {
    return this.sql.slice(this.tokStart, this.tokEnd).toLowerCase()
  }

  private atEnd(): boolean {
    return this.tok === T_END || (this.tok === T_PUNCT && this.tokChar === SEMI && !this.swallow)
  }

  /** The keyword id of the current word for the body rules (among `shapes`), or `K_WORD`. */
  private keyword(shapes: Uint32Array): number {
    const len = this.tokEnd - this.tokStart
    const c = this.sql.charCodeAt(this.tokStart)
    if (c >= 128 || len > 31 || (shapes[c]! & (1 << len)) === 0) return K_WORD
    return this.keywordOf(len)
  }

  private keywordOf(len: number): number {
    switch (this.sql.charCodeAt(this.tokStart) | 0x20) {
      case 98 /* b */:
        return len === 5 && this.m('begin') ? K_BEGIN : K_WORD
      case 100 /* d */:
        if (len === 6) return this.m('delete') ? K_DELETE : K_WORD
        return len === 8 && this.m('dumpfile') ? K_DUMPFILE : K_WORD
      case 102 /* f */:
        if (len === 3) return this.m('for') ? K_FOR : K_WORD
        return len === 4 && this.m('from') ? K_FROM : K_WORD
      case 105 /* i */:
        if (len === 2) return this.m('in') ? K_IN : K_WORD
        if (len === 4) return this.m('into') ? K_INTO : K_WORD
        return len === 6 && this.m('insert') ? K_INSERT : K_WORD
      case 107 /* k */:
        return len === 3 && this.m('key') ? K_KEY : K_WORD
      case 108 /* l */:
        return len === 4 && this.m('lock') ? K_LOCK : K_WORD
      case 109 /* m */:
        return len === 5 && this.m('merge') ? K_MERGE : K_WORD
      case 110 /* n */:
        if (len === 2) return this.m('no') ? K_NO : K_WORD
        return len === 4 && this.m('next') ? K_NEXT : K_WORD
      case 111 /* o */:
        return len === 7 && this.m('outfile') ? K_OUTFILE : K_WORD
      case 112 /* p */:
        return len === 8 && this.m('previous') ? K_PREVIOUS : K_WORD
      case 114 /* r */:
        return len === 7 && this.m('replace') ? K_REPLACE : K_WORD
      case 115 /* s */:
        if (len === 5) return this.m('share') ? K_SHARE : K_WORD
        if (len === 6) return this.m('stdout') ? K_STDOUT : K_WORD
        return len === 19 && this.m('sql_calc_found_rows') ? K_CALC_FOUND_ROWS : K_WORD
      case 116 /* t */:
        if (len === 2) return this.m('to') ? K_TO : K_WORD
        if (len === 4) return this.m('temp') ? K_TEMP : K_WORD
        return len === 9 && this.m('temporary') ? K_TEMP : K_WORD
      case 117 /* u */:
        return len === 6 && this.m('update') ? K_UPDATE : K_WORD
      case 118 /* v */:
        return len === 5 && this.m('value') ? K_VALUE : K_WORD
      default:
        return K_WORD
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Results

  private found(): Verdict {
    if (this.verdict === undefined) this.verdict = new Verdict()
    return this.verdict
  }

  /** Records a reason to run on the primary (see `Verdict.mark`). */
  private mark(
    reason: ClassificationReason,
    detail: string | undefined,
    pins: boolean,
    effect?: StatementEffect,
    tc?: TransactionControl,
  ): void {
    this.found().mark(reason, detail, pins, effect, tc)
  }

  /** `name(` was seen: a primary-only or session-reading function? `quoted` names lose their quotes. */
  private callAt(start: number, end: number, quoted: boolean): void {
    if (quoted) {
      start++
      end--
    }
    const len = end - start
    const index = (this.fnIndex ??= functionIndex(this.options.primaryFunctions))
    if (
      len <= 0 ||
      len > index.maxLength ||
      (len < 32 && (index.lengths & (1 << len)) === 0) ||
      (index.firsts & (1 << firstBit(this.sql.charCodeAt(start)))) === 0
    ) {
      return
    }
    const name = this.sql.slice(start, end).toLowerCase()
    if (this.options.primaryFunctions.has(name) || SESSION_READING_FUNCTIONS.has(name)) {
      this.found().call(name, this.options)
    }
  }

  /**
   * A MySQL `@` at `pos`: a user variable (`@x`, `@'x'`) or a system variable (`@@x`,
   * `@@session.x`) the session reads; `@@identity` and `@@last_insert_id` are `LAST_INSERT_ID()`.
   * Read from the text directly: the name must follow the `@` without a space.
   */
  private at(pos: number): void {
    const sql = this.sql
    const c = sql.charCodeAt(pos + 1)
    if (c !== AT) {
      if ((c < 128 && CHAR_CLASS[c]! >= C_IDENT) || c >= 128 || c === 39 || c === 34 || c === 96) {
        this.found().readsSession = true
      }
      return
    }
    let end = this.wordEnd(pos + 2)
    let name = sql.slice(pos + 2, end).toLowerCase()
    if (sql.charCodeAt(end) === DOT) {
      if (name === 'global') return
      if (name === 'session' || name === 'local') {
        this.found().readsSession = true
        const start = end + 1
        end = this.wordEnd(start)
        name = sql.slice(start, end).toLowerCase()
      }
    }
    if (name === 'identity' || name === 'last_insert_id')
      this.found().call('last_insert_id', this.options)
    else if (SESSION_VARIABLES.has(name)) this.found().readsSession = true
  }

  /** The end of the identifier characters from `pos`. */
  private wordEnd(pos: number): number {
    const sql = this.sql
    while (pos < this.len) {
      const c = sql.charCodeAt(pos)
      if (c < 128 && CHAR_CLASS[c]! < C_IDENT) break
      pos++
    }
    return pos
  }

  // ---------------------------------------------------------------------------------------------
  // Statements

  /** One statement, from its first token up to (not including) `;` or the end. */
  private statement(): void {
    while (this.punct(LPAREN)) this.next()
    if (this.tok !== T_WORD) {
      this.mark('unclassified', undefined, true, 'unknown')
      this.found().readsSession = true
      this.body(M_IGNORE, B_PLAIN)
      return
    }
    if (this.is('select')) {
      this.next()
      this.body(M_READ, B_PLAIN)
      return
    }
    const word = this.lowerWord()
    this.next()
    switch (word) {
      case 'with':
      case 'values':
      case 'table':
        this.body(M_READ, B_PLAIN)
        return
      case 'show':
        this.show()
        return
      case 'explain':
      case 'describe':
      case 'desc':
        this.explain(false)
        return
      case 'analyze':
      case 'analyse':
        this.analyze()
        return
      case 'copy':
        if (this.mysql) break
        this.body(M_READ, B_COPY)
        return
      // Pinning: INSERT / REPLACE / LOAD DATA set LAST_INSERT_ID() and currval(); DO / CALL run
      // arbitrary code; postgres LOAD loads a library into the session.
      case 'insert':
      case 'replace':
        this.write(word, true, 'insert')
        return
      case 'do':
      case 'call':
      case 'load':
        this.write(word, true, 'write')
        return
      case 'update':
      case 'delete':
      case 'merge':
        this.write(word, false, word)
        return
      case 'truncate':
      case 'alter':
      case 'rename':
      case 'grant':
      case 'revoke':
      case 'comment':
      case 'security':
      case 'import':
      case 'reassign':
      case 'install':
      case 'uninstall':
        this.write(word, false, 'ddl')
        return
      case 'notify':
        // Like pg_notify(): primary-only, but no data changes.
        this.write(word, false, 'none')
        return
      case 'flush':
      case 'kill':
      case 'vacuum':
      case 'cluster':
      case 'reindex':
      case 'refresh':
      case 'checkpoint':
      case 'optimize':
      case 'repair':
      case 'check':
      case 'checksum':
      case 'purge':
      case 'change':
      case 'cache':
      case 'binlog':
      case 'shutdown':
      case 'restart':
      case 'clone':
        this.write(word, false, 'write')
        return
      case 'create':
        this.create()
        return
      case 'drop':
        this.drop()
        return
      case 'set':
        if (this.is('transaction')) {
          this.mark('transaction-control', 'set transaction', false)
          this.body(M_WRITE, B_PLAIN)
          return
        }
        this.session(word)
        return
      case 'prepare':
        if (!this.mysql && this.is('transaction')) {
          // Two-phase commit: the transaction is detached from the session.
          this.mark('transaction-control', 'prepare transaction', false, 'none', 'end')
          this.body(M_WRITE, B_PLAIN)
          return
        }
        this.session(word)
        return
      case 'execute':
        // Runs a prepared statement, which may change data.
        this.mark('session-state', word, true, 'write')
        this.body(M_WRITE, B_PLAIN)
        return
      case 'reset':
      case 'discard':
      case 'use':
      case 'deallocate':
      case 'handler':
      case 'listen':
      case 'unlisten':
      case 'declare':
      case 'fetch':
      case 'move':
      case 'open':
      case 'close':
      case 'lock':
      case 'unlock':
        this.session(word)
        return
      case 'begin':
        this.begin('begin', !this.mysql)
        return
      case 'start':
        if (this.is('transaction')) {
          this.next()
          this.begin('start transaction', true)
          return
        }
        this.write(word, false, 'write')
        return
      case 'commit':
      case 'rollback':
        this.end(word)
        return
      case 'end':
      case 'abort':
        if (this.mysql) break
        this.end(word)
        return
      case 'savepoint':
      case 'release':
        this.mark('transaction-control', word, false, 'none', 'savepoint')
        this.body(M_WRITE, B_PLAIN)
        return
      case 'xa':
        if (!this.mysql) break
        this.xa()
        return
    }
    this.mark('unclassified', word, true, 'unknown')
    this.found().readsSession = true
    this.body(M_IGNORE, B_PLAIN)
  }

  private write(word: string, pins: boolean, effect: StatementEffect): void {
    this.mark('write', word, pins, effect)
    this.body(M_WRITE, B_PLAIN)
  }

  private session(word: string): void {
    this.mark('session-state', word, true)
    this.body(M_WRITE, B_PLAIN)
  }

  private show(): void {
    if (this.tok === T_WORD) {
      if (!this.mysql) {
        // `SHOW name`: the session's value of a setting, like current_setting('name').
        this.found().readsSession = true
      } else {
        const what = this.lowerWord()
        switch (what) {
          // Diagnostics of the session's previous statement.
          case 'warnings':
          case 'errors':
          case 'count':
          case 'profile':
          case 'profiles':
            this.mark('session-state', `show ${what}`, false)
            this.found().readsSession = true
            break
          // The binary log position: a replica would answer with its own.
          case 'master':
          case 'binary':
          case 'binlog':
            this.mark('primary-function', `show ${what}`, false)
            break
          // SHOW [SESSION | LOCAL] STATUS | VARIABLES: the session's values (the default scope).
          case 'session':
          case 'local':
          case 'status':
          case 'variables':
            this.found().readsSession = true
            break
        }
      }
    }
    this.body(M_READ, B_PLAIN)
  }

  /**
   * After EXPLAIN / DESCRIBE / DESC: options, then the explained statement (or a table name).
   * Without ANALYZE nothing is executed.
   */
  private explain(analyze: boolean): void {
    for (;;) {
      if (this.atEnd()) return // `EXPLAIN t` / `DESCRIBE t`
      if (this.punct(LPAREN)) {
        this.next()
        if (this.tok === T_WORD) {
          const word = this.lowerWord()
          if (isExplainable(word)) {
            // `EXPLAIN (SELECT ...)`
            this.explained(word, analyze)
            return
          }
        }
        let depth = 1 // postgres options: `EXPLAIN (ANALYZE, BUFFERS) ...`
        while (depth > 0 && !this.atEnd()) {
          if (this.is('analyze') || this.is('analyse')) analyze = true
          else if (this.punct(LPAREN)) depth++
          else if (this.punct(RPAREN)) depth--
          this.next()
        }
        continue
      }
      if (this.tok === T_WORD) {
        if (this.is('analyze') || this.is('analyse')) {
          analyze = true
          this.next()
          continue
        }
        if (this.is('for')) {
          // EXPLAIN FOR CONNECTION n: about a connection of one particular server.
          this.mark('unclassified', 'explain for connection', true, 'unknown')
          this.found().readsSession = true
          this.body(M_IGNORE, B_PLAIN)
          return
        }
        if (this.is('into')) {
          // MySQL `EXPLAIN FORMAT=JSON INTO @var ...` sets a user variable.
          this.mark('write', 'into @var', true)
          this.next()
          continue
        }
        const word = this.lowerWord()
        if (isExplainable(word)) {
          this.explained(word, analyze)
          return
        }
      }
      this.next()
    }
  }

  /** The statement under EXPLAIN; the current token is its first word. */
  private explained(word: string, analyze: boolean): void {
    if (analyze || !isPlannable(word)) {
      // Executed (ANALYZE), or a statement EXPLAIN runs in part (EXECUTE, DECLARE, CREATE ... AS).
      if (++this.nesting > MAX_NESTING) {
        this.mark('unclassified', 'explain', true, 'unknown')
        this.found().readsSession = true
        this.body(M_IGNORE, B_PLAIN)
        return
      }
      this.statement()
      this.nesting--
      return
    }
    this.next()
    if (isReadStart(word)) {
      // A planned read keeps its signals (locks, functions) to stay on the safe side.
      this.body(M_READ, B_PLAIN)
      return
    }
    // A planned data-modifying statement is not executed: nothing changes. PostgreSQL plans it on
    // a hot standby; MariaDB refuses it on a read-only server (`--read-only`), so it goes to the
    // primary there (MySQL is treated alike).
    if (this.mysql) this.mark('write', `explain ${word}`, false)
    this.body(M_IGNORE, B_PLAIN)
  }

  /** ANALYZE: statistics maintenance, or MariaDB's `ANALYZE <statement>` (executes it). */
  private analyze(): void {
    if (this.mysql && this.tok === T_WORD) {
      const word = this.lowerWord()
      if (word === 'format' || (word !== 'table' && isPlannable(word))) {
        this.explain(true)
        return
      }
    }
    this.write('analyze', false, 'write')
  }

  private create(): void {
    // `CREATE [OR REPLACE] [GLOBAL|LOCAL] TEMP[ORARY] TABLE|VIEW|SEQUENCE ...`
    let temp = false
    for (let n = 0; n < 5 && this.tok === T_WORD; n++) {
      if (this.is('temporary') || this.is('temp')) {
        temp = true
        break
      }
      if (this.is('table') || this.is('view') || this.is('sequence') || this.is('begin')) break
      this.next()
    }
    if (temp) this.mark('write', 'create temporary', true, 'create-temporary')
    else this.mark('write', 'create', false, 'ddl')
    this.body(M_WRITE, B_CREATE)
  }

  private drop(): void {
    if (this.is('temporary')) this.mark('write', 'drop temporary', true, 'ddl')
    else if (this.mysql && this.is('prepare')) this.mark('session-state', 'drop prepare', true)
    else this.mark('write', 'drop', false, 'ddl')
    this.body(M_WRITE, B_PLAIN)
  }

  /** BEGIN / START TRANSACTION with its modes; the current token follows the keyword(s). */
  private begin(detail: string, modes: boolean): void {
    if (this.mysql && detail === 'begin' && this.is('not')) {
      // MariaDB `BEGIN NOT ATOMIC ... END`: a compound statement, `;` inside it.
      this.mark('write', 'begin not atomic', true, 'write')
      this.swallow = true
      this.body(M_WRITE, B_PLAIN)
      return
    }
    let readOnly = false
    let readWrite = false
    while (!this.atEnd()) {
      if (modes && this.is('read')) {
        this.next()
        if (this.is('only')) readOnly = true
        else if (this.is('write')) readWrite = true
        continue
      }
      this.next()
    }
    this.mark(
      'transaction-control',
      detail,
      true,
      'none',
      readOnly && !readWrite ? 'begin-read-only' : 'begin',
    )
  }

  /** COMMIT / ROLLBACK / END / ABORT [WORK | TRANSACTION] [TO [SAVEPOINT] x] [AND [NO] CHAIN]. */
  private end(word: string): void {
    let tc: TransactionControl | undefined = 'end'
    let detail = word
    let afterNo = false
    while (!this.atEnd()) {
      if (this.is('to') && tc === 'end' && word === 'rollback') {
        tc = 'savepoint'
        detail = `${detail} to`
      } else if (this.is('chain') && !afterNo && tc === 'end') {
        tc = 'begin' // AND CHAIN opens the next transaction at once
      } else if (this.is('prepared')) {
        tc = undefined // COMMIT PREPARED 'id': two-phase commit, not this session's transaction
        detail = `${detail} prepared`
      }
      afterNo = this.is('no')
      this.next()
    }
    this.mark('transaction-control', detail, tc === 'begin', 'none', tc)
  }

  private xa(): void {
    if (this.is('start') || this.is('begin'))
      this.mark('transaction-control', 'xa start', true, 'none', 'begin')
    else if (this.is('commit') || this.is('rollback'))
      this.mark('transaction-control', 'xa', false, 'none', 'end')
    else this.mark('transaction-control', 'xa', false)
    this.body(M_WRITE, B_PLAIN)
  }

  /**
   * The rest of a statement, up to `;` or the end: looks for lock clauses, primary-only and
   * session-reading functions, INTO, `:=`, `@` variables and data-modifying keywords. `mode` says
   * which count: in `M_READ` all of them; in `M_WRITE` (and, in a read, inside a data-modifying
   * statement found there, up to the parenthesis that closes it) only the calls, `:=`, `@`
   * variables and sequence values: a data-modifying statement holds no second one (`MERGE`'s
   * `THEN UPDATE`, `ON CONFLICT DO UPDATE`), and its locks and INTO are its own business.
   */
  private body(mode: number, kind: number): void {
    if (mode === M_IGNORE) {
      while (!this.atEnd()) this.next()
      return
    }
    const mysql = this.mysql
    const shapes =
      kind === B_COPY
        ? COPY_SHAPES
        : kind === B_CREATE
          ? CREATE_SHAPES
          : mode === M_READ
            ? READ_SHAPES
            : WRITE_SHAPES
    let read = mode === M_READ
    /** Depth of the data-modifying statement found in a read (-1: none); read rules pause in it. */
    let dmlDepth = -1
    let prev1 = 0
    let prev2 = 0
    let prevTok = T_END
    let prevStart = 0
    let prevEnd = 0
    /** A keyword whose meaning depends on the next token: a DML keyword, INTO, or COPY's TO. */
    let pending = 0
    let copyOpen = kind === B_COPY
    let depth = 0
    for (;;) {
      const tok = this.tok
      if (tok === T_END) break
      let code: number
      if (tok === T_PUNCT) {
        const ch = this.tokChar
        if (ch === SEMI && !this.swallow) break
        code = PUNCT + ch
        if (ch === AT && mysql && prev1 !== PUNCT + AT) this.at(this.tokStart)
      } else if (tok === T_WORD) {
        code = this.keyword(shapes)
        // `t.update`, `@for`: a name.
        if (prev1 === PUNCT + DOT || prev1 === PUNCT + AT) code = K_WORD
      } else {
        code = K_QUOTED
      }

      if (pending !== 0) {
        if (this.resolve(pending, code, depth)) {
          read = false
          dmlDepth = depth
        }
        pending = 0
      }
      if (read) {
        if (code >= K_FOR && code < PUNCT)
          switch (code) {
            case K_UPDATE:
              if (prev1 === K_FOR) this.mark('locking-read', 'for update', false)
              else if (prev1 !== K_KEY) pending = code // FOR NO KEY UPDATE was marked at KEY
              break
            case K_SHARE:
              if (prev1 === K_FOR) this.mark('locking-read', 'for share', false)
              else if (prev1 === K_KEY && prev2 === K_FOR) {
                this.mark('locking-read', 'for key share', false)
              }
              break
            case K_KEY:
              if (prev1 === K_NO && prev2 === K_FOR) {
                this.mark('locking-read', 'for no key update', false)
              }
              break
            case K_IN:
              // `lock` is reserved on mysql; on postgres it may be a column (`where lock in (...)`).
              if (prev1 === K_LOCK && mysql) this.mark('locking-read', 'lock in share mode', false)
              break
            case K_INSERT:
            case K_DELETE:
            case K_REPLACE:
            case K_MERGE:
            case K_INTO:
              pending = code
              break
            case K_CALC_FOUND_ROWS:
              if (mysql) this.mark('session-state', 'sql_calc_found_rows', true)
              break
            case K_TO:
              if (copyOpen && depth === 0) {
                pending = code
                copyOpen = false
              }
              break
            case K_FROM:
              if (copyOpen && depth === 0) {
                this.mark('write', 'copy from', false, 'write')
                copyOpen = false
              }
              break
          }
      } else if (kind === B_CREATE && code === K_BEGIN && !this.swallow) {
        // A routine body (`BEGIN ... END`, `BEGIN ATOMIC ... END`) holds `;`-separated
        // statements: the rest of the text belongs to this statement.
        this.swallow = true
        this.found().pins = true
      }
      // MariaDB sequences: NEXT VALUE FOR s / PREVIOUS VALUE FOR s, wherever they are.
      if (code === K_FOR && prev1 === K_VALUE && (prev2 === K_NEXT || prev2 === K_PREVIOUS)) {
        this.found().call(prev2 === K_NEXT ? 'nextval' : 'lastval', this.options)
      }

      if (tok === T_PUNCT) {
        if (code === PUNCT + LPAREN) {
          depth++
          if (prevTok === T_WORD || prevTok === T_QUOTED) {
            this.callAt(prevStart, prevEnd, prevTok === T_QUOTED)
          }
        } else if (code === PUNCT + RPAREN) {
          if (--depth < dmlDepth) {
            read = true // the data-modifying statement in parentheses ends here
            dmlDepth = -1
          }
        } else if (code === PUNCT + COLON_EQ) {
          this.mark('session-state', ':=', true) // mysql user-variable assignment
        }
      }

      prev2 = prev1
      prev1 = code
      prevTok = tok
      prevStart = this.tokStart
      prevEnd = this.tokEnd
      this.next()
    }
    if (read) {
      if (pending !== 0) this.resolve(pending, T_END, depth)
      if (copyOpen) this.mark('write', 'copy', false, 'write')
    }
  }

  /**
   * A keyword of a read whose meaning depends on the token after it (`code`, or T_END), at
   * parenthesis depth `depth`. Returns whether it began a data-modifying statement.
   */
  private resolve(keyword: number, code: number, depth: number): boolean {
    if (keyword === K_INTO) {
      if (code === PUNCT + AT) this.mark('write', 'into @var', true)
      else if (code === K_OUTFILE) this.mark('write', 'into outfile', false, 'write')
      else if (code === K_DUMPFILE) this.mark('write', 'into dumpfile', false, 'write')
      else if (code === K_TEMP) this.mark('write', 'into temporary', true, 'create-temporary')
      // SELECT ... INTO new_table (postgres) / INTO a local variable (mysql routines)
      else this.mark('write', 'into', false, 'ddl')
      return false
    }
    if (keyword === K_TO) {
      if (code !== K_STDOUT) this.mark('write', 'copy to', false, 'write') // TO file / PROGRAM
      return false
    }
    // INSERT, UPDATE, DELETE, REPLACE, MERGE. But `insert(`, `replace(`, `delete(` are
    // functions (mysql, postgres hstore) and `update.x` is a name.
    const call = code === PUNCT + LPAREN && keyword !== K_UPDATE && keyword !== K_MERGE
    if (call || code === PUNCT + DOT) return false
    const [name, effect] = DML[keyword]!
    this.mark(
      'write',
      depth > 0 ? `${name} in a subquery` : name,
      keyword === K_INSERT || keyword === K_REPLACE,
      effect,
    )
    return true
  }
}

/** Statements that start a read. */
function isReadStart(word: string): boolean {
  return word === 'select' || word === 'with' || word === 'values' || word === 'table'
}

/** Statements EXPLAIN plans without executing them. */
function isPlannable(word: string): boolean {
  switch (word) {
    case 'select':
    case 'with':
    case 'values':
    case 'table':
    case 'insert':
    case 'update':
    case 'delete':
    case 'replace':
    case 'merge':
      return true
    default:
      return false
  }
}

/** Statements that can follow EXPLAIN. */
function isExplainable(word: string): boolean {
  return isPlannable(word) || word === 'execute' || word === 'declare' || word === 'create'
}

function classify(sql: string, options: ClassifyOptions, fragment: boolean): Classification {
  const scanner = new RawSqlScanner(sql, options, false)
  if (fragment) scanner.runFragment()
  else scanner.runStatements()
  if (scanner.failed) return UNCLASSIFIED
  if (!fragment && scanner.statements === 0) return UNCLASSIFIED
  if (!scanner.ambiguous) return scanner.verdict?.result() ?? READ
  // A backslash before a quote: the string ends elsewhere if the server does not treat
  // backslashes as escapes (MySQL NO_BACKSLASH_ESCAPES) or does (PostgreSQL with
  // standard_conforming_strings off). Classify both readings. Where the other reading cannot be
  // tokenised the server would reject that statement, so what was read up to there stands.
  const other = new RawSqlScanner(sql, options, true)
  if (fragment) other.runFragment()
  else other.runStatements()
  return Verdict.either(scanner.verdict ?? new Verdict(), other.verdict ?? new Verdict())
}

/**
 * Classifies raw SQL text: one statement, or several separated by `;` (a read only when every
 * statement is a read). Reads are SELECT, SHOW, DESCRIBE, EXPLAIN (without ANALYZE), WITH ...
 * SELECT, VALUES, TABLE and postgres `COPY ... TO STDOUT`, unless they hold a lock clause, a
 * primary-only function call, INTO, a `:=` assignment or a data-modifying statement. Everything
 * else goes to the primary. Empty or untokenisable text is `unclassified` and pins the session.
 * Pure and allocation-light: it runs on every raw query.
 */
export function classifyRawSql(sql: string, options: ClassifyOptions): Classification {
  return classify(sql, options, false)
}

/**
 * Classifies a raw fragment embedded in a builder query (a select-list item, a where clause, an
 * end modifier). A read unless it holds a lock clause, a primary-only function call, INTO
 * (`@var`, OUTFILE, DUMPFILE, a new table), a `:=` assignment or a data-modifying keyword
 * (INSERT, UPDATE, DELETE, REPLACE, MERGE) used as a statement; text after a `;` is classified as
 * whole statements. Untokenisable text (an unterminated string or comment) is `unclassified`.
 */
export function classifyRawFragment(sql: string, options: ClassifyOptions): Classification {
  return classify(sql, options, true)
}

/**
 * Whether a raw SQL fragment is inert: it cannot change how the statement it is part of is
 * classified, wherever it stands in it, so the builder classifier may step over it instead of
 * reading the statement's whole text. It holds only spaces, words that mean nothing to the
 * classifier (no keyword of its rules, no name of a primary-only or session-reading function),
 * numbers, and the punctuation `, ( ) * . = < > +` (calls of other functions, arithmetic,
 * comparisons). No quotes, comments, `@`, `:`, `;`, `-`, `/` or `$`, which could hide or change
 * the meaning of the text around it.
 *
 * @example
 * ```ts
 * isInertRawText('desc', options)       // true: orderBy('id', 'desc')
 * isInertRawText('count(*)', options)   // true
 * isInertRawText('in', options)         // false: `lock ${sql.raw('in')} share mode`
 * isInertRawText('get_lock(1)', options) // false
 * ```
 */
export function isInertRawText(text: string, options: ClassifyOptions): boolean {
  const len = text.length
  let pos = 0
  while (pos < len) {
    const c = text.charCodeAt(pos)
    if (c >= 128) return false
    const cls = CHAR_CLASS[c]!
    if (cls === C_SPACE || INERT_PUNCTUATION.has(c)) {
      pos++
      continue
    }
    if (cls !== C_IDENT && cls !== C_DIGIT) return false
    const start = pos
    while (++pos < len) {
      const d = text.charCodeAt(pos)
      if (d >= 128 || (CHAR_CLASS[d] !== C_IDENT && CHAR_CLASS[d] !== C_DIGIT)) break
    }
    if (cls === C_DIGIT) continue // a number (or a name that starts with one: not a keyword)
    const word = text.slice(start, pos).toLowerCase()
    if (
      ATTENTION_WORDS.has(word) ||
      options.primaryFunctions.has(word) ||
      SESSION_READING_FUNCTIONS.has(word)
    ) {
      return false
    }
  }
  return true
}

/** `, ( ) * . = < > +` */
const INERT_PUNCTUATION: ReadonlySet<number> = new Set([44, 40, 41, 42, 46, 61, 60, 62, 43])
