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
 * What the library's plugins attached to one compile of a query: the first route hint (the
 * innermost plugin's) and the first read timeout.
 */
interface CompileTags {
  hint: RouteHint | undefined
  readTimeoutMs: number | undefined
  /** The root node the first of the library's plugins was given in this compile. */
  readonly input: RootOperationNode
}

/**
 * Tags of compiles, for the driver to find on the compiled query. Kysely hands plugins a query's
 * `QueryId`, not the compiled query, and a `QueryId` outlives one compile: a builder keeps it,
 * and a raw `sql` template keeps it across executions through different `Kysely` instances.
 * Keyed by `QueryId` alone, a hint given to `sql\`...\`.execute(onReplica(db))` stayed on every
 * later `.execute(db)` of the same template.
 *
 * So the first of the library's plugins in a compile returns a copy of the root node, and the
 * compile's tags are kept against that copy; the library's later plugins in the compile find
 * them on the node they are given and add theirs. A compiled query carries the root node the last
 * plugin returned: when that is the copy (no other plugin after the library's), the driver finds
 * the tags by identity. When a plugin of another library rebuilt the tree afterwards, it takes the
 * oldest tags still pending for the query id, unless its root node is the very node the tags'
 * compile started from (a compile that went through no plugin at all). Taken tags stay with the
 * compiled query, which may run again.
 */
class Tags {
  /** Tags by the root node the library's first plugin of the compile returned. */
  readonly #byNode = new WeakMap<RootOperationNode, CompileTags>()
  /** Tags no compiled query has taken yet, by query id, oldest first (at most {@link MAX_PENDING}). */
  readonly #pending = new WeakMap<QueryId, CompileTags[]>()
  /** Tags taken, by compiled query. */
  readonly #taken = new WeakMap<CompiledQuery, CompileTags>()
  /** Whether any tag was ever given: until then a statement looks nothing up (hot path). */
  given = false

  /** The tags of the compile in progress (made on its first plugin), and its root node from now on. */
  of(args: PluginTransformQueryArgs): {
    readonly tags: CompileTags
    readonly node: RootOperationNode
  } {
    const known = this.#byNode.get(args.node)
    if (known !== undefined) return { tags: known, node: args.node }
    this.given = true
    const tags: CompileTags = { hint: undefined, readTimeoutMs: undefined, input: args.node }
    const node = Object.freeze({ ...args.node }) as RootOperationNode
    this.#byNode.set(node, tags)
    const pending = this.#pending.get(args.queryId)
    if (pending === undefined) this.#pending.set(args.queryId, [tags])
    else {
      // Compiles never run (a hinted builder used as a subquery, an execution aborted before it
      // reached the driver) leave tags no compiled query takes: the oldest go.
      if (pending.length >= MAX_PENDING) pending.shift()
      pending.push(tags)
    }
    return { tags, node }
  }

  /** The tags `query` was compiled with, if any (see the class). */
  taken(query: CompiledQuery): CompileTags | undefined {
    const taken = this.#taken.get(query)
    if (taken !== undefined) return taken
    const queryId = query.queryId
    const pending = queryId === undefined ? undefined : this.#pending.get(queryId)
    let tags = this.#byNode.get(query.query)
    if (tags === undefined) {
      const oldest = pending?.[0]
      if (oldest === undefined || oldest.input === query.query) return undefined
      tags = oldest
    }
    if (pending !== undefined) {
      const at = pending.indexOf(tags)
      if (at >= 0) pending.splice(at, 1)
      if (pending.length === 0) this.#pending.delete(queryId!)
    }
    this.#taken.set(query, tags)
    return tags
  }
}

/** Tags kept pending per query id at most (see {@link Tags}). */
const MAX_PENDING = 16

const tags = new Tags()

/** The hint a compiled query was given (by a compile through {@link RouteHintPlugin}), if any. */
export function routeHintOf(query: CompiledQuery): RouteHint | undefined {
  return tags.given ? tags.taken(query)?.hint : undefined
}

/** The read timeout a compiled query was given (through {@link ReadTimeoutPlugin}), if any. */
export function readTimeoutOf(query: CompiledQuery): number | undefined {
  return tags.given ? tags.taken(query)?.readTimeoutMs : undefined
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
    const compile = tags.of(args)
    compile.tags.readTimeoutMs ??= this.#ms
    return compile.node
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
    const compile = tags.of(args)
    compile.tags.hint ??= this.#hint
    return compile.node
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
