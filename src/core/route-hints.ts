import type {
  CompiledQuery,
  Kysely,
  KyselyPlugin,
  PluginTransformQueryArgs,
  PluginTransformResultArgs,
  QueryId,
  QueryResult,
  RootOperationNode,
  UnknownRow,
} from 'kysely'
import type { ReadonlyKysely } from './readonly-kysely.js'

/** A routing hint attached to a query by {@link onPrimary}, {@link onReplica} or {@link readOnly}. */
export type RouteHint =
  | { readonly target: 'primary' }
  | { readonly target: 'replica'; readonly name?: string | undefined }
  | { readonly target: 'read-only' }

/**
 * What a plugin attaches to the compiles of queries (a route hint, a read timeout), for the driver
 * to find on the compiled query. Kysely hands plugins a query's `QueryId`, not the compiled query,
 * and a `QueryId` outlives one compile: a builder keeps it, and a raw `sql` template keeps it
 * across executions through different `Kysely` instances. Keyed by `QueryId` alone, a hint given
 * to `sql\`...\`.execute(onReplica(db))` stayed on every later `.execute(db)` of the same
 * template. So each compile a plugin sees leaves one pending tag on its query id, the driver takes
 * one when a compiled query of that id first arrives, and the tag then belongs to that compiled
 * query (executed again, it keeps it). A compile that no plugin saw finds no pending tag.
 */
class CompileTags<T> {
  /** Tags given to compiles of a query id that no compiled query has taken yet, oldest first. */
  readonly #pending = new WeakMap<QueryId, T[]>()
  /** Tags taken, by compiled query. */
  readonly #taken = new WeakMap<CompiledQuery, T>()
  /** Root nodes a plugin of this kind returned: a second plugin of the kind in one compile sees one. */
  readonly #tagged = new WeakSet<RootOperationNode>()
  /** Whether any tag was ever given: until then a statement looks nothing up (hot path). */
  #given = false

  /**
   * Tags the compile in progress with `value`, unless a plugin of this kind already did (the
   * innermost one, added first, wins); returns the node for the compile to go on with.
   */
  tag(args: PluginTransformQueryArgs, value: T): RootOperationNode {
    if (this.#tagged.has(args.node)) return args.node
    this.#given = true
    const pending = this.#pending.get(args.queryId)
    if (pending === undefined) this.#pending.set(args.queryId, [value])
    else pending.push(value)
    // A node of this compile's own, so a later plugin of the kind knows the compile is tagged.
    const node = Object.freeze({ ...args.node }) as RootOperationNode
    this.#tagged.add(node)
    return node
  }

  /** The tag of `query`: the one it took before, else the oldest pending one of its query id. */
  of(query: CompiledQuery): T | undefined {
    if (!this.#given) return undefined
    const taken = this.#taken.get(query)
    if (taken !== undefined) return taken
    const queryId = query.queryId
    const pending = queryId === undefined ? undefined : this.#pending.get(queryId)
    if (pending === undefined) return undefined
    const value = pending.shift()!
    if (pending.length === 0) this.#pending.delete(queryId!)
    this.#taken.set(query, value)
    return value
  }
}

const hints = new CompileTags<RouteHint>()
const readTimeouts = new CompileTags<number>()

/** The hint a compiled query was given (by a compile through {@link RouteHintPlugin}), if any. */
export function routeHintOf(query: CompiledQuery): RouteHint | undefined {
  return hints.of(query)
}

/** The read timeout a compiled query was given (through {@link ReadTimeoutPlugin}), if any. */
export function readTimeoutOf(query: CompiledQuery): number | undefined {
  return readTimeouts.of(query)
}

/** A Kysely plugin that gives every query it sees a read timeout. Prefer {@link withReadTimeout}. */
export class ReadTimeoutPlugin implements KyselyPlugin {
  readonly #ms: number

  constructor(ms: number) {
    if (typeof ms !== 'number' || !(ms > 0) || !(ms <= 2_147_483_647)) {
      throw new RangeError(
        `withReadTimeout: the timeout must be a number of milliseconds above 0 and at most 2147483647, got ${String(ms)}`,
      )
    }
    this.#ms = ms
  }

  transformQuery(args: PluginTransformQueryArgs): RootOperationNode {
    return readTimeouts.tag(args, this.#ms)
  }

  async transformResult(args: PluginTransformResultArgs): Promise<QueryResult<UnknownRow>> {
    return args.result
  }
}

/**
 * A `Kysely` whose reads on replicas are abandoned after `ms` milliseconds (their connection is
 * closed) and fail with `ReadTimeoutError`: a hard bound for one code path, beside the dialect's
 * `readTimeoutMs`. Writes and reads on the primary are not bounded.
 *
 * @example
 * ```ts
 * const rows = await withReadTimeout(db, 200).selectFrom('feed').selectAll().execute()
 * ```
 */
export function withReadTimeout<DB>(db: Kysely<DB>, ms: number): Kysely<DB> {
  return db.withPlugin(new ReadTimeoutPlugin(ms))
}

/**
 * A Kysely plugin that attaches a routing hint to every query it sees. Prefer the helpers
 * {@link onPrimary}, {@link onReplica} and {@link readOnly}.
 */
export class RouteHintPlugin implements KyselyPlugin {
  readonly #hint: RouteHint

  constructor(hint: RouteHint) {
    this.#hint = Object.freeze({ ...hint })
  }

  transformQuery(args: PluginTransformQueryArgs): RootOperationNode {
    return hints.tag(args, this.#hint)
  }

  async transformResult(args: PluginTransformResultArgs): Promise<QueryResult<UnknownRow>> {
    return args.result
  }
}

/**
 * A `Kysely` whose queries all run on the primary, whatever they are (e.g. a read that must see
 * a write made by another process a moment ago).
 *
 * @example
 * ```ts
 * const fresh = await onPrimary(db).selectFrom('account').selectAll().where('id', '=', id).execute()
 * ```
 */
export function onPrimary<DB>(db: Kysely<DB>): Kysely<DB> {
  return db.withPlugin(new RouteHintPlugin({ target: 'primary' }))
}

/**
 * A `Kysely` whose queries run on a replica (the named one, when `name` is given) regardless of
 * the consistency mode. A write through it throws `ReadOnlyViolationError` before reaching a
 * server.
 *
 * @example
 * ```ts
 * const rows = await onReplica(db, 'replica-2').selectFrom('report').selectAll().execute()
 * ```
 */
export function onReplica<DB>(db: Kysely<DB>, name?: string): Kysely<DB> {
  return db.withPlugin(new RouteHintPlugin({ target: 'replica', name }))
}

/**
 * A typed read-only view of `db` ({@link ReadonlyKysely}): `insertInto`, `updateTable`,
 * `deleteFrom`, `mergeInto`, `schema`, ... do not compile. Its queries run on replicas (subject
 * to the consistency mode), and a write smuggled in as raw SQL throws `ReadOnlyViolationError`.
 *
 * @example
 * ```ts
 * const reports = readOnly(db)
 * await reports.selectFrom('person').selectAll().execute()
 * // reports.insertInto('person') // does not compile
 * ```
 */
export function readOnly<DB>(db: Kysely<DB>): ReadonlyKysely<DB> {
  return db.withPlugin(
    new RouteHintPlugin({ target: 'read-only' }),
  ) as unknown as ReadonlyKysely<DB>
}
