import type { StatementEffect } from './statement-effect.js'

/**
 * What a statement needs from the node it runs on. Produced by the pure classifiers
 * (`classifyNode` for Kysely operation nodes, `classifyRawSql` for raw SQL text) and
 * consumed by the router. A statement built with Kysely's query builder and the same statement
 * written as raw SQL classify alike: the same `read`, `reason`, `effect`, `pinsSession` and
 * `readsSession` (only `detail` may be worded differently).
 *
 * @example
 * ```ts
 * const compiled = db.updateTable('person').set({ name: 'x' }).where('id', '=', 1).compile()
 * classifyNode(compiled.query, compiled.sql, options)
 * // { read: false, reason: 'write', effect: 'update', pinsSession: false, readsSession: false, detail: 'update' }
 * ```
 */
export interface Classification {
  /** `true` when the statement may run on a replica. */
  readonly read: boolean
  /**
   * Why: `'read'` for reads, otherwise the weightiest rule that sent it to the primary (see
   * {@link ClassificationReason}). These strings are part of the public `onRoute` contract.
   */
  readonly reason: ClassificationReason
  /**
   * What the statement does to the data, for read-your-writes: whether later reads must observe
   * it. A machine contract; see {@link StatementEffect} and `changesData`.
   */
  readonly effect: StatementEffect
  /**
   * The statement leaves state on the session it ran on (user variables, session variables,
   * temporary tables, named locks, `LAST_INSERT_ID()`, prepared statements, `USE`, ...). Inside a
   * `db.connection()` scope every later statement must then run on that same primary session.
   */
  readonly pinsSession: boolean
  /**
   * The statement reads state that only its own session has: user variables (`@x`), session
   * variables (`@@warning_count`, `@@session.x`, PostgreSQL `SHOW x`), the results of the
   * session's previous statement (`ROW_COUNT()`, `FOUND_ROWS()`, `LAST_INSERT_ID()`,
   * `SHOW WARNINGS`), sequence values of the session (`currval`, `lastval`) and functions about the
   * session itself (`connection_id()`, `pg_backend_pid()`, `current_setting(...)`). A read may
   * still carry it: inside a `db.connection()` scope that holds a primary session, it belongs on
   * that session.
   */
  readonly readsSession: boolean
  /** Transaction control written as raw SQL (`BEGIN`, `COMMIT`, ...), when it is one. */
  readonly transactionControl?: 'begin' | 'begin-read-only' | 'end' | 'savepoint'
  /**
   * A short human-readable detail, always lower-case: the lock clause (`'for update'`), the
   * function name (`'get_lock'`), the statement keyword (`'update'`, `'set'`). For people only
   * (it reaches them through `onRoute`); its wording may change between versions and differ
   * between a built statement and its raw twin. Machines read `reason` and `effect`.
   */
  readonly detail?: string
}

/**
 * Why a statement goes to the primary. When a statement has several reasons, the weightiest
 * one is reported, in this order (heaviest first): `'unclassified'`, `'write'`,
 * `'session-state'`, `'transaction-control'`, `'primary-function'`, `'locking-read'`. Between
 * equal reasons the first found wins.
 */
export type ClassificationReason =
  | 'read'
  | 'write'
  | 'locking-read'
  | 'primary-function'
  | 'session-state'
  | 'transaction-control'
  | 'unclassified'

/** The SQL flavour a raw statement is read in. */
export type SqlFlavor = 'mysql' | 'postgres'

export interface ClassifyOptions {
  readonly flavor: SqlFlavor
  /** Lower-case names of functions that must run on the primary (engine defaults plus user additions). */
  readonly primaryFunctions: ReadonlySet<string>
}

/** A read with nothing else to say: the classification of most statements. */
export const READ: Classification = Object.freeze({
  read: true,
  reason: 'read',
  effect: 'none',
  pinsSession: false,
  readsSession: false,
})

/** A read of the session's own state (`select @x`, `select @@warning_count`, `SHOW search_path`). */
export const READ_OF_SESSION: Classification = Object.freeze({
  read: true,
  reason: 'read',
  effect: 'none',
  pinsSession: false,
  readsSession: true,
})
