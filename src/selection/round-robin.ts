import type { ReplicaCandidate, ReplicaSelector, SelectionContext } from './replica-selector.js'

/**
 * Takes the candidates in turn. The position is kept modulo the current array's length, so it
 * stays valid when the set of usable replicas grows or shrinks. O(1) per pick.
 *
 * @example
 * ```ts
 * new ReplicatedMysqlDialect({ primary, replicas, selector: new RoundRobinSelector() })
 * ```
 */
export class RoundRobinSelector implements ReplicaSelector {
  #next = 0

  select(
    candidates: readonly ReplicaCandidate[],
    _context?: SelectionContext,
  ): ReplicaCandidate | undefined {
    const n = candidates.length
    if (n === 0) return undefined
    const index = this.#next % n
    this.#next = index + 1
    return candidates[index]
  }
}
