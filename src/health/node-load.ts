import type { ReplicaLoadView } from '../selection/replica-selector.js'
import { LatencyMedian } from './latency-median.js'

/**
 * How a node's latency samples become one estimate: {@link LatencyMedian} (the default),
 * `PeakEwma` and the alternatives measured by `bench/estimator.ts` all have this shape.
 */
export interface LatencyEstimator {
  /** Feeds one latency sample that ended at `nowMs`. */
  observe(latencyMs: number, nowMs: number): void
  /** The estimate at `nowMs`, or `undefined` without samples. A pure read. */
  estimate(nowMs: number): number | undefined
  /** Forgets every sample. */
  reset(): void
  /** The 90th percentile of recent samples, when the estimator keeps one (O(1), a pure read). */
  p90?(): number | undefined
}

export interface NodeLoadOptions {
  /**
   * Time constant in milliseconds with which the estimate of a node not heard from decays toward
   * 0 when read (default 10 000, see {@link LatencyMedian}), so that it gets tried again: the
   * dialect's `latency.decayMs`. The load metric owns it; selectors only read the result.
   */
  readonly decayMs?: number
  /**
   * The latency estimator to use instead of the default {@link LatencyMedian} (then `decayMs` is
   * not read): for benchmarks and tests.
   */
  readonly estimator?: LatencyEstimator
}

/**
 * Load given to a node that has queries in flight but no latency history, per query in
 * flight: large enough that a fresh node gets one query at a time until it has a history.
 */
export const NO_HISTORY_PENALTY_MS = 1_000_000

/**
 * The load of a node at `nowMs`, as Finagle's peak-EWMA balancer computes it: its latency
 * estimate (or the mean age of its queries in flight, when larger) × (queries in flight + 1).
 * The name is the selector's (`p2c-ewma`); the estimate itself is the node's
 * ({@link NodeLoad.latencyEstimateMs}, an outlier-robust median by default).
 * A node without latency history costs 0 while nothing is in flight, so new nodes get tried,
 * and {@link NO_HISTORY_PENALTY_MS} per query in flight otherwise, so they are not flooded. The
 * load metric, kept apart from the distributor that compares it (`P2cEwmaSelector`), as in
 * Finagle's balancers. Reads only the {@link ReplicaLoadView}: any selector can use it.
 *
 * @example
 * ```ts
 * const cheaper = peakEwmaLoad(a.stats, context.nowMs) < peakEwmaLoad(b.stats, context.nowMs) ? a : b
 * ```
 */
export function peakEwmaLoad(stats: ReplicaLoadView, nowMs: number): number {
  const inFlight = stats.inFlight
  const estimate = stats.latencyEstimateMs(nowMs)
  if (estimate === undefined || estimate === 0) {
    return inFlight > 0 ? NO_HISTORY_PENALTY_MS * inFlight : 0
  }
  // Pending queries count with the time they have been waiting (as tower's and Finagle's
  // balancers do): a node that stalls costs more with every millisecond, not only once a slow
  // reply finally comes back.
  const pending = inFlight > 0 ? stats.pendingAgeMs(nowMs) : 0
  return (pending > estimate ? pending : estimate) * (inFlight + 1)
}

/**
 * The live load figures of one node, kept by the library and read by selectors through the
 * {@link ReplicaLoadView} interface: queries in flight and their age, the last probe's round
 * trip and a latency estimate fed by successful queries and probes: by default
 * {@link LatencyMedian}, the median over recent time slots, which a client-side stall (every
 * query in flight on every node delayed at once) does not move.
 *
 * @example
 * ```ts
 * const load = new NodeLoad({ decayMs: 10_000 })
 * load.start(performance.now())
 * // ... the query runs ...
 * load.finish(3.2, performance.now(), true)
 * load.latencyEstimateMs(performance.now()) // ≈ 3.2
 * ```
 */
export class NodeLoad implements ReplicaLoadView {
  readonly #estimator: LatencyEstimator
  #inFlight = 0
  #lastProbeRttMs: number | undefined
  #readsServed = 0
  #errors = 0
  /** Sum of the start times of the queries in flight (their mean age in O(1)). */
  #pendingStartSum = 0

  constructor(options: NodeLoadOptions = {}) {
    this.#estimator = options.estimator ?? new LatencyMedian({ idleDecayMs: options.decayMs })
  }

  /** Queries currently running on the node through this dialect. */
  get inFlight(): number {
    return this.#inFlight
  }

  /** Round trip of the last successful probe, or `undefined` before the first one. */
  get lastProbeRttMs(): number | undefined {
    return this.#lastProbeRttMs
  }

  /** Queries that finished successfully on the node. */
  get readsServed(): number {
    return this.#readsServed
  }

  /** Queries that failed on the node. */
  get errors(): number {
    return this.#errors
  }

  /**
   * The latency estimate at `nowMs` (by default the median of recent latencies, see
   * {@link LatencyMedian}), or `undefined` without samples.
   */
  latencyEstimateMs(nowMs: number): number | undefined {
    return this.#estimator.estimate(nowMs)
  }

  /**
   * The 90th percentile of recent latencies ({@link LatencyMedian.p90}), or `undefined` without
   * samples or with an estimator that keeps none: how long a hedged read waits for this node
   * before it asks another (`hedge: { after: 'p90' }`).
   */
  latencyP90Ms(): number | undefined {
    return this.#estimator.p90?.()
  }

  /** A query starts on the node at `nowMs`. Pair every call with one {@link finish}. */
  start(nowMs: number): void {
    this.#inFlight += 1
    this.#pendingStartSum += nowMs
  }

  pendingAgeMs(nowMs: number): number {
    const n = this.#inFlight
    if (n === 0) return 0
    const age = nowMs - this.#pendingStartSum / n
    return age > 0 ? age : 0
  }

  /**
   * The node came back after an outage or a stall: its estimate starts again from the probe's
   * round trip (or from nothing), instead of holding the stall for the decay's duration.
   */
  recover(rttMs: number | undefined, nowMs: number): void {
    this.#estimator.reset()
    if (rttMs !== undefined) this.#estimator.observe(rttMs, nowMs)
  }

  /**
   * A query started with {@link start} ended after `latencyMs`. A success feeds the estimate. A
   * failure is counted, and fed only when slower than the estimate (a slow timeout counts, a
   * fast "connection refused" must not make the node look fast).
   */
  finish(latencyMs: number, nowMs: number, ok: boolean, sample = true): void {
    this.#end(latencyMs, nowMs)
    if (ok) {
      this.#readsServed += 1
      this.#estimator.observe(latencyMs, nowMs)
    } else {
      this.#errors += 1
      // `sample` false: the wait measured an outage (an abandoned statement), not the node.
      if (sample && latencyMs > (this.#estimator.estimate(nowMs) ?? 0))
        this.#estimator.observe(latencyMs, nowMs)
    }
  }

  /**
   * A query started with {@link start} was cancelled after `latencyMs` by this library (a hedged
   * read's other attempt answered first): neither a success nor an error. Its wait is a lower
   * bound of the node's latency, fed only when slower than the estimate, as a failure's.
   */
  cancelled(latencyMs: number, nowMs: number): void {
    this.#end(latencyMs, nowMs)
    if (latencyMs > (this.#estimator.estimate(nowMs) ?? 0))
      this.#estimator.observe(latencyMs, nowMs)
  }

  /** The in-flight bookkeeping of a query's end. */
  #end(latencyMs: number, nowMs: number): void {
    if (this.#inFlight > 0) {
      this.#inFlight -= 1
      this.#pendingStartSum = this.#inFlight === 0 ? 0 : this.#pendingStartSum - (nowMs - latencyMs)
    }
  }

  /**
   * Reaching the node failed before a statement started (no connection, a failed causal wait):
   * counted as an error, without touching the in-flight count or the estimate.
   */
  unreachable(): void {
    this.#errors += 1
  }

  /** A successful health probe took `rttMs`: remembered as `lastProbeRttMs` and fed to the estimate. */
  recordProbe(rttMs: number, nowMs: number): void {
    if (!Number.isFinite(rttMs)) return
    this.#lastProbeRttMs = Math.max(rttMs, 0)
    this.#estimator.observe(rttMs, nowMs)
  }
}
