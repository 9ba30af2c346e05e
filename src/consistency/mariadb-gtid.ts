/**
 * MariaDB GTID positions (`domain-server-seq`, comma-separated, at most one GTID per domain),
 * as `@@gtid_slave_pos`, `@@gtid_current_pos`, `@@gtid_binlog_pos` and the session tracker's
 * `last_gtid` print them. Pure code, no I/O.
 */

/** The GTID of one replication domain: the server that wrote it and its sequence number. */
export interface MariadbGtid {
  /** Server id, an unsigned 32-bit integer. */
  readonly server: number
  /** Sequence number, an unsigned 64-bit integer. */
  readonly seq: bigint
}

/**
 * A MariaDB GTID position: one GTID per replication domain, keyed by domain id (an unsigned
 * 32-bit integer). Lists built by this module iterate in ascending domain order.
 */
export type MariadbGtidList = ReadonlyMap<number, MariadbGtid>

/** The largest domain id or server id: 2^32 - 1. */
export const MARIADB_MAX_ID = 0xffff_ffff
/** The largest sequence number: 2^64 - 1. */
export const MARIADB_MAX_SEQ = 0xffff_ffff_ffff_ffffn

const GTID_RE = /^(\d{1,20})-(\d{1,20})-(\d{1,30})$/
const ASCII_SPACE_RE = /^[ \t\r\n\f\v]+|[ \t\r\n\f\v]+$/g

function fail(text: string, why: string): never {
  const shown = text.length > 40 ? `${JSON.stringify(text.slice(0, 40))}…` : JSON.stringify(text)
  throw new TypeError(`Malformed MariaDB GTID list ${shown}: ${why}`)
}

/**
 * Parses a MariaDB GTID list such as `'0-1-42,1-2-7'` (the empty string, or only whitespace,
 * is the empty list). Whitespace around entries is ignored.
 *
 * @throws TypeError when the text is malformed, a number is out of range (domain and server id
 *   must fit in 32 bits, seq in 64 bits) or a domain appears twice.
 */
export function parseMariadbGtidList(text: string): MariadbGtidList {
  if (typeof text !== 'string') throw new TypeError('A MariaDB GTID list must be a string')
  // The common case, one GTID as session tracking reports it (`0-1-42`): no regex, no split.
  const single = parseSingleGtid(text)
  if (single !== undefined) return single
  const trimmed = text.replace(ASCII_SPACE_RE, '')
  if (trimmed === '') return new Map()
  const entries: [number, MariadbGtid][] = []
  const seen = new Set<number>()
  for (const raw of trimmed.split(',')) {
    const m = GTID_RE.exec(raw.replace(ASCII_SPACE_RE, ''))
    if (m === null) fail(text, 'expected domain-server-seq entries separated by commas')
    const domain = Number(m[1])
    const server = Number(m[2])
    const seq = BigInt(m[3]!)
    if (domain > MARIADB_MAX_ID) fail(text, 'domain id out of range')
    if (server > MARIADB_MAX_ID) fail(text, 'server id out of range')
    if (seq > MARIADB_MAX_SEQ) fail(text, 'sequence number out of range')
    if (seen.has(domain)) fail(text, `domain ${domain} appears twice`)
    seen.add(domain)
    entries.push([domain, { server, seq }])
  }
  return sortedList(entries)
}

/**
 * `domain-server-seq` (decimal digits only, as {@link GTID_RE} accepts them) as a one-entry list,
 * or `undefined` for anything else (the general parser then decides, errors included).
 */
function parseSingleGtid(text: string): MariadbGtidList | undefined {
  const first = text.indexOf('-')
  const second = first < 0 ? -1 : text.indexOf('-', first + 1)
  if (first < 1 || first > 20 || second < first + 2 || second - first > 21) return undefined
  const length = text.length
  if (length - second < 2 || length - second > 31) return undefined
  for (let i = 0; i < length; i++) {
    if (i === first || i === second) continue
    const c = text.charCodeAt(i)
    if (c < 48 || c > 57) return undefined
  }
  const domain = Number(text.slice(0, first))
  const server = Number(text.slice(first + 1, second))
  const seq = BigInt(text.slice(second + 1))
  if (domain > MARIADB_MAX_ID || server > MARIADB_MAX_ID || seq > MARIADB_MAX_SEQ) return undefined
  const list = new Map<number, MariadbGtid>()
  list.set(domain, { server, seq })
  return list
}

function sortedList(entries: [number, MariadbGtid][]): MariadbGtidList {
  entries.sort((a, b) => a[0] - b[0])
  return new Map(entries)
}

/**
 * Whether a replica at position `applied` has applied everything in `required`: every domain
 * of `required` is present in `applied` with a sequence number at least as large. Server ids
 * are not compared (sequence numbers are monotonic per domain under `gtid_strict_mode`), as
 * `MASTER_GTID_WAIT` does not compare them either. The empty list is covered by any list.
 */
export function mariadbCovers(applied: MariadbGtidList, required: MariadbGtidList): boolean {
  for (const [domain, need] of required) {
    const have = applied.get(domain)
    if (have === undefined || have.seq < need.seq) return false
  }
  return true
}

/**
 * The least position covering both lists: for each domain, the GTID with the larger sequence
 * number (on equal sequence numbers, the larger server id, so merging is commutative).
 */
export function mergeMariadbGtidLists(a: MariadbGtidList, b: MariadbGtidList): MariadbGtidList {
  // The common cases (a newer write of the same domains, a position merged into itself): one of
  // the two already is the merge, and nothing is allocated.
  if (dominates(b, a)) return b
  if (dominates(a, b)) return a
  const out = new Map<number, MariadbGtid>(a)
  for (const [domain, gtid] of b) {
    const cur = out.get(domain)
    if (
      cur === undefined ||
      gtid.seq > cur.seq ||
      (gtid.seq === cur.seq && gtid.server > cur.server)
    ) {
      out.set(domain, gtid)
    }
  }
  return sortedList([...out])
}

/**
 * Formats a list as MariaDB does, domains ascending: `'0-1-42,1-2-7'` (the empty list is `''`).
 * The result is accepted by `MASTER_GTID_WAIT` and `SET GLOBAL gtid_slave_pos`.
 */
/** Whether `a` holds every domain of `b` at the GTID the merge would keep for it. */
function dominates(a: MariadbGtidList, b: MariadbGtidList): boolean {
  if (a === b) return true
  if (a.size < b.size) return false
  for (const [domain, gtid] of b) {
    const have = a.get(domain)
    if (
      have === undefined ||
      have.seq < gtid.seq ||
      (have.seq === gtid.seq && have.server < gtid.server)
    ) {
      return false
    }
  }
  return true
}

export function formatMariadbGtidList(list: MariadbGtidList): string {
  if (list.size === 1) {
    for (const [domain, g] of list) return `${domain}-${g.server}-${g.seq}`
  }
  return [...list]
    .sort((a, b) => a[0] - b[0])
    .map(([domain, g]) => `${domain}-${g.server}-${g.seq}`)
    .join(',')
}

/**
 * Whether two lists hold the same GTIDs (same domains, server ids and sequence numbers).
 */
export function mariadbGtidListsEqual(a: MariadbGtidList, b: MariadbGtidList): boolean {
  if (a.size !== b.size) return false
  for (const [domain, g] of a) {
    const o = b.get(domain)
    if (o === undefined || o.seq !== g.seq || o.server !== g.server) return false
  }
  return true
}
