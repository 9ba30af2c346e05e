/**
 * What a statement does to the data, as far as read-your-writes is concerned. Set by both
 * classifiers (`classifyNode`, `classifyRawSql`) on every `Classification`.
 *
 * - `'none'`: changes no data. Reads, locking reads, calls of primary-only functions that change
 *   no data (named and advisory locks, sequence values, `set_config`, ...), session statements
 *   (`SET`, `USE`, `PREPARE`, `LOCK TABLES`, `SELECT ... INTO @var`), transaction control, and
 *   `EXPLAIN` of a data-modifying statement without `ANALYZE` (planned, not run).
 * - `'insert'` (also `REPLACE`, `INSERT ... ON DUPLICATE KEY UPDATE` / `ON CONFLICT`),
 *   `'update'`, `'delete'`, `'merge'`: data-modifying statements, including one in a CTE or a
 *   subquery (`WITH x AS (DELETE ... RETURNING *) SELECT ...`).
 * - `'create-temporary'`: `CREATE TEMPORARY TABLE` (or view, or sequence); `SELECT ... INTO TEMP`.
 * - `'ddl'`: other schema changes: `CREATE`, `ALTER`, `DROP`, `TRUNCATE`, `RENAME`, `GRANT`,
 *   `REVOKE`, `COMMENT ON`, `SELECT ... INTO new_table`.
 * - `'write'`: changes data, or may, but is none of the above: `LOAD DATA`, `COPY ... FROM`,
 *   `CALL`, `DO`, `EXECUTE` of a prepared statement, maintenance statements (`VACUUM`,
 *   `ANALYZE`, `OPTIMIZE`, `REFRESH MATERIALIZED VIEW`, ...), files written by the server
 *   (`INTO OUTFILE`, `COPY ... TO 'file'`), calls of the application's own primary functions
 *   (`primaryFunctions` option) and of PostgreSQL's large-object writers. Also a statement with
 *   more than one data-changing part (see below).
 * - `'unknown'`: the classifier could not classify (part of) the text. It counts as a write.
 *
 * A statement is made of parts: the statement itself, each data-modifying CTE or subquery (not
 * those nested in another data-modifying statement, like `MERGE`'s `WHEN ... THEN UPDATE`), and
 * each call of a data-changing function; raw SQL text may hold several statements. With no
 * data-changing part the effect is `'none'`; with exactly one, that part's effect; with two or
 * more, `'write'`: a driver reports the affected rows of one part only (PostgreSQL reports those
 * of the main statement of `WITH d AS (DELETE ...) INSERT ...`), so no row count may decide that
 * nothing changed. When any part is unclassified, `'unknown'`.
 */
export type StatementEffect =
  | 'none'
  | 'insert'
  | 'update'
  | 'delete'
  | 'merge'
  | 'create-temporary'
  | 'ddl'
  | 'write'
  | 'unknown'

/** The row counts Kysely reports for a statement (`QueryResult`), when the driver reports them. */
export interface AffectedRows {
  readonly numAffectedRows?: bigint | undefined
  readonly numChangedRows?: bigint | undefined
}

/**
 * Whether a statement that ran changed data, so that later reads must observe it: its effect,
 * refined by the row counts the driver reported.
 *
 * - `'none'` and `'create-temporary'`: no (a temporary table is the session's own; on MariaDB
 *   such statements come back without a GTID).
 * - `'insert'`, `'update'`, `'delete'`, `'merge'` that affected no row: no. Nor an `'update'`
 *   that matched rows but changed none (MySQL reports matched rows as affected and the changed
 *   ones separately). A missing count proves nothing: yes.
 * - `'ddl'`, `'write'`, `'unknown'`: yes. When unsure, it is a write.
 *
 * @example
 * ```ts
 * changesData({ effect: 'update' }, { numAffectedRows: 1n, numChangedRows: 0n }) // false
 * changesData({ effect: 'delete' }, { numAffectedRows: 3n })                     // true
 * changesData({ effect: 'none' }, {})                                            // false
 * ```
 */
export function changesData(
  classification: { readonly effect: StatementEffect },
  { numAffectedRows, numChangedRows }: AffectedRows,
): boolean {
  switch (classification.effect) {
    case 'none':
    case 'create-temporary':
      return false
    case 'update':
      if (numChangedRows === 0n) return false
      return numAffectedRows !== 0n
    case 'insert':
    case 'delete':
    case 'merge':
      return numAffectedRows !== 0n
    default:
      return true
  }
}
