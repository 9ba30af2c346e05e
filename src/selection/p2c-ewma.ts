import { peakEwmaLoad } from '../health/node-load.js'
import { randomIndex } from './random.js'
import type { ReplicaCandidate, ReplicaSelector, SelectionContext } from './replica-selector.js'

/**
 * Finagle's power of two choices over a latency-based load: two distinct candidates are drawn at
 * random and the one with the lower load wins (ties: random). The load,
 * `latencyEstimateMs(now) * (inFlight + 1)` (the mean age of the queries in flight replaces the
 * estimate when larger), with a rule for nodes without history, is the load metric's
 * ({@link peakEwmaLoad}); the latency estimate belongs to each node's stats: an outlier-robust
 * median of recent latencies (`LatencyMedian`) rather than Finagle's peak-EWMA, whose peaks
 * held every node's estimate at the level of the last client-side stall (the selector keeps
 * the name). O(1) per pick; comparing two random nodes
 * instead of taking the global minimum keeps clients from herding onto the same node on stale
 * figures.
 *
 * @example
 * ```ts
 * new ReplicatedPostgresDialect({ primary, replicas, selector: new P2cEwmaSelector() })
 * ```
 */
export class P2cEwmaSelector implements ReplicaSelector {
  select(
    candidates: readonly ReplicaCandidate[],
    context: SelectionContext,
  ): ReplicaCandidate | undefined {
    const n = candidates.length
    if (n <= 1) return candidates[0]
    let i: number
    let j: number
    if (n === 2) {
      // The common pair: one draw orders it (the tie-break below draws again).
      i = context.random() < 0.5 ? 0 : 1
      j = 1 - i
    } else {
      i = randomIndex(n, context.random)
      j = randomIndex(n - 1, context.random)
      if (j >= i) j += 1
    }
    const a = candidates[i]!
    const b = candidates[j]!
    const costA = peakEwmaLoad(a.stats, context.nowMs)
    const costB = peakEwmaLoad(b.stats, context.nowMs)
    if (costA < costB) return a
    if (costB < costA) return b
    return context.random() < 0.5 ? a : b
  }
}
