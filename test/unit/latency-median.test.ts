import v8 from 'node:v8'
import { runInNewContext } from 'node:vm'
import { expect } from 'chai'
import fc from 'fast-check'
import { ReplicatedConfigError } from '../../src/core/contracts/errors.js'
import {
  DEFAULT_MEDIAN_SLOT_MS,
  DEFAULT_MEDIAN_SLOTS,
  LatencyMedian,
} from '../../src/health/latency-median.js'
import type { LatencyEstimator } from '../../src/health/node-load.js'
import { PeakEwma } from '../../src/health/peak-ewma.js'

/** The median of `values` by sorting a copy: the reference the estimator is checked against. */
function referenceMedian(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  const half = sorted.length >> 1
  return sorted.length % 2 === 1 ? sorted[half]! : (sorted[half - 1]! + sorted[half]!) / 2
}

const SLOT = DEFAULT_MEDIAN_SLOT_MS
const SLOTS = DEFAULT_MEDIAN_SLOTS

/**
 * Two nodes, `fast` and `slow`, queried in turn long enough to fill their windows; then a client
 * stall of `stallMs` ends at `endMs` and releases `inFlight` replies on each node within
 * `burstMs`, each inflated by the stall. Returns both estimators.
 */
function stallOnBothNodes<E extends LatencyEstimator>(
  make: () => E,
  options: { fastMs: number; slowMs: number; stallMs: number; inFlight: number; burstMs: number },
): { fast: E; slow: E; fastAtMs: number; slowAtMs: number } {
  const fast = make()
  const slow = make()
  let t = 0
  for (let k = 0; k < 4 * SLOTS; k++) {
    t += SLOT
    fast.observe(options.fastMs, t)
    slow.observe(options.slowMs, t + 0.5)
  }
  const endMs = t + options.stallMs
  let at = endMs
  for (let q = 0; q < options.inFlight; q++) {
    // The replies are handled one after the other once the loop runs again, both nodes mixed.
    at = endMs + (q / options.inFlight) * options.burstMs
    fast.observe(options.fastMs + options.stallMs - (q % 3), at)
    slow.observe(options.slowMs + options.stallMs - (q % 5), at + 0.01)
  }
  return { fast, slow, fastAtMs: at, slowAtMs: at + 0.01 }
}

describe('LatencyMedian', () => {
  it('has no estimate before the first sample, nor after reset', () => {
    const median = new LatencyMedian()
    expect(median.estimate(0)).to.equal(undefined)
    median.observe(4, 0)
    expect(median.estimate(0)).to.equal(4)
    median.reset()
    expect(median.estimate(0)).to.equal(undefined)
    median.observe(9, 1)
    expect(median.estimate(1)).to.equal(9)
  })

  it('is the median of the last `slots` slots when every sample has its own slot', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 40 }),
        fc.array(fc.double({ min: 0, max: 1e4, noNaN: true }), { minLength: 1, maxLength: 200 }),
        (slots, samples) => {
          const median = new LatencyMedian({ slots, slotMs: 5 })
          samples.forEach((sample, k) => {
            median.observe(sample, k * 5)
            const window = samples.slice(Math.max(0, k + 1 - slots), k + 1)
            expect(median.estimate(k * 5)).to.be.closeTo(referenceMedian(window), 1e-9)
          })
        },
      ),
      { seed: 20_261_122, numRuns: 200 },
    )
  })

  it('counts the samples that end within one slot as their mean', () => {
    const median = new LatencyMedian({ slotMs: 10, slots: 3 })
    median.observe(2, 0)
    median.observe(4, 3)
    median.observe(9, 9.9) // the same slot: (2 + 4 + 9) / 3 = 5
    expect(median.estimate(9.9)).to.equal(5)
    median.observe(1, 10) // a new slot: median of 5 and 1
    expect(median.estimate(10)).to.equal(3)
    median.observe(7, 25)
    median.observe(8, 40) // the first slot (5) has left the window: median of 1, 7, 8
    expect(median.estimate(40)).to.equal(7)
  })

  it('keeps its window sorted whatever the order, the repeats and the slot sharing', () => {
    const event = fc.record({
      sample: fc.oneof(
        fc.constantFrom(0, 1, 2, 2, 3),
        fc.double({ min: 0, max: 500, noNaN: true }),
      ),
      dt: fc.oneof(fc.constant(0), fc.double({ min: 0, max: 30, noNaN: true })),
    })
    fc.assert(
      fc.property(fc.array(event, { minLength: 1, maxLength: 300 }), (events) => {
        // Replays the slot rule with plain arrays: a sample within 10 ms of its slot's first
        // sample joins that slot; the window is the last 8 slots' means.
        const median = new LatencyMedian({ slotMs: 10, slots: 8 })
        const slots: { start: number; sum: number; n: number }[] = []
        let t = 0
        for (const { sample, dt } of events) {
          t += dt
          median.observe(sample, t)
          const open = slots[slots.length - 1]
          if (open !== undefined && t - open.start < 10) {
            open.sum += sample
            open.n += 1
          } else {
            slots.push({ start: t, sum: sample, n: 1 })
          }
          const window = slots.slice(-8).map((s) => s.sum / s.n)
          expect(median.estimate(t)).to.be.closeTo(referenceMedian(window), 1e-9)
        }
      }),
      { seed: 7, numRuns: 300 },
    )
  })

  it('answers the 90th percentile of its slots (nearest rank) in O(1), without decay', () => {
    const median = new LatencyMedian({ slotMs: 0, slots: 16 })
    expect(median.p90()).to.equal(undefined)
    median.observe(7, 0)
    expect(median.p90()).to.equal(7)
    for (let i = 1; i <= 20; i++) median.observe(i, i)
    // The window holds 5..20: ceil(0.9 × 16) = 15th smallest.
    expect(median.p90()).to.equal(19)
    expect(median.estimate(20)).to.equal(12.5)
    // Decay applies to the estimate only: the tail is the last one seen.
    expect(median.p90()).to.equal(19)
    median.reset()
    expect(median.p90()).to.equal(undefined)
  })

  it('keeps its p90 equal to the reference percentile of the window', () => {
    fc.assert(
      fc.property(
        fc.array(fc.double({ min: 0, max: 500, noNaN: true }), { minLength: 1, maxLength: 200 }),
        fc.integer({ min: 1, max: 32 }),
        (samples, slots) => {
          const median = new LatencyMedian({ slotMs: 0, slots })
          samples.forEach((sample, i) => {
            median.observe(sample, i + 1)
            const window = samples.slice(Math.max(0, i + 1 - slots), i + 1).sort((a, b) => a - b)
            expect(median.p90()).to.equal(window[Math.ceil(window.length * 0.9) - 1])
          })
        },
      ),
      { seed: 11, numRuns: 200 },
    )
  })

  it('ignores a client stall that inflates every reply in flight on every node at once', () => {
    fc.assert(
      fc.property(
        fc.double({ min: 0.5, max: 5, noNaN: true }),
        fc.double({ min: 6, max: 40, noNaN: true }),
        fc.double({ min: 20, max: 150, noNaN: true }),
        fc.integer({ min: 1, max: 64 }),
        fc.double({ min: 0, max: 2 * SLOT, noNaN: true }),
        (fastMs, slowMs, stallMs, inFlight, burstMs) => {
          const { fast, slow, fastAtMs, slowAtMs } = stallOnBothNodes(() => new LatencyMedian(), {
            fastMs,
            slowMs,
            stallMs,
            inFlight,
            burstMs,
          })
          // A burst lands in at most three slots of the window: the median does not move.
          expect(fast.estimate(fastAtMs)).to.be.closeTo(fastMs, 1e-9)
          expect(slow.estimate(slowAtMs)).to.be.closeTo(slowMs, 1e-9)
        },
      ),
      { seed: 42, numRuns: 300 },
    )
  })

  it('(the failure it prevents) a peak-EWMA takes the stall as both nodes’ latency', () => {
    const { fast, slow, fastAtMs, slowAtMs } = stallOnBothNodes(() => new PeakEwma(), {
      fastMs: 2,
      slowMs: 20,
      stallMs: 100,
      inFlight: 16,
      burstMs: 2,
    })
    expect(fast.estimate(fastAtMs)).to.be.above(90)
    expect(slow.estimate(slowAtMs)).to.be.above(90)
    // A node 10 times slower than the other now looks less than 1.5 times slower.
    expect(slow.estimate(slowAtMs)! / fast.estimate(fastAtMs)!).to.be.below(1.5)
  })

  it('follows a persistent slowdown of one node within slots / 2 + 1 slots', () => {
    fc.assert(
      fc.property(
        fc.double({ min: 0.5, max: 10, noNaN: true }),
        fc.double({ min: 2, max: 50, noNaN: true }),
        fc.integer({ min: 1, max: 20 }),
        fc.double({ min: 0, max: 200, noNaN: true }),
        (baseMs, factor, perSlot, gapMs) => {
          const median = new LatencyMedian()
          let t = 0
          for (let k = 0; k < SLOTS; k++, t += SLOT) {
            for (let q = 0; q < perSlot; q++) median.observe(baseMs, t + q * 0.1)
          }
          // A gap, as when the node gets fewer queries once it is slow, then only slow replies.
          t += gapMs
          const slowMs = baseMs * factor
          let last = t
          for (let k = 0; k <= SLOTS / 2; k++, t += SLOT) {
            for (let q = 0; q < perSlot; q++) median.observe(slowMs, (last = t + q * 0.1))
          }
          expect(median.estimate(last)).to.be.closeTo(slowMs, 1e-9)
        },
      ),
      { seed: 3, numRuns: 200 },
    )
  })

  it('does not follow a slowdown shorter than half the window', () => {
    const median = new LatencyMedian()
    let t = 0
    for (let k = 0; k < SLOTS; k++, t += SLOT) median.observe(3, t)
    for (let k = 0; k < SLOTS / 2 - 1; k++, t += SLOT) median.observe(300, t)
    expect(median.estimate(t - SLOT)).to.equal(3)
    median.observe(300, t)
    expect(median.estimate(t)).to.be.above(3)
  })

  it('decays toward 0 while the node is not heard from, without changing state', () => {
    const median = new LatencyMedian({ idleDecayMs: 1_000 })
    median.observe(10, 0)
    expect(median.estimate(1_000)).to.be.closeTo(10 * Math.exp(-1), 1e-9)
    expect(median.estimate(0)).to.equal(10)
    expect(median.estimate(-5)).to.equal(10)
  })

  it('ignores non-finite samples and counts negative ones as 0', () => {
    const median = new LatencyMedian()
    median.observe(Number.NaN, 0)
    median.observe(Number.POSITIVE_INFINITY, 0)
    median.observe(3, Number.NaN)
    expect(median.estimate(0)).to.equal(undefined)
    median.observe(-5, 0)
    expect(median.estimate(0)).to.equal(0)
  })

  it('rejects bad options', () => {
    const bad = [
      { slotMs: -1 },
      { slotMs: Number.NaN },
      { slots: 0 },
      { slots: 1.5 },
      { slots: 2000 },
      { idleDecayMs: 0 },
      { idleDecayMs: Number.POSITIVE_INFINITY },
    ]
    for (const options of bad) {
      expect(() => new LatencyMedian(options), JSON.stringify(options)).to.throw(
        ReplicatedConfigError,
      )
    }
  })

  describe('cost', () => {
    v8.setFlagsFromString('--expose-gc')
    const gc = runInNewContext('gc') as () => void

    /** Median heap growth per call over batches small enough to fit the young generation. */
    function bytesPerCall(fn: (i: number) => void): number {
      for (let i = 0; i < 200_000; i++) fn(i)
      const results: number[] = []
      for (let b = 0; b < 7; b++) {
        gc()
        const before = v8.getHeapStatistics().used_heap_size
        for (let i = 0; i < 5_000; i++) fn(i)
        results.push((v8.getHeapStatistics().used_heap_size - before) / 5_000)
      }
      return referenceMedian(results)
    }

    // What is checked is the estimator's own work: no array, object or closure per sample (its
    // state is two typed arrays allocated once). Reads are not checked, nor NodeLoad around it:
    // V8 boxes a double passed or returned through a call it does not inline, whatever the code
    // (the peak-EWMA did so too), and whether it inlines depends on the whole program.
    it('allocates nothing per sample once warmed up', () => {
      const median = new LatencyMedian()
      // Several samples per slot and a new slot now and then, as on a busy node.
      expect(bytesPerCall((i) => median.observe(2 + (i % 7) * 0.37, i * 0.7))).to.be.below(4)
      // Every sample in its own slot: the window turns over on every sample.
      const sparse = new LatencyMedian()
      expect(bytesPerCall((i) => sparse.observe(2 + (i % 7) * 0.37, i * 10))).to.be.below(4)
    })

    it('(the check can fail) sees an estimator that boxes a number per sample', () => {
      let kept: { value: number } | undefined
      const control = (i: number) => {
        kept = { value: i }
      }
      expect(bytesPerCall(control)).to.be.above(8)
      expect(kept).not.to.equal(undefined)
    })
  })
})
