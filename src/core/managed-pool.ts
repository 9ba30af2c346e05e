import { performance } from 'node:perf_hooks'
import type { ConnectionHooks } from './config.js'
import type { NodeEndpoint, NodeInfo, NodePool, PhysicalConnection, PoolCounts } from './engine.js'
import { ConnectionSetupError } from './errors.js'

/** Per node, as `getPoolStats()` reports it. */
export interface PoolStats {
  readonly node: string
  readonly role: 'primary' | 'replica'
  /** Physical connections the pool holds, idle ones included (from the pool, when it tells). */
  readonly total: number | undefined
  readonly idle: number | undefined
  /** Connections checked out through this library right now. */
  readonly inUse: number
  /** Callers waiting for a connection of this node right now. */
  readonly waiting: number
  /** The pool's size limit, when known. */
  readonly limit: number | undefined
  /** Physical connections opened and closed since the dialect started. */
  readonly opened: number
  readonly closed: number
  /** Connections closed on release because they outlived `maxLifetimeMs`. */
  readonly retiredByLifetime: number
  /** Time spent waiting for a connection (acquisitions that succeeded). */
  readonly acquireWaitMeanMs: number
  readonly acquireWaitMaxMs: number
  readonly acquisitions: number
}

/** What an engine pool adds to each physical connection for the lifecycle layer. */
export interface LifecycleConnection extends PhysicalConnection {
  /** Clock reading (`performance.now()`) when the physical connection was first handed out. */
  readonly createdAtMs: number
  /** `true` the first time this physical connection is handed out. */
  readonly isNew: boolean
  /**
   * Told when the connection is released or destroyed. `release()` asks `retire()` first and
   * closes the connection instead of pooling it when the answer is `true`.
   */
  owner: LifecycleOwner | undefined
}

/** The lifecycle layer, as a physical connection calls back into it. */
export interface LifecycleOwner {
  /** The connection is being released: `true` means close it instead (it outlived its lifetime). */
  retire(connection: LifecycleConnection): boolean
  /** The connection is being closed. */
  destroyed(connection: LifecycleConnection): void
}

/** An engine pool that can tell when the next acquisition will open a new physical connection. */
export interface LifecycleNodePool extends NodePool {
  acquire(signal?: AbortSignal): Promise<LifecycleConnection>
  /** Whether an acquisition now would make the pool open a connection (best effort, from its internals). */
  willOpen?(): boolean
}

/**
 * Wraps a node's pool with what the operators of a replicated database need: pool statistics,
 * a maximum connection lifetime (enforced on release, so it works with any pool), and the
 * `beforeConnect` / `onConnectionFailure` hooks. Engine-independent.
 */
export class ManagedPool implements NodePool, LifecycleOwner {
  readonly #inner: LifecycleNodePool
  readonly #node: NodeInfo
  readonly #maxLifetimeMs: number | undefined
  readonly #hooks: ConnectionHooks | undefined
  readonly #isConnectionError: (error: unknown) => boolean
  #inUse = 0
  #waiting = 0
  #opened = 0
  #closed = 0
  #retired = 0
  #acquisitions = 0
  #waitTotalMs = 0
  #waitMaxMs = 0
  readonly #reported = new WeakSet<object>()

  constructor(
    inner: LifecycleNodePool,
    node: NodeInfo,
    options: {
      maxLifetimeMs: number | undefined
      hooks: ConnectionHooks | undefined
      isConnectionError: (error: unknown) => boolean
    },
  ) {
    this.#inner = inner
    this.#node = node
    this.#maxLifetimeMs = options.maxLifetimeMs
    this.#hooks = options.hooks
    this.#isConnectionError = options.isConnectionError
  }

  init(signal?: AbortSignal): Promise<void> {
    return this.#inner.init(signal)
  }

  end(): Promise<void> {
    return this.#inner.end()
  }

  endpoint(): NodeEndpoint | undefined {
    return this.#inner.endpoint?.()
  }

  counts(): PoolCounts | undefined {
    return this.#inner.counts?.()
  }

  async acquire(signal?: AbortSignal): Promise<PhysicalConnection> {
    const before = this.#hooks?.beforeConnect
    if (before !== undefined && this.#inner.willOpen?.() === true) {
      await before(this.#node)
    }
    const started = performance.now()
    this.#waiting++
    let connection: LifecycleConnection
    try {
      connection = await this.#inner.acquire(signal)
    } catch (error) {
      if (error instanceof ConnectionSetupError) {
        // A connection was opened, its setup failed, and it was closed at once.
        this.#opened++
        this.#closed++
      }
      if (this.#isConnectionError(error)) this.connectionFailed(error)
      throw error
    } finally {
      this.#waiting--
    }
    const waited = performance.now() - started
    this.#acquisitions++
    this.#waitTotalMs += waited
    if (waited > this.#waitMaxMs) this.#waitMaxMs = waited
    if (connection.isNew) this.#opened++
    this.#inUse++
    // No wrapper object per checkout: the connection calls back on release (hot path).
    connection.owner = this
    return connection
  }

  retire(connection: LifecycleConnection): boolean {
    this.#inUse--
    if (
      this.#maxLifetimeMs !== undefined &&
      performance.now() - connection.createdAtMs >= this.#maxLifetimeMs
    ) {
      this.#closed++
      this.#retired++
      return true
    }
    return false
  }

  destroyed(): void {
    this.#inUse--
    this.#closed++
  }

  /** Reports a connection-level failure to `hooks.onConnectionFailure` (once per error object). */
  connectionFailed(error: unknown): void {
    if (typeof error === 'object' && error !== null) {
      if (this.#reported.has(error)) return
      this.#reported.add(error)
    }
    try {
      this.#hooks?.onConnectionFailure?.(error, this.#node)
    } catch {
      // A hook's error must not replace the original one.
    }
  }

  stats(): PoolStats {
    const counts = this.#inner.counts?.()
    // Connections the pool closed by itself (idle timeout) are seen as the gap between what was
    // opened and what the pool still holds.
    const closed =
      counts === undefined ? this.#closed : Math.max(this.#closed, this.#opened - counts.total)
    return {
      node: this.#node.name,
      role: this.#node.role,
      total: counts?.total,
      idle: counts?.idle,
      inUse: this.#inUse,
      waiting: Math.max(this.#waiting, counts?.waiting ?? 0),
      limit: counts?.limit,
      opened: this.#opened,
      closed,
      retiredByLifetime: this.#retired,
      acquireWaitMeanMs: this.#acquisitions === 0 ? 0 : this.#waitTotalMs / this.#acquisitions,
      acquireWaitMaxMs: this.#waitMaxMs,
      acquisitions: this.#acquisitions,
    }
  }
}
