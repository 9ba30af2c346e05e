import { ReplicatedConfigError } from '../core/contracts/errors.js'
import { DEFAULT_DECAY_MS } from '../health/peak-ewma.js'
import { randomIndex } from './random.js'
import type { ReplicaCandidate, ReplicaSelector, SelectionContext } from './replica-selector.js'

export interface P2cEwmaSelectorOptions {
  /**
   * Time constant of the nodes' latency EWMA in ms (default 10 000). The selector reads the
   * estimate from each candidate's stats; the dialect gives this value to the nodes' load
   * trackers (`NodeLoad`), where the estimate is kept.
   */
  readonly decayMs?: number
}

/**
 * Load given to a candidate that has queries in flight but no latency history, per query in
 * flight: large enough that a fresh node gets one query at a time until it has a history.
 */
export const NO_HISTORY_PENALTY_MS = 1_000_000

/**
 * Finagle's power of two choices over peak-EWMA load: two distinct candidates are drawn at
 * random and the one with the lower `latencyEstimateMs(now) * (inFlight + 1)` wins (ties:
 * random). A candidate without latency history costs 0 while nothing is in flight, so new
 * nodes get tried, and {@link NO_HISTORY_PENALTY_MS} per query in flight otherwise, so they
 * are not flooded. O(1) per pick; comparing two random nodes instead of taking the global
 * minimum keeps clients from herding onto the same node on stale figures.
 *
 * @example
 * ```ts
 * new ReplicatedPostgresDialect({ primary, replicas, selector: new P2cEwmaSelector() })
 * ```
 */
export class P2cEwmaSelector implements ReplicaSelector {
  /** Time constant of the latency EWMA the nodes should keep, in ms. */
  readonly decayMs: number

  constructor(options: P2cEwmaSelectorOptions = {}) {
    const { decayMs = DEFAULT_DECAY_MS } = options
    if (typeof decayMs !== 'number' || !Number.isFinite(decayMs) || decayMs <= 0) {
      throw new ReplicatedConfigError(
        `p2c-ewma decayMs must be a positive finite number of milliseconds, got ${String(decayMs)}`,
      )
    }
    this.decayMs = decayMs
  }

  select(
    candidates: readonly ReplicaCandidate[],
    context: SelectionContext,
  ): ReplicaCandidate | undefined {
    const n = candidates.length
    if (n <= 1) return candidates[0]
    const i = randomIndex(n, context.random)
    let j = randomIndex(n - 1, context.random)
    if (j >= i) j += 1
    const a = candidates[i]!
    const b = candidates[j]!
    const costA = loadOf(a, context.nowMs)
    const costB = loadOf(b, context.nowMs)
    if (costA < costB) return a
    if (costB < costA) return b
    return context.random() < 0.5 ? a : b
  }
}

/** Finagle's load: `cost * (inFlight + 1)`, with the no-history rule above. */
function loadOf(candidate: ReplicaCandidate, nowMs: number): number {
  const stats = candidate.stats
  const inFlight = stats.inFlight
  const cost = stats.latencyEstimateMs(nowMs)
  if (cost === undefined || cost === 0) return inFlight > 0 ? NO_HISTORY_PENALTY_MS * inFlight : 0
  return cost * (inFlight + 1)
}
