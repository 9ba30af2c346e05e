import type { NodeState } from './events.js'

/** Per node, as `getReplicaInfo()` reports it. */
export interface ReplicaInfo {
  readonly name: string
  readonly role: 'primary' | 'replica'
  readonly state: NodeState
  /** Peak-EWMA latency estimate (ms), when there are samples. */
  readonly latencyMs: number | undefined
  /** Round trip of the last successful probe (ms). */
  readonly lastProbeRttMs: number | undefined
  /** Replication lag (ms); `null` when replication is stopped; `undefined` when unknown. */
  readonly lagMs: number | null | undefined
  /** Applied replication position as the engine prints it, when known. */
  readonly position: string | undefined
  readonly inFlight: number
  readonly readsServed: number
  readonly errors: number
  /** Why the node last went down (the error's message), if it ever did. */
  readonly lastError: string | undefined
  /** When a cooling-down node is next tried (epoch milliseconds). */
  readonly nextAttemptAt: Date | undefined
}

/** Counters of routing decisions, by reason and by node. */
export interface RoutingStats {
  readonly byReason: Readonly<Record<string, number>>
  readonly byNode: Readonly<Record<string, number>>
  /** Causal waits run, and the milliseconds spent in them. */
  readonly causalWaits: number
  readonly causalWaitMs: number
  /** Hedged reads: second statements sent (`hedge` setting), and how many of them answered first. */
  readonly hedges: number
  readonly hedgesWon: number
}

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
