/**
 * The shapes of `bench/results/cluster*.json`: written by `cluster.ts`, read by `report.ts`. Types
 * only. Fields added after the first results were committed are optional, so older files still
 * load.
 */
import type { ConsistencyMode, RoutingStats } from '../src/index.js'
import type { BenchMeta } from './meta.js'

export interface LatencySummary {
  readonly mean: number
  readonly p50: number
  readonly p90: number
  readonly p99: number
  readonly p999: number
  readonly max: number
}

export interface TimelineBucket {
  /** Seconds since the measurement started (bucket start). */
  readonly t: number
  readonly reads: Record<string, number>
  readonly failed: number
  readonly p50: number | null
  readonly p99: number | null
}

/**
 * Something that happened during a run: a step of the scenario (`'kill -9'`, `'freeze'`,
 * `'spike on'`, ...) or an event the dialect reported through `onEvent` (`'node-down'`,
 * `'node-up'`, with its node).
 */
export interface TimedEvent {
  /** Milliseconds since the measurement started. */
  readonly atMs: number
  readonly label: string
  /** The node of a dialect event. */
  readonly node?: string
}

/** Successful reads started in some spans of a run, and how many of them one node served. */
export interface WindowShare {
  readonly reads: number
  readonly onNode: number
  /** p99 latency of those reads, in ms (null when there were none). */
  readonly p99Ms: number | null
}

/** Where reads went while one replica was slow (`spike`), by the time each read started. */
export interface SpikeWindowStats {
  /** The spiking replica. */
  readonly replica: string
  /** Reads started inside the spike windows. */
  readonly inWindows: WindowShare
  /** Reads started outside them. */
  readonly outside: WindowShare
}

/**
 * What a fault on one node (`kill`, `hang`, `blackhole`) did to the reads. Times in ms; the
 * fault window runs from the scenario step that made the fault to the one that ended it.
 */
export interface FaultStats {
  readonly node: string
  /** The fault window, in ms since the measurement started. */
  readonly fromMs: number
  readonly toMs: number
  /** Reads in flight at some time of the fault window, successful or failed: what callers waited. */
  readonly inFlight: {
    readonly reads: number
    readonly failed: number
    readonly p99Ms: number | null
    readonly maxMs: number | null
  }
  /** Reads started (successful or failed) during the fault window. */
  readonly startedDuring: number
  /** Reads started in the span of the same length just before it (clipped at the start of the run). */
  readonly startedBefore: number
  /** The length of that span before (less than the fault's when the run started later). */
  readonly beforeSpanMs: number
  /**
   * From the start of the fault to the dialect's first `node-down` event for the node: null when
   * there was none; absent for a contender without events (`kysely-replication`).
   */
  readonly detectionMs?: number | null
  /**
   * From the end of the fault to the dialect's first `node-up` event for the node after it was seen
   * down (same conventions); negative when the dialect saw the node back before the scenario's
   * step that ends the fault returned (a restarted server accepts before the harness's check does).
   */
  readonly nodeUpMs?: number | null
  /**
   * From the end of the fault to the start of the first read started after it that the node itself
   * answered; null when none did before the run ended.
   */
  readonly backInUseMs: number | null
  /** Successful reads started in the window after the fault, and how many the node served. */
  readonly after: {
    readonly windowMs: number
    readonly reads: number
    readonly onNode: number
  }
}

/** The figures of one run of one contender. */
export interface RunFigures {
  readonly reads: number
  readonly failed: number
  readonly throughput: number
  /** Latencies of successful reads, in ms. */
  readonly latencyMs: LatencySummary
  readonly readsPerNode: Record<string, number>
  /** `spike`: where the reads went during and between the spikes. */
  readonly spike?: SpikeWindowStats
  /** `kill`, `hang`, `blackhole`: what the fault did. */
  readonly fault?: FaultStats
  /** Reads that had not finished 30 s after the end of the run (then abandoned). */
  readonly unfinished?: number
  /** Contenders with hedged reads: second statements sent during the measurement, and won. */
  readonly hedges?: { readonly sent: number; readonly won: number }
}

export interface LoadRunResult extends RunFigures {
  readonly label: string
  readonly errors: Record<string, number>
  readonly timeline: TimelineBucket[]
  readonly events: TimedEvent[]
  /**
   * With `--repeat N` (N > 1): the figures of every repetition, in the order they ran. The rest of
   * this result (figures, timeline, events) is repetition {@link shownRepetition}, the one with
   * the median p99, except `errors`: those of all repetitions, summed.
   */
  readonly repetitions?: RunFigures[]
  readonly shownRepetition?: number
}

export interface ScenarioResult {
  readonly name: string
  readonly title: string
  readonly description: string
  /** Measured seconds per run (absent in older results: the settings' `durationS`). */
  readonly durationS?: number
  /** Runs per contender, in rotating order (absent in older results: 1). */
  readonly repeat?: number
  readonly runs: LoadRunResult[]
}

export interface ConsistencyRunResult {
  readonly mode: ConsistencyMode
  readonly replicaDelayMs: number
  /** Write → read-back workers (absent in older results: the settings' pairs concurrency). */
  readonly pairWorkers?: number
  /** Workers that only write, besides (absent in older results: 0). */
  readonly extraWriters?: number
  /** Writes those workers made during the measurement. */
  readonly extraWrites?: number
  readonly pairs: number
  readonly stale: number
  readonly readsOnReplicas: number
  /** Time per write + read-back pair, in ms. */
  readonly pairMs: LatencySummary
  readonly failed: number
  readonly routing: RoutingStats | undefined
}

export interface ClusterResults {
  readonly meta: BenchMeta
  readonly engine: { name: string; server: string; serverVersion: string; driver: string }
  readonly settings: Record<string, unknown>
  readonly scenarios: ScenarioResult[]
  readonly consistency?: ConsistencyRunResult[]
}
