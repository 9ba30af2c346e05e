/**
 * Micro-benchmarks without a database (`npm run bench`):
 *
 * - every selector picking among 2, 8, 64 and 1024 replicas: time and heap allocated per pick;
 * - classification of builder queries (`classifyNode`) and raw SQL (`classifyRawSql`), cold and
 *   through the `ClassificationCache` (a statement seen before), alone and
 *   together with a selection;
 * - whole-query overhead: one mixed workload (nine reads to one write) through Kysely's own
 *   `MysqlDialect`, `ReplicatedMysqlDialect` ('eventual' and 'causal') and `kysely-replication`,
 *   all on fake mysql2 pools that answer at once (`fake-pool.ts`), in alternating rounds; each
 *   both outside any context and with every query in a per-request context (the replicated
 *   dialects in `consistencyScope()`, the others in a plain `AsyncLocalStorage.run()`).
 *
 * Numbers to report, never to assert. Writes `bench/results/micro.json` and regenerates
 * `docs/benchmarks.md`.
 *
 * Options: `npm run bench -- --help`.
 * A run of some sections keeps the other sections of the previous `micro.json`.
 */
import { AsyncLocalStorage } from 'node:async_hooks'
import * as fs from 'node:fs'
import * as path from 'node:path'
import { performance } from 'node:perf_hooks'
import v8 from 'node:v8'
import { runInNewContext } from 'node:vm'
import {
  DummyDriver,
  Kysely,
  MysqlAdapter,
  MysqlDialect,
  MysqlIntrospector,
  MysqlQueryCompiler,
  sql,
} from 'kysely'
import { KyselyReplicationDialect } from 'kysely-replication'
import { RoundRobinReplicaStrategy } from 'kysely-replication/strategy/round-robin'
import type { ReplicatedMysqlDialectConfig } from '../src/index.js'
import type { ClassifyOptions } from '../src/routing/classification.js'
import type {
  BuiltInSelectorName,
  ReplicaCandidate,
  ReplicaSelector,
  SelectionContext,
} from '../src/selection/replica-selector.js'
import { trackStorages } from './async-context.js'
import { parseCommandLine } from './cli.js'
import { createFakeCluster, FakeMysqlPool } from './fake-pool.js'
import { loadLibrary } from './library.js'
import { collectMeta, median, progress, RESULTS_DIR, writeResult } from './meta.js'

// Manual GC for mitata and for the allocation measurements, without a node flag.
v8.setFlagsFromString('--expose-gc')
const gc = runInNewContext('gc') as () => void
;(globalThis as { gc?: () => void }).gc = gc
const { measure, do_not_optimize } = await import('mitata')

const args = parseCommandLine({
  usage: 'npm run bench -- [options]',
  summary: [
    'Micro-benchmarks without a database: replica selection, classification, and the whole-query',
    'overhead of each dialect on fake pools. Progress goes to stderr. Writes bench/results/micro.json',
    '(a run of some sections keeps the others) and regenerates docs/benchmarks.md.',
  ].join('\n'),
  options: {
    section: {
      type: 'string',
      value: 'list',
      default: 'selectors,classification,overhead',
      help: 'sections to run',
    },
    quick: { type: 'boolean', help: 'shorter measurements (selectors, classification)' },
    rounds: {
      type: 'string',
      value: 'n',
      default: '21',
      help: 'overhead: alternating rounds',
    },
    queries: {
      type: 'string',
      value: 'n',
      default: '3000',
      help: 'overhead: queries per dialect per round',
    },
    variants: {
      type: 'string',
      value: 'list',
      default: '',
      help: 'overhead: dialects to run besides the baseline, by part of their name (e.g. eventual,causal)',
    },
    'no-report': { type: 'boolean', help: 'leave docs/ alone' },
    'no-write': { type: 'boolean', help: 'print only (e.g. under node --cpu-prof)' },
    source: {
      type: 'boolean',
      help: 'benchmark src/ through tsx instead of its tsc output (see bench/library.ts)',
    },
  },
})

// The library as it ships (tsc output), unless --source: see library.ts.
const lib = await loadLibrary(args.source)
const {
  NodeLoad,
  classifyNode,
  classifyRawSql,
  ClassificationCache,
  primaryFunctionSet,
  createSelector,
  BUILT_IN_SELECTOR_NAMES,
} = lib
const { ReplicatedMysqlDialect, consistencyScope } = lib.index
// Before anything runs in a storage: see async-context.ts.
const storages = trackStorages()
const sections = new Set(args.section.split(',').map((s) => s.trim()))
const MIN_CPU_TIME_NS = (args.quick ? 150 : 500) * 1e6

// ---- results ---------------------------------------------------------------------------------

/** Times in nanoseconds, from mitata. */
export interface TimeStats {
  readonly avg: number
  readonly p50: number
  readonly p75: number
  readonly p99: number
  readonly min: number
  readonly max: number
  readonly samples: number
}

export interface SelectorResult {
  readonly selector: string
  readonly replicas: number
  readonly time: TimeStats
  /** Median heap growth per pick in bytes (GC'd before each batch; empty-loop baseline subtracted). */
  readonly bytesPerPick: number
}

export interface ClassificationResult {
  readonly name: string
  readonly kind: 'builder' | 'raw'
  readonly sqlLength: number
  readonly decision: string
  readonly classify: TimeStats
  readonly classifyAndSelect: TimeStats
  readonly bytesPerClassify: number
}

export interface OverheadVariant {
  readonly name: string
  /** What each query ran in (absent in results from before contexts were measured: `none`). */
  readonly context?: QueryContext
  /** The variant compared with (absent in older results: the plain baseline). */
  readonly baseline?: string
  /** Microseconds per query, one value per round. */
  readonly usPerQuery: number[]
  readonly medianUsPerQuery: number
  /** Median over rounds of (this / baseline) in the same round. */
  readonly medianRatio: number
  /** Median over rounds of (this - baseline) in µs per query. */
  readonly medianAddedUs: number
  /** For a variant in a context: the same comparison with Kysely's dialect outside any context. */
  readonly toPlainBaseline?: { readonly medianRatio: number; readonly medianAddedUs: number }
}

export interface MicroResults {
  readonly meta: ReturnType<typeof collectMeta>
  readonly settings: Record<string, unknown>
  readonly selectors?: SelectorResult[]
  readonly classification?: ClassificationResult[]
  readonly overhead?: {
    readonly rounds: number
    readonly queriesPerRound: number
    readonly workload: string
    readonly baseline: string
    /**
     * Whether every AsyncLocalStorage was turned off before each variant (see `async-context.ts`),
     * so each ran with its own context's storage alone; false where storages need no promise hooks.
     */
    readonly storagesTurnedOff?: boolean
    readonly variants: OverheadVariant[]
  }
}

function timeStats(stats: {
  avg: number
  p50: number
  p75: number
  p99: number
  min: number
  max: number
  samples: number[]
}): TimeStats {
  return {
    avg: stats.avg,
    p50: stats.p50,
    p75: stats.p75,
    p99: stats.p99,
    min: stats.min,
    max: stats.max,
    samples: stats.samples.length,
  }
}

/**
 * Mitata's statistics of `fn`, best of three measurements (the one with the lowest median): on a
 * shared machine other work only ever adds time, so the least disturbed measurement is the most
 * faithful one.
 */
async function time(fn: () => unknown): Promise<TimeStats> {
  let best: Awaited<ReturnType<typeof measure>> | undefined
  for (let i = 0; i < 3; i++) {
    const stats = await measure(fn, { min_cpu_time: MIN_CPU_TIME_NS / 3 })
    if (best === undefined || stats.p50 < best.p50) best = stats
  }
  return timeStats(best!)
}

/**
 * Median heap growth per call of `fn` in bytes, measured over batches small enough to fit in the
 * young generation (a batch during which a scavenge ran reads low, hence the median), minus the
 * same measurement of an empty loop.
 */
function bytesPer(fn: () => unknown, batch = 5000, batches = 21): number {
  const heap = () => v8.getHeapStatistics().used_heap_size
  const run = (f: () => unknown) => {
    const results: number[] = []
    for (let b = 0; b < batches; b++) {
      gc()
      const before = heap()
      for (let i = 0; i < batch; i++) do_not_optimize(f())
      results.push((heap() - before) / batch)
    }
    return median(results)
  }
  // warm up so the measured batches run optimized code
  for (let i = 0; i < batch * 4; i++) do_not_optimize(fn())
  const baseline = run(() => undefined)
  return Math.max(0, Math.round((run(fn) - baseline) * 10) / 10)
}

function signed(us: number): string {
  return `${us >= 0 ? '+' : ''}${us.toFixed(2)}`
}

function formatNs(ns: number): string {
  if (ns < 1000) return `${ns.toFixed(1)} ns`
  return `${(ns / 1000).toFixed(2)} µs`
}

// ---- selectors -------------------------------------------------------------------------------

const REPLICA_COUNTS = [2, 8, 64, 1024] as const

/** `n` candidates with latency history, a few queries in flight and mixed weights. */
function makeCandidates(n: number): ReplicaCandidate[] {
  const candidates: ReplicaCandidate[] = []
  for (let i = 0; i < n; i++) {
    const load = new NodeLoad()
    load.recordProbe(0.2 + (i % 7) * 0.05, 0)
    for (let k = 0; k < 5; k++) load.finish(0.5 + ((i * 13 + k) % 11) * 0.1, k * 10, true)
    for (let k = 0; k < i % 4; k++) load.start(0)
    candidates.push(
      Object.freeze({ name: `replica-${i + 1}`, weight: 1 + (i % 4), index: i, stats: load }),
    )
  }
  return Object.freeze(candidates) as ReplicaCandidate[]
}

async function benchSelectors(): Promise<SelectorResult[]> {
  const results: SelectorResult[] = []
  const variants: Array<{ label: string; name: BuiltInSelectorName; advanceMs: number }> = [
    ...BUILT_IN_SELECTOR_NAMES.map((name) => ({ label: name, name, advanceMs: 0 })),
    // Every pick finds the TTL expired: the O(n) comparison least-latency runs once per TTL.
    { label: 'least-latency (TTL expired)', name: 'least-latency', advanceMs: 2000 },
  ]
  for (const variant of variants) {
    for (const n of REPLICA_COUNTS) {
      const candidates = makeCandidates(n)
      const selector: ReplicaSelector = createSelector(variant.name)
      const context = { nowMs: 100, random: Math.random }
      const advance = variant.advanceMs
      const pick =
        advance === 0
          ? () => selector.select(candidates, context as SelectionContext)
          : () => {
              context.nowMs += advance
              return selector.select(candidates, context as SelectionContext)
            }
      pick()
      const t = await time(pick)
      const bytes = bytesPer(pick)
      results.push({ selector: variant.label, replicas: n, time: t, bytesPerPick: bytes })
      progress(
        `  ${variant.label.padEnd(28)} n=${String(n).padStart(4)}  p50 ${formatNs(t.p50).padStart(9)}  avg ${formatNs(t.avg).padStart(9)}  ${bytes} B/pick`,
      )
    }
  }
  return results
}

// ---- classification --------------------------------------------------------------------------

interface BenchDatabase {
  person: { id: number; first_name: string; last_name: string; last_seen: number | null }
  pet: { id: number; owner_id: number; name: string; species: string; created_at: Date }
  toy: { id: number; pet_id: number; price: number }
}

/** A Kysely that only compiles (MySQL flavour). */
const compiler = new Kysely<BenchDatabase>({
  dialect: {
    createAdapter: () => new MysqlAdapter(),
    createDriver: () => new DummyDriver(),
    createIntrospector: (db) => new MysqlIntrospector(db),
    createQueryCompiler: () => new MysqlQueryCompiler(),
  },
})

const SINCE = new Date('2024-01-01T00:00:00Z')

function builderQueries() {
  const db = compiler
  return [
    {
      name: 'builder: point select',
      compiled: db
        .selectFrom('person')
        .select(['id', 'first_name', 'last_name'])
        .where('id', '=', 42)
        .compile(),
    },
    {
      name: 'builder: join + subqueries + CTE',
      compiled: db
        .with('recent_pet', (qb) =>
          qb.selectFrom('pet').select(['owner_id', 'name']).where('created_at', '>', SINCE),
        )
        .selectFrom('person')
        .innerJoin('recent_pet', 'recent_pet.owner_id', 'person.id')
        .leftJoin('pet', 'pet.owner_id', 'person.id')
        .select(['person.id', 'person.first_name', 'recent_pet.name as pet_name'])
        .select((eb) =>
          eb
            .selectFrom('toy')
            .select((inner) => inner.fn.count<number>('toy.id').as('c'))
            .whereRef('toy.pet_id', '=', 'pet.id')
            .as('toys'),
        )
        .where('person.id', 'in', (eb) =>
          eb.selectFrom('pet').select('owner_id').where('species', '=', 'cat'),
        )
        .where((eb) =>
          eb.or([eb('person.last_name', 'like', 'A%'), eb('person.last_seen', '>', 5)]),
        )
        .orderBy('person.id')
        .limit(20)
        .compile(),
    },
    {
      name: 'builder: lock clause deep in a subquery',
      compiled: db
        .selectFrom('person')
        .select(['person.id', 'person.first_name'])
        .where('person.id', 'in', (eb) =>
          eb
            .selectFrom((qb) =>
              qb
                .selectFrom('pet')
                .select(['owner_id'])
                .where('species', '=', 'dog')
                .forUpdate()
                .as('locked'),
            )
            .select('locked.owner_id'),
        )
        .where('person.last_seen', 'is not', null)
        .compile(),
    },
  ]
}

/** About 1 KB: comments, string literals holding keywords, a CTE and a subquery. */
export const RAW_1KB = `/* report: weekly active owners, generated by the dashboard service */
-- the literals below mention update, delete and for update: none of them is SQL
with recent as (
  select p.owner_id, p.name, p.species, p.created_at
  from pet p
  where p.created_at > '2024-01-01 00:00:00'
    and p.species in ('cat', 'dog', 'hamster', 'it''s complicated')
    and p.name not like '%update%' -- not an UPDATE
),
toys as (
  select t.pet_id, count(*) as n, sum(t.price) as total
  from toy t
  where t.price between 1 and 1000
  group by t.pet_id
)
select person.id, person.first_name, person.last_name,
       recent.name as pet_name, coalesce(toys.n, 0) as toy_count,
       concat('owner #', person.id, ' -- for update? no; delete nothing') as label,
       /* a block comment: insert into x values (1); */ toys.total
from person
inner join recent on recent.owner_id = person.id
left join toys on toys.pet_id = person.id
where person.last_seen > 5
  and person.last_name <> 'O''Brien; drop table person'
  and exists (select 1 from pet q where q.owner_id = person.id and q.species = "cat")
order by person.id desc, recent.created_at
limit 50 offset 0`

const RAW_SHORT = 'select id, first_name from person where id = ?'

async function benchClassification(): Promise<ClassificationResult[]> {
  const options: ClassifyOptions = Object.freeze({
    flavor: 'mysql',
    primaryFunctions: primaryFunctionSet('mysql'),
  })
  const candidates = makeCandidates(2)
  const selector = createSelector('p2c-ewma')
  const context = { nowMs: 100, random: Math.random } as SelectionContext
  const cases: Array<{
    name: string
    kind: 'builder' | 'raw'
    sql: string
    classify: () => ReturnType<typeof classifyRawSql>
  }> = []
  for (const q of builderQueries()) {
    const { compiled } = q
    cases.push({
      name: q.name,
      kind: 'builder',
      sql: compiled.sql,
      classify: () => classifyNode(compiled.query, compiled.sql, options),
    })
  }
  cases.push({
    name: 'raw: short select',
    kind: 'raw',
    sql: RAW_SHORT,
    classify: () => classifyRawSql(RAW_SHORT, options),
  })
  cases.push({
    name: `raw: ${RAW_1KB.length} B statement, comments + literals`,
    kind: 'raw',
    sql: RAW_1KB,
    classify: () => classifyRawSql(RAW_1KB, options),
  })
  // A raw query through the builder (`sql\`...\``): the root RawNode path of classifyNode.
  const rawBuilder = sql`select id, first_name from person where id = ${42}`.compile(compiler)
  cases.push({
    name: 'builder: sql`` template (root RawNode)',
    kind: 'raw',
    sql: rawBuilder.sql,
    classify: () => classifyNode(rawBuilder.query, rawBuilder.sql, options),
  })

  // The same statements through the cache, as the router sees them: Kysely compiles each
  // execution anew, so the SQL is a new (concatenated) string every time and the lookup hashes it.
  const cache = new ClassificationCache(options)
  for (const c of cases.filter((c) => c.name === 'builder: point select' || c.sql === RAW_1KB)) {
    const compiled = c.kind === 'builder' ? builderQueries()[0]!.compiled : undefined
    const query = compiled?.query ?? sql.raw(RAW_1KB).compile(compiler).query
    // Two equal heads, used in turn, so that the compiler cannot fold `head + tail` into one
    // constant string whose hash V8 would keep.
    const half = c.sql.length >> 1
    const heads = [c.sql.slice(0, half), `${c.sql} `.slice(0, half)]
    const tail = c.sql.slice(half)
    let turn = 0
    cases.push({
      name: `cached: ${c.name.replace(/^(builder|raw): /, '')}`,
      kind: c.kind,
      sql: c.sql,
      classify: () => cache.classify({ query, sql: heads[turn++ & 1]! + tail }),
    })
  }

  const results: ClassificationResult[] = []
  for (const c of cases) {
    const first = c.classify()
    const decision = first.read
      ? 'read'
      : `${first.reason}${first.detail ? ` (${first.detail})` : ''}`
    const classify = await time(c.classify)
    const both = () => {
      const classification = c.classify()
      return classification.read ? selector.select(candidates, context) : classification
    }
    const classifyAndSelect = await time(both)
    const bytes = bytesPer(c.classify)
    results.push({
      name: c.name,
      kind: c.kind,
      sqlLength: c.sql.length,
      decision,
      classify,
      classifyAndSelect,
      bytesPerClassify: bytes,
    })
    progress(
      `  ${c.name.padEnd(44)} ${decision.padEnd(26)} p50 ${formatNs(classify.p50).padStart(9)}  +select ${formatNs(classifyAndSelect.p50).padStart(9)}  ${bytes} B`,
    )
  }
  return results
}

// ---- whole-query overhead --------------------------------------------------------------------

type Db = Kysely<BenchDatabase>

/**
 * What each query of a variant runs in: nothing (`none`), a plain per-request
 * `AsyncLocalStorage.run()` as a web framework or tracer would open (`request`), or the library's
 * per-request `consistencyScope()` (`scope`), which is how web apps use causal mode.
 */
export type QueryContext = 'none' | 'request' | 'scope' | 'request+scope'

interface Variant {
  readonly name: string
  readonly context: QueryContext
  /** The variant it is compared with in each round: Kysely's own dialect in the same context. */
  readonly baseline: string
  readonly db: Db
  /** Runs one query in the variant's context. */
  readonly enter: <T>(query: () => Promise<T>) => Promise<T>
  /** Pools whose statement counts are checked after the run. */
  readonly pools: FakeMysqlPool[]
}

const PLAIN_BASELINE = 'Kysely MysqlDialect (baseline)'
const REQUEST_BASELINE = 'Kysely MysqlDialect, per-request AsyncLocalStorage (baseline)'

/** A web framework's request context: an object per request in a storage of its own. */
const requestContext = new AsyncLocalStorage<{ readonly requestId: number }>()
let requestId = 0

const ENTER: Record<QueryContext, <T>(query: () => Promise<T>) => Promise<T>> = {
  none: (query) => query(),
  request: (query) => requestContext.run({ requestId: ++requestId }, query),
  scope: (query) => consistencyScope(query),
  // The app's own request context with a consistencyScope inside: two storages turned on.
  'request+scope': (query) =>
    requestContext.run({ requestId: ++requestId }, () => consistencyScope(query)),
}

function makeVariants(): Variant[] {
  const variants: Variant[] = []
  const add = (
    name: string,
    context: QueryContext,
    db: Db,
    pools: FakeMysqlPool[],
    baseline = context === 'none' ? PLAIN_BASELINE : REQUEST_BASELINE,
  ) => variants.push({ name, context, baseline, db, pools, enter: ENTER[context] })
  const plain = (context: QueryContext, name: string) => {
    const pool = new FakeMysqlPool('primary', 'primary', { gtidSeq: 0 })
    const db = new Kysely<BenchDatabase>({ dialect: new MysqlDialect({ pool: pool as never }) })
    add(name, context, db, [pool])
  }
  const replicated = (context: QueryContext, consistency: 'eventual' | 'causal', name: string) => {
    const cluster = createFakeCluster(2)
    const config: ReplicatedMysqlDialectConfig = {
      primary: { pool: cluster.primary as never },
      replicas: cluster.replicas.map((r) => ({ name: r.name, pool: r as never })),
      consistency,
      health: { probeIntervalMs: 0 },
    }
    const db = new Kysely<BenchDatabase>({ dialect: new ReplicatedMysqlDialect(config) })
    add(name, context, db, [cluster.primary, ...cluster.replicas])
  }
  const replication = (context: QueryContext, name: string) => {
    const cluster = createFakeCluster(2)
    const db = new Kysely<BenchDatabase>({
      dialect: new KyselyReplicationDialect({
        primaryDialect: new MysqlDialect({ pool: cluster.primary as never }),
        replicaDialects: cluster.replicas.map(
          (r) => new MysqlDialect({ pool: r as never }),
        ) as unknown as readonly [MysqlDialect, ...MysqlDialect[]],
        replicaStrategy: new RoundRobinReplicaStrategy({ onTransaction: 'error' }),
      }),
    })
    add(name, context, db, [cluster.primary, ...cluster.replicas])
  }
  plain('none', PLAIN_BASELINE)
  replicated('none', 'eventual', 'ReplicatedMysqlDialect (eventual)')
  replicated('none', 'causal', 'ReplicatedMysqlDialect (causal)')
  replication('none', 'kysely-replication (round-robin)')
  plain('request', REQUEST_BASELINE)
  replicated(
    'request',
    'eventual',
    'ReplicatedMysqlDialect (eventual), per-request AsyncLocalStorage',
  )
  replicated('scope', 'eventual', 'ReplicatedMysqlDialect (eventual), per-request consistencyScope')
  replicated('scope', 'causal', 'ReplicatedMysqlDialect (causal), per-request consistencyScope')
  replicated(
    'request+scope',
    'causal',
    "ReplicatedMysqlDialect (causal), per-request consistencyScope inside the app's AsyncLocalStorage",
  )
  replication('request', 'kysely-replication (round-robin), per-request AsyncLocalStorage')
  return variants
}

/**
 * The variants `--variants` asks for (by part of their name, case-insensitive; all when empty),
 * with the baselines they are compared with.
 */
function selectVariants(all: Variant[], filter: string): Variant[] {
  const wanted = filter
    .split(',')
    .map((v) => v.trim().toLowerCase())
    .filter((v) => v !== '')
  const chosen = all.filter(
    (v) => wanted.length === 0 || wanted.some((w) => v.name.toLowerCase().includes(w)),
  )
  const baselines = new Set([PLAIN_BASELINE, ...chosen.map((v) => v.baseline)])
  return all.filter((v) => baselines.has(v.name) || chosen.includes(v))
}

/**
 * Nine reads to one write, each built and compiled by Kysely as an application would, each in the
 * variant's context (a request of its own).
 */
async function workload(v: Variant, queries: number, offset: number): Promise<void> {
  const { db, enter } = v
  for (let i = 0; i < queries; i++) {
    const id = offset + i
    if (i % 10 === 9) {
      await enter(() =>
        db.updateTable('person').set({ last_seen: id }).where('id', '=', id).execute(),
      )
    } else {
      await enter(() =>
        db
          .selectFrom('person')
          .select(['id', 'first_name', 'last_name'])
          .where('id', '=', id)
          .executeTakeFirst(),
      )
    }
  }
}

/** Medians over rounds of the ratio to, and the time added over, a baseline measured in the same rounds. */
function compare(us: number[], base: number[]): { medianRatio: number; medianAddedUs: number } {
  return {
    medianRatio: median(us.map((x, i) => x / base[i]!)),
    medianAddedUs: median(us.map((x, i) => x - base[i]!)),
  }
}

async function benchOverhead(rounds: number, queries: number): Promise<MicroResults['overhead']> {
  const variants = selectVariants(makeVariants(), args.variants)
  const run = async (v: Variant, offset: number, count = queries) => {
    // Every dialect runs with its own storage alone turned on: outside any context, promise hooks
    // off as in a process that never opened one; inside one, only that context's storage. A
    // storage left on by the variant before would make every promise propagate into it as well
    // (Node.js 20/22 propagate each enabled storage on every promise), charging whichever variant
    // followed it for the other's context.
    storages.disableAll()
    await workload(v, count, offset)
  }
  // Warm-up: JIT, connection setup (session tracking, read-only sessions) and pools.
  for (const v of variants) await run(v, 0, Math.max(queries, 2000))
  const perRound = new Map<string, number[]>(variants.map((v) => [v.name, []]))
  for (let round = 0; round < rounds; round++) {
    // Rotate the order so no dialect always runs first (or right after a GC-heavy one).
    const order = variants.map((_, i) => variants[(i + round) % variants.length]!)
    for (const v of order) {
      // No gc() here: a forced full GC throws away optimized code and feedback, and the next
      // few thousand queries then run two to three times slower while V8 warms up again.
      const started = performance.now()
      await run(v, round * queries)
      const us = ((performance.now() - started) * 1000) / queries
      perRound.get(v.name)!.push(us)
    }
    progress(
      `  round ${String(round + 1).padStart(2)}/${rounds}: ${variants
        .map((v) => `${shortName(v)} ${perRound.get(v.name)!.at(-1)!.toFixed(2)}`)
        .join('  ')} µs/query`,
    )
  }
  storages.disableAll()
  // Sanity: every dialect really ran its queries on its fake pools.
  for (const v of variants) {
    const ran = v.pools.reduce((sum, p) => sum + p.queries, 0)
    if (ran < rounds * queries) throw new Error(`${v.name} ran only ${ran} statements`)
  }
  const plain = perRound.get(PLAIN_BASELINE)!
  const out: OverheadVariant[] = variants.map((v) => {
    const us = perRound.get(v.name)!
    return {
      name: v.name,
      context: v.context,
      baseline: v.baseline,
      usPerQuery: us.map((x) => Math.round(x * 1000) / 1000),
      medianUsPerQuery: median(us),
      ...compare(us, perRound.get(v.baseline)!),
      ...(v.baseline !== PLAIN_BASELINE ? { toPlainBaseline: compare(us, plain) } : {}),
    }
  })
  const routes = variants.map(
    (v) => `${shortName(v)}: ${v.pools.map((p) => `${p.name}=${p.queries}`).join(' ')}`,
  )
  progress(`  statements per pool: ${routes.join('; ')}`)
  for (const v of variants) await v.db.destroy()
  return {
    rounds,
    queriesPerRound: queries,
    workload:
      'sequential awaited queries, 9 point selects (builder, 3 columns) to 1 single-row update; every query built and compiled by Kysely',
    baseline: PLAIN_BASELINE,
    storagesTurnedOff: storages.active,
    variants: out,
  }
}

/** A variant's name in a progress line. */
function shortName(v: Variant): string {
  const first = v.name.split(' ')[0]!.replace('ReplicatedMysqlDialect', 'Replicated')
  const mode = /\((eventual|causal)\)/.exec(v.name)?.[1]
  const context = { none: '', request: '+ALS', scope: '+scope', 'request+scope': '+ALS+scope' }[
    v.context
  ]
  return `${first}${mode === undefined ? '' : `(${mode})`}${context}`
}

// ---- main ------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const started = performance.now()
  const meta = collectMeta()
  progress(`micro-benchmarks on ${meta.cpuModel} (${meta.cpus} cores), node ${meta.node}`)
  const results: {
    -readonly [K in keyof MicroResults]: MicroResults[K]
  } = {
    meta,
    settings: {
      minCpuTimeMs: MIN_CPU_TIME_NS / 1e6,
      replicaCounts: [...REPLICA_COUNTS],
      classifyAndSelectSelector: 'p2c-ewma over 2 replicas',
      library: lib.origin,
    },
  }
  if (sections.has('selectors')) {
    progress('selectors: time and heap per pick')
    results.selectors = await benchSelectors()
  }
  if (sections.has('classification')) {
    progress('classification (+ p2c-ewma selection over 2 replicas)')
    results.classification = await benchClassification()
  }
  if (sections.has('overhead')) {
    const rounds = Number(args.rounds)
    const queries = Number(args.queries)
    progress(`whole-query overhead: ${rounds} rounds × ${queries} queries per dialect`)
    results.overhead = await benchOverhead(rounds, queries)
    for (const v of results.overhead!.variants) {
      progress(
        `  ${v.name.padEnd(66)} ${v.medianUsPerQuery.toFixed(2).padStart(6)} µs/query  ×${v.medianRatio.toFixed(3)}  ${signed(v.medianAddedUs)} µs${v.toPlainBaseline === undefined ? '' : `  (vs no context: ×${v.toPlainBaseline.medianRatio.toFixed(3)} ${signed(v.toPlainBaseline.medianAddedUs)} µs)`}`,
      )
    }
  }
  if (args['no-write']) return
  // A run of some sections keeps the other sections of the previous results.
  const previous = readPrevious()
  const merged = {
    ...previous,
    ...results,
    settings: { ...previous?.settings, ...results.settings },
  }
  const file = writeResult('micro.json', merged)
  progress(`wrote ${file} (${((performance.now() - started) / 1000).toFixed(1)} s)`)
  if (!args['no-report']) {
    const { generateReport } = await import('./report.js')
    const written = generateReport()
    progress(`regenerated ${written.join(', ')}`)
  }
}

function readPrevious(): MicroResults | undefined {
  try {
    return JSON.parse(fs.readFileSync(path.join(RESULTS_DIR, 'micro.json'), 'utf8')) as MicroResults
  } catch {
    return undefined
  }
}

await main()
