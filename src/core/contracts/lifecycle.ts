import type { NodePool, PhysicalConnection } from './engine.js'

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

/**
 * Who checks connections out of an engine pool (the lifecycle layer): told synchronously, inside
 * the pool's own callback, so that a checkout costs one promise.
 */
export interface CheckoutOwner {
  /**
   * The pool handed `connection` out for a checkout that started at clock reading `sinceMs`: the
   * connection to resolve the checkout with (or a promise of one, when it had to be replaced).
   */
  checkedOut(
    connection: LifecycleConnection,
    sinceMs: number,
    signal: AbortSignal | undefined,
  ): PhysicalConnection | Promise<PhysicalConnection>
  /** The checkout failed: the error to reject it with. */
  checkoutFailed(error: unknown): unknown
}

/** An engine pool that can tell when the next acquisition will open a new physical connection. */
export interface LifecycleNodePool extends NodePool {
  /** A connection; with `owner`, what the owner makes of it (see {@link CheckoutOwner}). */
  acquire(signal?: AbortSignal): Promise<LifecycleConnection>
  acquire(
    signal: AbortSignal | undefined,
    owner: CheckoutOwner,
    sinceMs: number,
  ): Promise<PhysicalConnection>
  /** Whether an acquisition now would make the pool open a connection (best effort, from its internals). */
  willOpen?(): boolean
  /**
   * {@link acquire} with `owner`, calling `callback` (exactly once) instead of settling a promise:
   * the executor's plain reads then make one promise per read. Optional.
   */
  checkout?(
    signal: AbortSignal | undefined,
    owner: CheckoutOwner,
    sinceMs: number,
    callback: (error: unknown, connection?: PhysicalConnection) => void,
  ): void
  /**
   * Whether the pool has no idle connection now (best effort): a checkout then waits for one
   * released or opened, and a waiter may be handed a connection opened for it later.
   */
  idleNone?(): boolean
}
