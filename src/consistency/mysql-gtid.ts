/**
 * MySQL GTID sets (`uuid:1-5:7-9,uuid2:1-3`, and the MySQL 8.3+ tagged form
 * `uuid:1-5:tag:1-3`), as `@@gtid_executed`, `WAIT_FOR_EXECUTED_GTID_SET` and the session
 * tracker (`session_track_gtids=OWN_GTID`) use them. Pure code, no I/O.
 */

/** An inclusive interval of transaction numbers `[start, end]`, `1 <= start <= end`. */
export type MysqlGnoInterval = readonly [bigint, bigint]

/**
 * A MySQL GTID set, keyed by lower-case source UUID (`'3e11fa47-71ca-11e1-9e33-c80aa9429562'`),
 * or `uuid:tag` with a lower-case tag for tagged GTIDs. Each value is a non-empty list of
 * sorted, disjoint, non-adjacent inclusive intervals. Sets built by this module iterate in
 * ascending key order.
 */
export type MysqlGtidSet = ReadonlyMap<string, readonly MysqlGnoInterval[]>

/** The largest transaction number MySQL accepts: 2^63 - 1. */
export const MYSQL_MAX_GNO = 0x7fff_ffff_ffff_ffffn

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i
const TAG_RE = /^[a-z_][a-z0-9_]{0,31}$/i
const INTERVAL_RE = /^(\d{1,40})(?:[ \t\r\n\f\v]*-[ \t\r\n\f\v]*(\d{1,40}))?$/
const ASCII_SPACE_RE = /^[ \t\r\n\f\v]+|[ \t\r\n\f\v]+$/g

function fail(text: string, why: string): never {
  const shown = text.length > 40 ? `${JSON.stringify(text.slice(0, 40))}…` : JSON.stringify(text)
  throw new TypeError(`Malformed MySQL GTID set ${shown}: ${why}`)
}

const trim = (s: string): string => s.replace(ASCII_SPACE_RE, '')

/**
 * Parses a MySQL GTID set such as `'3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5:7-9'`, with any
 * number of comma-separated UUID sets, whitespace (including newlines, as `@@gtid_executed`
 * prints them) around separators, upper- or lower-case UUIDs, MySQL 8.3+ tags
 * (`uuid:1-5:tag:1-3`) and repeated UUIDs. The empty string is the empty set. A single GTID
 * (`uuid:n`, as `session_track_gtids=OWN_GTID` reports it) is a set too.
 *
 * @throws TypeError when the text is malformed or a number is outside `1..2^63-1`.
 */
export function parseMysqlGtidSet(text: string): MysqlGtidSet {
  if (typeof text !== 'string') throw new TypeError('A MySQL GTID set must be a string')
  const trimmed = trim(text)
  const acc = new Map<string, MysqlGnoInterval[]>()
  if (trimmed === '') return acc
  for (const uuidSet of trimmed.split(',')) {
    const parts = uuidSet.split(':').map(trim)
    const uuid = parts[0]!
    if (!UUID_RE.test(uuid)) fail(text, 'expected a UUID before the intervals')
    let key = uuid.toLowerCase()
    let pendingTag = true // the untagged group or a tag that still needs an interval
    let any = false
    for (let i = 1; i < parts.length; i++) {
      const part = parts[i]!
      const m = INTERVAL_RE.exec(part)
      if (m !== null) {
        const start = BigInt(m[1]!)
        const end = m[2] === undefined ? start : BigInt(m[2])
        if (start < 1n || end > MYSQL_MAX_GNO) fail(text, 'transaction number out of range')
        if (start > end) fail(text, 'interval start after its end')
        let list = acc.get(key)
        if (list === undefined) acc.set(key, (list = []))
        list.push([start, end])
        pendingTag = false
        any = true
      } else if (TAG_RE.test(part)) {
        if (pendingTag && i > 1) fail(text, 'tag without intervals')
        key = `${uuid.toLowerCase()}:${part.toLowerCase()}`
        pendingTag = true
      } else {
        fail(text, 'expected an interval (n or n-m) or a tag')
      }
    }
    if (!any || pendingTag) fail(text, 'UUID or tag without intervals')
  }
  return normalize(acc)
}

/** Sorts and coalesces overlapping or adjacent intervals (input intervals must be valid). */
function coalesce(intervals: readonly MysqlGnoInterval[]): MysqlGnoInterval[] {
  const sorted = [...intervals].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
  const out: [bigint, bigint][] = []
  for (const [s, e] of sorted) {
    const last = out[out.length - 1]
    if (last !== undefined && s <= last[1] + 1n) {
      if (e > last[1]) last[1] = e
    } else {
      out.push([s, e])
    }
  }
  return out
}

function normalize(acc: ReadonlyMap<string, readonly MysqlGnoInterval[]>): MysqlGtidSet {
  const keys = [...acc.keys()].sort(compareKeys)
  const out = new Map<string, readonly MysqlGnoInterval[]>()
  for (const key of keys) {
    const merged = coalesce(acc.get(key)!)
    if (merged.length > 0) out.set(key, merged)
  }
  return out
}

/** Orders keys by code unit; an untagged UUID sorts before its tagged keys. */
function compareKeys(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0
}

/**
 * Whether every GTID of `required` is in `applied` (`required ⊆ applied`), which is what
 * `WAIT_FOR_EXECUTED_GTID_SET(required)` waits for on a replica whose `@@gtid_executed` is
 * `applied`. Both sets must be normalised (as this module builds them).
 */
export function mysqlGtidSubset(required: MysqlGtidSet, applied: MysqlGtidSet): boolean {
  for (const [key, need] of required) {
    const have = applied.get(key)
    if (have === undefined) {
      if (need.length > 0) return false
      continue
    }
    let j = 0
    for (const [s, e] of need) {
      while (j < have.length && have[j]![1] < s) j++
      const iv = have[j]
      if (iv === undefined || iv[0] > s || iv[1] < e) return false
    }
  }
  return true
}

/** The union of two GTID sets, normalised (sorted keys, merged intervals). */
export function unionMysqlGtidSets(a: MysqlGtidSet, b: MysqlGtidSet): MysqlGtidSet {
  const acc = new Map<string, MysqlGnoInterval[]>()
  for (const set of [a, b]) {
    for (const [key, ivs] of set) {
      const list = acc.get(key)
      if (list === undefined) acc.set(key, [...ivs])
      else list.push(...ivs)
    }
  }
  return normalize(acc)
}

/**
 * Formats a set as MySQL prints it, without the newlines: UUIDs ascending, each UUID once
 * with its untagged intervals first and then its tags ascending, e.g.
 * `'3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5:7-9:tag:1-3,4e11fa47-71ca-11e1-9e33-c80aa9429562:1'`.
 * The empty set is `''`. Accepted by `WAIT_FOR_EXECUTED_GTID_SET` and `GTID_SUBSET`.
 */
export function formatMysqlGtidSet(set: MysqlGtidSet): string {
  const groups: string[] = []
  let currentUuid: string | undefined
  let current = ''
  for (const key of [...set.keys()].sort(compareKeys)) {
    const ivs = set.get(key)!
    if (ivs.length === 0) continue
    const colon = key.indexOf(':')
    const uuid = colon === -1 ? key : key.slice(0, colon)
    const tag = colon === -1 ? undefined : key.slice(colon + 1)
    if (uuid !== currentUuid) {
      if (currentUuid !== undefined) groups.push(current)
      currentUuid = uuid
      current = uuid
    }
    if (tag !== undefined) current += `:${tag}`
    for (const [s, e] of ivs) current += s === e ? `:${s}` : `:${s}-${e}`
  }
  if (currentUuid !== undefined) groups.push(current)
  return groups.join(',')
}

/** Whether two normalised sets hold the same GTIDs. */
export function mysqlGtidSetsEqual(a: MysqlGtidSet, b: MysqlGtidSet): boolean {
  if (a.size !== b.size) return false
  for (const [key, ivs] of a) {
    const o = b.get(key)
    if (o === undefined || o.length !== ivs.length) return false
    for (let i = 0; i < ivs.length; i++) {
      if (ivs[i]![0] !== o[i]![0] || ivs[i]![1] !== o[i]![1]) return false
    }
  }
  return true
}
