import { ReplicatedConfigError } from '../core/contracts/errors.js'

/**
 * Default time constant of {@link PeakEwma}, in milliseconds (Finagle's default: 10 s), and the
 * default `latency.decayMs` (with which an idle node's estimate decays, see `LatencyMedian`).
 */
export const DEFAULT_DECAY_MS = 10_000

/**
 * Finagle's peak-sensitive exponentially weighted moving average of round-trip times. No longer
 * the nodes' default estimator (`LatencyMedian` is: a client-side stall inflates every sample in
 * flight at once, and the peak rule kept it for seconds); kept as an alternative
 * `LatencyEstimator` and as the yardstick of `bench/estimator.ts`.
 *
 * On each sample `rtt` at time `t`, with `w = exp(-(t - lastT) / decayMs)`: when `rtt` exceeds
 * the cost, the cost jumps to `rtt` at once; otherwise it moves toward `rtt` by
 * `cost = cost * w + rtt * (1 - w)`. Slow replies are therefore felt immediately and forgiven
 * only gradually, and the weight of a sample depends on the time since the previous one (the
 * series is unevenly spaced).
 *
 * Between samples the stored cost does not change: {@link estimate} is a pure read that applies
 * the same decay toward 0 that Finagle's `get()` applies (`cost * exp(-(now - lastT) / decayMs)`),
 * so a node that has not been heard from for a while looks cheaper and gets tried again. Unlike
 * Finagle, reading never alters later updates.
 *
 * @example
 * ```ts
 * const ewma = new PeakEwma(10_000)
 * ewma.observe(5, 0)
 * ewma.observe(200, 1_000) // a peak: the cost is 200 at once
 * ewma.estimate(1_000) // 200
 * ewma.estimate(11_000) // 200 * e^-1 ≈ 73.6
 * ```
 */
export class PeakEwma {
  readonly #decayMs: number
  #cost: number | undefined
  #lastMs = 0

  /** @param decayMs The time constant τ in milliseconds (a positive finite number). */
  constructor(decayMs: number = DEFAULT_DECAY_MS) {
    if (typeof decayMs !== 'number' || !Number.isFinite(decayMs) || decayMs <= 0) {
      throw new ReplicatedConfigError(
        `decayMs must be a positive finite number of milliseconds, got ${String(decayMs)}`,
      )
    }
    this.#decayMs = decayMs
  }

  /** The time constant τ in milliseconds. */
  get decayMs(): number {
    return this.#decayMs
  }

  /**
   * Feeds one round-trip sample observed at `nowMs`. Non-finite samples are ignored; negative
   * ones count as 0. A clock reading earlier than the previous sample counts as no time elapsed.
   */
  observe(rttMs: number, nowMs: number): void {
    if (!Number.isFinite(rttMs) || !Number.isFinite(nowMs)) return
    const rtt = Math.max(rttMs, 0)
    const cost = this.#cost
    if (cost === undefined || rtt > cost) {
      this.#cost = rtt
    } else {
      const w = Math.exp(-Math.max(nowMs - this.#lastMs, 0) / this.#decayMs)
      this.#cost = cost * w + rtt * (1 - w)
    }
    this.#lastMs = cost === undefined ? nowMs : Math.max(this.#lastMs, nowMs)
  }

  /** Forgets every sample: the next one sets the cost. */
  reset(): void {
    this.#cost = undefined
    this.#lastMs = 0
  }

  /**
   * The cost at `nowMs`: the stored cost decayed toward 0 for the time since the last sample,
   * or `undefined` before the first sample. Does not change any state.
   */
  estimate(nowMs: number): number | undefined {
    const cost = this.#cost
    if (cost === undefined) return undefined
    const elapsed = nowMs - this.#lastMs
    // NaN (a bad clock reading) and negative elapsed times read as "no time elapsed".
    return elapsed > 0 ? cost * Math.exp(-elapsed / this.#decayMs) : cost
  }
}
