import { performance } from 'node:perf_hooks'
import type { ConnectionHooks } from './config.js'
import type {
  NodeEndpoint,
  NodeInfo,
  NodePool,
  PhysicalConnection,
  PoolCounts,
} from './contracts/engine.js'
import { ConnectionSetupError } from './contracts/errors.js'
import type {
  LifecycleConnection,
  LifecycleNodePool,
  LifecycleOwner,
} from './contracts/lifecycle.js'
import type { PoolStats } from './contracts/stats.js'

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

  constructor(options: {
    readonly inner: LifecycleNodePool
    readonly node: NodeInfo
    readonly maxLifetimeMs: number | undefined
    readonly hooks: ConnectionHooks | undefined
    readonly isConnectionError: (error: unknown) => boolean
  }) {
    this.#inner = options.inner
    this.#node = options.node
    this.#maxLifetimeMs = options.maxLifetimeMs
    this.#hooks = options.hooks
    this.#isConnectionError = options.isConnectionError
  }

  init(signal?: AbortSignal): Promise<void> {
    return this.#inner.init(signal)
  }

  end(graceMs?: number): Promise<void> {
    return this.#inner.end(graceMs)
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
