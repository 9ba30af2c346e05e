import { ReplicatedConfigError } from '../core/contracts/errors.js'

/** Default {@link LatencyMedianOptions.slotMs}. */
export const DEFAULT_MEDIAN_SLOT_MS = 5

/** Default {@link LatencyMedianOptions.slots}. */
export const DEFAULT_MEDIAN_SLOTS = 16

/** Default {@link LatencyMedianOptions.idleDecayMs} (the dialect's `latency.decayMs` default). */
export const DEFAULT_MEDIAN_IDLE_DECAY_MS = 10_000

export interface LatencyMedianOptions {
  /**
   * Width of a time slot in milliseconds (default 5): the samples that end within one slot
   * count as one value, their mean. A client-side stall (a long garbage collection, a blocked
   * event loop) releases every reply that arrived meanwhile at the same instant, all inflated
   * by the stall: they land in one slot (two when the burst straddles a boundary), so the
   * stall is one outlier among the slots whatever the number of queries in flight.
   */
  readonly slotMs?: number
  /**
   * How many recent slots the median is taken over (default 16, an integer from 1 to 1024). A
   * persistent change wins once it fills more than half of them: on a busy node about
   * `slots / 2 × slotMs` (40 ms by default), on a node that gets a query now and then
   * `slots / 2 + 1` samples. `bench/estimator.ts` compares settings.
   */
  readonly slots?: number
  /**
   * Time constant in milliseconds with which a node not heard from decays toward 0 when read
   * (default 10 000, the dialect's `latency.decayMs`), so that a node left alone gets tried
   * again, as Finagle's peak-EWMA reads its cost.
   */
  readonly idleDecayMs?: number
}

/**
 * An outlier-robust latency estimate of one node: the median, over its last `slots` time slots,
 * of the mean latency of the samples that ended in each slot.
 *
 * Why a median over time slots rather than Finagle's peak-EWMA: a single slow reply moves the
 * median of 16 slots by at most one rank, and the slots group a burst of replies released at
 * once (a client stall inflates every query in flight, on every node at the same time) into
 * one value, where a plain window of the last N samples would be swamped by as many inflated
 * samples as there were queries in flight. A slowdown that lasts moves the estimate within
 * half the window, and is felt at once through the age of the queries in flight
 * (`NodeLoad.pendingAgeMs`), which the load metric takes when it is larger.
 *
 * The cost is O(`slots`) per sample with no allocation (two fixed typed arrays: the slots in
 * arrival order, and the same values kept sorted, each sample moving at most `slots` of them),
 * and O(1) per read. With the default 16 slots this is a few dozen moves of numbers, cheaper
 * than the `Math.exp` of an EWMA.
 *
 * @example
 * ```ts
 * const median = new LatencyMedian({ slotMs: 5, slots: 16 })
 * median.observe(3, 0)
 * median.observe(120, 100) // one stalled reply
 * median.observe(2, 200)
 * median.estimate(200) // 3: the median of 2, 3 and 120
 * ```
 */
export class LatencyMedian {
  readonly #slotMs: number
  readonly #idleDecayMs: number
  /** Slot values in arrival order, a ring; the newest is the open slot. */
  readonly #ring: Float64Array
  /** The same `#count` values, ascending. */
  readonly #sorted: Float64Array
  #count = 0
  /** Index in `#ring` of the open (newest) slot. */
  #newest = -1
  #slotStartMs = 0
  #slotSum = 0
  #slotSamples = 0
  #lastMs = 0
  /** Index in `#sorted` of the open slot's value (it alone moves until the next slot opens). */
  #openAt = 0

  constructor(options: LatencyMedianOptions = {}) {
    const slotMs = options.slotMs ?? DEFAULT_MEDIAN_SLOT_MS
    const slots = options.slots ?? DEFAULT_MEDIAN_SLOTS
    const idleDecayMs = options.idleDecayMs ?? DEFAULT_MEDIAN_IDLE_DECAY_MS
    if (typeof slotMs !== 'number' || !Number.isFinite(slotMs) || slotMs < 0) {
      throw new ReplicatedConfigError(
        `slotMs must be a finite number of milliseconds ≥ 0, got ${String(slotMs)}`,
      )
    }
    if (!Number.isInteger(slots) || slots < 1 || slots > 1024) {
      throw new ReplicatedConfigError(
        `slots must be an integer from 1 to 1024, got ${String(slots)}`,
      )
    }
    if (typeof idleDecayMs !== 'number' || !Number.isFinite(idleDecayMs) || idleDecayMs <= 0) {
      throw new ReplicatedConfigError(
        `decayMs must be a positive finite number of milliseconds, got ${String(idleDecayMs)}`,
      )
    }
    this.#slotMs = slotMs
    this.#idleDecayMs = idleDecayMs
    this.#ring = new Float64Array(slots)
    this.#sorted = new Float64Array(slots)
  }

  /**
   * Feeds one latency sample that ended at `nowMs`. Non-finite samples are ignored; negative
   * ones count as 0. A clock reading earlier than the open slot's start counts in that slot.
   */
  observe(latencyMs: number, nowMs: number): void {
    if (!Number.isFinite(latencyMs) || !Number.isFinite(nowMs)) return
    const sample = latencyMs > 0 ? latencyMs : 0
    const ring = this.#ring
    const first = this.#count === 0
    if (!first && nowMs - this.#slotStartMs < this.#slotMs) {
      // Same slot: its mean changes, in place.
      this.#slotSum += sample
      this.#slotSamples += 1
      const value = this.#slotSum / this.#slotSamples
      this.#sorted[this.#openAt] = value
      this.#openAt = this.#reorder(this.#openAt)
      ring[this.#newest] = value
    } else {
      // A new slot: it evicts the oldest one once the ring is full.
      const next = this.#newest + 1 === ring.length ? 0 : this.#newest + 1
      // The evicted slot's value is replaced by the new one (or it takes a free place), then
      // moved to its place. Only indexes cross a call: V8 boxes a double passed to a call it does
      // not inline.
      let at: number
      if (this.#count === ring.length) {
        at = this.#indexOfRing(next)
      } else {
        at = this.#count
        this.#count += 1
      }
      this.#sorted[at] = sample
      this.#openAt = this.#reorder(at)
      ring[next] = sample
      this.#newest = next
      this.#slotStartMs = nowMs
      this.#slotSum = sample
      this.#slotSamples = 1
    }
    if (first || nowMs > this.#lastMs) this.#lastMs = nowMs
  }

  /** Forgets every sample: the next one starts a new window. */
  reset(): void {
    this.#count = 0
    this.#newest = -1
    this.#slotSum = 0
    this.#slotSamples = 0
    this.#lastMs = 0
  }

  /**
   * The median of the slots at `nowMs`, decayed toward 0 for the time since the last sample,
   * or `undefined` before the first sample. Does not change any state. O(1).
   */
  estimate(nowMs: number): number | undefined {
    const n = this.#count
    if (n === 0) return undefined
    const sorted = this.#sorted
    const half = n >> 1
    const median = n & 1 ? sorted[half]! : (sorted[half - 1]! + sorted[half]!) / 2
    const elapsed = nowMs - this.#lastMs
    // NaN (a bad clock reading) and negative elapsed times read as "no time elapsed".
    if (!(elapsed > 0)) return median
    const x = elapsed / this.#idleDecayMs
    // Under load samples arrive microseconds apart: 1 - x is exp(-x) to within x²/2 (< 5e-7).
    return median * (x < 1e-3 ? 1 - x : Math.exp(-x))
  }

  /**
   * The 90th percentile of the slots (the value 90 % of them do not exceed, nearest rank), or
   * `undefined` before the first sample. Not decayed: a node left alone keeps its last tail,
   * the best guess of how long its next reply may take. Does not change any state. O(1): the
   * slots are kept sorted for the median already, so it costs no work per sample. Read by
   * hedged reads (`hedge: { after: 'p90' }`). A slot is the mean of the samples that ended in
   * it: on a node that answers many queries per slot this is the tail of those means, lower than
   * the tail of single replies.
   *
   * @example
   * ```ts
   * const median = new LatencyMedian({ slotMs: 0, slots: 10 })
   * for (let i = 1; i <= 10; i++) median.observe(i, i)
   * median.p90() // 9
   * ```
   */
  p90(): number | undefined {
    const n = this.#count
    if (n === 0) return undefined
    // Nearest rank: ceil(0.9 n), as an index.
    return this.#sorted[Math.ceil(n * 0.9) - 1]!
  }

  /** Moves the sorted value at `at` to its place among the others; returns where it went. */
  #reorder(at: number): number {
    const sorted = this.#sorted
    const value = sorted[at]!
    let i = at
    while (i + 1 < this.#count && sorted[i + 1]! < value) {
      sorted[i] = sorted[i + 1]!
      i += 1
    }
    while (i > 0 && sorted[i - 1]! > value) {
      sorted[i] = sorted[i - 1]!
      i -= 1
    }
    sorted[i] = value
    return i
  }

  /** The index in the sorted values of the value in ring slot `slot` (it is there). */
  #indexOfRing(slot: number): number {
    const value = this.#ring[slot]!
    const sorted = this.#sorted
    let lo = 0
    let hi = this.#count - 1
    while (lo < hi) {
      const mid = (lo + hi) >> 1
      if (sorted[mid]! < value) lo = mid + 1
      else hi = mid
    }
    return lo
  }
}
