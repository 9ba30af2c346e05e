import type {
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
 * Hints by query id. Kysely hands the same `QueryId` object to plugins and, inside the compiled
 * query, to the driver, so the hint survives every later plugin's tree transformations.
 */
const hints = new WeakMap<QueryId, RouteHint>()

/** The hint of a compiled query, if any. */
export function routeHintOf(queryId: QueryId | undefined): RouteHint | undefined {
  return queryId === undefined || !hintsGiven ? undefined : hints.get(queryId)
}

/** Whether any hint was ever given: until then a statement looks nothing up (hot path). */
let hintsGiven = false

/** Read timeouts by query id (see {@link withReadTimeout}). */
const readTimeouts = new WeakMap<QueryId, number>()

/** The read timeout of a compiled query, if one was given. */
export function readTimeoutOf(queryId: QueryId | undefined): number | undefined {
  return queryId === undefined || !timeoutsGiven ? undefined : readTimeouts.get(queryId)
}

/** Whether any read timeout was ever given (see {@link hintsGiven}). */
let timeoutsGiven = false

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
    if (!readTimeouts.has(args.queryId)) {
      timeoutsGiven = true
      readTimeouts.set(args.queryId, this.#ms)
    }
    return args.node
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
    if (!hints.has(args.queryId)) {
      hintsGiven = true
      hints.set(args.queryId, this.#hint)
    }
    return args.node
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
