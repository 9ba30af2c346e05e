/**
 * A deterministic simulation that compares latency estimators under the default `p2c-ewma`
 * selector (`npx tsx bench/estimator.ts`). No database, no timers: simulated time only, every
 * random draw from seeded generators, so a run prints the same figures every time.
 *
 * The model, close to `bench/cluster.ts` on a 2-core machine:
 *
 * - **replicas**: each serves `SERVERS` queries at a time, first come first served, with
 *   exponential service times (mean `SERVICE_MS`), behind a network round trip (`NET_MS`); an
 *   injected delay holds a reply as the bench's latency proxy does (decided when the reply
 *   leaves the server);
 * - **client**: one event loop, like Node's. `--workers` closed-loop workers each pick a replica
 *   with the selector, run a query, and on its reply (which costs the loop `CALLBACK_MS`) record
 *   the latency and start the next one. Probes (`PROBE_INTERVAL_MS`) feed each node's estimate
 *   as the health monitor does;
 * - **client stalls**: at random (Poisson, mean interval `--stall-every` ms) the loop is blocked
 *   for 20–150 ms (a long GC, synchronous work). Every reply that arrives meanwhile is handled
 *   when it ends: every query in flight, on every node, sees the stall in its latency;
 * - **spike**: replica-1's replies held 20 ms from 2 s to 4 s of every 5 s (the cluster bench's
 *   `spike` scenario); **slow**: replica-1 held 2 ms throughout; **equal**: no delay.
 *
 * Contenders: `round-robin`, the `oracle` of the cluster bench (told the injected delays), and
 * `p2c-ewma` with the same load metric (`peakEwmaLoad`: estimate, or the mean age of the
 * queries in flight when larger, × (in flight + 1)) over each candidate estimator:
 *
 * - `peak-ewma 10s`: Finagle's peak-EWMA, τ = 10 s (the library's estimator before `LatencyMedian`);
 * - `peak-ewma 1s`: the same with τ = 1 s;
 * - `ewma 1s`: a time-weighted EWMA without the peak rule, τ = 1 s;
 * - `median 32 samples`: the median of the last 32 samples;
 * - `median 8×10ms`, `median 16×5ms`, `median 16×25ms`: `LatencyMedian`, the median over the
 *   last 8 or 16 time slots of the mean of the samples that ended in each slot;
 * - `p2c-ewma (library defaults)`: `NodeLoad` as the dialect builds it (now `median 16×5ms`);
 * - `common-mode peak-ewma`: a peak-EWMA (τ = 10 s) fed with samples from which the excess seen
 *   at the same moment on every other node has been removed (a stall hits all nodes at once);
 * - `p2c over the true latency`: a yardstick, p2c over what each replica's latency really is
 *   (told by the scenario): the best any estimator can do under the same load formula.
 *
 * `--sweep` adds `LatencyMedian` over a grid of slot counts and widths.
 *
 * Printed per scenario: the share of the reads started during spike windows that went to the
 * spiking replica, p50 / p99 / mean latency as the application sees it (stalls included),
 * throughput, how long after each spike the replica gets half its fair share back, and the
 * estimate of the last replica (never slowed) read every 20 ms, to compare with its real p50.
 *
 * Options: `--duration S` (20 simulated seconds, the first excluded as warm-up), `--seeds N`
 * (3: results are averaged), `--workers N` (32), `--stall-every MS` (1000), `--scenario
 * a,b,…` (all), `--contenders a,b,…` (all), `--model client-bound|server-bound`, `--sweep`,
 * `--quick` (8 s, 1 seed).
 */
import { parseArgs } from 'node:util'
import { LatencyMedian } from '../src/health/latency-median.js'
import { type LatencyEstimator, NodeLoad } from '../src/health/node-load.js'
import { PeakEwma } from '../src/health/peak-ewma.js'
import { P2cEwmaSelector } from '../src/selection/p2c-ewma.js'
import type {
  ReplicaCandidate,
  ReplicaSelector,
  SelectionContext,
} from '../src/selection/replica-selector.js'
import { RoundRobinSelector } from '../src/selection/round-robin.js'
import { mulberry32 } from '../test/support/seeded-random.js'
import { type InjectedState, OracleSelector } from './oracle-selector.js'

const { values: args } = parseArgs({
  options: {
    duration: { type: 'string', default: '20' },
    seeds: { type: 'string', default: '3' },
    workers: { type: 'string', default: '32' },
    'stall-every': { type: 'string', default: '1000' },
    scenario: { type: 'string', default: 'all' },
    contenders: { type: 'string', default: 'all' },
    model: { type: 'string', default: 'client-bound' },
    quick: { type: 'boolean', default: false },
    sweep: { type: 'boolean', default: false },
  },
})

const DURATION_MS = (args.quick ? 8 : Number(args.duration)) * 1000
const SEEDS = args.quick ? 1 : Number(args.seeds)
const WORKERS = Number(args.workers)
const STALL_EVERY_MS = Number(args['stall-every'])
const WARMUP_MS = 1000

/**
 * Where the time goes. `client-bound` (default) is what the cluster bench measured: one replica
 * alone serves the whole load at the same latency (the oracle, which sends every read to one
 * replica during spikes, had the highest throughput), the client's event loop being the
 * bottleneck. `server-bound`: each replica's capacity is the limit, so a replica taking all
 * reads gets twice as slow and sending some reads to a slow replica pays.
 */
interface Model {
  /** Queries a replica serves at once, and their mean service time. */
  readonly servers: number
  readonly serviceMs: number
  /** What handling one reply (and starting the next query) costs the client's event loop. */
  readonly callbackMs: number
}

const MODELS: Readonly<Record<string, Model>> = {
  'client-bound': { servers: 8, serviceMs: 0.5, callbackMs: 0.1 },
  'server-bound': { servers: 4, serviceMs: 0.8, callbackMs: 0.03 },
}
const MODEL = MODELS[args.model]
if (MODEL === undefined) throw new Error(`--model: one of ${Object.keys(MODELS).join(', ')}`)
const { servers: SERVERS, serviceMs: SERVICE_MS, callbackMs: CALLBACK_MS } = MODEL
/** Network round trip, half each way. */
const NET_MS = 0.3
/** Heavy tail: this share of queries (on any replica) is held this much longer (uniform). */
const OUTLIER_SHARE = 0.01
const OUTLIER_MIN_MS = 5
const OUTLIER_MAX_MS = 25
/** The health monitor's probe interval (library default). */
const PROBE_INTERVAL_MS = 1000
const STALL_MIN_MS = 20
const STALL_MAX_MS = 150
const SPIKE_DELAY_MS = 20
const SPIKE_FROM_MS = 2000
const SPIKE_TO_MS = 4000
const SPIKE_PERIOD_MS = 5000
const SLOW_DELAY_MS = 2
/** How often the estimate of the last replica is read for the report. */
const ESTIMATE_EVERY_MS = 20
/** Recovery is measured in buckets of this length after each spike. */
const RECOVERY_BUCKET_MS = 25

// ---------------------------------------------------------------------------------------------
// Randomness

function exponential(random: () => number, mean: number): number {
  return -mean * Math.log(1 - random())
}

// ---------------------------------------------------------------------------------------------
// Candidate estimators that live only here

/** A time-weighted EWMA without Finagle's peak rule: `cost = cost·w + rtt·(1-w)`, `w = e^(-Δt/τ)`. */
class Ewma implements LatencyEstimator {
  readonly #tauMs: number
  #cost: number | undefined
  #lastMs = 0

  constructor(tauMs: number) {
    this.#tauMs = tauMs
  }

  observe(latencyMs: number, nowMs: number): void {
    const cost = this.#cost
    if (cost === undefined) {
      this.#cost = latencyMs
    } else {
      const w = Math.exp(-Math.max(nowMs - this.#lastMs, 0) / this.#tauMs)
      this.#cost = cost * w + latencyMs * (1 - w)
    }
    this.#lastMs = Math.max(this.#lastMs, nowMs)
  }

  estimate(): number | undefined {
    return this.#cost
  }

  reset(): void {
    this.#cost = undefined
  }
}

/** The p50 of an unloaded replica in the default model (the client's loop included). */
const TRUE_BASE_MS = 3

/**
 * A yardstick, not an estimator: the latency the node really has now (3 ms + its injected
 * delay), known from the scenario. What p2c does with it is what the load formula allows.
 */
class TrueLatency implements LatencyEstimator {
  readonly #state: InjectedState

  constructor(state: InjectedState) {
    this.#state = state
  }

  observe(): void {}

  estimate(): number {
    return TRUE_BASE_MS + this.#state.delayMs
  }

  reset(): void {}
}

/** What every node of a {@link CommonModeEwma} fleet last showed. */
interface FleetMember {
  load: NodeLoad | undefined
  readonly baseline: Ewma
  lastExcessMs: number
  lastAtMs: number
}

/** Samples within this distance count as simultaneous. */
const SIMULTANEOUS_MS = 2

/**
 * A peak-EWMA fed with "sample − common excess": the excess over its own baseline that every
 * other node shows at the same moment (its last sample, when within {@link SIMULTANEOUS_MS},
 * or the mean age of its queries in flight). A client stall delays everything at once, so its
 * share is removed; a slowdown of one node is not seen on the others and is kept.
 */
class CommonModeEwma implements LatencyEstimator {
  readonly #fleet: FleetMember[]
  readonly #self: FleetMember
  readonly #peak = new PeakEwma()

  constructor(fleet: FleetMember[]) {
    this.#fleet = fleet
    this.#self = { load: undefined, baseline: new Ewma(1000), lastExcessMs: 0, lastAtMs: 0 }
    fleet.push(this.#self)
  }

  attach(load: NodeLoad): void {
    this.#self.load = load
  }

  observe(latencyMs: number, nowMs: number): void {
    const self = this.#self
    const base = self.baseline.estimate() ?? latencyMs
    const excess = latencyMs - base
    let common = Number.POSITIVE_INFINITY
    for (const other of this.#fleet) {
      if (other === self) continue
      const otherBase = other.baseline.estimate() ?? 0
      const pending =
        other.load !== undefined && other.load.inFlight > 0
          ? other.load.pendingAgeMs(nowMs) - otherBase
          : 0
      const recent = nowMs - other.lastAtMs <= SIMULTANEOUS_MS ? other.lastExcessMs : 0
      common = Math.min(common, Math.max(pending, recent))
    }
    const removed = excess > 0 && common > 0 ? Math.min(excess, common) : 0
    const corrected = latencyMs - removed
    self.baseline.observe(corrected, nowMs)
    self.lastExcessMs = excess
    self.lastAtMs = nowMs
    this.#peak.observe(corrected, nowMs)
  }

  estimate(nowMs: number): number | undefined {
    return this.#peak.estimate(nowMs)
  }

  reset(): void {
    this.#peak.reset()
    this.#self.baseline.reset()
  }
}

// ---------------------------------------------------------------------------------------------
// Contenders and scenarios

interface Contender {
  readonly name: string
  /** Whether its selector reads the latency estimate (round-robin and the oracle do not). */
  readonly usesEstimate: boolean
  /** The node loads of one run (a fresh estimator each), and the selector over them. */
  build(
    truth: ReadonlyMap<string, InjectedState>,
    replicas: number,
  ): {
    loads: NodeLoad[]
    selector: ReplicaSelector
  }
}

function p2c(name: string, estimator: () => LatencyEstimator): Contender {
  return {
    name,
    usesEstimate: true,
    build: (_truth, replicas) => ({
      loads: Array.from({ length: replicas }, () => new NodeLoad({ estimator: estimator() })),
      selector: new P2cEwmaSelector(),
    }),
  }
}

function plain(
  name: string,
  selector: (truth: ReadonlyMap<string, InjectedState>) => ReplicaSelector,
  usesEstimate = false,
): Contender {
  return {
    name,
    usesEstimate,
    build: (truth, replicas) => ({
      loads: Array.from({ length: replicas }, () => new NodeLoad()),
      selector: selector(truth),
    }),
  }
}

const CONTENDERS: readonly Contender[] = [
  plain('round-robin', () => new RoundRobinSelector()),
  p2c('peak-ewma 10s', () => new PeakEwma(10_000)),
  p2c('peak-ewma 1s', () => new PeakEwma(1_000)),
  p2c('ewma 1s', () => new Ewma(1_000)),
  p2c('median 32 samples', () => new LatencyMedian({ slotMs: 0, slots: 32 })),
  p2c('median 8×10ms', () => new LatencyMedian({ slotMs: 10, slots: 8 })),
  p2c('median 16×5ms', () => new LatencyMedian({ slotMs: 5, slots: 16 })),
  p2c('median 16×25ms', () => new LatencyMedian({ slotMs: 25, slots: 16 })),
  plain('p2c-ewma (library defaults)', () => new P2cEwmaSelector(), true),
  {
    name: 'common-mode peak-ewma',
    usesEstimate: true,
    build: (_truth, replicas) => {
      const fleet: FleetMember[] = []
      const loads = Array.from({ length: replicas }, () => {
        const estimator = new CommonModeEwma(fleet)
        const load = new NodeLoad({ estimator })
        estimator.attach(load)
        return load
      })
      return { loads, selector: new P2cEwmaSelector() }
    },
  },
  {
    name: 'p2c over the true latency',
    usesEstimate: true,
    build: (truth, replicas) => ({
      loads: Array.from(
        { length: replicas },
        (_, i) => new NodeLoad({ estimator: new TrueLatency(truth.get(`replica-${i + 1}`)!) }),
      ),
      selector: new P2cEwmaSelector(),
    }),
  },
  plain('oracle', (truth) => new OracleSelector(truth)),
  // --sweep: the slotted median's parameters.
  ...(args.sweep
    ? [4, 8, 12, 16, 24].flatMap((slots) =>
        [2, 5, 10, 20].map((slotMs) =>
          p2c(`median ${slots}×${slotMs}ms`, () => new LatencyMedian({ slotMs, slots })),
        ),
      )
    : []),
]

interface Scenario {
  readonly name: string
  readonly title: string
  readonly replicas: number
  readonly stalls: boolean
  /** The delay replica `index` adds to a reply leaving it at `atMs`. */
  delay(index: number, atMs: number): number
  /** Whether `atMs` is in a window where replica-1 is slow (for the share of reads). */
  slowAt(atMs: number): boolean
}

function inSpike(atMs: number): boolean {
  const phase = atMs % SPIKE_PERIOD_MS
  return phase >= SPIKE_FROM_MS && phase < SPIKE_TO_MS
}

function spike(replicas: number, stalls: boolean): Scenario {
  return {
    name: `spike-${replicas}${stalls ? '-stalls' : ''}`,
    title: `Spike on replica-1 (+${SPIKE_DELAY_MS} ms, 2 s of every 5 s), ${replicas} replicas, ${stalls ? 'client stalls' : 'no client stall'}`,
    replicas,
    stalls,
    delay: (index, atMs) => (index === 0 && inSpike(atMs) ? SPIKE_DELAY_MS : 0),
    slowAt: inSpike,
  }
}

const SCENARIOS: readonly Scenario[] = [
  spike(2, false),
  spike(2, true),
  spike(3, true),
  {
    name: 'slow-2-stalls',
    title: `replica-1 ${SLOW_DELAY_MS} ms slower throughout, 2 replicas, client stalls`,
    replicas: 2,
    stalls: true,
    delay: (index) => (index === 0 ? SLOW_DELAY_MS : 0),
    slowAt: () => true,
  },
  {
    name: 'equal-2-stalls',
    title: 'Equal replicas, 2 replicas, client stalls',
    replicas: 2,
    stalls: true,
    delay: () => 0,
    slowAt: () => true,
  },
]

// ---------------------------------------------------------------------------------------------
// The simulation

interface Scheduled<T> {
  readonly atMs: number
  /** Insertion order: ties are taken first come, first served. */
  readonly order: number
  readonly item: T
}

function before<T>(a: Scheduled<T>, b: Scheduled<T>): boolean {
  return a.atMs < b.atMs || (a.atMs === b.atMs && a.order < b.order)
}

/** A binary min-heap of events by time (ties: insertion order). */
class EventQueue<T> {
  readonly #heap: Scheduled<T>[] = []
  #order = 0

  get size(): number {
    return this.#heap.length
  }

  push(atMs: number, item: T): void {
    const heap = this.#heap
    const entry = { atMs, order: this.#order++, item }
    let i = heap.length
    heap.push(entry)
    while (i > 0) {
      const parent = (i - 1) >> 1
      if (!before(entry, heap[parent]!)) break
      heap[i] = heap[parent]!
      i = parent
    }
    heap[i] = entry
  }

  peekTime(): number {
    return this.#heap[0]!.atMs
  }

  pop(): T {
    const heap = this.#heap
    const top = heap[0]!
    const last = heap.pop()!
    const n = heap.length
    if (n > 0) {
      let i = 0
      for (;;) {
        const l = 2 * i + 1
        if (l >= n) break
        const c = l + 1 < n && before(heap[l + 1]!, heap[l]!) ? l + 1 : l
        if (!before(heap[c]!, last)) break
        heap[i] = heap[c]!
        i = c
      }
      heap[i] = last
    }
    return top.item
  }
}

/** A reply reaching the client, or a probe round to send. */
interface SimEvent {
  readonly kind: 'reply' | 'probe-reply' | 'probe-round'
  readonly replica: number
  readonly startedMs: number
}

interface RunResult {
  readonly latencies: Float64Array
  /** The last replica's latency estimate (never injected a delay), read every 20 ms. */
  readonly estimates: Float64Array
  readonly reads: number
  readonly slowWindowReads: number
  readonly slowWindowOnSlow: number
  readonly shareOnReplica1: number
  /** Mean time after each spike's end until replica-1 has half its fair share again (ms). */
  readonly recoveryMs: number | undefined
}

/** Client stall intervals [start, end), sorted, from their own seeded generator. */
function stallSchedule(seed: number, durationMs: number): Float64Array {
  const random = mulberry32(seed ^ 0x9e3779b9)
  const out: number[] = []
  let t = exponential(random, STALL_EVERY_MS)
  while (t < durationMs) {
    const length = STALL_MIN_MS + random() * (STALL_MAX_MS - STALL_MIN_MS)
    out.push(t, t + length)
    t += length + exponential(random, STALL_EVERY_MS)
  }
  return Float64Array.from(out)
}

function simulate(contender: Contender, scenario: Scenario, seed: number): RunResult {
  const n = scenario.replicas
  const truth = new Map<string, InjectedState>()
  for (let i = 0; i < n; i++) truth.set(`replica-${i + 1}`, { delayMs: 0, down: false })
  const { loads, selector } = contender.build(truth, n)
  const candidates: ReplicaCandidate[] = loads.map((stats, index) => ({
    name: `replica-${index + 1}`,
    weight: 1,
    index,
    stats,
  }))
  const states = candidates.map((c) => truth.get(c.name)!)
  const selectRandom = mulberry32(seed)
  const serviceRandom = mulberry32(seed ^ 0x85ebca6b)
  const context: SelectionContext & { nowMs: number } = { nowMs: 0, random: selectRandom }
  const stalls = scenario.stalls ? stallSchedule(seed, DURATION_MS) : new Float64Array(0)
  let stallIndex = 0
  /** Each replica's servers: when each is next free. */
  const freeAt = Array.from({ length: n }, () => new Float64Array(SERVERS))
  const queue = new EventQueue<SimEvent>()

  const latencies: number[] = []
  const estimates: number[] = []
  let nextEstimateMs = WARMUP_MS
  let slowWindowReads = 0
  let slowWindowOnSlow = 0
  let onReplica1 = 0
  const bucketCount = Math.ceil(DURATION_MS / RECOVERY_BUCKET_MS)
  const bucketAll = new Uint32Array(bucketCount)
  const bucketSlow = new Uint32Array(bucketCount)

  /** The earliest time at or after `t` when the loop is not stalled. */
  const runnable = (t: number): number => {
    while (stallIndex < stalls.length && stalls[stallIndex + 1]! <= t) stallIndex += 2
    if (stallIndex < stalls.length && stalls[stallIndex]! <= t) return stalls[stallIndex + 1]!
    return t
  }

  /** Sends a request to replica `r` at client time `t`: its reply's arrival time. */
  const send = (r: number, t: number): number => {
    const servers = freeAt[r]!
    let k = 0
    for (let s = 1; s < SERVERS; s++) if (servers[s]! < servers[k]!) k = s
    const begins = Math.max(t + NET_MS / 2, servers[k]!)
    const done = begins + exponential(serviceRandom, SERVICE_MS)
    servers[k] = done
    const outlier =
      serviceRandom() < OUTLIER_SHARE
        ? OUTLIER_MIN_MS + serviceRandom() * (OUTLIER_MAX_MS - OUTLIER_MIN_MS)
        : 0
    return done + outlier + scenario.delay(r, done) + NET_MS / 2
  }

  const startQuery = (t: number): void => {
    context.nowMs = t
    for (let i = 0; i < n; i++) states[i]!.delayMs = scenario.delay(i, t)
    const picked = selector.select(candidates, context)!
    const r = picked.index
    loads[r]!.start(t)
    if (t >= WARMUP_MS) {
      const bucket = Math.floor(t / RECOVERY_BUCKET_MS)
      bucketAll[bucket]! += 1
      if (r === 0) {
        bucketSlow[bucket]! += 1
        onReplica1 += 1
      }
      if (scenario.slowAt(t)) {
        slowWindowReads += 1
        if (r === 0) slowWindowOnSlow += 1
      }
    }
    queue.push(send(r, t), { kind: 'reply', replica: r, startedMs: t })
  }

  let loopFreeMs = 0
  for (let w = 0; w < WORKERS; w++) {
    startQuery(loopFreeMs)
    loopFreeMs += CALLBACK_MS
  }
  queue.push(PROBE_INTERVAL_MS / 2, { kind: 'probe-round', replica: -1, startedMs: 0 })

  while (queue.size > 0 && queue.peekTime() < DURATION_MS) {
    const arrival = queue.peekTime()
    const event = queue.pop()
    const t = runnable(Math.max(arrival, loopFreeMs))
    loopFreeMs = t + CALLBACK_MS
    while (t >= nextEstimateMs) {
      estimates.push(loads[n - 1]!.latencyEstimateMs(t) ?? Number.NaN)
      nextEstimateMs += ESTIMATE_EVERY_MS
    }
    switch (event.kind) {
      case 'reply': {
        const latency = t - event.startedMs
        loads[event.replica]!.finish(latency, t, true)
        if (event.startedMs >= WARMUP_MS) latencies.push(latency)
        startQuery(loopFreeMs)
        break
      }
      case 'probe-reply':
        loads[event.replica]!.recordProbe(t - event.startedMs, t)
        break
      case 'probe-round':
        for (let r = 0; r < n; r++) {
          queue.push(send(r, t), { kind: 'probe-reply', replica: r, startedMs: t })
        }
        queue.push(t + PROBE_INTERVAL_MS, { kind: 'probe-round', replica: -1, startedMs: 0 })
        break
    }
  }

  // Recovery: after each spike's end, the first bucket where replica-1 has half its fair share.
  let recoveryMs: number | undefined
  if (scenario.name.startsWith('spike')) {
    const times: number[] = []
    const fair = 1 / n
    for (let end = SPIKE_TO_MS; end < DURATION_MS - SPIKE_PERIOD_MS / 2; end += SPIKE_PERIOD_MS) {
      if (end < WARMUP_MS) continue
      let b = Math.floor(end / RECOVERY_BUCKET_MS)
      const limit = Math.floor(
        (end + SPIKE_PERIOD_MS - (SPIKE_TO_MS - SPIKE_FROM_MS)) / RECOVERY_BUCKET_MS,
      )
      while (b < limit && bucketSlow[b]! < (fair / 2) * bucketAll[b]!) b += 1
      times.push((b + 1) * RECOVERY_BUCKET_MS - end)
    }
    if (times.length > 0) recoveryMs = times.reduce((a, b) => a + b, 0) / times.length
  }

  const reads = latencies.length
  return {
    latencies: Float64Array.from(latencies),
    estimates: Float64Array.from(estimates),
    reads,
    slowWindowReads,
    slowWindowOnSlow,
    shareOnReplica1:
      onReplica1 /
      Math.max(
        1,
        bucketAll.reduce((a, b) => a + b, 0),
      ),
    recoveryMs,
  }
}

// ---------------------------------------------------------------------------------------------
// Report

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return Number.NaN
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!
}

function concat(parts: readonly Float64Array[]): Float64Array {
  const out = new Float64Array(parts.reduce((a, p) => a + p.length, 0))
  let offset = 0
  for (const p of parts) {
    out.set(p, offset)
    offset += p.length
  }
  return out
}

function pct(x: number): string {
  return `${(100 * x).toFixed(1)} %`
}

function ms(x: number): string {
  return x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2)
}

function pick<T extends { name: string }>(all: readonly T[], spec: string): T[] {
  if (spec === 'all') return [...all]
  const names = spec.split(',').map((s) => s.trim())
  const chosen = all.filter((x) => names.includes(x.name))
  if (chosen.length === 0)
    throw new Error(`nothing matches ${spec}: ${all.map((x) => x.name).join(', ')}`)
  return chosen
}

const scenarios = pick(SCENARIOS, args.scenario)
const contenders = pick(CONTENDERS, args.contenders)
const started = performance.now()
console.log(
  `# Latency estimators under p2c-ewma: simulation (${args.model})\n\n${WORKERS} closed-loop workers; replicas serve ${SERVERS} queries at a time (exponential, mean ${SERVICE_MS} ms) behind ${NET_MS} ms of network; the client's loop spends ${CALLBACK_MS} ms per reply; client stalls of ${STALL_MIN_MS}–${STALL_MAX_MS} ms every ${STALL_EVERY_MS} ms on average where said; ${DURATION_MS / 1000} simulated s (first ${WARMUP_MS / 1000} s excluded); ${SEEDS} seed(s), figures averaged over seeds (percentiles over all reads of all seeds).\n`,
)
for (const scenario of scenarios) {
  console.log(`## ${scenario.title}\n`)
  const share = scenario.name.startsWith('spike') ? 'on replica-1 during spikes' : 'on replica-1'
  console.log(
    `| contender | ${share} | p50 | p99 | p99.9 | mean | reads/s | back to ½ fair share after a spike | replica-${scenario.replicas} estimate p50 / p90 |`,
  )
  console.log('| :--- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |')
  for (const contender of contenders) {
    let slowReads = 0
    let slowOnSlow = 0
    let reads = 0
    let share1 = 0
    let recovery = 0
    let recoveries = 0
    const all: Float64Array[] = []
    const allEstimates: Float64Array[] = []
    for (let s = 0; s < SEEDS; s++) {
      const result = simulate(contender, scenario, 1 + s * 7919)
      slowReads += result.slowWindowReads
      slowOnSlow += result.slowWindowOnSlow
      reads += result.reads
      share1 += result.shareOnReplica1 / SEEDS
      if (result.recoveryMs !== undefined) {
        recovery += result.recoveryMs
        recoveries += 1
      }
      all.push(result.latencies)
      allEstimates.push(result.estimates)
    }
    const estimates = concat(allEstimates).sort()
    const merged = concat(all).sort()
    let sum = 0
    for (const x of merged) sum += x
    const shown = scenario.name.startsWith('spike') ? slowOnSlow / Math.max(1, slowReads) : share1
    const perSecond = reads / SEEDS / ((DURATION_MS - WARMUP_MS) / 1000)
    console.log(
      `| ${contender.name} | ${pct(shown)} | ${ms(percentile(merged, 0.5))} | ${ms(percentile(merged, 0.99))} | ${ms(percentile(merged, 0.999))} | ${ms(sum / merged.length)} | ${perSecond.toFixed(0)} | ${recoveries > 0 ? `${(recovery / recoveries).toFixed(0)} ms` : '–'} | ${contender.usesEstimate ? `${ms(percentile(estimates, 0.5))} / ${ms(percentile(estimates, 0.9))}` : '–'} |`,
    )
  }
  console.log('')
}
console.error(`(${((performance.now() - started) / 1000).toFixed(1)} s)`)
