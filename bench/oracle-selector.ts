import type {
  ReplicaCandidate,
  ReplicaSelector,
  SelectionContext,
} from '../src/selection/replica-selector.js'

/** What the benchmark injected on one replica: its proxy delay, and whether it was killed. */
export interface InjectedState {
  delayMs: number
  down: boolean
}

/**
 * A selector that cheats: it is told what the benchmark injects (each replica's proxy delay, and
 * which replica was killed) and picks among the truly fastest live replicas the one with the
 * fewest queries in flight. The yardstick the real selectors are compared with.
 *
 * @example
 * ```ts
 * const truth = new Map([['replica-1', { delayMs: 0, down: false }]])
 * new ReplicatedMysqlDialect({ primary, replicas, selector: new OracleSelector(truth) })
 * ```
 */
export class OracleSelector implements ReplicaSelector {
  readonly #truth: ReadonlyMap<string, InjectedState>
  #turn = 0

  constructor(truth: ReadonlyMap<string, InjectedState>) {
    this.#truth = truth
  }

  select(
    candidates: readonly ReplicaCandidate[],
    _context: SelectionContext,
  ): ReplicaCandidate | undefined {
    const n = candidates.length
    if (n === 0) return undefined
    let best: ReplicaCandidate | undefined
    let bestDelay = Number.POSITIVE_INFINITY
    let bestInFlight = Number.POSITIVE_INFINITY
    // Start at a rotating offset so ties are spread.
    const start = this.#turn++ % n
    for (let k = 0; k < n; k++) {
      const candidate = candidates[(start + k) % n]!
      const truth = this.#truth.get(candidate.name)
      const delay = truth === undefined ? 0 : truth.down ? Number.POSITIVE_INFINITY : truth.delayMs
      const inFlight = candidate.stats.inFlight
      if (delay < bestDelay || (delay === bestDelay && inFlight < bestInFlight)) {
        best = candidate
        bestDelay = delay
        bestInFlight = inFlight
      }
    }
    // Every candidate is down: any of them (the library then retries or falls back).
    return best ?? candidates[start]
  }
}
