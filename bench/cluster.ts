/**
 * Cluster benchmarks on a real local primary and two replicas (`npm run bench:cluster`).
 *
 * Each replica sits behind a latency-injecting proxy (`latency-proxy.ts`, in a child process).
 * Scenarios:
 *
 * - `equal`: no injected delay;
 * - `slow`: replica-1 about 2 ms slower (its replies held 2 ms) for the whole run;
 * - `spike`: replica-1 about 20 ms slower (replies held 20 ms) for 2 s out of every 5 s;
 * - `kill`: replica-2 SIGKILLed at 30 % of the run and restarted at 60 %;
 * - `consistency`: write → read-back pairs in 'eventual', 'sticky' and 'causal' modes, with and
 *   without a replica apply delay.
 *
 * In the first four, every built-in selector, `kysely-replication`'s round-robin and an oracle
 * (`oracle-selector.ts`) run the same closed-loop read load (`--concurrency` workers, point
 * selects by primary key, `consistency: 'eventual'`) for `--duration` seconds after a warm-up.
 * Every read asks the server who it is, so reads per node come from the databases themselves.
 *
 * `equal` and `slow` run as `--slices` rounds (5) in which every contender runs its share of the
 * duration in turn (0.5 s warm-up each), so other work on a shared machine hits all alike.
 *
 * Options: `npm run bench:cluster -- --help`. Progress goes to stderr. Writes
 * `bench/results/cluster.json` (`cluster-postgres.json` for PostgreSQL; merged by scenario with an
 * earlier run, so `--scenario` can redo one) and regenerates `docs/benchmarks.md`.
 */
import * as fs from 'node:fs'
import * as path from 'node:path'
import { performance } from 'node:perf_hooks'
import * as hdr from 'hdr-histogram-js'
import { type Dialect, Kysely } from 'kysely'
import { KyselyReplicationDialect } from 'kysely-replication'
import { RoundRobinReplicaStrategy } from 'kysely-replication/strategy/round-robin'
import type { ConsistencyMode, ReplicatedDialectConfig, RoutingStats } from '../src/index.js'
import type { BuiltInSelectorName, ReplicaSelector } from '../src/selection/replica-selector.js'
import type { NodeConnectionOptions, ReplicatedTestCluster } from '../test/support/cluster.js'
import { parseCommandLine } from './cli.js'
import {
  type BenchDatabase,
  type BenchDb,
  type ClusterBenchEngine,
  ITEM_ROWS,
  KV_ROWS,
  loadEngine,
} from './cluster-engines.js'
import { ProxyProcess, type RemoteLatencyProxy } from './latency-proxy.js'
import { loadLibrary } from './library.js'
import { collectMeta, median, progress, RESULTS_DIR, writeResult } from './meta.js'
import { type InjectedState, OracleSelector } from './oracle-selector.js'

const args = parseCommandLine({
  usage: 'npm run bench:cluster -- [options]',
  summary: [
    'Cluster benchmarks on a real local primary and two replicas (MariaDB or PostgreSQL): every',
    "selector, kysely-replication's round-robin and an oracle under the same closed-loop read load,",
    'and write → read-back pairs per consistency mode. Progress goes to stderr. Writes',
    'bench/results/cluster.json (cluster-postgres.json for PostgreSQL; merged by scenario with an',
    'earlier run) and regenerates docs/benchmarks.md.',
  ].join('\n'),
  options: {
    duration: {
      type: 'string',
      value: 's',
      default: '10',
      help: 'measured seconds per selector in equal, slow, spike and kill',
    },
    warmup: {
      type: 'string',
      value: 's',
      default: '1.5',
      help: 'unrecorded seconds before each measurement',
    },
    concurrency: { type: 'string', value: 'n', default: '32', help: 'closed-loop read workers' },
    scenario: {
      type: 'string',
      value: 'list',
      default: 'equal,slow,spike,kill,consistency',
      help: 'scenarios to run',
    },
    selectors: {
      type: 'string',
      value: 'list',
      default: 'all',
      help: 'contenders: built-in selector names, kysely-replication, oracle',
    },
    dialect: { type: 'string', value: 'mysql|postgres', default: 'mysql', help: 'the engine' },
    slices: {
      type: 'string',
      value: 'n',
      default: '5',
      help: 'equal and slow: interleaved rounds per selector',
    },
    'pairs-duration': {
      type: 'string',
      value: 's',
      default: '4',
      help: 'consistency: seconds per mode',
    },
    'pairs-concurrency': {
      type: 'string',
      value: 'n',
      default: '8',
      help: 'consistency: write → read-back workers',
    },
    'replica-delay': {
      type: 'string',
      value: 'ms',
      default: '1000',
      help: 'consistency: apply delay of the replicas in the second set of rows',
    },
    'no-report': { type: 'boolean', help: 'leave docs/ alone' },
    'no-write': { type: 'boolean', help: 'print only: no results file, no report' },
    source: {
      type: 'boolean',
      help: 'run src/ through tsx instead of its tsc output (see bench/library.ts)',
    },
  },
})

// The library as it ships (tsc output), unless --source: see library.ts.
const lib = await loadLibrary(args.source)
const { consistencyScope } = lib.index
const { BUILT_IN_SELECTOR_NAMES } = lib

const DURATION_MS = Number(args.duration) * 1000
const WARMUP_MS = Number(args.warmup) * 1000
const CONCURRENCY = Number(args.concurrency)
/** Interleaved slices per contender in the scenarios without a time-driven pattern. */
const SLICES = Math.max(1, Math.floor(Number(args.slices)))
const SLICE_WARMUP_MS = Math.min(WARMUP_MS, 500)
const PAIRS_DURATION_MS = Number(args['pairs-duration']) * 1000
const PAIRS_CONCURRENCY = Number(args['pairs-concurrency'])
const REPLICA_DELAY_MS = Number(args['replica-delay'])
const SCENARIOS = args.scenario
  .split(',')
  .map((s) => s.trim())
  .filter((s) => s !== '')
for (const [name, value] of Object.entries({
  DURATION_MS,
  WARMUP_MS,
  CONCURRENCY,
  PAIRS_DURATION_MS,
})) {
  if (!Number.isFinite(value) || value < 0) throw new Error(`bad option ${name}: ${value}`)
}

/** Delays of the scenarios, applied to replies only (one timer hold per round trip). */
const SLOW_DELAY_MS = 2
const SPIKE_DELAY_MS = 20
const SPIKE_PERIOD_MS = 5000
const SPIKE_FROM_MS = 2000
const SPIKE_TO_MS = 4000

// ---- result shapes (read by report.ts) --------------------------------------------------------

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

export interface TimedEvent {
  /** Milliseconds since the measurement started. */
  readonly atMs: number
  readonly label: string
}

export interface LoadRunResult {
  readonly label: string
  readonly reads: number
  readonly failed: number
  readonly throughput: number
  /** Latencies of successful reads, in ms. */
  readonly latencyMs: LatencySummary
  readonly readsPerNode: Record<string, number>
  readonly errors: Record<string, number>
  readonly timeline: TimelineBucket[]
  readonly events: TimedEvent[]
}

export interface ScenarioResult {
  readonly name: string
  readonly title: string
  readonly description: string
  readonly runs: LoadRunResult[]
}

export interface ConsistencyRunResult {
  readonly mode: ConsistencyMode
  readonly replicaDelayMs: number
  readonly pairs: number
  readonly stale: number
  readonly readsOnReplicas: number
  /** Time per write + read-back pair, in ms. */
  readonly pairMs: LatencySummary
  readonly failed: number
  readonly routing: RoutingStats | undefined
}

export interface ClusterResults {
  readonly meta: ReturnType<typeof collectMeta>
  readonly engine: { name: string; server: string; serverVersion: string; driver: string }
  readonly settings: Record<string, unknown>
  readonly scenarios: ScenarioResult[]
  readonly consistency?: ConsistencyRunResult[]
}

// ---- helpers -----------------------------------------------------------------------------------

function histogram() {
  return hdr.build({
    lowestDiscernibleValue: 1,
    highestTrackableValue: 600_000_000,
    numberOfSignificantValueDigits: 3,
  })
}
type Histogram = ReturnType<typeof histogram>

/** Microsecond histogram → millisecond summary. */
function summarize(h: Histogram): LatencySummary {
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

function errorKey(error: unknown): string {
  const e = error as { code?: unknown; message?: unknown }
  const code = typeof e?.code === 'string' ? e.code : undefined
  const message =
    typeof e?.message === 'string' ? e.message.split('\n')[0]!.slice(0, 120) : String(error)
  return code !== undefined ? `${code}: ${message}` : message
}

// ---- the bench context -------------------------------------------------------------------------

interface Bench {
  readonly engine: ClusterBenchEngine
  readonly cluster: ReplicatedTestCluster
  readonly proxies: Map<string, RemoteLatencyProxy>
  readonly truth: Map<string, InjectedState>
}

function replicaOptions(bench: Bench, name: string): NodeConnectionOptions {
  const proxy = bench.proxies.get(name)!
  return { ...bench.cluster.connectionOptions(name), host: '127.0.0.1', port: proxy.port }
}

async function setDelay(bench: Bench, replica: string, ms: number): Promise<void> {
  bench.truth.get(replica)!.delayMs = ms
  await bench.proxies.get(replica)!.setDelays(0, ms)
}

interface Contender {
  readonly label: string
  create(
    bench: Bench,
    overrides?: Partial<ReplicatedDialectConfig<unknown>>,
  ): {
    db: BenchDb
    routingStats?: () => RoutingStats
  }
}

function ours(selector: BuiltInSelectorName | 'oracle'): Contender {
  return {
    label: selector,
    create(bench, overrides = {}) {
      const { engine, cluster } = bench
      const chosen: BuiltInSelectorName | ReplicaSelector =
        selector === 'oracle' ? new OracleSelector(bench.truth) : selector
      const dialect = engine.replicatedDialect({
        primary: {
          pool: engine.createPool(cluster.connectionOptions(cluster.primary), CONCURRENCY),
        },
        replicas: cluster.replicas.map((r) => ({
          name: r.name,
          pool: engine.createPool(replicaOptions(bench, r.name), CONCURRENCY),
        })),
        selector: chosen,
        consistency: 'eventual',
        ...overrides,
      })
      const stats = (dialect as unknown as { getRoutingStats?: () => RoutingStats }).getRoutingStats
      return {
        db: new Kysely<BenchDatabase>({ dialect }),
        ...(stats !== undefined ? { routingStats: () => stats.call(dialect) } : {}),
      }
    },
  }
}

const kyselyReplication: Contender = {
  label: 'kysely-replication',
  create(bench) {
    const { engine, cluster } = bench
    const dialect = new KyselyReplicationDialect({
      primaryDialect: engine.plainDialect(
        engine.createPool(cluster.connectionOptions(cluster.primary), CONCURRENCY),
      ),
      replicaDialects: cluster.replicas.map((r) =>
        engine.plainDialect(engine.createPool(replicaOptions(bench, r.name), CONCURRENCY)),
      ) as unknown as readonly [Dialect, ...Dialect[]],
      replicaStrategy: new RoundRobinReplicaStrategy({ onTransaction: 'error' }),
    })
    return { db: new Kysely<BenchDatabase>({ dialect }) }
  },
}

function contenders(): Contender[] {
  const all: Contender[] = [
    ...BUILT_IN_SELECTOR_NAMES.map((name) => ours(name)),
    kyselyReplication,
    ours('oracle'),
  ]
  if (args.selectors === 'all') return all
  const wanted = new Set(args.selectors.split(',').map((s) => s.trim()))
  return all.filter((c) => wanted.has(c.label))
}

// ---- scenarios ---------------------------------------------------------------------------------

interface Driver {
  /** Restores the cluster; resolves once it is whole again. */
  stop(): Promise<void>
}

interface ScenarioPlan {
  readonly name: string
  readonly title: string
  readonly description: string
  /** Before the warm-up. */
  setUp?(bench: Bench): Promise<void>
  /** At the start of the measurement; `events` receives what happened when. */
  drive?(bench: Bench, t0: number, events: TimedEvent[]): Driver
  tearDown?(bench: Bench): Promise<void>
}

const PLANS: Record<string, ScenarioPlan> = {
  equal: {
    name: 'equal',
    title: 'Equal replicas',
    description: 'Both replicas behind a proxy adding no delay.',
  },
  slow: {
    name: 'slow',
    title: 'One replica 2 ms slower',
    description: `replica-1's proxy holds every reply chunk ${SLOW_DELAY_MS} ms for the whole run (see the calibration for what that adds per query).`,
    async setUp(bench) {
      await setDelay(bench, 'replica-1', SLOW_DELAY_MS)
    },
    async tearDown(bench) {
      await setDelay(bench, 'replica-1', 0)
    },
  },
  spike: {
    name: 'spike',
    title: 'Latency spikes on one replica',
    description: `replica-1's proxy holds every reply chunk ${SPIKE_DELAY_MS} ms from ${SPIKE_FROM_MS / 1000} s to ${SPIKE_TO_MS / 1000} s of every ${SPIKE_PERIOD_MS / 1000} s (shaded in the timeline).`,
    drive(bench, t0, events) {
      let slow = false
      let busy = Promise.resolve()
      const tick = () => {
        const elapsed = performance.now() - t0
        const phase = elapsed % SPIKE_PERIOD_MS
        const want = phase >= SPIKE_FROM_MS && phase < SPIKE_TO_MS
        if (want !== slow) {
          slow = want
          events.push({ atMs: Math.round(elapsed), label: want ? 'spike on' : 'spike off' })
          busy = busy.then(() => setDelay(bench, 'replica-1', want ? SPIKE_DELAY_MS : 0))
        }
      }
      const timer = setInterval(tick, 10)
      tick()
      return {
        async stop() {
          clearInterval(timer)
          await busy
          await setDelay(bench, 'replica-1', 0)
        },
      }
    },
  },
  kill: {
    name: 'kill',
    title: 'One replica killed and restarted',
    description: `replica-2's server is SIGKILLed at 30 % of the run and restarted at 60 % (the restart takes a while: reads resume once it accepts connections).`,
    drive(bench, t0, events) {
      const { cluster } = bench
      const victim = 'replica-2'
      const at = (label: string) => events.push({ atMs: Math.round(performance.now() - t0), label })
      let work = Promise.resolve()
      const killTimer = setTimeout(() => {
        work = work.then(async () => {
          bench.truth.get(victim)!.down = true
          at('kill -9')
          await cluster.kill(victim)
        })
      }, DURATION_MS * 0.3)
      const restartTimer = setTimeout(() => {
        work = work.then(async () => {
          at('restart')
          await cluster.restart(victim)
          bench.truth.get(victim)!.down = false
          at('accepting')
        })
      }, DURATION_MS * 0.6)
      return {
        async stop() {
          clearTimeout(killTimer)
          clearTimeout(restartTimer)
          await work
          if (!cluster.isRunning(victim)) {
            await cluster.restart(victim)
            bench.truth.get(victim)!.down = false
          }
        },
      }
    },
  },
}

// ---- the closed-loop read load ---------------------------------------------------------------

/** What one contender's run (one continuous slice, or several interleaved ones) accumulates. */
class RunRecorder {
  readonly label: string
  readonly #seconds: number
  readonly #total = histogram()
  readonly #buckets: Array<{ h: Histogram; reads: Record<string, number>; failed: number }>
  readonly #readsPerNode: Record<string, number> = {}
  readonly #errors: Record<string, number> = {}
  readonly events: TimedEvent[] = []
  #reads = 0
  #failed = 0
  #measuredMs = 0

  constructor(label: string, durationMs: number) {
    this.label = label
    this.#seconds = Math.ceil(durationMs / 1000)
    this.#buckets = Array.from({ length: this.#seconds }, () => ({
      h: histogram(),
      reads: {},
      failed: 0,
    }))
  }

  #bucket(offsetMs: number) {
    return this.#buckets[Math.max(0, Math.min(this.#seconds - 1, Math.floor(offsetMs / 1000)))]!
  }

  ok(offsetMs: number, latencyMs: number, node: string): void {
    const us = Math.max(1, Math.round(latencyMs * 1000))
    const bucket = this.#bucket(offsetMs)
    this.#total.recordValue(us)
    bucket.h.recordValue(us)
    bucket.reads[node] = (bucket.reads[node] ?? 0) + 1
    this.#readsPerNode[node] = (this.#readsPerNode[node] ?? 0) + 1
    this.#reads++
  }

  failed(offsetMs: number, error: unknown): void {
    this.#failed++
    this.#bucket(offsetMs).failed++
    const key = errorKey(error)
    this.#errors[key] = (this.#errors[key] ?? 0) + 1
  }

  measured(ms: number): void {
    this.#measuredMs += ms
  }

  result(): LoadRunResult {
    const ms = (us: number) => Math.round(us) / 1000
    return {
      label: this.label,
      reads: this.#reads,
      failed: this.#failed,
      throughput: Math.round((this.#reads / Math.max(1, this.#measuredMs)) * 1000 * 10) / 10,
      latencyMs: summarize(this.#total),
      readsPerNode: this.#readsPerNode,
      errors: this.#errors,
      timeline: this.#buckets.map((b, t) => ({
        t,
        reads: b.reads,
        failed: b.failed,
        p50: b.h.totalCount > 0 ? ms(b.h.getValueAtPercentile(50)) : null,
        p99: b.h.totalCount > 0 ? ms(b.h.getValueAtPercentile(99)) : null,
      })),
      events: this.events,
    }
  }
}

/**
 * One slice of closed-loop read load with a fresh Kysely: `warmupMs` unrecorded, then
 * `durationMs` recorded into `recorder` at `offsetMs` of its timeline.
 */
async function runSlice(
  bench: Bench,
  plan: ScenarioPlan,
  contender: Contender,
  recorder: RunRecorder,
  offsetMs: number,
  durationMs: number,
  warmupMs: number,
): Promise<void> {
  const { engine, cluster } = bench
  await plan.setUp?.(bench)
  const { db } = contender.create(bench)
  const t0 = performance.now() + warmupMs
  const tEnd = t0 + durationMs
  const events: TimedEvent[] = []
  let driver: Driver | undefined
  const driveTimer = setTimeout(() => {
    driver = plan.drive?.(bench, t0, events)
  }, warmupMs)
  const nodeId = engine.nodeId()

  const worker = async () => {
    for (;;) {
      const started = performance.now()
      if (started >= tEnd) return
      const id = 1 + Math.floor(Math.random() * ITEM_ROWS)
      let node: string | undefined
      let error: unknown
      try {
        const row = await db
          .selectFrom('bench_item')
          .select(['id', 'name', 'v'])
          .select(nodeId.as('node_id'))
          .where('id', '=', id)
          .executeTakeFirst()
        if (row === undefined) error = new Error(`row ${id} not found`)
        else node = engine.nodeName(cluster, row.node_id)
      } catch (e) {
        error = e
      }
      const ended = performance.now()
      if (started < t0 || ended > tEnd) continue
      if (error !== undefined || node === undefined) recorder.failed(offsetMs + ended - t0, error)
      else recorder.ok(offsetMs + ended - t0, ended - started, node)
    }
  }
  try {
    await Promise.all(Array.from({ length: CONCURRENCY }, worker))
  } finally {
    clearTimeout(driveTimer)
    await driver?.stop()
    await plan.tearDown?.(bench)
    await db.destroy().catch(() => {})
  }
  recorder.measured(durationMs)
  for (const e of events) recorder.events.push({ atMs: e.atMs + offsetMs, label: e.label })
}

/**
 * Every contender through one scenario. A scenario without a time-driven pattern runs as
 * `SLICES` rounds in which every contender runs `DURATION_MS / SLICES` (in a rotating order), so
 * a burst of other work on the machine hits all contenders alike; spike and kill scenarios run
 * each contender once for the whole duration.
 */
async function runScenario(
  bench: Bench,
  plan: ScenarioPlan,
  all: Contender[],
): Promise<LoadRunResult[]> {
  const recorders = all.map((c) => new RunRecorder(c.label, DURATION_MS))
  const report = (i: number) => {
    const result = recorders[i]!.result()
    progress(`  ${describeRun(result)}`)
    const errors = Object.entries(result.errors)
    if (errors.length > 0)
      progress(`    errors: ${errors.map(([k, v]) => `${v}× ${k}`).join('; ')}`)
    if (result.events.length > 0) {
      progress(
        `    events: ${result.events.map((e) => `${(e.atMs / 1000).toFixed(2)} s ${e.label}`).join(', ')}`,
      )
    }
  }
  if (plan.drive !== undefined || SLICES <= 1) {
    for (let i = 0; i < all.length; i++) {
      await runSlice(bench, plan, all[i]!, recorders[i]!, 0, DURATION_MS, WARMUP_MS)
      report(i)
    }
  } else {
    const sliceMs = DURATION_MS / SLICES
    for (let round = 0; round < SLICES; round++) {
      for (let k = 0; k < all.length; k++) {
        const i = (k + round) % all.length
        await runSlice(
          bench,
          plan,
          all[i]!,
          recorders[i]!,
          round * sliceMs,
          sliceMs,
          SLICE_WARMUP_MS,
        )
      }
      progress(`  round ${round + 1}/${SLICES} done`)
    }
    for (let i = 0; i < all.length; i++) report(i)
  }
  return recorders.map((r) => r.result())
}

function describeRun(r: LoadRunResult): string {
  const nodes = Object.entries(r.readsPerNode)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([n, c]) => `${n.replace('replica-', 'r')}=${c}`)
    .join(' ')
  const l = r.latencyMs
  return `${r.label.padEnd(18)} ${String(r.throughput).padStart(8)} reads/s  p50 ${l.p50.toFixed(2)}  p90 ${l.p90.toFixed(2)}  p99 ${l.p99.toFixed(2)}  p99.9 ${l.p999.toFixed(2)} ms  failed ${r.failed}  ${nodes}`
}

// ---- consistency: write → read-back pairs ------------------------------------------------------

async function runPairs(
  bench: Bench,
  mode: ConsistencyMode,
  replicaDelayMs: number,
  expected: Map<number, number>,
): Promise<ConsistencyRunResult> {
  const { engine, cluster } = bench
  const { db, routingStats } = ours('p2c-ewma').create(bench, { consistency: mode })
  const h = histogram()
  const nodeId = engine.nodeId()
  let pairs = 0
  let stale = 0
  let onReplicas = 0
  let failed = 0
  const warmupMs = Math.min(WARMUP_MS, 500)
  const t0 = performance.now() + warmupMs
  const tEnd = t0 + PAIRS_DURATION_MS
  const keysPerWorker = Math.floor(KV_ROWS / PAIRS_CONCURRENCY)
  const worker = async (w: number) => {
    for (;;) {
      const started = performance.now()
      if (started >= tEnd) return
      // Each worker owns its keys, so the expected value is known.
      const key = 1 + w + PAIRS_CONCURRENCY * Math.floor(Math.random() * keysPerWorker)
      const value = (expected.get(key) ?? 0) + 1
      expected.set(key, value)
      try {
        const row = await consistencyScope(async () => {
          await db.updateTable('bench_kv').set({ v: value }).where('id', '=', key).execute()
          return db
            .selectFrom('bench_kv')
            .select(['v'])
            .select(nodeId.as('node_id'))
            .where('id', '=', key)
            .executeTakeFirstOrThrow()
        })
        const ended = performance.now()
        if (started < t0 || ended > tEnd) continue
        pairs++
        h.recordValue(Math.max(1, Math.round((ended - started) * 1000)))
        if (Number(row.v) < value) stale++
        if (engine.nodeName(cluster, row.node_id) !== cluster.primary.name) onReplicas++
      } catch {
        if (started >= t0) failed++
      }
    }
  }
  try {
    await Promise.all(Array.from({ length: PAIRS_CONCURRENCY }, (_, w) => worker(w)))
  } finally {
    await db.destroy().catch(() => {})
  }
  return {
    mode,
    replicaDelayMs,
    pairs,
    stale,
    readsOnReplicas: onReplicas,
    pairMs: summarize(h),
    failed,
    routing: routingStats?.(),
  }
}

// ---- main --------------------------------------------------------------------------------------

async function calibrate(bench: Bench): Promise<Record<string, unknown>> {
  const { engine, cluster } = bench
  const replica = cluster.replicas[0]!.name
  const p50 = async (options: NodeConnectionOptions) => median(await engine.pingTimes(options, 300))
  const direct = await p50(cluster.connectionOptions(replica))
  const out: Record<string, unknown> = { statement: 'select 1', directP50Ms: round3(direct) }
  for (const delay of [0, SLOW_DELAY_MS, SPIKE_DELAY_MS]) {
    await setDelay(bench, replica, delay)
    const through = await p50(replicaOptions(bench, replica))
    out[`replyDelay${delay}msP50Ms`] = round3(through)
  }
  await setDelay(bench, replica, 0)
  return out
}

function round3(x: number): number {
  return Math.round(x * 1000) / 1000
}

/** The results file of an engine. */
export function clusterResultFile(engine: string): string {
  return engine === 'mysql' ? 'cluster.json' : `cluster-${engine}.json`
}

function loadPrevious(engine: string): ClusterResults | undefined {
  try {
    const previous = JSON.parse(
      fs.readFileSync(path.join(RESULTS_DIR, clusterResultFile(engine)), 'utf8'),
    ) as ClusterResults
    return previous.engine?.name === engine ? previous : undefined
  } catch {
    return undefined
  }
}

async function main(): Promise<void> {
  const started = performance.now()
  const engine = await loadEngine(args.dialect, lib)
  const availability = engine.available()
  if (!availability.ok) {
    progress(`cannot run the ${engine.name} cluster benchmarks: ${availability.message}`)
    process.exitCode = 1
    return
  }
  const meta = collectMeta()
  progress(
    `cluster benchmarks (${engine.server}) on ${meta.cpuModel}, ${meta.cpus} cores, node ${meta.node}`,
  )
  const cluster = await engine.startCluster((line) => progress(`  [cluster] ${line}`))
  const proxies = await ProxyProcess.start()
  try {
    const serverVersion = await engine.serverVersion(cluster)
    progress(`  ${serverVersion}: preparing ${ITEM_ROWS} + ${KV_ROWS} rows`)
    await engine.prepareSchema(cluster)
    const bench: Bench = { engine, cluster, proxies: new Map(), truth: new Map() }
    for (const replica of cluster.replicas) {
      bench.proxies.set(replica.name, await proxies.create({ targetPort: replica.port }))
      bench.truth.set(replica.name, { delayMs: 0, down: false })
    }
    const calibration = await calibrate(bench)
    progress(`  proxy calibration (p50 of select 1): ${JSON.stringify(calibration)}`)

    // JIT, pools and server caches warm for everyone: a short discarded run of each client stack.
    progress('warm-up (discarded)')
    for (const contender of [ours('round-robin'), kyselyReplication]) {
      const discard = new RunRecorder(contender.label, 3000)
      await runSlice(bench, PLANS.equal!, contender, discard, 0, Math.min(DURATION_MS, 3000), 500)
    }

    const previous = loadPrevious(engine.name)
    const scenarios = new Map<string, ScenarioResult>(
      (previous?.scenarios ?? []).map((s) => [s.name, s]),
    )
    let consistency = previous?.consistency
    for (const name of SCENARIOS) {
      if (name === 'consistency') continue
      const plan = PLANS[name]
      if (plan === undefined) throw new Error(`unknown scenario ${JSON.stringify(name)}`)
      progress(`scenario ${plan.name}: ${plan.title} — ${plan.description}`)
      const runs = await runScenario(bench, plan, contenders())
      scenarios.set(plan.name, {
        name: plan.name,
        title: plan.title,
        description: plan.description,
        runs,
      })
    }
    if (SCENARIOS.includes('consistency')) {
      progress(
        `scenario consistency: write → read-back pairs, ${PAIRS_CONCURRENCY} workers, ${PAIRS_DURATION_MS / 1000} s per mode`,
      )
      consistency = []
      const expected = new Map<number, number>()
      for (const delay of [0, REPLICA_DELAY_MS]) {
        if (delay > 0) {
          for (const r of cluster.replicas) await engine.setReplicaDelay(cluster, r.name, delay)
        }
        try {
          for (const mode of ['eventual', 'sticky', 'causal'] as const) {
            const result = await runPairs(bench, mode, delay, expected)
            consistency.push(result)
            const share = result.pairs > 0 ? (100 * result.readsOnReplicas) / result.pairs : 0
            progress(
              `  ${mode.padEnd(8)} delay ${String(delay).padStart(4)} ms: ${result.pairs} pairs, stale ${result.stale}, on replicas ${share.toFixed(1)} %, pair p50 ${result.pairMs.p50} ms p99 ${result.pairMs.p99} ms, failed ${result.failed}`,
            )
          }
        } finally {
          if (delay > 0) {
            for (const r of cluster.replicas) await engine.setReplicaDelay(cluster, r.name, 0)
            await cluster.waitForReplication(30_000)
          }
        }
      }
    }
    const order = ['equal', 'slow', 'spike', 'kill']
    const results: ClusterResults = {
      meta,
      engine: {
        name: engine.name,
        server: engine.server,
        serverVersion,
        driver: `${engine.driver} ${meta.packages[engine.driver]}`,
      },
      settings: {
        durationS: DURATION_MS / 1000,
        warmupS: WARMUP_MS / 1000,
        slices: SLICES,
        sliceWarmupS: SLICE_WARMUP_MS / 1000,
        concurrency: CONCURRENCY,
        readQuery:
          'select id, name, v, <server id> from bench_item where id = ? (random id of 10 000 rows)',
        consistencyForLoad: 'eventual',
        health: 'library defaults (probe every 1000 ms)',
        library: lib.origin,
        pairs: {
          durationS: PAIRS_DURATION_MS / 1000,
          concurrency: PAIRS_CONCURRENCY,
          replicaDelayMs: REPLICA_DELAY_MS,
          selector: 'p2c-ewma',
        },
        delays: {
          slowReplyDelayMs: SLOW_DELAY_MS,
          spikeReplyDelayMs: SPIKE_DELAY_MS,
          spike: `${SPIKE_FROM_MS}–${SPIKE_TO_MS} ms of every ${SPIKE_PERIOD_MS} ms`,
        },
        calibration,
        runAt: new Date().toISOString(),
        wallClockS: 0,
      },
      scenarios: [...scenarios.values()].sort(
        (a, b) => order.indexOf(a.name) - order.indexOf(b.name),
      ),
      ...(consistency !== undefined ? { consistency } : {}),
    }
    ;(results.settings as { wallClockS: number }).wallClockS = Math.round(
      (performance.now() - started) / 1000,
    )
    if (args['no-write']) return
    const file = writeResult(clusterResultFile(engine.name), results)
    progress(`wrote ${file} (${((performance.now() - started) / 1000).toFixed(0)} s)`)
    if (!args['no-report']) {
      const { generateReport } = await import('./report.js')
      progress(`regenerated ${generateReport().join(', ')}`)
    }
  } finally {
    await proxies.stop().catch(() => {})
    await cluster.stop()
  }
}

await main()
