import { debugEnabled, debugEvent, debugRoute } from '../observability/debug-log.js'
import type { Metrics } from '../observability/metrics.js'
import type { ReplicationEvent, RouteEvent, RouteReason } from './contracts/events.js'
import type { RoutingStats } from './contracts/stats.js'
import type { NodeRuntime } from './node-runtime.js'

/** Where a statement was sent and why, as the executor reached it. */
export interface RouteDecision {
  readonly node: NodeRuntime
  readonly reason: RouteReason
  /** Time spent waiting for the replica to catch up (causal reads). */
  readonly waitedMs: number | undefined
}

/**
 * Where routing decisions and notable events go: the counters behind `getRoutingStats()`, the
 * user's `onRoute` and `onEvent` listeners, the OpenTelemetry metrics and the `NODE_DEBUG` log.
 * A listener's error never reaches a statement.
 */
export class RoutingStatistics {
  /**
   * The OpenTelemetry metrics, set once by `Cluster.init` when `metrics` is configured;
   * `undefined` (one optional call that does nothing) otherwise. The executor and the pools
   * record through it too.
   */
  metrics: Metrics | undefined
  readonly #onRoute: ((event: RouteEvent) => void) | undefined
  readonly #onEvent: ((event: ReplicationEvent) => void) | undefined
  readonly #byReason: Record<string, number> = Object.create(null)
  /** Every node a statement was routed to, removed ones included (each counts its own). */
  readonly #routedNodes: NodeRuntime[] = []
  #causalWaits = 0
  #causalWaitMs = 0
  #hedges = 0
  #hedgesWon = 0

  constructor(listeners: {
    readonly onRoute?: ((event: RouteEvent) => void) | undefined
    readonly onEvent?: ((event: ReplicationEvent) => void) | undefined
  }) {
    this.#onRoute = listeners.onRoute
    this.#onEvent = listeners.onEvent
  }

  /** Counts a routing decision (of `sql`) and reports it to `onRoute`. */
  route(decision: RouteDecision, sql: string, detail?: string): void {
    const { node, reason, waitedMs } = decision
    this.#byReason[reason] = (this.#byReason[reason] ?? 0) + 1
    if (node.routed++ === 0) this.#routedNodes.push(node)
    this.metrics?.route(node.name, node.info.role, reason)
    if (this.#onRoute === undefined && !debugEnabled) return
    const event: RouteEvent = {
      node: node.name,
      role: node.info.role,
      reason,
      sql,
      detail,
      waitedMs,
    }
    if (debugEnabled) debugRoute(event)
    if (this.#onRoute !== undefined) {
      try {
        this.#onRoute(event)
      } catch {
        // A listener's error must not fail the statement or leak the connection it was routed to.
      }
    }
  }

  /** Reports a notable event to `onEvent`. */
  emit(event: ReplicationEvent): void {
    if (debugEnabled) debugEvent(event)
    try {
      this.#onEvent?.(event)
    } catch {
      // A listener's error must not break routing.
    }
  }

  recordCausalWait(ms: number): void {
    this.#causalWaits++
    this.#causalWaitMs += ms
    this.metrics?.causalWait(ms)
  }

  /** A hedged read sent its second statement (its route was reported with reason `'hedge'`). */
  hedgeSent(): void {
    this.#hedges++
  }

  /** A hedged read's second statement answered first. */
  hedgeWon(): void {
    this.#hedgesWon++
    this.metrics?.hedgeWon()
  }

  /** Statements per node name (a name reused by a node added again sums both). */
  #byNode(): Record<string, number> {
    const byNode: Record<string, number> = Object.create(null)
    for (const node of this.#routedNodes) byNode[node.name] = (byNode[node.name] ?? 0) + node.routed
    return { ...byNode }
  }

  snapshot(): RoutingStats {
    return {
      byReason: { ...this.#byReason },
      byNode: this.#byNode(),
      causalWaits: this.#causalWaits,
      causalWaitMs: this.#causalWaitMs,
      hedges: this.#hedges,
      hedgesWon: this.#hedgesWon,
    }
  }
}
