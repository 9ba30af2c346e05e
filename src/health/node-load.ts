import type { ReplicaLoadView } from '../selection/replica-selector.js'
import { PeakEwma } from './peak-ewma.js'

/**
 * How a node's latency samples become one estimate: {@link PeakEwma} and its alternatives all
 * have this shape, so that {@link NodeLoad} can be measured with each (`bench/estimator.ts`).
 */
export interface LatencyEstimator {
  /** Feeds one latency sample that ended at `nowMs`. */
  observe(latencyMs: number, nowMs: number): void
  /** The estimate at `nowMs`, or `undefined` without samples. A pure read. */
  estimate(nowMs: number): number | undefined
  /** Forgets every sample. */
  reset(): void
}

export interface NodeLoadOptions {
  /**
   * Time constant of the latency EWMA in milliseconds (default 10 000, see {@link PeakEwma}): the
   * dialect's `latency.decayMs`. The load metric owns it; selectors only read the result.
   */
  readonly decayMs?: number
  /** The latency estimator to use instead of the default one (then `decayMs` is not read). */
  readonly estimator?: LatencyEstimator
}

/**
 * Load given to a node that has queries in flight but no latency history, per query in
 * flight: large enough that a fresh node gets one query at a time until it has a history.
 */
export const NO_HISTORY_PENALTY_MS = 1_000_000

/**
 * Finagle's peak-EWMA load of a node at `nowMs`: its latency estimate × (queries in flight + 1).
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
 * {@link ReplicaLoadView} interface: queries in flight, the last probe's round trip and a
 * peak-sensitive EWMA of latencies fed by successful queries and probes.
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
  readonly #ewma: LatencyEstimator
  #inFlight = 0
  #lastProbeRttMs: number | undefined
  #readsServed = 0
  #errors = 0
  /** Sum of the start times of the queries in flight (their mean age in O(1)). */
  #pendingStartSum = 0

  constructor(options: NodeLoadOptions = {}) {
    this.#ewma = options.estimator ?? new PeakEwma(options.decayMs)
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

  /** Peak-sensitive EWMA of observed latencies at `nowMs`, or `undefined` without samples. */
  latencyEstimateMs(nowMs: number): number | undefined {
    return this.#ewma.estimate(nowMs)
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
    this.#ewma.reset()
    if (rttMs !== undefined) this.#ewma.observe(rttMs, nowMs)
  }

  /**
   * A query started with {@link start} ended after `latencyMs`. A success feeds the EWMA. A
   * failure is counted and can only raise the estimate (a slow timeout counts, a fast
   * "connection refused" must not make the node look fast).
   */
  finish(latencyMs: number, nowMs: number, ok: boolean): void {
    if (this.#inFlight > 0) {
      this.#inFlight -= 1
      this.#pendingStartSum = this.#inFlight === 0 ? 0 : this.#pendingStartSum - (nowMs - latencyMs)
    }
    if (ok) {
      this.#readsServed += 1
      this.#ewma.observe(latencyMs, nowMs)
    } else {
      this.#errors += 1
      if (latencyMs > (this.#ewma.estimate(nowMs) ?? 0)) this.#ewma.observe(latencyMs, nowMs)
    }
  }

  /**
   * Reaching the node failed before a statement started (no connection, a failed causal wait):
   * counted as an error, without touching the in-flight count or the estimate.
   */
  unreachable(): void {
    this.#errors += 1
  }

  /** A successful health probe took `rttMs`: remembered as `lastProbeRttMs` and fed to the EWMA. */
  recordProbe(rttMs: number, nowMs: number): void {
    if (!Number.isFinite(rttMs)) return
    this.#lastProbeRttMs = Math.max(rttMs, 0)
    this.#ewma.observe(rttMs, nowMs)
  }
}
