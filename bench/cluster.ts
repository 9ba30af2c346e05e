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
 * - `hang`: replica-2 frozen (SIGSTOP of its process tree: its port stays open, nothing answers)
 *   for `--stall` seconds, then thawed;
 * - `blackhole`: replica-2's traffic through the harness's fault proxy held (no byte moves, nothing
 *   closes) for `--stall` seconds, then passed again; both replicas are reached through the
 *   harness's fault proxies (in this process) instead of the latency proxies in this scenario;
 * - `consistency`: write → read-back pairs in 'eventual', 'sticky' and 'causal' modes, with and
 *   without a replica apply delay, and with extra workers that only write.
 *
 * In all but the last, every built-in selector, `kysely-replication`'s round-robin and an oracle
 * (`oracle-selector.ts`) run the same closed-loop read load (`--concurrency` workers, point
 * selects by primary key, `consistency: 'eventual'`, library defaults otherwise) after a warm-up.
 * Every read asks the server who it is, so reads per node come from the databases themselves; the
 * dialect's `node-down` and `node-up` events are recorded with their time.
 *
 * `equal` and `slow` run as `--slices` rounds (5) in which every contender runs its share of the
 * duration in turn (0.5 s warm-up each), so other work on a shared machine hits all alike. The
 * scenarios driven by the clock (`spike`, `kill`, `hang`, `blackhole`) run each contender for the
 * whole run, `--repeat` times in a rotating order; their figures over spans of the run (reads
 * started during spikes, during and after a fault) come from a log of every read (`read-log.ts`).
 *
 * Options: `npm run bench:cluster -- --help`. Progress goes to stderr. Writes
 * `bench/results/cluster.json` (`cluster-postgres.json` for PostgreSQL; merged by scenario with an
 * earlier run, so `--scenario` can redo one) and regenerates `docs/benchmarks.md`; `--quick` writes
 * the same files under `.tmp/bench-results/` and leaves the docs alone.
 */
import * as fs from 'node:fs'
import * as path from 'node:path'
import { performance } from 'node:perf_hooks'
import { setTimeout as sleep } from 'node:timers/promises'
import { type Dialect, Kysely } from 'kysely'
import { KyselyReplicationDialect } from 'kysely-replication'
import { RoundRobinReplicaStrategy } from 'kysely-replication/strategy/round-robin'
import type {
  ConsistencyMode,
  ReplicatedDialectConfig,
  ReplicationEvent,
  RoutingStats,
} from '../src/index.js'
import type { BuiltInSelectorName, ReplicaSelector } from '../src/selection/replica-selector.js'
import type { NodeConnectionOptions, ReplicatedTestCluster } from '../test/support/cluster.js'
import { parseCommandLine } from './cli.js'
import {
  type BenchDatabase,
  type BenchDb,
  type ClusterBenchEngine,
  EXTRA_ROWS,
  ITEM_ROWS,
  KV_ROWS,
  loadEngine,
} from './cluster-engines.js'
import type {
  ClusterResults,
  ConsistencyRunResult,
  LoadRunResult,
  RunFigures,
  ScenarioResult,
  TimedEvent,
} from './cluster-results.js'
import { type Histogram, histogram, recordMs, summarize } from './latency.js'
import { ProxyProcess, type RemoteLatencyProxy } from './latency-proxy.js'
import { loadLibrary } from './library.js'
import {
  collectMeta,
  median,
  progress,
  RESULTS_DIR,
  SCRATCH_RESULTS_DIR,
  writeResult,
} from './meta.js'
import { type InjectedState, OracleSelector } from './oracle-selector.js'
import { faultStats, ReadLog, spansBetween, spikeWindowStats } from './read-log.js'

/** The contenders of `--quick`: two of ours, the one without health checks, and the yardstick. */
const QUICK_SELECTORS = 'round-robin,p2c-ewma,kysely-replication,oracle'

/** The hedged contender: the library's defaults plus hedged reads (`p2c-ewma+hedge`). */
const HEDGE_SETTING = { after: 'p90', budget: 0.1 } as const

const args = parseCommandLine({
  usage: 'npm run bench:cluster -- [options]',
  summary: [
    'Cluster benchmarks on a real local primary and two replicas (MariaDB or PostgreSQL): every',
    "selector, kysely-replication's round-robin and an oracle under the same closed-loop read load",
    '(equal replicas, one slow, latency spikes, a replica killed, hung or blackholed), and',
    'write → read-back pairs per consistency mode. Progress goes to stderr. Writes',
    'bench/results/cluster.json (cluster-postgres.json for PostgreSQL; merged by scenario with an',
    'earlier run) and regenerates docs/benchmarks.md.',
  ].join('\n'),
  options: {
    duration: {
      type: 'string',
      value: 's',
      default: '10',
      quick: '1.5',
      help: 'measured seconds per contender in equal, slow, spike (at least 5) and kill (at least 4)',
    },
    warmup: {
      type: 'string',
      value: 's',
      default: '1.5',
      quick: '0.3',
      help: 'unrecorded seconds before each measurement',
    },
    concurrency: { type: 'string', value: 'n', default: '32', help: 'closed-loop read workers' },
    scenario: {
      type: 'string',
      value: 'list',
      default: 'equal,slow,spike,kill,hang,blackhole,consistency',
      help: 'scenarios to run',
    },
    selectors: {
      type: 'string',
      value: 'list',
      default: 'all',
      quick: QUICK_SELECTORS,
      help: 'contenders: built-in selector names, p2c-ewma+hedge (defaults plus hedge: { after: p90, budget: 0.1 }), kysely-replication, oracle',
    },
    dialect: { type: 'string', value: 'mysql|postgres', default: 'mysql', help: 'the engine' },
    slices: {
      type: 'string',
      value: 'n',
      default: '5',
      quick: '2',
      help: 'equal and slow: interleaved rounds per contender',
    },
    repeat: {
      type: 'string',
      value: 'n',
      default: '1',
      help: 'spike, kill, hang, blackhole: runs per contender, in rotating order (medians and spread reported)',
    },
    stall: {
      type: 'string',
      value: 's',
      default: '5',
      quick: '2',
      help: 'hang, blackhole: how long replica-2 stays frozen or blackholed (runs last 2 stalls + recovery window + 3 s; 0.5 s with --quick)',
    },
    'recovery-window': {
      type: 'string',
      value: 's',
      default: '5',
      quick: '1.5',
      help: 'kill, hang, blackhole: the span after the fault in which the share of reads on the recovered replica is counted',
    },
    'pairs-duration': {
      type: 'string',
      value: 's',
      default: '4',
      quick: '1',
      help: 'consistency: seconds per row',
    },
    'pairs-concurrency': {
      type: 'string',
      value: 'n',
      default: '8',
      help: 'consistency: write → read-back workers',
    },
    'extra-writers': {
      type: 'string',
      value: 'n',
      default: '8',
      help: 'consistency: workers that only write in the last rows, beside 4 write → read-back workers (0: no such rows)',
    },
    'replica-delay': {
      type: 'string',
      value: 'ms',
      default: '1000',
      help: 'consistency: apply delay of the replicas in the second set of rows',
    },
    quick: {
      type: 'boolean',
      help: `short runs and four contenders (${QUICK_SELECTORS}) for development: every scenario of one engine in about 2 minutes; writes its results under .tmp/bench-results/ and leaves docs/ alone`,
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

const QUICK = args.quick
const DURATION_MS = Number(args.duration) * 1000
const WARMUP_MS = Number(args.warmup) * 1000
const CONCURRENCY = Number(args.concurrency)
/** Interleaved slices per contender in the scenarios without a time-driven pattern. */
const SLICES = Math.max(1, Math.floor(Number(args.slices)))
const SLICE_WARMUP_MS = Math.min(WARMUP_MS, 500)
/** Runs per contender of the scenarios driven by the clock. */
const REPEAT = Math.max(1, Math.floor(Number(args.repeat)))
const STALL_MS = Number(args.stall) * 1000
const RECOVERY_WINDOW_MS = Number(args['recovery-window']) * 1000
const PAIRS_DURATION_MS = Number(args['pairs-duration']) * 1000
const PAIRS_CONCURRENCY = Number(args['pairs-concurrency'])
const EXTRA_WRITERS = Math.max(0, Math.floor(Number(args['extra-writers'])))
/** Write → read-back workers beside the extra writers. */
const PAIRS_BESIDE_WRITERS = 4
const REPLICA_DELAY_MS = Number(args['replica-delay'])
const SCENARIOS = args.scenario
  .split(',')
  .map((s) => s.trim())
  .filter((s) => s !== '')
for (const [name, value] of Object.entries({
  DURATION_MS,
  WARMUP_MS,
  CONCURRENCY,
  REPEAT,
  STALL_MS,
  RECOVERY_WINDOW_MS,
  PAIRS_DURATION_MS,
  PAIRS_CONCURRENCY,
  REPLICA_DELAY_MS,
})) {
  if (!Number.isFinite(value) || value < 0) throw new Error(`bad option ${name}: ${value}`)
}

/** Delays of the scenarios, applied to replies only (one timer hold per round trip). */
const SLOW_DELAY_MS = 2
const SPIKE_DELAY_MS = 20
const SPIKE_PERIOD_MS = 5000
const SPIKE_FROM_MS = 2000
const SPIKE_TO_MS = 4000
/** Spike and kill runs last at least one spike period. */
const SPIKE_DURATION_MS = Math.max(DURATION_MS, SPIKE_PERIOD_MS)
const KILL_DURATION_MS = Math.max(DURATION_MS, 4000)
/** The replica the faults hit, and the one that spikes. */
const VICTIM = 'replica-2'
const SPIKING = 'replica-1'
/** hang and blackhole: a span as long as the stall before it, the stall, the window after, a tail. */
const STALL_TAIL_MS = QUICK ? 500 : 3000
const STALL_DURATION_MS = 2 * STALL_MS + RECOVERY_WINDOW_MS + STALL_TAIL_MS
/** How long a run waits for reads still in flight at its end before it abandons them. */
const UNFINISHED_GRACE_MS = 30_000

// ---- helpers -----------------------------------------------------------------------------------

function errorKey(error: unknown): string {
  const e = error as { code?: unknown; message?: unknown }
  const code = typeof e?.code === 'string' ? e.code : undefined
  const message =
    typeof e?.message === 'string' ? e.message.split('\n')[0]!.slice(0, 120) : String(error)
  return code !== undefined ? `${code}: ${message}` : message
}

/** Resolves with `promise`'s outcome, or with `'timeout'` after `ms`. */
async function within<T>(promise: Promise<T>, ms: number): Promise<T | 'timeout'> {
  const controller = new AbortController()
  try {
    return await Promise.race([
      promise,
      sleep(ms, 'timeout' as const, { signal: controller.signal }),
    ])
  } finally {
    controller.abort()
  }
}

// ---- the bench context -------------------------------------------------------------------------

interface Bench {
  readonly engine: ClusterBenchEngine
  readonly cluster: ReplicatedTestCluster
  readonly proxies: Map<string, RemoteLatencyProxy>
  readonly truth: Map<string, InjectedState>
}

/**
 * How the benchmark's pools reach the replicas: through the latency proxies (child process), or
 * through the harness's fault proxies (`cluster.proxyFor`, in this process).
 */
type ReplicaRoute = 'latency-proxy' | 'fault-proxy'

function replicaOptions(
  bench: Bench,
  name: string,
  via: ReplicaRoute = 'latency-proxy',
): NodeConnectionOptions {
  if (via === 'fault-proxy') return bench.cluster.connectionOptions(name, { viaProxy: true })
  const proxy = bench.proxies.get(name)!
  return { ...bench.cluster.connectionOptions(name), host: '127.0.0.1', port: proxy.port }
}

async function setDelay(bench: Bench, replica: string, ms: number): Promise<void> {
  bench.truth.get(replica)!.delayMs = ms
  await bench.proxies.get(replica)!.setDelays(0, ms)
}

interface ContenderOptions {
  readonly via?: ReplicaRoute
  readonly overrides?: Partial<ReplicatedDialectConfig<unknown>>
  /** Receives the dialect's events (our dialects only). */
  readonly onEvent?: (event: ReplicationEvent) => void
}

interface Contender {
  readonly label: string
  /** Whether it reports node events (our dialects do, `kysely-replication` has none). */
  readonly reportsEvents: boolean
  create(
    bench: Bench,
    options?: ContenderOptions,
  ): {
    db: BenchDb
    routingStats?: () => RoutingStats
  }
}

function ours(
  selector: BuiltInSelectorName | 'oracle',
  variant?: { readonly label: string; readonly config: Partial<ReplicatedDialectConfig<unknown>> },
): Contender {
  return {
    label: variant?.label ?? selector,
    reportsEvents: true,
    create(bench, { via, overrides = {}, onEvent } = {}) {
      const { engine, cluster } = bench
      const chosen: BuiltInSelectorName | ReplicaSelector =
        selector === 'oracle' ? new OracleSelector(bench.truth) : selector
      const dialect = engine.replicatedDialect({
        primary: {
          pool: engine.createPool(cluster.connectionOptions(cluster.primary), CONCURRENCY),
        },
        replicas: cluster.replicas.map((r) => ({
          name: r.name,
          pool: engine.createPool(replicaOptions(bench, r.name, via), CONCURRENCY),
        })),
        selector: chosen,
        consistency: 'eventual',
        ...(onEvent !== undefined ? { onEvent } : {}),
        ...variant?.config,
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
  reportsEvents: false,
  create(bench, { via } = {}) {
    const { engine, cluster } = bench
    const dialect = new KyselyReplicationDialect({
      primaryDialect: engine.plainDialect(
        engine.createPool(cluster.connectionOptions(cluster.primary), CONCURRENCY),
      ),
      replicaDialects: cluster.replicas.map((r) =>
        engine.plainDialect(engine.createPool(replicaOptions(bench, r.name, via), CONCURRENCY)),
      ) as unknown as readonly [Dialect, ...Dialect[]],
      replicaStrategy: new RoundRobinReplicaStrategy({ onTransaction: 'error' }),
    })
    return { db: new Kysely<BenchDatabase>({ dialect }) }
  },
}

function contenders(): Contender[] {
  const all: Contender[] = [
    ...BUILT_IN_SELECTOR_NAMES.map((name) => ours(name)),
    ours('p2c-ewma', { label: 'p2c-ewma+hedge', config: { hedge: HEDGE_SETTING } }),
    kyselyReplication,
    ours('oracle'),
  ]
  if (args.selectors === 'all') return all
  const wanted = new Set(args.selectors.split(',').map((s) => s.trim()))
  const chosen = all.filter((c) => wanted.has(c.label))
  for (const name of wanted) {
    if (!chosen.some((c) => c.label === name)) {
      throw new Error(
        `unknown contender ${JSON.stringify(name)} (known: ${all.map((c) => c.label).join(', ')})`,
      )
    }
  }
  return chosen
}

// ---- scenarios ---------------------------------------------------------------------------------

interface Driver {
  /** Restores the cluster; resolves once it is whole again. */
  stop(): Promise<void>
}

/** What a scenario's figures over spans of a run are computed from. */
interface RunRecord {
  readonly log: ReadLog
  readonly events: readonly TimedEvent[]
  readonly durationMs: number
  readonly reportsEvents: boolean
}

interface ScenarioPlan {
  readonly name: string
  readonly title: string
  readonly description: string
  /** Measured ms per run (default `--duration`). */
  readonly durationMs?: number
  /** How the pools reach the replicas (default: the latency proxies). */
  readonly via?: ReplicaRoute
  /** Before the warm-up. */
  setUp?(bench: Bench): Promise<void>
  /** At the start of the measurement; `events` receives what happened when. */
  drive?(bench: Bench, t0: number, events: TimedEvent[]): Driver
  tearDown?(bench: Bench): Promise<void>
  /** The scenario's own figures of a run. */
  analyze?(run: RunRecord): Pick<RunFigures, 'spike' | 'fault'>
}

/** The steps of a fault on one node, at fixed times of the run. */
interface FaultSteps {
  /** When the fault starts and ends, in ms since the measurement started. */
  readonly startMs: number
  readonly endMs: number
  /** Makes the fault; `at` records a step. */
  inject(at: (label: string) => void): Promise<void>
  /** Ends it. */
  heal(at: (label: string) => void): Promise<void>
  /** After the run, whatever ran: leaves the node whole. */
  restore(): Promise<void>
}

/** Runs `steps` at their times from `t0`; a failed step fails `stop()`. */
function scheduleFault(t0: number, events: TimedEvent[], steps: FaultSteps): Driver {
  const at = (label: string) => events.push({ atMs: Math.round(performance.now() - t0), label })
  let work = Promise.resolve()
  let failure: { error: unknown } | undefined
  const later = (ms: number, step: (record: typeof at) => Promise<void>) =>
    setTimeout(
      () => {
        work = work.then(() => step(at)).catch((error) => void (failure ??= { error }))
      },
      Math.max(0, t0 + ms - performance.now()),
    )
  const timers = [later(steps.startMs, steps.inject), later(steps.endMs, steps.heal)]
  return {
    async stop() {
      for (const timer of timers) clearTimeout(timer)
      await work
      await steps.restore()
      if (failure !== undefined) throw failure.error
    },
  }
}

/** The `analyze` of a scenario whose fault on `node` runs from event `from` to event `to`. */
function faultAnalysis(node: string, from: string, to: string): ScenarioPlan['analyze'] {
  return ({ log, events, durationMs, reportsEvents }) => {
    const [span] = spansBetween(events, from, to, durationMs)
    if (span === undefined) return {}
    return {
      fault: faultStats(log, {
        node,
        span,
        afterMs: RECOVERY_WINDOW_MS,
        runMs: durationMs,
        events: reportsEvents ? events : undefined,
      }),
    }
  }
}

/** The truth the oracle is told about the victim. */
function markDown(bench: Bench, down: boolean): void {
  bench.truth.get(VICTIM)!.down = down
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
    description: `${SPIKING}'s proxy holds every reply chunk ${SLOW_DELAY_MS} ms for the whole run (see the calibration for what that adds per query).`,
    async setUp(bench) {
      await setDelay(bench, SPIKING, SLOW_DELAY_MS)
    },
    async tearDown(bench) {
      await setDelay(bench, SPIKING, 0)
    },
  },
  spike: {
    name: 'spike',
    title: 'Latency spikes on one replica',
    description: `${SPIKING}'s proxy holds every reply chunk ${SPIKE_DELAY_MS} ms from ${SPIKE_FROM_MS / 1000} s to ${SPIKE_TO_MS / 1000} s of every ${SPIKE_PERIOD_MS / 1000} s (shaded in the timeline).`,
    durationMs: SPIKE_DURATION_MS,
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
          busy = busy.then(() => setDelay(bench, SPIKING, want ? SPIKE_DELAY_MS : 0))
        }
      }
      const timer = setInterval(tick, 10)
      tick()
      return {
        async stop() {
          clearInterval(timer)
          await busy
          await setDelay(bench, SPIKING, 0)
        },
      }
    },
    analyze: ({ log, events, durationMs }) => ({
      spike: spikeWindowStats(
        log,
        spansBetween(events, 'spike on', 'spike off', durationMs),
        SPIKING,
      ),
    }),
  },
  kill: {
    name: 'kill',
    title: 'One replica killed and restarted',
    description: `${VICTIM}'s server is SIGKILLed at 30 % of the run and restarted at 60 % (the restart takes a while: reads resume once it accepts connections).`,
    durationMs: KILL_DURATION_MS,
    drive(bench, t0, events) {
      const { cluster } = bench
      return scheduleFault(t0, events, {
        startMs: KILL_DURATION_MS * 0.3,
        endMs: KILL_DURATION_MS * 0.6,
        async inject(at) {
          markDown(bench, true)
          at('kill -9')
          await cluster.kill(VICTIM)
        },
        async heal(at) {
          at('restart')
          await cluster.restart(VICTIM)
          markDown(bench, false)
          at('accepting')
        },
        async restore() {
          if (!cluster.isRunning(VICTIM)) await cluster.restart(VICTIM)
          markDown(bench, false)
        },
      })
    },
    analyze: faultAnalysis(VICTIM, 'kill -9', 'accepting'),
  },
  hang: {
    name: 'hang',
    title: 'One replica hung (SIGSTOP)',
    description: `${VICTIM}'s server is frozen (SIGSTOP of its process tree: its port stays open, connections are accepted, nothing answers, nothing errors) for ${STALL_MS / 1000} s after ${STALL_MS / 1000} s of the run, then thawed (SIGCONT); the run goes on ${(RECOVERY_WINDOW_MS + STALL_TAIL_MS) / 1000} s after.`,
    durationMs: STALL_DURATION_MS,
    drive(bench, t0, events) {
      const { cluster } = bench
      return scheduleFault(t0, events, {
        startMs: STALL_MS,
        endMs: 2 * STALL_MS,
        async inject(at) {
          markDown(bench, true)
          await cluster.freeze(VICTIM)
          at('freeze')
        },
        async heal(at) {
          await cluster.thaw(VICTIM)
          at('thaw')
          markDown(bench, false)
        },
        async restore() {
          await cluster.thaw(VICTIM)
          markDown(bench, false)
        },
      })
    },
    analyze: faultAnalysis(VICTIM, 'freeze', 'thaw'),
  },
  blackhole: {
    name: 'blackhole',
    title: 'One replica blackholed',
    description: `Both replicas are reached through the harness's fault proxies (in the benchmark's process, instead of the latency proxies). ${VICTIM}'s proxy holds every byte both ways (new connections are accepted and reach nothing; nothing closes or errors) for ${STALL_MS / 1000} s after ${STALL_MS / 1000} s of the run, then passes again (held bytes delivered, like a healed partition); the run goes on ${(RECOVERY_WINDOW_MS + STALL_TAIL_MS) / 1000} s after.`,
    durationMs: STALL_DURATION_MS,
    via: 'fault-proxy',
    async setUp({ cluster }) {
      for (const replica of cluster.replicas)
        await (await cluster.proxyFor(replica)).setMode('pass')
    },
    drive(bench, t0, events) {
      const { cluster } = bench
      const mode = async (mode: 'pass' | 'blackhole') =>
        (await cluster.proxyFor(VICTIM)).setMode(mode)
      return scheduleFault(t0, events, {
        startMs: STALL_MS,
        endMs: 2 * STALL_MS,
        async inject(at) {
          markDown(bench, true)
          await mode('blackhole')
          at('blackhole')
        },
        async heal(at) {
          await mode('pass')
          at('pass')
          markDown(bench, false)
        },
        async restore() {
          await mode('pass')
          markDown(bench, false)
        },
      })
    },
    analyze: faultAnalysis(VICTIM, 'blackhole', 'pass'),
  },
}

// ---- the closed-loop read load ---------------------------------------------------------------

/** What one contender's run (one continuous slice, or several interleaved ones) accumulates. */
class RunRecorder {
  readonly label: string
  readonly durationMs: number
  readonly #seconds: number
  readonly #total = histogram()
  readonly #buckets: Array<{ h: Histogram; reads: Record<string, number>; failed: number }>
  readonly #readsPerNode: Record<string, number> = {}
  readonly #errors: Record<string, number> = {}
  readonly events: TimedEvent[] = []
  readonly log = new ReadLog()
  #reads = 0
  #failed = 0
  #measuredMs = 0
  #unfinished = 0
  #hedges: { sent: number; won: number } | undefined

  constructor(label: string, durationMs: number) {
    this.label = label
    this.durationMs = durationMs
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

  /** A read started at `startMs` that `node` answered at `endMs` (ms on the run's timeline). */
  ok(startMs: number, endMs: number, node: string): void {
    const bucket = this.#bucket(endMs)
    recordMs(this.#total, endMs - startMs)
    recordMs(bucket.h, endMs - startMs)
    bucket.reads[node] = (bucket.reads[node] ?? 0) + 1
    this.#readsPerNode[node] = (this.#readsPerNode[node] ?? 0) + 1
    this.#reads++
    this.log.add(startMs, endMs, node)
  }

  failed(startMs: number, endMs: number, error: unknown): void {
    this.#failed++
    this.#bucket(endMs).failed++
    const key = errorKey(error)
    this.#errors[key] = (this.#errors[key] ?? 0) + 1
    this.log.add(startMs, endMs, undefined)
  }

  measured(ms: number): void {
    this.#measuredMs += ms
  }

  unfinished(count: number): void {
    this.#unfinished += count
  }

  /** Hedges sent and won during the measurement (contenders with hedged reads). */
  hedged(sent: number, won: number): void {
    this.#hedges ??= { sent: 0, won: 0 }
    this.#hedges.sent += sent
    this.#hedges.won += won
  }

  result(extra: Pick<RunFigures, 'spike' | 'fault'> = {}): LoadRunResult {
    const ms = (us: number) => Math.round(us) / 1000
    return {
      label: this.label,
      reads: this.#reads,
      failed: this.#failed,
      throughput: Math.round((this.#reads / Math.max(1, this.#measuredMs)) * 1000 * 10) / 10,
      latencyMs: summarize(this.#total),
      readsPerNode: this.#readsPerNode,
      ...extra,
      ...(this.#unfinished > 0 ? { unfinished: this.#unfinished } : {}),
      ...(this.#hedges !== undefined ? { hedges: { ...this.#hedges } } : {}),
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
  const t0 = performance.now() + warmupMs
  const tEnd = t0 + durationMs
  const events: TimedEvent[] = []
  const onEvent = (event: ReplicationEvent) => {
    if (event.type !== 'node-down' && event.type !== 'node-up') return
    const atMs = performance.now() - t0
    if (atMs >= 0 && atMs <= durationMs) {
      events.push({ atMs: Math.round(atMs), label: event.type, node: event.node })
    }
  }
  const { db, routingStats } = contender.create(bench, {
    ...(plan.via ? { via: plan.via } : {}),
    onEvent,
  })
  let driver: Driver | undefined
  // Hedges counted over the measurement only: the counters at its start are subtracted.
  let hedgesAtStart: RoutingStats | undefined
  const driveTimer = setTimeout(() => {
    hedgesAtStart = routingStats?.()
    driver = plan.drive?.(bench, t0, events)
  }, warmupMs)
  const nodeId = engine.nodeId()
  let inFlight = 0
  let measuredEnd: Promise<RoutingStats | undefined> | undefined

  const worker = async () => {
    for (;;) {
      const started = performance.now()
      if (started >= tEnd) return
      const id = 1 + Math.floor(Math.random() * ITEM_ROWS)
      let node: string | undefined
      let error: unknown
      inFlight++
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
      } finally {
        inFlight--
      }
      const ended = performance.now()
      if (started < t0 || ended > tEnd) continue
      const [from, to] = [offsetMs + started - t0, offsetMs + ended - t0]
      if (error !== undefined || node === undefined) recorder.failed(from, to, error)
      else recorder.ok(from, to, node)
    }
  }
  try {
    const workers = Promise.all(Array.from({ length: CONCURRENCY }, worker))
    const untilEnd = Math.max(0, tEnd - performance.now())
    measuredEnd = within(workers, untilEnd).then(() => routingStats?.())
    if ((await within(workers, untilEnd + UNFINISHED_GRACE_MS)) === 'timeout') {
      recorder.unfinished(inFlight)
      progress(
        `    ${contender.label}: ${inFlight} reads unfinished ${UNFINISHED_GRACE_MS / 1000} s after the run: abandoned`,
      )
    }
  } finally {
    clearTimeout(driveTimer)
    await driver?.stop()
    await plan.tearDown?.(bench)
    await within(
      db.destroy().catch(() => {}),
      10_000,
    )
  }
  recorder.measured(durationMs)
  const atEnd = await measuredEnd
  if (atEnd !== undefined && (atEnd.hedges > 0 || hedgesAtStart?.hedges)) {
    recorder.hedged(
      atEnd.hedges - (hedgesAtStart?.hedges ?? 0),
      atEnd.hedgesWon - (hedgesAtStart?.hedgesWon ?? 0),
    )
  }
  for (const e of events) recorder.events.push({ ...e, atMs: e.atMs + offsetMs })
  recorder.events.sort((a, b) => a.atMs - b.atMs)
}

/** The figures of a run, for the medians over repetitions. */
function figures(run: LoadRunResult): RunFigures {
  const { label, errors, timeline, events, repetitions, shownRepetition, ...rest } = run
  return rest
}

/**
 * One result per contender from its repetitions: the one with the median p99, the figures of
 * all, and the errors of all (summed).
 */
function combineRepetitions(runs: LoadRunResult[]): LoadRunResult {
  if (runs.length === 1) return runs[0]!
  const byP99 = runs.map((r, i) => [r.latencyMs.p99, i] as const).sort((a, b) => a[0] - b[0])
  const shown = byP99[(byP99.length - 1) >> 1]![1]
  const errors: Record<string, number> = {}
  for (const run of runs) {
    for (const [key, n] of Object.entries(run.errors)) errors[key] = (errors[key] ?? 0) + n
  }
  return { ...runs[shown]!, errors, repetitions: runs.map(figures), shownRepetition: shown }
}

/**
 * Every contender through one scenario. A scenario without a time-driven pattern runs as
 * `SLICES` rounds in which every contender runs its `1 / SLICES` of the duration (in a rotating
 * order), so a burst of other work on the machine hits all contenders alike; a scenario driven by
 * the clock runs each contender for the whole run, `REPEAT` times, in an order rotating by one
 * each time.
 */
async function runScenario(
  bench: Bench,
  plan: ScenarioPlan,
  all: Contender[],
): Promise<LoadRunResult[]> {
  const durationMs = plan.durationMs ?? DURATION_MS
  if (plan.drive !== undefined || SLICES <= 1) {
    const runs: LoadRunResult[][] = all.map(() => [])
    for (let rep = 0; rep < REPEAT; rep++) {
      for (let k = 0; k < all.length; k++) {
        const i = (k + rep) % all.length
        const contender = all[i]!
        const recorder = new RunRecorder(contender.label, durationMs)
        await runSlice(bench, plan, contender, recorder, 0, durationMs, WARMUP_MS)
        const result = recorder.result(
          plan.analyze?.({
            log: recorder.log,
            events: recorder.events,
            durationMs,
            reportsEvents: contender.reportsEvents,
          }),
        )
        runs[i]!.push(result)
        report(result, REPEAT > 1 ? ` (${rep + 1}/${REPEAT})` : '')
      }
    }
    return runs.map(combineRepetitions)
  }
  const recorders = all.map((c) => new RunRecorder(c.label, durationMs))
  const sliceMs = durationMs / SLICES
  for (let round = 0; round < SLICES; round++) {
    for (let k = 0; k < all.length; k++) {
      const i = (k + round) % all.length
      await runSlice(bench, plan, all[i]!, recorders[i]!, round * sliceMs, sliceMs, SLICE_WARMUP_MS)
    }
    progress(`  round ${round + 1}/${SLICES} done`)
  }
  const results = recorders.map((r) => r.result())
  for (const result of results) report(result, '')
  return results
}

function report(result: LoadRunResult, suffix: string): void {
  progress(`  ${describeRun(result)}${suffix}`)
  const errors = Object.entries(result.errors)
  if (errors.length > 0) progress(`    errors: ${errors.map(([k, v]) => `${v}× ${k}`).join('; ')}`)
  if (result.events.length > 0) {
    progress(
      `    events: ${result.events.map((e) => `${(e.atMs / 1000).toFixed(2)} s ${e.label}${e.node ? ` ${e.node}` : ''}`).join(', ')}`,
    )
  }
  const { spike, fault, hedges } = result
  if (hedges !== undefined) {
    progress(
      `    hedges: ${hedges.sent} sent (${pct(hedges.sent, result.reads)} of reads), ${hedges.won} won`,
    )
  }
  if (spike !== undefined) {
    const share = (w: typeof spike.inWindows) =>
      `${w.reads} reads, ${pct(w.onNode, w.reads)} on ${spike.replica}, p99 ${w.p99Ms ?? '–'} ms`
    progress(`    in spike windows: ${share(spike.inWindows)}; outside: ${share(spike.outside)}`)
  }
  if (fault !== undefined) {
    const s = (ms: number | null | undefined) =>
      ms === undefined ? 'n/a' : ms === null ? 'none' : `${(ms / 1000).toFixed(2)} s`
    const f = fault.inFlight
    progress(
      `    fault ${(fault.fromMs / 1000).toFixed(2)}–${(fault.toMs / 1000).toFixed(2)} s: in flight ${f.reads} (failed ${f.failed}), p99 ${f.p99Ms ?? '–'} ms, max ${f.maxMs ?? '–'} ms; started ${fault.startedDuring} during vs ${fault.startedBefore} in ${(fault.beforeSpanMs / 1000).toFixed(2)} s before; node-down after ${s(fault.detectionMs)}, node-up ${s(fault.nodeUpMs)} after the end; back in use after ${s(fault.backInUseMs)}; ${pct(fault.after.onNode, fault.after.reads)} of ${fault.after.reads} reads on ${fault.node} in the ${(fault.after.windowMs / 1000).toFixed(1)} s after`,
    )
  }
}

function pct(part: number, whole: number): string {
  return whole > 0 ? `${((100 * part) / whole).toFixed(1)} %` : '–'
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

interface PairsPlan {
  readonly mode: ConsistencyMode
  readonly replicaDelayMs: number
  /** Write → read-back workers; each owns its keys, so the expected value is known. */
  readonly pairWorkers: number
  /** Workers that only write (rows of another table), each write in a scope of its own. */
  readonly extraWriters: number
}

async function runPairs(
  bench: Bench,
  plan: PairsPlan,
  expected: Map<number, number>,
): Promise<ConsistencyRunResult> {
  const { engine, cluster } = bench
  const { mode, pairWorkers, extraWriters } = plan
  const { db, routingStats } = ours('p2c-ewma').create(bench, { overrides: { consistency: mode } })
  const h = histogram()
  const nodeId = engine.nodeId()
  let pairs = 0
  let stale = 0
  let onReplicas = 0
  let failed = 0
  let extraWrites = 0
  const warmupMs = Math.min(WARMUP_MS, 500)
  const t0 = performance.now() + warmupMs
  const tEnd = t0 + PAIRS_DURATION_MS
  const keysPerWorker = Math.floor(KV_ROWS / pairWorkers)
  const pairWorker = async (w: number) => {
    for (;;) {
      const started = performance.now()
      if (started >= tEnd) return
      const key = 1 + w + pairWorkers * Math.floor(Math.random() * keysPerWorker)
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
        recordMs(h, ended - started)
        if (Number(row.v) < value) stale++
        if (engine.nodeName(cluster, row.node_id) !== cluster.primary.name) onReplicas++
      } catch {
        if (started >= t0) failed++
      }
    }
  }
  const writer = async () => {
    for (;;) {
      const started = performance.now()
      if (started >= tEnd) return
      const key = 1 + Math.floor(Math.random() * EXTRA_ROWS)
      try {
        await consistencyScope(() =>
          db
            .updateTable('bench_extra')
            .set((eb) => ({ v: eb('v', '+', 1) }))
            .where('id', '=', key)
            .execute(),
        )
        if (started >= t0 && performance.now() <= tEnd) extraWrites++
      } catch {
        // counted by nobody: these writes only load the primary and the replication stream
      }
    }
  }
  try {
    await Promise.all([
      ...Array.from({ length: pairWorkers }, (_, w) => pairWorker(w)),
      ...Array.from({ length: extraWriters }, writer),
    ])
  } finally {
    await db.destroy().catch(() => {})
  }
  return {
    mode,
    replicaDelayMs: plan.replicaDelayMs,
    pairWorkers,
    extraWriters,
    ...(extraWriters > 0 ? { extraWrites } : {}),
    pairs,
    stale,
    readsOnReplicas: onReplicas,
    pairMs: summarize(h),
    failed,
    routing: routingStats?.(),
  }
}

async function runConsistency(bench: Bench): Promise<ConsistencyRunResult[]> {
  const { engine, cluster } = bench
  progress(
    `scenario consistency: write → read-back pairs, ${PAIRS_CONCURRENCY} workers, ${PAIRS_DURATION_MS / 1000} s per row${EXTRA_WRITERS > 0 ? `; then ${PAIRS_BESIDE_WRITERS} pair workers beside ${EXTRA_WRITERS} workers that only write` : ''}`,
  )
  const modes = ['eventual', 'sticky', 'causal'] as const
  const sets: Array<Omit<PairsPlan, 'mode'>> = [
    { replicaDelayMs: 0, pairWorkers: PAIRS_CONCURRENCY, extraWriters: 0 },
    { replicaDelayMs: REPLICA_DELAY_MS, pairWorkers: PAIRS_CONCURRENCY, extraWriters: 0 },
    ...(EXTRA_WRITERS > 0
      ? [{ replicaDelayMs: 0, pairWorkers: PAIRS_BESIDE_WRITERS, extraWriters: EXTRA_WRITERS }]
      : []),
  ]
  const out: ConsistencyRunResult[] = []
  const expected = new Map<number, number>()
  for (const set of sets) {
    const delay = set.replicaDelayMs
    if (delay > 0) {
      for (const r of cluster.replicas) await engine.setReplicaDelay(cluster, r.name, delay)
    }
    try {
      for (const mode of modes) {
        const result = await runPairs(bench, { ...set, mode }, expected)
        out.push(result)
        const share = result.pairs > 0 ? (100 * result.readsOnReplicas) / result.pairs : 0
        const writers =
          set.extraWriters > 0 ? `, ${set.extraWriters} writers: ${result.extraWrites} writes` : ''
        progress(
          `  ${mode.padEnd(8)} delay ${String(delay).padStart(4)} ms, ${set.pairWorkers} pair workers${writers}: ${result.pairs} pairs, stale ${result.stale}, on replicas ${share.toFixed(1)} %, pair p50 ${result.pairMs.p50} ms p99 ${result.pairMs.p99} ms, failed ${result.failed}`,
        )
      }
    } finally {
      if (delay > 0) {
        for (const r of cluster.replicas) await engine.setReplicaDelay(cluster, r.name, 0)
      }
      await cluster.waitForReplication(30_000)
    }
  }
  return out
}

// ---- main --------------------------------------------------------------------------------------

async function calibrate(bench: Bench): Promise<Record<string, unknown>> {
  const { engine, cluster } = bench
  const replica = cluster.replicas[0]!.name
  const pings = QUICK ? 50 : 300
  const p50 = async (options: NodeConnectionOptions) =>
    median(await engine.pingTimes(options, pings))
  const direct = await p50(cluster.connectionOptions(replica))
  const out: Record<string, unknown> = { statement: 'select 1', directP50Ms: round3(direct) }
  for (const delay of [0, SLOW_DELAY_MS, SPIKE_DELAY_MS]) {
    await setDelay(bench, replica, delay)
    const through = await p50(replicaOptions(bench, replica))
    out[`replyDelay${delay}msP50Ms`] = round3(through)
  }
  await setDelay(bench, replica, 0)
  await cluster.proxyFor(replica)
  out.faultProxyP50Ms = round3(await p50(replicaOptions(bench, replica, 'fault-proxy')))
  return out
}

function round3(x: number): number {
  return Math.round(x * 1000) / 1000
}

/** The results file of an engine. */
export function clusterResultFile(engine: string): string {
  return engine === 'mysql' ? 'cluster.json' : `cluster-${engine}.json`
}

/** Where this run's results go: `bench/results/`, or `.tmp/bench-results/` for `--quick`. */
const RESULTS_OUT = QUICK ? SCRATCH_RESULTS_DIR : RESULTS_DIR

function loadPrevious(engine: string): ClusterResults | undefined {
  try {
    const previous = JSON.parse(
      fs.readFileSync(path.join(RESULTS_OUT, clusterResultFile(engine)), 'utf8'),
    ) as ClusterResults
    return previous.engine?.name === engine ? previous : undefined
  } catch {
    return undefined
  }
}

const SCENARIO_ORDER = ['equal', 'slow', 'spike', 'kill', 'hang', 'blackhole']

async function main(): Promise<void> {
  const started = performance.now()
  for (const name of SCENARIOS) {
    if (name !== 'consistency' && PLANS[name] === undefined) {
      throw new Error(
        `unknown scenario ${JSON.stringify(name)} (known: ${[...SCENARIO_ORDER, 'consistency'].join(', ')})`,
      )
    }
  }
  const all = contenders()
  const engine = await loadEngine(args.dialect, lib)
  const availability = engine.available()
  if (!availability.ok) {
    progress(`cannot run the ${engine.name} cluster benchmarks: ${availability.message}`)
    process.exitCode = 1
    return
  }
  const meta = collectMeta()
  progress(
    `cluster benchmarks (${engine.server}) on ${meta.cpuModel}, ${meta.cpus} cores, node ${meta.node}${QUICK ? ' (--quick)' : ''}`,
  )
  const cluster = await engine.startCluster((line) => progress(`  [cluster] ${line}`))
  const proxies = await ProxyProcess.start()
  try {
    const serverVersion = await engine.serverVersion(cluster)
    progress(`  ${serverVersion}: preparing ${ITEM_ROWS} + ${KV_ROWS} + ${EXTRA_ROWS} rows`)
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
    const warmupRunMs = Math.min(DURATION_MS, 3000)
    for (const contender of [ours('round-robin'), kyselyReplication]) {
      const discard = new RunRecorder(contender.label, warmupRunMs)
      await runSlice(bench, PLANS.equal!, contender, discard, 0, warmupRunMs, 500)
    }

    const previous = loadPrevious(engine.name)
    const scenarios = new Map<string, ScenarioResult>(
      (previous?.scenarios ?? []).map((s) => [s.name, s]),
    )
    let consistency = previous?.consistency
    for (const name of SCENARIOS) {
      if (name === 'consistency') continue
      const plan = PLANS[name]!
      const durationMs = plan.durationMs ?? DURATION_MS
      progress(
        `scenario ${plan.name} (${durationMs / 1000} s per run${plan.drive !== undefined && REPEAT > 1 ? `, ${REPEAT} runs each` : ''}): ${plan.title} — ${plan.description}`,
      )
      const scenarioStarted = performance.now()
      const runs = await runScenario(bench, plan, all)
      progress(`  (${((performance.now() - scenarioStarted) / 1000).toFixed(0)} s)`)
      scenarios.set(plan.name, {
        name: plan.name,
        title: plan.title,
        description: plan.description,
        durationS: durationMs / 1000,
        repeat: plan.drive !== undefined ? REPEAT : 1,
        runs,
      })
    }
    if (SCENARIOS.includes('consistency')) {
      const scenarioStarted = performance.now()
      consistency = await runConsistency(bench)
      progress(`  (${((performance.now() - scenarioStarted) / 1000).toFixed(0)} s)`)
    }
    const results: ClusterResults = {
      meta,
      engine: {
        name: engine.name,
        server: engine.server,
        serverVersion,
        driver: `${engine.driver} ${meta.packages[engine.driver]}`,
      },
      settings: {
        quick: QUICK,
        durationS: DURATION_MS / 1000,
        warmupS: WARMUP_MS / 1000,
        slices: SLICES,
        sliceWarmupS: SLICE_WARMUP_MS / 1000,
        repeat: REPEAT,
        concurrency: CONCURRENCY,
        readQuery:
          'select id, name, v, <server id> from bench_item where id = ? (random id of 10 000 rows)',
        consistencyForLoad: 'eventual',
        health: 'library defaults (probe every 1000 ms)',
        library: lib.origin,
        faults: {
          node: VICTIM,
          stallS: STALL_MS / 1000,
          recoveryWindowS: RECOVERY_WINDOW_MS / 1000,
        },
        pairs: {
          durationS: PAIRS_DURATION_MS / 1000,
          concurrency: PAIRS_CONCURRENCY,
          replicaDelayMs: REPLICA_DELAY_MS,
          besideWriters: PAIRS_BESIDE_WRITERS,
          extraWriters: EXTRA_WRITERS,
          selector: 'p2c-ewma',
        },
        delays: {
          slowReplyDelayMs: SLOW_DELAY_MS,
          spikeReplyDelayMs: SPIKE_DELAY_MS,
          spike: `${SPIKE_FROM_MS}–${SPIKE_TO_MS} ms of every ${SPIKE_PERIOD_MS} ms`,
        },
        calibration,
        runAt: new Date().toISOString(),
        wallClockS: Math.round((performance.now() - started) / 1000),
      },
      scenarios: [...scenarios.values()].sort(
        (a, b) => SCENARIO_ORDER.indexOf(a.name) - SCENARIO_ORDER.indexOf(b.name),
      ),
      ...(consistency !== undefined ? { consistency } : {}),
    }
    progress(`done in ${((performance.now() - started) / 1000).toFixed(0)} s`)
    if (args['no-write']) return
    const file = writeResult(clusterResultFile(engine.name), results, RESULTS_OUT)
    progress(`wrote ${file}`)
    if (!args['no-report'] && !QUICK) {
      const { generateReport } = await import('./report.js')
      progress(`regenerated ${generateReport().join(', ')}`)
    }
  } finally {
    await proxies.stop().catch(() => {})
    await cluster.stop()
  }
}

await main()
