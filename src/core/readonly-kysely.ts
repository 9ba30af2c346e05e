/**
 * The library's own read-only `Kysely` type, returned by `readOnly(db)`.
 *
 * Kysely 0.29 ships a similar type in `kysely/readonly`, but Kysely 0.28 has no such entry point:
 * declarations that import it fail to compile there (TS2307), and with `skipLibCheck` the view
 * silently becomes `any`. This one is built only from types that Kysely 0.28 and 0.29 both export,
 * so a write through the view is a compile error on either.
 */
import type {
  CompiledQuery,
  ConnectionBuilder,
  ControlledTransaction,
  Expression,
  IsolationLevel,
  Kysely,
  KyselyPlugin,
  QueryCreator,
  QueryCreatorWithCommonTableExpression,
  QueryResult,
  SelectQueryBuilder,
  SelectQueryNode,
} from 'kysely'

/**
 * Members of `Kysely` that a read-only view leaves out: the write builders, the schema module,
 * the raw executor, and the table-set helpers (`withTables`, `$extendTables`, `$omitTables`,
 * `$pickTables`), which return a full `Kysely`; apply those before `readOnly()`. The members a
 * read-only view keeps but retypes are left out too, and declared again below.
 */
type LeftOut =
  | 'insertInto'
  | 'replaceInto'
  | 'updateTable'
  | 'deleteFrom'
  | 'mergeInto'
  | 'schema'
  | 'getExecutor'
  | 'withTables'
  | '$extendTables'
  | '$omitTables'
  | '$pickTables'
  | Retyped

/** Members of `Kysely` whose read-only version returns a read-only type. */
type Retyped =
  | 'executeQuery'
  | 'with'
  | 'withRecursive'
  | 'withPlugin'
  | 'withoutPlugins'
  | 'withSchema'
  | 'connection'
  | 'transaction'
  | 'startTransaction'

/** The parameters after the first (Kysely 0.29 added an options argument to some methods). */
type AfterFirst<P extends readonly unknown[]> = P extends readonly [unknown?, ...infer Rest]
  ? Rest
  : []

/** The table name of a common table expression name such as `'ancestor(id, parent_id)'`. */
type CteTable<N extends string> = N extends `${infer T}(${string})` ? T : N

/** The database type of a `QueryCreator`. */
type DatabaseOf<Q> = Q extends QueryCreator<infer DB> ? DB : never

/** A compiled `SELECT`: the only compiled query a read-only view executes. */
export type ReadonlyCompiledQuery<R> = CompiledQuery<R> & { readonly query: SelectQueryNode }

/** A common table expression a read-only view accepts: a select, or a factory of one. */
export type ReadonlyCommonTableExpression<DB> =
  | SelectQueryBuilder<any, any, any>
  | Expression<any>
  | ((creator: ReadonlyQueryCreator<DB>) => SelectQueryBuilder<any, any, any> | Expression<any>)

/**
 * The query-building part of {@link ReadonlyKysely}: `selectFrom`, `selectNoFrom`, and common
 * table expressions whose bodies are read-only too.
 */
export interface ReadonlyQueryCreator<DB>
  extends Pick<QueryCreator<DB>, 'selectFrom' | 'selectNoFrom'> {
  /** Kysely's `with`, by name (`'cte'` or `'cte(a, b)'`), with a read-only body. */
  with<N extends string, E extends ReadonlyCommonTableExpression<DB>>(
    name: N,
    expression: E,
  ): ReadonlyQueryCreator<DatabaseOf<QueryCreatorWithCommonTableExpression<DB, N, E>>>

  /** Kysely's `withRecursive`, by name, with a read-only body that may select from itself. */
  withRecursive<
    N extends string,
    E extends ReadonlyCommonTableExpression<DB & { [K in CteTable<N>]: Record<string, any> }>,
  >(
    name: N,
    expression: E,
  ): ReadonlyQueryCreator<DatabaseOf<QueryCreatorWithCommonTableExpression<DB, N, E>>>
}

/**
 * A `Kysely<DB>` that can only read: `insertInto`, `replaceInto`, `updateTable`, `deleteFrom`,
 * `mergeInto`, `schema` and `getExecutor` are not there, so a write does not compile, and every
 * view it returns (`withSchema`, `withPlugin`, `connection`, `transaction`, common table
 * expressions) is read-only too. Returned by `readOnly(db)`; the same type on Kysely 0.28 and 0.29.
 *
 * @example
 * ```ts
 * import { readOnly, type ReadonlyKysely } from 'kysely-replicated'
 *
 * function reports(db: ReadonlyKysely<DB>) {
 *   return db.selectFrom('report').selectAll().execute()
 *   // db.deleteFrom('report') // does not compile
 * }
 * await reports(readOnly(db))
 * ```
 */
export interface ReadonlyKysely<DB>
  extends Omit<Kysely<DB>, LeftOut | keyof ReadonlyQueryCreator<DB>>,
    ReadonlyQueryCreator<DB> {
  /** Kysely's `executeQuery`, for a select builder or a compiled `SELECT`. */
  executeQuery<R>(
    query: ReadonlyCompiledQuery<R> | SelectQueryBuilder<DB, any, R>,
    ...rest: AfterFirst<Parameters<Kysely<DB>['executeQuery']>>
  ): Promise<QueryResult<R>>
  withPlugin(plugin: KyselyPlugin): ReadonlyKysely<DB>
  withoutPlugins(): ReadonlyKysely<DB>
  withSchema(schema: string): ReadonlyKysely<DB>
  connection(): ReadonlyConnectionBuilder<DB>
  transaction(): ReadonlyTransactionBuilder<DB>
  startTransaction(): ReadonlyControlledTransactionBuilder<DB>
}

/** Kysely's `ConnectionBuilder`, handing a {@link ReadonlyKysely} to its callback. */
export interface ReadonlyConnectionBuilder<DB> {
  execute<T>(
    callback: (db: ReadonlyKysely<DB>) => Promise<T>,
    ...rest: AfterFirst<Parameters<ConnectionBuilder<DB>['execute']>>
  ): Promise<T>
}

/** Kysely's `TransactionBuilder`, handing a {@link ReadonlyTransaction} to its callback. */
export interface ReadonlyTransactionBuilder<DB> {
  setAccessMode(accessMode: 'read only'): ReadonlyTransactionBuilder<DB>
  setIsolationLevel(isolationLevel: IsolationLevel): ReadonlyTransactionBuilder<DB>
  execute<T>(callback: (trx: ReadonlyTransaction<DB>) => Promise<T>): Promise<T>
}

/** Kysely's `ControlledTransactionBuilder`, giving a {@link ReadonlyControlledTransaction}. */
export interface ReadonlyControlledTransactionBuilder<DB> {
  setAccessMode(accessMode: 'read only'): ReadonlyControlledTransactionBuilder<DB>
  setIsolationLevel(isolationLevel: IsolationLevel): ReadonlyControlledTransactionBuilder<DB>
  execute(): Promise<ReadonlyControlledTransaction<DB>>
}

/** A read-only `Transaction<DB>`: no nested transactions, connections or `destroy()`. */
export interface ReadonlyTransaction<DB>
  extends Omit<
    ReadonlyKysely<DB>,
    | 'isTransaction'
    | 'connection'
    | 'transaction'
    | 'startTransaction'
    | 'destroy'
    | 'withPlugin'
    | 'withoutPlugins'
    | 'withSchema'
  > {
  readonly isTransaction: true
  withPlugin(plugin: KyselyPlugin): ReadonlyTransaction<DB>
  withoutPlugins(): ReadonlyTransaction<DB>
  withSchema(schema: string): ReadonlyTransaction<DB>
}

/** A read-only `ControlledTransaction<DB>`, committed or rolled back by hand (no savepoints). */
export interface ReadonlyControlledTransaction<DB>
  extends Omit<ReadonlyTransaction<DB>, 'withPlugin' | 'withoutPlugins' | 'withSchema'>,
    Pick<ControlledTransaction<DB>, 'commit' | 'rollback' | 'isCommitted' | 'isRolledBack'> {
  withPlugin(plugin: KyselyPlugin): ReadonlyControlledTransaction<DB>
  withoutPlugins(): ReadonlyControlledTransaction<DB>
  withSchema(schema: string): ReadonlyControlledTransaction<DB>
}
