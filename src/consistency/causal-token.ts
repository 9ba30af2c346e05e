/**
 * Causal tokens: a compact, versioned, URL-, cookie- and header-safe string carrying the
 * replication position of a scope's writes across requests and processes.
 *
 * Grammar (version 1); the token uses only `[A-Za-z0-9._~-]`:
 *
 * ```text
 * token    = "kr1." kind "." payload
 * kind     = "m" (MariaDB) / "y" (MySQL) / "p" (PostgreSQL)
 * payload  = mariadb / mysql / postgres, per kind
 * mariadb  = [ gtid *( "_" gtid ) ]          ; domains strictly ascending, e.g. 0-1-42_1-2-7
 * gtid     = dec "-" dec "-" dec             ; domain (< 2^32), server id (< 2^32), seq (< 2^64)
 * mysql    = [ uuidset *( "~" uuidset ) ]    ; UUIDs strictly ascending
 * uuidset  = hex32 *( "." iv ) *( "." tag 1*( "." iv ) )  ; untagged intervals, then tags ascending
 * iv       = gno / gno "-" gno               ; 1 <= gno < 2^63, ranges start < end, sorted, not adjacent
 * tag      = [a-z_][a-z0-9_]{0,31}
 * postgres = hex "-" hex                     ; LSN high and low 32 bits, upper case, e.g. 16-B374D848
 * dec      = "0" / [1-9][0-9]*               ; no leading zeros
 * hex      = "0" / [1-9A-F][0-9A-F]{0,7}
 * ```
 *
 * Every position has exactly one token, and decoding accepts only that canonical form, so
 * `encodeCausalToken(decodeCausalToken(t)) === t` for every accepted `t`. Tokens are not signed:
 * a client can forge one, which can only make its own reads wait for (or give up waiting for) a
 * position.
 */

import { InvalidCausalTokenError } from '../core/contracts/errors.js'
import { MARIADB_MAX_ID, MARIADB_MAX_SEQ, type MariadbGtid } from './mariadb-gtid.js'
import { MYSQL_MAX_GNO, type MysqlGnoInterval, unionMysqlGtidSets } from './mysql-gtid.js'
import { PG_MAX_LSN } from './pg-lsn.js'
import type { ReplicationPosition } from './position.js'

/** The longest token {@link decodeCausalToken} accepts (and {@link encodeCausalToken} emits). */
export const MAX_CAUSAL_TOKEN_LENGTH = 1024

/** At most this many MariaDB domains, or MySQL UUID/tag pairs, in a token. */
export const MAX_CAUSAL_TOKEN_ENTRIES = 64

/** At most this many intervals per MySQL UUID (or UUID and tag) in a token. */
export const MAX_CAUSAL_TOKEN_INTERVALS = 64

const VERSION = 'kr1'
const SAFE_RE = /^[A-Za-z0-9._~-]*$/
const MARIADB_GTID_RE = /^(0|[1-9][0-9]{0,9})-(0|[1-9][0-9]{0,9})-(0|[1-9][0-9]{0,19})$/
const PG_RE = /^(0|[1-9A-F][0-9A-F]{0,7})-(0|[1-9A-F][0-9A-F]{0,7})$/
const HEX32_RE = /^[0-9a-f]{32}$/
const TAG_RE = /^[a-z_][a-z0-9_]{0,31}$/
const GNO_IV_RE = /^([1-9][0-9]{0,18})(?:-([1-9][0-9]{0,18}))?$/
const MYSQL_KEY_RE =
  /^([0-9a-f]{8})-([0-9a-f]{4})-([0-9a-f]{4})-([0-9a-f]{4})-([0-9a-f]{12})(?::([a-z_][a-z0-9_]{0,31}))?$/

const KIND_LETTER = { mariadb: 'm', mysql: 'y', postgres: 'p' } as const

/**
 * Encodes a position as a causal token, e.g. `'kr1.m.0-1-42_1-2-7'` (MariaDB),
 * `'kr1.y.3e11fa4771ca11e19e33c80aa9429562.1-5.7-9'` (MySQL), `'kr1.p.16-B374D848'`
 * (PostgreSQL).
 *
 * @throws TypeError when the position is malformed (numbers out of range, bad MySQL keys).
 * @throws RangeError when the position exceeds the token limits (more than
 *   {@link MAX_CAUSAL_TOKEN_ENTRIES} domains or UUID/tag pairs, more than
 *   {@link MAX_CAUSAL_TOKEN_INTERVALS} intervals for one, or longer than
 *   {@link MAX_CAUSAL_TOKEN_LENGTH} characters).
 */
export function encodeCausalToken(position: ReplicationPosition): string {
  let payload: string
  switch (position.kind) {
    case 'mariadb':
      payload = encodeMariadb(position.gtids)
      break
    case 'mysql':
      payload = encodeMysql(position.set)
      break
    case 'postgres':
      payload = encodePostgres(position.lsn)
      break
    default:
      throw new TypeError('Unknown replication position kind')
  }
  const token = `${VERSION}.${KIND_LETTER[position.kind]}.${payload}`
  if (token.length > MAX_CAUSAL_TOKEN_LENGTH) {
    throw new RangeError(
      `The position is too large for a causal token (${token.length} > ${MAX_CAUSAL_TOKEN_LENGTH} characters)`,
    )
  }
  return token
}

function encodeMariadb(gtids: ReadonlyMap<number, MariadbGtid>): string {
  if (gtids.size > MAX_CAUSAL_TOKEN_ENTRIES) {
    throw new RangeError(
      `Too many MariaDB domains for a causal token (${gtids.size} > ${MAX_CAUSAL_TOKEN_ENTRIES})`,
    )
  }
  const parts: string[] = []
  for (const [domain, g] of [...gtids].sort((a, b) => a[0] - b[0])) {
    if (!isId(domain) || !isId(g.server)) {
      throw new TypeError('MariaDB domain and server ids must be integers between 0 and 2^32 - 1')
    }
    if (typeof g.seq !== 'bigint' || g.seq < 0n || g.seq > MARIADB_MAX_SEQ) {
      throw new TypeError('MariaDB sequence numbers must be bigints between 0 and 2^64 - 1')
    }
    parts.push(`${domain}-${g.server}-${g.seq}`)
  }
  return parts.join('_')
}

function isId(n: unknown): n is number {
  return typeof n === 'number' && Number.isInteger(n) && n >= 0 && n <= MARIADB_MAX_ID
}

function encodeMysql(set: ReadonlyMap<string, readonly MysqlGnoInterval[]>): string {
  for (const [key, ivs] of set) {
    if (!MYSQL_KEY_RE.test(key)) {
      throw new TypeError(
        'MySQL GTID set keys must be lower-case UUIDs, optionally with ":tag" (lower case)',
      )
    }
    for (const iv of ivs) {
      const [s, e] = iv
      if (typeof s !== 'bigint' || typeof e !== 'bigint' || s < 1n || e > MYSQL_MAX_GNO || s > e) {
        throw new TypeError('MySQL GTID intervals must be bigints with 1 <= start <= end < 2^63')
      }
    }
  }
  const normal = unionMysqlGtidSets(set, new Map())
  if (normal.size > MAX_CAUSAL_TOKEN_ENTRIES) {
    throw new RangeError(
      `Too many MySQL UUIDs and tags for a causal token (${normal.size} > ${MAX_CAUSAL_TOKEN_ENTRIES})`,
    )
  }
  const groups: string[] = []
  let currentUuid: string | undefined
  let current = ''
  for (const [key, ivs] of normal) {
    if (ivs.length > MAX_CAUSAL_TOKEN_INTERVALS) {
      throw new RangeError(
        `Too many intervals for one MySQL UUID in a causal token (${ivs.length} > ${MAX_CAUSAL_TOKEN_INTERVALS})`,
      )
    }
    const m = MYSQL_KEY_RE.exec(key)!
    const hex = `${m[1]}${m[2]}${m[3]}${m[4]}${m[5]}`
    if (hex !== currentUuid) {
      if (currentUuid !== undefined) groups.push(current)
      currentUuid = hex
      current = hex
    }
    if (m[6] !== undefined) current += `.${m[6]}`
    for (const [s, e] of ivs) current += s === e ? `.${s}` : `.${s}-${e}`
  }
  if (currentUuid !== undefined) groups.push(current)
  return groups.join('~')
}

function encodePostgres(lsn: bigint): string {
  if (typeof lsn !== 'bigint' || lsn < 0n || lsn > PG_MAX_LSN) {
    throw new TypeError('A PostgreSQL LSN must be a bigint between 0 and 2^64 - 1')
  }
  return `${(lsn >> 32n).toString(16).toUpperCase()}-${(lsn & 0xffff_ffffn).toString(16).toUpperCase()}`
}

/**
 * Decodes a causal token made by {@link encodeCausalToken}. The token is untrusted input:
 * anything but a canonical token of this version is rejected before any work proportional to
 * numbers in it.
 *
 * @param token The token; any value is accepted and non-strings are rejected.
 * @throws InvalidCausalTokenError when the token is not a string, is longer than
 *   {@link MAX_CAUSAL_TOKEN_LENGTH}, of an unknown version or kind, malformed, not canonical,
 *   or exceeds the limits on numbers, entries and intervals. The message quotes at most 40
 *   characters of it.
 */
export function decodeCausalToken(token: unknown): ReplicationPosition {
  if (typeof token !== 'string') {
    throw new InvalidCausalTokenError(
      `Invalid causal token: expected a string, got ${token === null ? 'null' : typeof token}`,
    )
  }
  if (token.length > MAX_CAUSAL_TOKEN_LENGTH) {
    throw new InvalidCausalTokenError(
      `Invalid causal token: longer than ${MAX_CAUSAL_TOKEN_LENGTH} characters (${token.length})`,
    )
  }
  const bad: Bad = (why) => {
    const shown =
      token.length > 40 ? `${JSON.stringify(token.slice(0, 40))}…` : JSON.stringify(token)
    throw new InvalidCausalTokenError(`Invalid causal token ${shown}: ${why}`)
  }
  if (token === '') bad('empty')
  if (!SAFE_RE.test(token)) bad('characters outside [A-Za-z0-9._~-]')
  const dot1 = token.indexOf('.')
  const version = dot1 === -1 ? token : token.slice(0, dot1)
  if (version !== VERSION) {
    bad(/^kr[0-9]+$/.test(version) ? `unsupported version ${version}` : 'not a causal token')
  }
  const dot2 = token.indexOf('.', dot1 + 1)
  if (dot2 === -1) bad('missing payload')
  const payload = token.slice(dot2 + 1)
  switch (token.slice(dot1 + 1, dot2)) {
    case 'm':
      return { kind: 'mariadb', gtids: decodeMariadb(payload, bad) }
    case 'y':
      return { kind: 'mysql', set: decodeMysql(payload, bad) }
    case 'p':
      return { kind: 'postgres', lsn: decodePostgres(payload, bad) }
    default:
      return bad('unknown kind')
  }
}

type Bad = (why: string) => never

function decodeMariadb(payload: string, bad: Bad): ReadonlyMap<number, MariadbGtid> {
  const out = new Map<number, MariadbGtid>()
  if (payload === '') return out
  const entries = payload.split('_')
  if (entries.length > MAX_CAUSAL_TOKEN_ENTRIES) {
    bad(`more than ${MAX_CAUSAL_TOKEN_ENTRIES} MariaDB domains`)
  }
  let previous = -1
  for (const entry of entries) {
    const m = MARIADB_GTID_RE.exec(entry)
    if (m === null) bad('malformed MariaDB GTID (expected domain-server-seq)')
    const domain = Number(m[1])
    const server = Number(m[2])
    const seq = BigInt(m[3]!)
    if (domain > MARIADB_MAX_ID || server > MARIADB_MAX_ID) bad('MariaDB id out of range')
    if (seq > MARIADB_MAX_SEQ) bad('MariaDB sequence number out of range')
    if (domain <= previous) bad('MariaDB domains not strictly ascending')
    previous = domain
    out.set(domain, { server, seq })
  }
  return out
}

function decodeMysql(payload: string, bad: Bad): ReadonlyMap<string, readonly MysqlGnoInterval[]> {
  const out = new Map<string, MysqlGnoInterval[]>()
  if (payload === '') return out
  const groups = payload.split('~')
  if (groups.length > MAX_CAUSAL_TOKEN_ENTRIES) {
    bad(`more than ${MAX_CAUSAL_TOKEN_ENTRIES} MySQL UUIDs`)
  }
  let previousHex = ''
  for (const group of groups) {
    const items = group.split('.')
    const hex = items[0]!
    if (!HEX32_RE.test(hex)) bad('malformed MySQL UUID (expected 32 lower-case hex digits)')
    if (hex <= previousHex) bad('MySQL UUIDs not strictly ascending')
    previousHex = hex
    const uuid = `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`
    let key = uuid
    let tag: string | undefined
    let ivs: MysqlGnoInterval[] | undefined
    const close = (): void => {
      if (ivs === undefined) {
        if (tag !== undefined) bad('MySQL tag without intervals')
        return
      }
      if (out.size >= MAX_CAUSAL_TOKEN_ENTRIES) {
        bad(`more than ${MAX_CAUSAL_TOKEN_ENTRIES} MySQL UUIDs and tags`)
      }
      out.set(key, ivs)
    }
    for (let i = 1; i < items.length; i++) {
      const item = items[i]!
      if (TAG_RE.test(item)) {
        if (tag !== undefined && item <= tag) bad('MySQL tags not strictly ascending')
        close()
        tag = item
        key = `${uuid}:${item}`
        ivs = undefined
        continue
      }
      const m = GNO_IV_RE.exec(item)
      if (m === null) bad('malformed MySQL interval or tag')
      const start = BigInt(m[1]!)
      const end = m[2] === undefined ? start : BigInt(m[2])
      if (end > MYSQL_MAX_GNO) bad('MySQL transaction number out of range')
      if (m[2] !== undefined && start >= end) bad('MySQL interval not canonical (start >= end)')
      if (ivs === undefined) ivs = []
      const last = ivs[ivs.length - 1]
      if (last !== undefined && start <= last[1] + 1n) {
        bad('MySQL intervals not sorted, disjoint and non-adjacent')
      }
      if (ivs.length >= MAX_CAUSAL_TOKEN_INTERVALS) {
        bad(`more than ${MAX_CAUSAL_TOKEN_INTERVALS} intervals for one MySQL UUID`)
      }
      ivs.push([start, end])
    }
    if (ivs === undefined && tag === undefined) bad('MySQL UUID without intervals')
    close()
  }
  return out
}

function decodePostgres(payload: string, bad: Bad): bigint {
  const m = PG_RE.exec(payload)
  if (m === null) bad('malformed PostgreSQL LSN (expected upper-case HIGH-LOW hex)')
  return (BigInt(`0x${m[1]}`) << 32n) | BigInt(`0x${m[2]}`)
}
