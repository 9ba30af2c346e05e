import type { ReplicaCandidate, ReplicaSelector, SelectionContext } from './replica-selector.js'

/**
 * A uniform index in `[0, n)` drawn from `random`, clamped so that a source returning exactly 1
 * (or a little outside [0, 1)) still yields a valid index. `n` must be at least 1.
 *
 * @internal
 * @example
 * ```ts
 * const i = randomIndex(candidates.length, Math.random)
 * ```
 */
export function randomIndex(n: number, random: () => number): number {
  const i = Math.floor(random() * n)
  return i >= 0 ? Math.min(i, n - 1) : 0
}

/**
 * Picks a candidate uniformly at random with `context.random`. O(1) per pick.
 *
 * @example
 * ```ts
 * new ReplicatedPostgresDialect({ primary, replicas, selector: new RandomSelector() })
 * ```
 */
export class RandomSelector implements ReplicaSelector {
  select(
    candidates: readonly ReplicaCandidate[],
    context: SelectionContext,
  ): ReplicaCandidate | undefined {
    const n = candidates.length
    if (n === 0) return undefined
    return candidates[randomIndex(n, context.random)]
  }
}
