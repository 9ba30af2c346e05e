/**
 * A replica as a selector sees it: a plain, read-only view. Selectors never do I/O.
 */
export interface ReplicaCandidate {
  /** The replica's configured name. */
  readonly name: string
  /** Its configured weight (a positive finite number, default 1). */
  readonly weight: number
  /** Its index in the configured `replicas` list (stable for the dialect's lifetime). */
  readonly index: number
  /** Live load figures, maintained by the library. */
  readonly stats: ReplicaLoadView
}

/** Live load figures of a node. All durations in milliseconds. */
export interface ReplicaLoadView {
  /** Queries currently running on the node through this dialect. */
  readonly inFlight: number
  /** Round trip of the last successful probe, or `undefined` before the first probe. */
  readonly lastProbeRttMs: number | undefined
  /**
   * The node's latency estimate at time `nowMs`, from observed latencies (queries and probes):
   * the median over its recent time slots, which a client-side stall does not move, decaying
   * toward 0 while the node is not heard from; `undefined` without samples.
   */
  latencyEstimateMs(nowMs: number): number | undefined
  /**
   * Mean time the queries now in flight have been running at `nowMs` (0 when none): a node that
   * stalls shows it here at once, long before any of them completes and feeds the estimate.
   */
  pendingAgeMs(nowMs: number): number
}

export interface SelectionContext {
  /** A monotonic clock reading in milliseconds (`performance.now()` in production, fixed in tests). */
  readonly nowMs: number
  /** A uniform random number source in [0, 1). */
  readonly random: () => number
}

/**
 * Picks one replica among the usable candidates (healthy, within lag limits and, in causal
 * mode, caught up). Called on the hot path of every routed read: implementations must be pure
 * and cheap, and must not keep references to `candidates` beyond caching by identity (the
 * library passes the same array instance until the set of usable replicas changes).
 *
 * @example
 * ```ts
 * const firstAlive: ReplicaSelector = { select: (candidates) => candidates[0] }
 * new ReplicatedMysqlDialect({ primary, replicas, selector: firstAlive })
 * ```
 */
export interface ReplicaSelector {
  /** Returns one of `candidates`, or `undefined` to decline (the read then falls back like when no replica is usable). */
  select(
    candidates: readonly ReplicaCandidate[],
    context: SelectionContext,
  ): ReplicaCandidate | undefined
  /** Optional: told once per finished query on a replica (latency-aware selectors learn from it). */
  onResult?(candidate: ReplicaCandidate, latencyMs: number, ok: boolean): void
}

/** The built-in selectors' names, in documentation order. */
export const BUILT_IN_SELECTOR_NAMES = Object.freeze([
  'round-robin',
  'random',
  'weighted',
  'least-latency',
  'p2c-ewma',
] as const)

/** A built-in selector, by name: `'round-robin'`, `'random'`, `'weighted'`, `'least-latency'` or `'p2c-ewma'`. */
export type BuiltInSelectorName = (typeof BUILT_IN_SELECTOR_NAMES)[number]

/** The selector used when the configuration names none. */
export const DEFAULT_SELECTOR_NAME: BuiltInSelectorName = 'p2c-ewma'
