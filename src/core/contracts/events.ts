import type { ClassificationReason } from '../../routing/classification.js'

/**
 * Why a statement ran where it ran. Stable strings, documented in docs/routing.md.
 *
 * - `'read'`: a plain read on a replica.
 * - `'write'`: a data-modifying statement or DDL.
 * - `'locking-read'`: a read with a lock clause (`for update`, `for share`, `lock in share mode`, ...).
 * - `'primary-function'`: the statement calls a function that must run on the primary.
 * - `'session-state'`: the statement creates session state (`SET`, `USE`, `PREPARE`, ...).
 * - `'transaction-control'`: raw `BEGIN`/`COMMIT`/`SAVEPOINT`/...
 * - `'unclassified'`: raw SQL the router could not classify (it goes to the primary).
 * - `'transaction'`: inside a read-write transaction (everything runs on the primary).
 * - `'read-only-transaction'`: inside a `read only` transaction (runs on one replica).
 * - `'session-pinned'`: an earlier statement of the `db.connection()` scope created session state.
 * - `'hint'`: forced by `onPrimary(db)` / `onReplica(db)`.
 * - `'default-route'`: `defaultRoute: 'primary'` and the read did not come through `onReplica(db)` or `readOnly(db)`.
 * - `'no-replica'`: no replica was usable, the read fell back to the primary.
 * - `'retry'`: the read was retried after a connection failure on another node.
 * - `'sticky'`: a read after a write in the scope (`'sticky'` mode, or `'causal'` when positions are unknown).
 * - `'causal-caught-up'`: a replica already known to have applied the scope's writes.
 * - `'causal-waited'`: a replica that applied the scope's writes within the bounded wait.
 * - `'causal-timeout'`: no replica applied them in time: the read ran on the primary.
 * - `'causal-behind'`: every replica was known to be too far behind to wait for: the read ran on the primary.
 * - `'primary-changed'`: the primary refused the statement before running it (read-only, or gone) and it ran on the node that took over.
 * - `'hedge'`: a hedged read's second statement, sent to another replica because the first had not answered in time (`hedge` setting).
 */
export type RouteReason =
  // The classifier's reasons (`'read'` ... `'unclassified'`), then the router's own.
  | ClassificationReason
  | 'transaction'
  | 'read-only-transaction'
  | 'session-pinned'
  | 'hint'
  | 'default-route'
  | 'no-replica'
  | 'retry'
  | 'sticky'
  | 'causal-caught-up'
  | 'causal-waited'
  | 'causal-timeout'
  | 'causal-behind'
  | 'primary-changed'
  | 'hedge'

/** One routing decision, reported through `onRoute`. */
export interface RouteEvent {
  /** Name of the node the statement runs on. */
  readonly node: string
  readonly role: 'primary' | 'replica'
  readonly reason: RouteReason
  /** The compiled SQL (parameters are not included). */
  readonly sql: string
  /** A detail of the rule that decided (the lock clause, the function name), when there is one. */
  readonly detail?: string | undefined
  /** Milliseconds spent waiting for the replica to catch up (`'causal-waited'` / `'causal-timeout'`). */
  readonly waitedMs?: number | undefined
}

/** Node state names reported by `getReplicaInfo()`. */
export type NodeState = 'healthy' | 'cooling-down' | 'lagging' | 'down'

/** Notable events other than routing decisions, reported through `onEvent`. */
export type ReplicationEvent =
  | {
      readonly type: 'node-down'
      readonly node: string
      readonly error: unknown
      readonly retryInMs: number
    }
  | { readonly type: 'node-up'; readonly node: string }
  | { readonly type: 'lag-exceeded'; readonly node: string; readonly lagMs: number | null }
  | { readonly type: 'lag-recovered'; readonly node: string; readonly lagMs: number }
  | { readonly type: 'not-read-only'; readonly node: string }
  | { readonly type: 'causal-unsupported'; readonly node: string; readonly message: string }
  | { readonly type: 'causal-token-ignored'; readonly node: string; readonly message: string }
  | { readonly type: 'probe-failed'; readonly node: string; readonly error: unknown }
  | { readonly type: 'pool-oversized'; readonly node: string; readonly message: string }
  | {
      readonly type: 'primary-changed'
      readonly node: string
      readonly from: string
      readonly to: string
    }
  | { readonly type: 'role-changed'; readonly node: string; readonly role: 'primary' | 'replica' }
  | { readonly type: 'topology-conflict'; readonly node: string; readonly message: string }
  | { readonly type: 'replica-added'; readonly node: string }
  | { readonly type: 'replica-removed'; readonly node: string }

/** Where a statement would run, as `explainRoute` reports it. */
export interface RouteExplanation {
  readonly role: 'primary' | 'replica'
  /** The node, when the rules name one (the primary, a named replica, a transaction's node). */
  readonly node: string | undefined
  /** The reason `onRoute` would report (`'causal-waited'` when it would wait for a replica first). */
  readonly reason: RouteReason
  /** The replicas the selector would pick among (replica routes). */
  readonly candidates?: readonly string[]
}
