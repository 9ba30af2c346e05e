/**
 * An engine-independent replication position: what a scope's writes require of a replica and
 * what a replica has applied. Pure code, no I/O.
 */

import {
  formatMariadbGtidList,
  type MariadbGtidList,
  mariadbCovers,
  mariadbGtidListsEqual,
  mergeMariadbGtidLists,
  parseMariadbGtidList,
} from './mariadb-gtid.js'
import {
  formatMysqlGtidSet,
  type MysqlGtidSet,
  mysqlGtidSetsEqual,
  mysqlGtidSubset,
  parseMysqlGtidSet,
  unionMysqlGtidSets,
} from './mysql-gtid.js'
import { formatLsn, parseLsn } from './pg-lsn.js'

/**
 * A replication position of one engine:
 * - `mariadb`: a GTID list, one GTID per domain (`@@gtid_slave_pos`, `last_gtid`);
 * - `mysql`: a GTID set (`@@gtid_executed`, `OWN_GTID`);
 * - `postgres`: a WAL LSN as a 64-bit integer (`pg_current_wal_insert_lsn()`,
 *   `pg_last_wal_replay_lsn()`).
 */
export type ReplicationPosition =
  | { readonly kind: 'mariadb'; readonly gtids: MariadbGtidList }
  | { readonly kind: 'mysql'; readonly set: MysqlGtidSet }
  | { readonly kind: 'postgres'; readonly lsn: bigint }

/**
 * Whether a node at position `applied` has applied everything up to `required`. Always `false`
 * when the kinds differ.
 */
export function positionCovers(
  applied: ReplicationPosition,
  required: ReplicationPosition,
): boolean {
  switch (required.kind) {
    case 'mariadb':
      return applied.kind === 'mariadb' && mariadbCovers(applied.gtids, required.gtids)
    case 'mysql':
      return applied.kind === 'mysql' && mysqlGtidSubset(required.set, applied.set)
    case 'postgres':
      return applied.kind === 'postgres' && applied.lsn >= required.lsn
  }
}

/**
 * The least position covering both `a` and `b` (max seq per MariaDB domain, union of MySQL
 * sets, max LSN). Returns `b` when `a` is `undefined` or of another kind.
 */
export function mergePositions(
  a: ReplicationPosition | undefined,
  b: ReplicationPosition,
): ReplicationPosition {
  if (a === undefined) return b
  switch (b.kind) {
    case 'mariadb': {
      if (a.kind !== 'mariadb') return b
      const gtids = mergeMariadbGtidLists(a.gtids, b.gtids)
      return gtids === a.gtids ? a : gtids === b.gtids ? b : { kind: 'mariadb', gtids }
    }
    case 'mysql':
      return a.kind === 'mysql' ? { kind: 'mysql', set: unionMysqlGtidSets(a.set, b.set) } : b
    case 'postgres':
      return a.kind === 'postgres' ? (a.lsn >= b.lsn ? a : b) : b
  }
}

/**
 * The engine's own text for a position: what `MASTER_GTID_WAIT` (`'0-1-42,1-2-7'`),
 * `WAIT_FOR_EXECUTED_GTID_SET` (`'uuid:1-5'`) and PostgreSQL's `pg_lsn` (`'0/3000060'`) take.
 */
export function formatPosition(p: ReplicationPosition): string {
  switch (p.kind) {
    case 'mariadb':
      return formatMariadbGtidList(p.gtids)
    case 'mysql':
      return formatMysqlGtidSet(p.set)
    case 'postgres':
      return formatLsn(p.lsn)
  }
}

/**
 * Parses the engine's own text for a position (see {@link formatPosition}).
 *
 * @throws TypeError when the text is malformed for that kind, or the kind is unknown.
 */
export function parsePosition(
  kind: ReplicationPosition['kind'],
  text: string,
): ReplicationPosition {
  switch (kind) {
    case 'mariadb':
      return { kind, gtids: parseMariadbGtidList(text) }
    case 'mysql':
      return { kind, set: parseMysqlGtidSet(text) }
    case 'postgres':
      return { kind, lsn: parseLsn(text) }
    default:
      throw new TypeError(`Unknown replication position kind ${JSON.stringify(String(kind))}`)
  }
}

/** Whether two positions are identical (same kind and same GTIDs or LSN, server ids included). */
export function positionsEqual(a: ReplicationPosition, b: ReplicationPosition): boolean {
  switch (a.kind) {
    case 'mariadb':
      return b.kind === 'mariadb' && mariadbGtidListsEqual(a.gtids, b.gtids)
    case 'mysql':
      return b.kind === 'mysql' && mysqlGtidSetsEqual(a.set, b.set)
    case 'postgres':
      return b.kind === 'postgres' && a.lsn === b.lsn
  }
}
