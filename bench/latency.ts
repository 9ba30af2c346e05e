/**
 * Latency bookkeeping of the cluster benchmarks: HDR histograms in microseconds, summarized in
 * milliseconds, and exact percentiles of small samples.
 */
import * as hdr from 'hdr-histogram-js'
import type { LatencySummary } from './cluster-results.js'

/** A histogram of latencies in µs, from 1 µs to 10 minutes, 3 significant digits. */
export function histogram() {
  return hdr.build({
    lowestDiscernibleValue: 1,
    highestTrackableValue: 600_000_000,
    numberOfSignificantValueDigits: 3,
  })
}

export type Histogram = ReturnType<typeof histogram>

/** Records a latency in ms into a µs histogram. */
export function recordMs(h: Histogram, ms: number): void {
  h.recordValue(Math.max(1, Math.round(ms * 1000)))
}

/** Rounds to µs, in ms. */
export function roundMs(ms: number): number {
  return Math.round(ms * 1000) / 1000
}

/** Microsecond histogram → millisecond summary. */
export function summarize(h: Histogram): LatencySummary {
  const ms = (us: number) => Math.round(us) / 1000
  if (h.totalCount === 0) return { mean: 0, p50: 0, p90: 0, p99: 0, p999: 0, max: 0 }
  return {
    mean: ms(h.mean),
    p50: ms(h.getValueAtPercentile(50)),
    p90: ms(h.getValueAtPercentile(90)),
    p99: ms(h.getValueAtPercentile(99)),
    p999: ms(h.getValueAtPercentile(99.9)),
    max: ms(h.maxValue),
  }
}

/** The nearest-rank `p`-th percentile of `values` (sorted in place), rounded to µs; null when empty. */
export function percentile(values: number[], p: number): number | null {
  if (values.length === 0) return null
  values.sort((a, b) => a - b)
  const rank = Math.min(values.length, Math.max(1, Math.ceil((p / 100) * values.length)))
  return roundMs(values[rank - 1]!)
}
