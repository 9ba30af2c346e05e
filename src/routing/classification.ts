/**
 * What a statement needs from the node it runs on. Produced by the pure classifiers
 * (`classifyNode` for Kysely operation nodes, `classifyRawSql` for raw SQL text) and
 * consumed by the router.
 */
export interface Classification {
  /** `true` when the statement may run on a replica. */
  readonly read: boolean
  /**
   * Why: `'read'` for reads, otherwise the first rule that sent it to the primary.
   * These strings are part of the public `onRoute` contract.
   */
  readonly reason: ClassificationReason
  /**
   * The statement leaves state on the session it ran on (user variables, session variables,
   * temporary tables, named locks, `LAST_INSERT_ID()`, prepared statements, `USE`, ...). Inside a
   * `db.connection()` scope every later statement must then run on that same primary session.
   */
  readonly pinsSession: boolean
  /** Transaction control written as raw SQL (`BEGIN`, `COMMIT`, ...), when it is one. */
  readonly transactionControl?: 'begin' | 'begin-read-only' | 'end' | 'savepoint'
  /** A short human-readable detail: the lock clause, the function name, the keyword. */
  readonly detail?: string
}

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

export const READ: Classification = Object.freeze({
  read: true,
  reason: 'read',
  pinsSession: false,
})
