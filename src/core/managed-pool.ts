import { performance } from 'node:perf_hooks'
import type { Metrics } from '../observability/metrics.js'
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
  CheckoutOwner,
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
export class ManagedPool implements NodePool, LifecycleOwner, CheckoutOwner {
  readonly #inner: LifecycleNodePool
  readonly #node: NodeInfo
  /** The node's name and role: one object shared with the node's runtime, its hooks and its pool's set-up. */
  get info(): NodeInfo {
    return this.#node
  }
  readonly #maxLifetimeMs: number | undefined
  readonly #hooks: ConnectionHooks | undefined
  readonly #isConnectionError: (error: unknown) => boolean
  /** Connections created before this clock reading are retired (the node changed role). */
  #generationAtMs = Number.NEGATIVE_INFINITY
  #inUse = 0
  #waiting = 0
  #opened = 0
  #closed = 0
  #retired = 0
  #acquisitions = 0
  #waitTotalMs = 0
  #waitMaxMs = 0
  readonly #reported = new WeakSet<object>()
  /** Metrics (observability/metrics.ts), set by `Cluster.init` when configured. */
  metrics: Metrics | undefined

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

  /** A connection outside the pool (see {@link NodePool.openControl}), when the engine can open one. */
  get openControl(): ((connectTimeoutMs: number) => Promise<PhysicalConnection>) | undefined {
    const inner = this.#inner
    return inner.openControl === undefined
      ? undefined
      : (connectTimeoutMs) => inner.openControl!(connectTimeoutMs)
  }

  /** Whether the pool has no idle connection now (best effort; see {@link LifecycleNodePool.idleNone}). */
  idleNone(): boolean {
    return this.#inner.idleNone?.() === true
  }

  /** Whether an acquisition now would make the pool open a connection (best effort). */
  willOpen(): boolean {
    return this.#inner.willOpen?.() === true
  }

  connectTimeoutMs(): number | undefined {
    return this.#inner.connectTimeoutMs?.()
  }

  endpoint(): NodeEndpoint | undefined {
    return this.#inner.endpoint?.()
  }

  counts(): PoolCounts | undefined {
    return this.#inner.counts?.()
  }

  /**
   * A connection of the node. One promise, the engine pool's own: the accounting runs inside the
   * pool's callback ({@link checkedOut}). `sinceMs`: the clock reading the caller took just
   * before, to count the wait from (saves reading it again).
   */
  acquire(signal?: AbortSignal, sinceMs?: number): Promise<PhysicalConnection> {
    const before = this.#hooks?.beforeConnect
    if (before !== undefined && this.#inner.willOpen?.() === true) {
      return this.#acquireAfter(before, signal)
    }
    this.#waiting++
    return this.#inner.acquire(signal, this, sinceMs ?? performance.now())
  }

  /** {@link acquire} with a callback, called once (when {@link checksOut}). */
  checkout(
    signal: AbortSignal | undefined,
    sinceMs: number,
    callback: (error: unknown, connection?: PhysicalConnection) => void,
  ): void {
    if (!this.checksOut)
      throw new Error(`node "${this.#node.name}": checkout() on a pool without it`)
    this.#waiting++
    this.#inner.checkout!(signal, this, sinceMs, callback)
  }

  /**
   * Whether {@link checkout} can be used: the engine pool has callbacks and no `beforeConnect`
   * hook must run first.
   */
  get checksOut(): boolean {
    return this.#inner.checkout !== undefined && this.#hooks?.beforeConnect === undefined
  }

  async #acquireAfter(
    before: (node: NodeInfo) => void | Promise<void>,
    signal: AbortSignal | undefined,
  ): Promise<PhysicalConnection> {
    await before(this.#node)
    this.#waiting++
    return this.#inner.acquire(signal, this, performance.now())
  }

  /** @internal {@link CheckoutOwner}: the engine pool handed `connection` out. */
  checkedOut(
    connection: LifecycleConnection,
    sinceMs: number,
    signal: AbortSignal | undefined,
  ): PhysicalConnection | Promise<PhysicalConnection> {
    if (connection.createdAtMs <= this.#generationAtMs) {
      // Set up for the node's former role: closed, and another taken (or opened) instead.
      this.#closed++
      this.#retired++
      connection.owner = undefined
      connection.destroy()
      return this.#inner.acquire(signal, this, sinceMs)
    }
    this.#waiting--
    const now = performance.now()
    connection.checkedOutAtMs = now
    const waited = now - sinceMs
    this.#acquisitions++
    this.#waitTotalMs += waited
    if (waited > this.#waitMaxMs) this.#waitMaxMs = waited
    this.metrics?.connectionWait(this.#node.name, waited) // Metrics
    if (connection.isNew) this.#opened++
    this.#inUse++
    // No wrapper object per checkout: the connection calls back on release (hot path).
    connection.owner = this
    return connection
  }

  /** @internal {@link CheckoutOwner}: the checkout failed. */
  checkoutFailed(error: unknown): unknown {
    this.#waiting--
    if (error instanceof ConnectionSetupError) {
      // A connection was opened, its setup failed, and it was closed at once.
      this.#opened++
      this.#closed++
    }
    if (this.#isConnectionError(error)) this.connectionFailed(error)
    return error
  }

  /** Every connection open now is closed on its next release or checkout (the node changed role). */
  retireAll(): void {
    this.#generationAtMs = performance.now()
  }

  retire(connection: LifecycleConnection): boolean {
    this.#inUse--
    if (connection.createdAtMs <= this.#generationAtMs) {
      this.#closed++
      this.#retired++
      return true
    }
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
