import { randomIndex } from './random.js'
import type { ReplicaCandidate, ReplicaSelector, SelectionContext } from './replica-selector.js'

export interface LeastLatencySelectorOptions {
  /** How long a winner is kept before the candidates are compared again, in ms (default 1000, > 0). */
  readonly ttlMs?: number
  /**
   * When set and smaller than the number of candidates, a comparison examines only this many
   * candidates (a window at a random offset), which bounds its cost in large pools. A positive
   * integer.
   */
  readonly sampleSize?: number
}

/** Default {@link LeastLatencySelectorOptions.ttlMs}. */
export const DEFAULT_LEAST_LATENCY_TTL_MS = 1000

/**
 * Sends reads to the candidate with the lowest latency: its last probe round trip, or its
 * latency estimate when it has not been probed yet. Candidates without any latency data are
 * skipped; when none has data, the candidates are taken in turn.
 *
 * The choice is kept for `ttlMs` (or until the winner leaves the candidates), so the O(n)
 * comparison runs at most once per TTL and every other pick is O(1). All reads go to one
 * replica until the next comparison; `P2cEwmaSelector` spreads them by load instead.
 *
 * @example
 * ```ts
 * const selector = new LeastLatencySelector({ ttlMs: 500 })
 * new ReplicatedMysqlDialect({ primary, replicas, selector })
 * ```
 */
export class LeastLatencySelector implements ReplicaSelector {
  readonly #ttlMs: number
  readonly #sampleSize: number | undefined
  /** The winner's name, or `undefined` while taking candidates in turn for lack of data. */
  #winner: string | undefined
  #expiresAtMs = Number.NEGATIVE_INFINITY
  /** The winner's index in each candidates array seen since the last comparison (-1: absent). */
  #positions = new WeakMap<readonly ReplicaCandidate[], number>()
  #turn = 0

  /** The options are not checked here: `resolveConfig` validates `latency` for the dialect. */
  constructor(options: LeastLatencySelectorOptions = {}) {
    this.#ttlMs = options.ttlMs ?? DEFAULT_LEAST_LATENCY_TTL_MS
    this.#sampleSize = options.sampleSize
  }

  select(
    candidates: readonly ReplicaCandidate[],
    context: SelectionContext,
  ): ReplicaCandidate | undefined {
    if (candidates.length === 0) return undefined
    if (context.nowMs < this.#expiresAtMs) {
      if (this.#winner === undefined) return this.#inTurn(candidates)
      const index = this.#positionOfWinner(candidates, this.#winner)
      if (index >= 0) return candidates[index]
    }
    return this.#compare(candidates, context)
  }

  /** The O(n) (or O(sampleSize)) comparison; its result is kept for `ttlMs`. */
  #compare(
    candidates: readonly ReplicaCandidate[],
    context: SelectionContext,
  ): ReplicaCandidate | undefined {
    const n = candidates.length
    const nowMs = context.nowMs
    const sampleSize = this.#sampleSize
    const windowed = sampleSize !== undefined && sampleSize < n
    const count = windowed ? sampleSize : n
    const start = windowed ? randomIndex(n, context.random) : 0
    let best = -1
    let bestMs = Number.POSITIVE_INFINITY
    for (let k = 0; k < count; k++) {
      const i = (start + k) % n
      const stats = candidates[i]!.stats
      const ms = stats.lastProbeRttMs ?? stats.latencyEstimateMs(nowMs)
      if (ms !== undefined && ms < bestMs) {
        best = i
        bestMs = ms
      }
    }
    this.#expiresAtMs = nowMs + this.#ttlMs
    this.#positions = new WeakMap()
    if (best < 0) {
      this.#winner = undefined
      return this.#inTurn(candidates)
    }
    const winner = candidates[best]!
    this.#winner = winner.name
    this.#positions.set(candidates, best)
    return winner
  }

  #positionOfWinner(candidates: readonly ReplicaCandidate[], winner: string): number {
    let index = this.#positions.get(candidates)
    if (index === undefined) {
      // A new array since the comparison: one O(n) lookup, then O(1) for this array.
      index = candidates.findIndex((c) => c.name === winner)
      this.#positions.set(candidates, index)
    }
    return index
  }

  #inTurn(candidates: readonly ReplicaCandidate[]): ReplicaCandidate | undefined {
    const index = this.#turn % candidates.length
    this.#turn = index + 1
    return candidates[index]
  }
}
