import { AsyncLocalStorage } from 'node:async_hooks'
import { InvalidCausalTokenError } from '../core/contracts/errors.js'
import { decodeCausalToken, encodeCausalToken } from './causal-token.js'
import { mergePositions, type ReplicationPosition } from './position.js'

/** What a scope knows of its writes on one cluster (one dialect instance). */
export interface ClusterWrites {
  /** Merged replication position of the scope's writes (and of causal tokens it was given). */
  position: ReplicationPosition | undefined
  /** Clock reading (`performance.now()`) of the last write, for `'sticky'` mode and its window. */
  lastWriteAtMs: number | undefined
  /** Clock reading of the last write whose position the server did not report: reads fall back to sticky. */
  unknownWriteAtMs: number | undefined
}

/** The token positions of a scope opened without a causal token: none, shared. */
const NO_TOKENS: readonly ReplicationPosition[] = Object.freeze([])

/**
 * A read-your-writes scope. Writes recorded in a scope count for it and for every enclosing scope;
 * reads in a scope must observe the writes of the scope and of its enclosing scopes.
 */
export class ConsistencyScope {
  readonly parent: ConsistencyScope | undefined
  /** Writes per cluster, made on the first one (a scope is opened per request, most never write). */
  #clusters: Map<object, ClusterWrites> | undefined
  readonly #tokenPositions: readonly ReplicationPosition[]
  /** Clusters warned about a foreign token (made on the first warning: scopes are made per request). */
  #warned: WeakSet<object> | undefined

  constructor(
    parent: ConsistencyScope | undefined,
    tokenPositions: readonly ReplicationPosition[] = NO_TOKENS,
  ) {
    this.parent = parent
    this.#tokenPositions = tokenPositions
  }

  /** The scope's own record for a cluster (created on first use). */
  writesFor(cluster: object, kind: ReplicationPosition['kind'], nowMs: number): ClusterWrites {
    let writes = this.#clusters?.get(cluster)
    if (writes === undefined) {
      writes = { position: undefined, lastWriteAtMs: undefined, unknownWriteAtMs: undefined }
      for (const position of this.#tokenPositions) {
        if (position.kind === kind) {
          writes.position = mergePositions(writes.position, position)
          writes.lastWriteAtMs = nowMs
        }
      }
      ;(this.#clusters ??= new Map()).set(cluster, writes)
    }
    return writes
  }

  /** Records a write in this scope and every enclosing one. */
  recordWrite(
    cluster: object,
    kind: ReplicationPosition['kind'],
    position: ReplicationPosition | undefined,
    nowMs: number,
  ): void {
    for (let scope: ConsistencyScope | undefined = this; scope; scope = scope.parent) {
      const writes = scope.writesFor(cluster, kind, nowMs)
      writes.lastWriteAtMs = nowMs
      if (position === undefined) {
        writes.unknownWriteAtMs = nowMs
      } else {
        writes.position = mergePositions(writes.position, position)
        // A position the primary reported after an earlier write of unknown position covers it:
        // the primary's positions only move forward. Reads no longer need to stay sticky.
        writes.unknownWriteAtMs = undefined
      }
    }
  }

  /**
   * What a read in this scope must observe: positions merged over the scope and its enclosing
   * scopes, the latest write time and the latest write of unknown position.
   */
  requirement(
    cluster: object,
    kind: ReplicationPosition['kind'],
    nowMs: number,
  ): Readonly<ClusterWrites> {
    let position: ReplicationPosition | undefined
    let lastWriteAtMs: number | undefined
    let unknownWriteAtMs: number | undefined
    /** The one scope's records when a single scope of the chain has any (the common case). */
    let only: ClusterWrites | undefined
    let seen = 0
    for (let scope: ConsistencyScope | undefined = this; scope; scope = scope.parent) {
      // Read without creating records: a read in a scope that wrote nothing allocates nothing.
      const writes =
        scope.#clusters?.get(cluster) ??
        (scope.#tokenPositions.length > 0 ? scope.writesFor(cluster, kind, nowMs) : undefined)
      if (writes === undefined) continue
      seen += 1
      only = writes
      if (writes.position !== undefined) {
        position =
          position === undefined ? writes.position : mergePositions(position, writes.position)
      }
      lastWriteAtMs = maxDefined(lastWriteAtMs, writes.lastWriteAtMs)
      unknownWriteAtMs = maxDefined(unknownWriteAtMs, writes.unknownWriteAtMs)
    }
    if (seen === 0) return NOTHING_WRITTEN
    return seen === 1 ? only! : { position, lastWriteAtMs, unknownWriteAtMs }
  }

  /**
   * The kind of a causal token given to this scope (or an enclosing one) that a cluster of engine
   * `kind` cannot use, the first time that cluster asks; `undefined` otherwise. A token for
   * another engine is not an error (a process may use several engines) but it is worth a word.
   */
  foreignTokenKind(cluster: object, kind: ReplicationPosition['kind']): string | undefined {
    for (let scope: ConsistencyScope | undefined = this; scope; scope = scope.parent) {
      if (scope.#tokenPositions.length === 0) continue
      if (scope.#tokenPositions.some((p) => p.kind === kind)) return undefined
      if (scope.#warned?.has(cluster) === true) return undefined
      ;(scope.#warned ??= new WeakSet()).add(cluster)
      return scope.#tokenPositions[0]!.kind
    }
    return undefined
  }

  /** Per cluster, the merged position reads in this scope must observe (over enclosing scopes too). */
  requiredPositions(): Map<object, ReplicationPosition> {
    const out = new Map<object, ReplicationPosition>()
    for (let scope: ConsistencyScope | undefined = this; scope; scope = scope.parent) {
      for (const [cluster, writes] of scope.#clusters ?? []) {
        if (writes.position !== undefined) {
          const seen = out.get(cluster)
          out.set(
            cluster,
            seen === undefined ? writes.position : mergePositions(seen, writes.position),
          )
        }
      }
      for (const position of scope.#tokenPositions) {
        const key = tokenKey(position.kind)
        const seen = out.get(key)
        out.set(key, seen === undefined ? position : mergePositions(seen, position))
      }
    }
    return out
  }
}

const NOTHING_WRITTEN: ClusterWrites = Object.freeze({
  position: undefined,
  lastWriteAtMs: undefined,
  unknownWriteAtMs: undefined,
})

const tokenKeys = new Map<string, object>()
function tokenKey(kind: string): object {
  let key = tokenKeys.get(kind)
  if (key === undefined) {
    key = { kind }
    tokenKeys.set(kind, key)
  }
  return key
}

function maxDefined(a: number | undefined, b: number | undefined): number | undefined {
  if (a === undefined) return b
  if (b === undefined) return a
  return a > b ? a : b
}

const storage = new AsyncLocalStorage<ConsistencyScope>()

/** The scope of code that runs in no `consistencyScope`, `db.connection()` or transaction. */
const processScope = new ConsistencyScope(undefined)

/** The innermost explicit scope, if any. */
export function explicitScope(): ConsistencyScope | undefined {
  return storage.getStore()
}

/** The scope reads and writes count in right now: the innermost explicit one, else the process-wide one. */
export function currentScope(): ConsistencyScope {
  return storage.getStore() ?? processScope
}

/** The process-wide scope (exposed for the library's connection scopes). */
export function processWideScope(): ConsistencyScope {
  return processScope
}

/** Options of {@link consistencyScope}. */
export interface ConsistencyScopeOptions {
  /**
   * A token from {@link getCausalToken} (e.g. from a cookie or header): reads in the scope
   * observe the writes it stands for. Untrusted input: a malformed token throws
   * `InvalidCausalTokenError` before `fn` runs.
   */
  readonly causalToken?: string | undefined
}

/**
 * Runs `fn` in a read-your-writes scope carried by `AsyncLocalStorage`: writes made inside count
 * for reads inside (and for enclosing scopes), nowhere else. A web server opens one per request.
 *
 * @example
 * ```ts
 * app.use((req, res, next) =>
 *   consistencyScope(next, { causalToken: req.get('x-causal-token') }),
 * )
 * ```
 */
export function consistencyScope<T>(fn: () => T, options?: ConsistencyScopeOptions): T {
  const token = options?.causalToken
  const tokenPositions = token === undefined ? undefined : [decodeCausalToken(token)]
  return storage.run(new ConsistencyScope(storage.getStore(), tokenPositions), fn)
}

/**
 * A compact, versioned causal token for the current scope's writes, to carry read-your-writes to
 * another request or process (a cookie or a header): pass it to `consistencyScope(fn, { causalToken })`
 * there. `undefined` when the scope wrote nothing with a known position. With several replicated
 * dialects in one process, use `dialect.getCausalToken()` instead.
 *
 * @example
 * ```ts
 * await db.insertInto('post').values(post).execute()
 * res.setHeader('x-causal-token', getCausalToken() ?? '')
 * ```
 */
export function getCausalToken(): string | undefined {
  const positions = [...currentScope().requiredPositions().values()]
  if (positions.length === 0) return undefined
  let merged = positions[0]!
  for (const p of positions.slice(1)) {
    if (p.kind !== merged.kind) {
      throw new InvalidCausalTokenError(
        'the current scope wrote to clusters of different engines: take a token per cluster with dialect.getCausalToken()',
      )
    }
    merged = mergePositions(merged, p)
  }
  return encodeCausalToken(merged)
}
