import type { DatabaseConnection } from 'kysely'
import { DEFAULT_DECAY_MS } from '../health/peak-ewma.js'
import type { MetricsOptions } from '../observability/metrics.js'
import type { TracingOptions } from '../observability/tracing.js'
import { normalizeFunctionName } from '../routing/primary-functions.js'
import { DEFAULT_LEAST_LATENCY_TTL_MS } from '../selection/least-latency.js'
import {
  BUILT_IN_SELECTOR_NAMES,
  type BuiltInSelectorName,
  DEFAULT_SELECTOR_NAME,
  type ReplicaSelector,
} from '../selection/replica-selector.js'
import type { NodeInfo } from './contracts/engine.js'
import { ReplicatedConfigError } from './contracts/errors.js'
import type { ReplicationEvent, RouteEvent } from './contracts/events.js'

/** Read-your-writes guarantee. See docs/consistency.md. */
export type ConsistencyMode = 'eventual' | 'sticky' | 'causal'

/**
 * A node of the cluster. `P` is the engine's pool type, `C` its connection options type. Every
 * `...Ms` setting is a number of milliseconds from 0 to 2 147 483 647 (Node.js timers' limit).
 */
export interface NodeConfig<P, C = object> {
  /** Unique name, used in events, errors and `onReplica(db, name)`. The primary defaults to `'primary'`. */
  readonly name?: string
  /** The pool, or an async factory called once at initialisation. Give either `pool` or `connection`. */
  readonly pool?: P | (() => Promise<P>)
  /** Connection options (mysql2 / pg): the library creates the pool, with `poolSize` and `idleTimeoutMs`. */
  readonly connection?: C
  /** Pools created from `connection`: at most this many connections. Default 10. */
  readonly poolSize?: number
  /** Pools created from `connection`: idle connections are closed after this long. Default 60 000 ms. */
  readonly idleTimeoutMs?: number
  /**
   * A connection older than this is closed when it is released instead of being reused, so
   * connections rotate after failovers and credential changes. Works with any pool. Default: none.
   */
  readonly maxLifetimeMs?: number
}

export interface ReplicaConfig<P, C = object> extends NodeConfig<P, C> {
  readonly name: string
  /**
   * Relative share of reads for the `'weighted'` selector. A positive finite number; default 1.
   * The other built-in selectors ignore it: given with one of them, it raises a
   * `KYSELY_REPLICATED_CONFIG` process warning.
   */
  readonly weight?: number
}

/** Connection lifecycle hooks, on every node. */
export interface ConnectionHooks {
  /** Before the pool opens a new physical connection (as far as the pool lets the library see it). */
  readonly beforeConnect?: (node: NodeInfo) => void | Promise<void>
  /** A connection-level failure on the node (connect, or a query losing its connection). */
  readonly onConnectionFailure?: (error: unknown, node: NodeInfo) => void
}

/**
 * Settings shared by every engine's replicated dialect. Every `...Ms` setting is a number of
 * milliseconds from 0 to 2 147 483 647 (about 24.8 days, the longest delay Node.js timers run).
 */
export interface ReplicatedDialectConfig<P, C = object> {
  /** The primary (its role is the starting point: the roles follow the servers, see `topology`). */
  readonly primary?: NodeConfig<P, C>
  readonly replicas?: ReadonlyArray<ReplicaConfig<P, C>>
  /**
   * Instead of `primary` + `replicas`: every node, roles discovered from the servers at start
   * (the one that takes writes is the primary).
   */
  readonly nodes?: ReadonlyArray<ReplicaConfig<P, C>>
  /**
   * `'dynamic'` (default): roles follow the servers (switchovers, failovers). `'static'`: the
   * configured roles, always. `writeWaitMs`: how long a write refused by a former primary waits
   * for exactly one node to take writes (default 5000 ms).
   */
  readonly topology?:
    | 'dynamic'
    | 'static'
    | { readonly mode?: 'dynamic' | 'static'; readonly writeWaitMs?: number }
  /**
   * How a replica is picked for a read: a built-in name or your own {@link ReplicaSelector}.
   * Default `'p2c-ewma'`.
   */
  readonly selector?: BuiltInSelectorName | ReplicaSelector
  /** Options of the latency-aware selectors. */
  readonly latency?: {
    /** `'least-latency'`: how long the fastest replica stays the pick. Default 1000 ms. */
    readonly ttlMs?: number
    /** `'least-latency'`: at most this many replicas are compared per re-pick. Default: all. */
    readonly sampleSize?: number
    /** Decay time of every node's latency estimate (read by `'p2c-ewma'` and `'least-latency'`). Default 10 000 ms. */
    readonly decayMs?: number
  }
  /** Read-your-writes mode. Default `'causal'`. */
  readonly consistency?: ConsistencyMode
  /** `'sticky'` mode: reads return to replicas this long after the scope's last write. Default: never within the scope. */
  readonly stickyWindowMs?: number
  /** `'causal'` mode: the longest a read waits for a replica to apply the scope's writes before it runs on the primary. Default 50 ms. */
  readonly causalWaitTimeoutMs?: number
  /**
   * Runs once for every new physical connection on every node (primary and replicas, including
   * connections a pool opens later), before its first query. Use it for session settings.
   */
  readonly onCreateConnection?: (connection: DatabaseConnection, node: NodeInfo) => Promise<void>
  /**
   * Kysely's hook, on every physical connection a statement or a transaction reserves, replicas
   * included: each read on a replica, the primary session when a Kysely connection first uses it,
   * the connection a transaction opens on. The usual place for per-request session settings (a
   * tenant id for row-level security). It must not leave a transaction open.
   */
  readonly onReserveConnection?: (connection: DatabaseConnection, node: NodeInfo) => Promise<void>
  /**
   * Where statements go when nothing says otherwise: `'replicas'` (default: reads to replicas,
   * as classified), or `'primary'`: everything runs on the primary except reads made through
   * `onReplica(db)` or `readOnly(db)`, for a gradual rollout.
   */
  readonly defaultRoute?: 'replicas' | 'primary'
  /** Makes every replica session read-only when it is created, so a misrouted write fails. Default `true`. */
  readonly replicaSessionReadOnly?: boolean
  /** Extra function names (case-insensitive) whose calls must run on the primary. */
  readonly primaryFunctions?: ReadonlyArray<string>
  /** Called for every routing decision. Keep it cheap: it runs on the query path. */
  readonly onRoute?: (event: RouteEvent) => void
  /** Called for node state changes and other notable events. */
  readonly onEvent?: (event: ReplicationEvent) => void
  /** Health checks and cool-down of failed replicas. To turn the prober off: `{ probeIntervalMs: 0 }`. */
  readonly health?: {
    /** Probe interval; `0` disables the background prober. Default 1000 ms. */
    readonly probeIntervalMs?: number
    /** Timeout of a single probe. Default 1000 ms. */
    readonly probeTimeoutMs?: number
    /** Probes run at once. Default 4. */
    readonly probeConcurrency?: number
    /** First cool-down after a failure. Default 1000 ms. */
    readonly cooldownMs?: number
    /** Longest cool-down (exponential backoff with jitter). Default 30 000 ms. */
    readonly maxCooldownMs?: number
  }
  /** Replicas further behind than this are not used for reads. Default: no limit. */
  readonly maxReplicationLagMs?: number
  /**
   * A hard bound on every read on a replica: past it the statement is abandoned (its connection
   * closed) and fails with `ReadTimeoutError`. Default: none (a hung replica is detected by the
   * health checks, so a long report query is never killed by default). Per query:
   * `withReadTimeout(db, ms)`.
   */
  readonly readTimeoutMs?: number
  /**
   * Hedged reads, off when absent: a plain read on a replica (eventual, or a replica any of the
   * candidates will do) that has not answered `after` (the chosen replica's recent 90th
   * percentile latency, `'p90'`, the default, or a number of milliseconds) is sent to a second
   * replica too; the first answer wins and the other statement is cancelled. At most `budget`
   * (default 0.1, from above 0 to 1) hedges per such read, after a burst of 10. Never for writes,
   * locking reads, transactions, pinned sessions, streams or causal waits. See docs/routing.md#hedged-reads.
   */
  readonly hedge?: { readonly after?: 'p90' | number; readonly budget?: number }
  /** Read retries on connection-level failures. Default `{ reads: true }`; `{ reads: false }` turns them off. */
  readonly retry?: { readonly reads?: boolean }
  /**
   * When no replica is usable: run reads on the primary (default) or throw `NoReplicaAvailableError`.
   * `{ mode: 'primary', maxPrimaryReads }` caps how many such reads the primary runs at once.
   */
  readonly fallback?:
    | 'primary'
    | 'error'
    | { readonly mode: 'primary'; readonly maxPrimaryReads: number }
  /** Connection lifecycle hooks. */
  readonly hooks?: ConnectionHooks
  /**
   * Appends a sqlcommenter comment to every statement: the context of `withQueryComment()` and,
   * unless `{ route: false }`, the routing decision (`db_node`, `db_route_reason`). Default off.
   */
  readonly queryComments?: boolean | { readonly route?: boolean }
  /** OpenTelemetry spans (or attributes on the active span) per statement; needs `@opentelemetry/api`. Default off. */
  readonly tracing?: boolean | TracingOptions
  /**
   * OpenTelemetry metrics: operation durations and connection pool metrics after the database
   * client semantic conventions, and routing, causal waits, replica lag and node state. `true`
   * uses the global `MeterProvider` of `@opentelemetry/api`; `{ meterProvider }` a provider of
   * your own. See docs/operations.md#metrics. Default off.
   */
  readonly metrics?: boolean | MetricsOptions
}

/**
 * The settings an engine's dialect config adds to {@link ReplicatedDialectConfig}, as a key
 * list the compiler keeps complete (`{ cursor: true } satisfies EngineConfigKeys<...>`).
 */
export type EngineConfigKeys<T extends ReplicatedDialectConfig<any, any>> = Record<
  Exclude<keyof T, keyof ReplicatedDialectConfig<unknown>>,
  true
>

/** The resolved options of the latency-aware selectors and of every node's latency estimate. */
export interface ResolvedLatency {
  /** `'least-latency'`: how long a winner is kept, in ms. */
  readonly ttlMs: number
  /** `'least-latency'`: replicas compared per re-pick (`undefined`: all). */
  readonly sampleSize: number | undefined
  /** Time constant of every node's latency EWMA (`NodeLoad`), in ms. */
  readonly decayMs: number
}

/** The resolved `hedge` setting. */
export interface ResolvedHedge {
  /** `'p90'`: the chosen replica's recent 90th percentile latency; a number: milliseconds. */
  readonly after: 'p90' | number
  /** Hedges per hedge-eligible read, from above 0 to 1. */
  readonly budget: number
}

/** Default `hedge.budget`. */
export const DEFAULT_HEDGE_BUDGET = 0.1

/** The validated, frozen form of the engine-independent settings, defaults applied. */
export interface ResolvedConfig {
  readonly consistency: ConsistencyMode
  readonly stickyWindowMs: number | undefined
  readonly causalWaitTimeoutMs: number
  readonly replicaSessionReadOnly: boolean
  readonly primaryFunctions: ReadonlyArray<string>
  /** A built-in selector's name or the user's selector object, checked: `createSelector` takes it as is. */
  readonly selector: BuiltInSelectorName | ReplicaSelector
  readonly latency: ResolvedLatency
  readonly probeIntervalMs: number
  readonly probeTimeoutMs: number
  readonly probeConcurrency: number
  readonly cooldownMs: number
  readonly maxCooldownMs: number
  readonly maxReplicationLagMs: number | undefined
  readonly readTimeoutMs: number | undefined
  readonly defaultRoute: 'replicas' | 'primary'
  readonly topology: { readonly mode: 'dynamic' | 'static'; readonly writeWaitMs: number }
  readonly retryReads: boolean
  /** Hedged reads; `undefined`: off. */
  readonly hedge: ResolvedHedge | undefined
  readonly fallback: 'primary' | 'error'
  readonly maxPrimaryReads: number | undefined
  readonly queryComments: { readonly enabled: boolean; readonly route: boolean }
  readonly tracing: TracingOptions | undefined
  readonly metrics: MetricsOptions | undefined
}

/** What {@link resolveConfig} needs besides the config: the engine's pool check and its name. */
export interface ResolveConfigOptions<P, C> {
  readonly config: ReplicatedDialectConfig<P, C>
  /** Whether a value is a pool of the engine's driver (a factory function is accepted apart). */
  readonly isPool: (value: unknown) => boolean
  /** Starts every error message, e.g. `'ReplicatedMysqlDialect'`. */
  readonly dialectName: string
  /** The engine's own top-level settings (`Object.keys` of its {@link EngineConfigKeys} list). */
  readonly extraKeys?: readonly string[]
}

/**
 * The longest delay Node.js timers run, in ms (2^31 - 1, about 24.8 days). A longer one fires
 * after 1 ms instead, so a `probeTimeoutMs` beyond it would time every probe out at once.
 */
export const MAX_TIMER_MS = 2_147_483_647

/** The `process.emitWarning` code of settings that are accepted but have no effect. */
export const CONFIG_WARNING_CODE = 'KYSELY_REPLICATED_CONFIG'

type Fail = (message: string) => never
type KeyList = Readonly<Record<string, true>>
/** Every key of `T`, once: the type of a key list the compiler keeps complete. */
type KeysOf<T> = Record<keyof T, true>
/** The object form of a setting that also takes a boolean or a name. */
type ObjectForm<K extends keyof ReplicatedDialectConfig<unknown>> = Exclude<
  ReplicatedDialectConfig<unknown>[K],
  boolean | string | undefined
>

// The allowed keys of each part of the config. `satisfies` makes the compiler reject a list
// that misses a setting of the type, or names one the type does not have.
const CONFIG_KEYS = {
  primary: true,
  replicas: true,
  nodes: true,
  topology: true,
  selector: true,
  latency: true,
  consistency: true,
  stickyWindowMs: true,
  causalWaitTimeoutMs: true,
  onCreateConnection: true,
  onReserveConnection: true,
  defaultRoute: true,
  replicaSessionReadOnly: true,
  primaryFunctions: true,
  onRoute: true,
  onEvent: true,
  health: true,
  maxReplicationLagMs: true,
  readTimeoutMs: true,
  hedge: true,
  retry: true,
  fallback: true,
  hooks: true,
  queryComments: true,
  tracing: true,
  metrics: true,
} as const satisfies KeysOf<ReplicatedDialectConfig<unknown>>

const NODE_KEYS = {
  name: true,
  pool: true,
  connection: true,
  poolSize: true,
  idleTimeoutMs: true,
  maxLifetimeMs: true,
} as const satisfies KeysOf<NodeConfig<unknown>>

const REPLICA_KEYS = { ...NODE_KEYS, weight: true } as const satisfies KeysOf<
  ReplicaConfig<unknown>
>

const HEALTH_KEYS = {
  probeIntervalMs: true,
  probeTimeoutMs: true,
  probeConcurrency: true,
  cooldownMs: true,
  maxCooldownMs: true,
} as const satisfies KeysOf<ObjectForm<'health'>>

const LATENCY_KEYS = {
  ttlMs: true,
  sampleSize: true,
  decayMs: true,
} as const satisfies KeysOf<ObjectForm<'latency'>>

const HEDGE_KEYS = { after: true, budget: true } as const satisfies KeysOf<ObjectForm<'hedge'>>

const RETRY_KEYS = { reads: true } as const satisfies KeysOf<ObjectForm<'retry'>>

const FALLBACK_KEYS = { mode: true, maxPrimaryReads: true } as const satisfies KeysOf<
  ObjectForm<'fallback'>
>

const HOOK_KEYS = {
  beforeConnect: true,
  onConnectionFailure: true,
} as const satisfies KeysOf<ConnectionHooks>

const QUERY_COMMENT_KEYS = { route: true } as const satisfies KeysOf<ObjectForm<'queryComments'>>

const TRACING_KEYS = {
  mode: true,
  tracerName: true,
  includeQueryText: true,
} as const satisfies KeysOf<TracingOptions>

const METRICS_KEYS = { meterProvider: true } as const satisfies KeysOf<MetricsOptions>

const CONSISTENCY_MODES = { eventual: true, sticky: true, causal: true } as const satisfies Record<
  ConsistencyMode,
  true
>

/**
 * Validates the parts of the config every engine shares and returns them frozen, with their
 * defaults. Throws one {@link ReplicatedConfigError} that starts with the dialect's name and
 * names the offending setting; warns (`process.emitWarning`, code `KYSELY_REPLICATED_CONFIG`)
 * once about settings that have no effect with the rest of the config.
 *
 * @example
 * ```ts
 * const resolved = resolveConfig({ config, isPool: isPostgresPool, dialectName: 'ReplicatedPostgresDialect', extraKeys: ['cursor'] })
 * const selector = createSelector(resolved.selector, { latency: resolved.latency })
 * ```
 */
export function resolveConfig<P, C>(options: ResolveConfigOptions<P, C>): ResolvedConfig {
  const { config, isPool, dialectName, extraKeys = [] } = options
  const fail: Fail = (message) => {
    throw new ReplicatedConfigError(`${dialectName}: ${message}`)
  }
  if (!isObject(config)) {
    fail(
      `a config object is required: { primary: { pool }, replicas: [...] }, got ${describeValue(config)}`,
    )
  }
  // A misspelt option would otherwise be ignored without a word (plain JavaScript callers).
  checkKeys(config, CONFIG_KEYS, 'the config', fail, extraKeys)
  checkNodes(nodeConfigs(config, isPool, fail), isPool, fail)
  checkCallbacks(config, fail)
  const resolved: ResolvedConfig = Object.freeze({
    ...resolveConsistency(config, fail),
    ...resolveSession(config, fail),
    ...resolveSelection(config, fail),
    ...resolveHealth(config, fail),
    ...resolveFailover(config, fail),
    hedge: resolveHedge(config.hedge, fail),
    topology: resolveTopology(config.topology, fail),
    ...resolveObservability(config, fail),
  })
  warnAboutIgnoredSettings(config, resolved, dialectName)
  return resolved
}

/**
 * Rejects driver pool options in a node's `connection` that the library sets itself from the
 * node's `poolSize` / `idleTimeoutMs` (`owned`: driver option -> setting), since they would be
 * overridden without a word. Engine dialects call it with their driver's names before
 * {@link resolveConfig}, which reports any malformed node; only key names are printed.
 *
 * @example
 * ```ts
 * checkOwnedConnectionOptions(config, 'ReplicatedPostgresDialect', { max: 'poolSize' })
 * ```
 */
export function checkOwnedConnectionOptions(
  config: unknown,
  dialectName: string,
  owned: Readonly<Record<string, 'poolSize' | 'idleTimeoutMs'>>,
): void {
  if (!isObject(config)) return
  const { primary, replicas } = config as Partial<ReplicatedDialectConfig<unknown, unknown>>
  const nodes: Array<readonly [string, unknown]> = [['primary', primary]]
  if (Array.isArray(replicas)) {
    for (let i = 0; i < replicas.length; i++) nodes.push([`replicas[${i}]`, replicas[i]])
  }
  for (const [at, node] of nodes) {
    const connection: unknown = isObject(node)
      ? (node as NodeConfig<unknown>).connection
      : undefined
    if (!isObject(connection)) continue
    for (const key of Object.keys(owned)) {
      if (Object.hasOwn(connection, key)) {
        const setting = owned[key]
        throw new ReplicatedConfigError(
          `${dialectName}: \`${at}.connection.${key}\` is set by the library from the node's \`${setting}\`: give \`${setting}\` next to \`connection\` instead`,
        )
      }
    }
  }
}

/**
 * A setting's value as error messages show it: strings quoted with their type (`"3" (a
 * string)`), so a number given as a string is seen as one; objects only by their kind (`an
 * object`, `an instance of Pool`), never their contents, which may hold a password. Credentials
 * in a connection URL or string are masked.
 *
 * @example
 * ```ts
 * describeValue('3') // '"3" (a string)'
 * describeValue(3e9) // '3000000000 (a number)'
 * describeValue({ password: 'secret' }) // 'an object'
 * ```
 */
export function describeValue(value: unknown): string {
  switch (typeof value) {
    case 'string':
      return `${JSON.stringify(maskCredentials(value))} (a string)`
    case 'number':
      return `${Object.is(value, -0) ? '-0' : String(value)} (a number)`
    case 'bigint':
      return `${String(value)}n (a bigint)`
    case 'boolean':
      return `${String(value)} (a boolean)`
    case 'undefined':
      return 'undefined'
    case 'symbol':
      return 'a symbol'
    case 'function':
      return 'a function'
  }
  if (value === null) return 'null'
  if (Array.isArray(value)) return `an array of ${value.length}`
  const name = (Object.getPrototypeOf(value) as { constructor?: { name?: unknown } } | null)
    ?.constructor?.name
  return typeof name === 'string' && name !== '' && name !== 'Object'
    ? `an instance of ${name}`
    : 'an object'
}

/** Masks `user:password@` in URLs and `password=...` pairs, and shortens long strings. */
function maskCredentials(text: string): string {
  const masked = text
    .replace(/\/\/\S*@/g, '//***@')
    .replace(/\b(password|passwd|pwd)\s*=\s*[^\s;&]*/gi, '$1=***')
  return masked.length > 80 ? `${masked.slice(0, 77)}...` : masked
}

function isObject(value: unknown): value is object {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

function checkKeys(
  value: object,
  allowed: KeyList,
  where: string,
  fail: Fail,
  extraKeys: readonly string[] = [],
): void {
  for (const key of Object.keys(value)) {
    if (!Object.hasOwn(allowed, key) && !extraKeys.includes(key)) {
      fail(
        `unknown option "${key}" in ${where}: the options are ${[...Object.keys(allowed), ...extraKeys].join(', ')}`,
      )
    }
  }
}

/**
 * An optional part of the config given as an object (`health`, `latency`, ...): its keys are
 * checked, `undefined` reads as `{}`. `forms` names the other accepted forms (`true or false`),
 * `instead` what to write for a common mistake.
 */
function section<T extends object>(
  value: T | undefined,
  setting: string,
  keys: KeyList,
  fail: Fail,
  advice: { readonly forms?: string; readonly instead?: string } = {},
): Partial<T> {
  if (value === undefined) return {}
  if (!isObject(value)) {
    const forms = advice.forms === undefined ? '' : `, ${advice.forms}`
    const instead = advice.instead === undefined ? '' : `; ${advice.instead}`
    fail(
      `\`${setting}\` must be an object { ${Object.keys(keys).join(', ')} }${forms}, got ${describeValue(value)}${instead}`,
    )
  }
  checkKeys(value, keys, `\`${setting}\``, fail)
  return value
}

/**
 * A duration in milliseconds: a finite number from 0 (or above 0 with `positive`) to
 * {@link MAX_TIMER_MS}. `undefined` stays `undefined`, for the caller's default.
 */
function durationMs(
  value: unknown,
  setting: string,
  fail: Fail,
  positive = false,
): number | undefined {
  if (value === undefined) return undefined
  if (
    typeof value !== 'number' ||
    !(positive ? value > 0 : value >= 0) ||
    !(value <= MAX_TIMER_MS)
  ) {
    const range = positive ? 'above 0 and at most' : 'from 0 to'
    const why =
      typeof value === 'number' && value > MAX_TIMER_MS
        ? ` (${MAX_TIMER_MS} ms, about 24.8 days, is the longest delay Node.js timers run)`
        : ''
    fail(
      `\`${setting}\` must be a number of milliseconds ${range} ${MAX_TIMER_MS}, got ${describeValue(value)}${why}`,
    )
  }
  return value
}

/** A count: a positive safe integer, or `undefined`. */
function count(value: unknown, setting: string, fail: Fail): number | undefined {
  if (value !== undefined && !(Number.isSafeInteger(value) && (value as number) > 0)) {
    fail(`\`${setting}\` must be a positive integer, got ${describeValue(value)}`)
  }
  return value as number | undefined
}

function flag(value: unknown, setting: string, fail: Fail): boolean | undefined {
  if (value !== undefined && typeof value !== 'boolean') {
    fail(`\`${setting}\` must be true or false, got ${describeValue(value)}`)
  }
  return value as boolean | undefined
}

function callback(value: unknown, setting: string, fail: Fail): void {
  if (value !== undefined && typeof value !== 'function') {
    fail(`\`${setting}\` must be a function, got ${describeValue(value)}`)
  }
}

function nonEmptyString(value: unknown, setting: string, fail: Fail): string {
  if (typeof value !== 'string' || value === '') {
    fail(`\`${setting}\` must be a non-empty string, got ${describeValue(value)}`)
  }
  return value as string
}

// ---- nodes ----

/**
 * Checks a replica given to `dialect.addReplica()` as the dialect's config is checked: a unique
 * `name`, `pool` or `connection`, a positive `weight`. Throws {@link ReplicatedConfigError}.
 */
export function checkReplicaConfig(
  replica: unknown,
  options: {
    readonly isPool: (value: unknown) => boolean
    readonly dialectName: string
    readonly names: readonly string[]
  },
): asserts replica is ReplicaConfig<unknown, unknown> {
  const fail: Fail = (message) => {
    throw new ReplicatedConfigError(`${options.dialectName}.addReplica: ${message}`)
  }
  checkNodeShape(replica, 'replica', REPLICA_KEYS, options.isPool, fail)
  const node = replica as ReplicaConfig<unknown, unknown>
  const name = nonEmptyString(node.name, 'replica.name', fail)
  if (options.names.includes(name)) {
    fail(`duplicate node name "${name}": every node needs its own name`)
  }
  checkNodeSettings(node, `replica "${name}"`, 'replica', options.isPool, fail)
  checkWeight(node.weight, name, fail)
}

/** A replica's `weight`: a positive finite number, when given. */
function checkWeight(weight: unknown, name: string, fail: Fail): void {
  if (
    weight !== undefined &&
    !(typeof weight === 'number' && Number.isFinite(weight) && weight > 0)
  ) {
    fail(
      `replica "${name}": \`weight\` must be a positive finite number, got ${describeValue(weight)}`,
    )
  }
}

/**
 * The config's nodes as `primary` + `replicas`: as given, or from `nodes` (the first is the
 * provisional primary until the servers say which node takes writes).
 */
export function nodeConfigs<P, C>(
  config: ReplicatedDialectConfig<P, C>,
  isPool: (value: unknown) => boolean = () => true,
  fail: Fail = (message) => {
    throw new ReplicatedConfigError(message)
  },
): ReplicatedDialectConfig<P, C> & {
  readonly primary: NodeConfig<P, C>
  readonly replicas: ReadonlyArray<ReplicaConfig<P, C>>
} {
  const nodes = config.nodes
  if (nodes === undefined) return config as never
  if (config.primary !== undefined || config.replicas !== undefined) {
    fail('give either `nodes` or `primary` + `replicas`, not both')
  }
  if (!Array.isArray(nodes) || nodes.length === 0) {
    fail(`\`nodes\` must be a non-empty array of { name, pool }, got ${describeValue(nodes)}`)
  }
  for (let i = 0; i < nodes.length; i++) {
    if (!Object.hasOwn(nodes, i)) {
      fail(`\`nodes[${i}]\` is an empty slot of a sparse array: every entry must be { name, pool }`)
    }
    checkNodeShape(nodes[i], `nodes[${i}]`, REPLICA_KEYS, isPool, fail)
    nonEmptyString(nodes[i]!.name, `nodes[${i}].name`, fail)
  }
  const { weight: _weight, ...first } = nodes[0]!
  return { ...config, primary: first, replicas: nodes.slice(1) } as never
}

function resolveTopology(
  value: ReplicatedDialectConfig<unknown, unknown>['topology'],
  fail: Fail,
): ResolvedConfig['topology'] {
  if (value === undefined || value === 'dynamic' || value === 'static') {
    return Object.freeze({ mode: value ?? 'dynamic', writeWaitMs: 5000 })
  }
  const section = value as { mode?: unknown; writeWaitMs?: unknown }
  if (!isObject(section)) {
    fail(
      `\`topology\` must be 'dynamic', 'static' or { mode?, writeWaitMs? }, got ${describeValue(value)}`,
    )
  }
  checkKeys(section, { mode: true, writeWaitMs: true }, '`topology`', fail)
  const mode = section.mode === undefined ? 'dynamic' : section.mode
  if (mode !== 'dynamic' && mode !== 'static') {
    fail(`\`topology.mode\` must be 'dynamic' or 'static', got ${describeValue(mode)}`)
  }
  return Object.freeze({
    mode,
    writeWaitMs: durationMs(section.writeWaitMs, 'topology.writeWaitMs', fail) ?? 5000,
  })
}

function checkNodes(
  config: ReplicatedDialectConfig<unknown, unknown>,
  isPool: (value: unknown) => boolean,
  fail: Fail,
): void {
  const { primary, replicas } = config
  if (primary === undefined || primary === null) {
    fail('`primary` is missing: pass { primary: { pool }, replicas: [...] }')
  }
  checkNodeShape(primary, 'primary', NODE_KEYS, isPool, fail)
  checkNodeSettings(primary, 'primary', 'primary', isPool, fail)
  const names = new Set([
    nonEmptyString(primary.name === undefined ? 'primary' : primary.name, 'primary.name', fail),
  ])
  if (!Array.isArray(replicas)) {
    fail(`\`replicas\` must be an array (it may be empty), got ${describeValue(replicas)}`)
  }
  // Indexes, not forEach: a sparse array's holes are entries too.
  for (let i = 0; i < replicas.length; i++) {
    const at = `replicas[${i}]`
    if (!Object.hasOwn(replicas, i)) {
      fail(`\`${at}\` is an empty slot of a sparse array: every entry must be { name, pool }`)
    }
    const replica: ReplicaConfig<unknown, unknown> | undefined = replicas[i]
    checkNodeShape(replica, at, REPLICA_KEYS, isPool, fail)
    const name = nonEmptyString(replica.name, `${at}.name`, fail)
    if (names.has(name)) {
      fail(`duplicate node name "${name}" (${at}): every node needs its own name`)
    }
    names.add(name)
    checkNodeSettings(replica, `replica "${name}"`, at, isPool, fail)
    checkWeight(replica.weight, name, fail)
  }
}

/** A node entry is an object with known keys; `at` is where it sits (`replicas[0]`). */
function checkNodeShape(
  node: unknown,
  at: string,
  keys: KeyList,
  isPool: (value: unknown) => boolean,
  fail: Fail,
): asserts node is object {
  if (!isObject(node)) {
    fail(
      `\`${at}\` must be an object { ${at === 'primary' ? '' : 'name, '}pool } or { ${at === 'primary' ? '' : 'name, '}connection }, got ${describeValue(node)}`,
    )
  }
  // A pool in place of the node: a class instance with keys no node has (not a node config
  // with a misspelt key, whose `pool` may make it look like a mysql2/promise pool).
  const proto: unknown = Object.getPrototypeOf(node)
  const plain = proto === Object.prototype || proto === null
  if (!plain && Object.keys(node).some((key) => !Object.hasOwn(keys, key)) && isPool(node)) {
    fail(`\`${at}\` is a pool itself: give it as { pool }, e.g. { name, pool: createPool(...) }`)
  }
  checkKeys(node, keys, `\`${at}\``, fail)
}

/** A node's pool and settings; `label` names it in messages (`replica "r1"`). */
function checkNodeSettings(
  node: NodeConfig<unknown, unknown>,
  label: string,
  at: string,
  isPool: (value: unknown) => boolean,
  fail: Fail,
): void {
  const { pool, connection } = node
  const hasPool = pool !== undefined && pool !== null
  const hasConnection = connection !== undefined && connection !== null
  if (hasPool && hasConnection) {
    fail(`${label}: give either \`pool\` or \`connection\`, not both`)
  }
  if (!hasPool && !hasConnection) {
    fail(
      `${label} has no pool: pass { pool: createPool(...) }, { pool: async () => createPool(...) } or { connection: { host, ... } }`,
    )
  }
  if (hasConnection && !isObject(connection)) {
    fail(
      `${label}: \`connection\` must be an object of driver connection options, got ${describeValue(connection)}`,
    )
  }
  if (hasPool && typeof pool !== 'function' && !isPool(pool)) {
    const promise = typeof (pool as { then?: unknown }).then === 'function'
    fail(
      `${label}: \`pool\` is not a supported pool object (or a function returning one), got ${describeValue(pool)}${promise ? ': pass the async function itself, not its promise' : ''}`,
    )
  }
  if (hasPool) {
    for (const key of ['poolSize', 'idleTimeoutMs'] as const) {
      if (node[key] !== undefined) {
        fail(
          `${label}: \`${key}\` applies to pools the library creates from \`connection\`; set it on your own pool instead`,
        )
      }
    }
  }
  count(node.poolSize, `${at}.poolSize`, fail)
  durationMs(node.idleTimeoutMs, `${at}.idleTimeoutMs`, fail, true)
  durationMs(node.maxLifetimeMs, `${at}.maxLifetimeMs`, fail, true)
}

// ---- callbacks ----

function checkCallbacks(config: ReplicatedDialectConfig<unknown, unknown>, fail: Fail): void {
  for (const key of ['onCreateConnection', 'onReserveConnection', 'onRoute', 'onEvent'] as const) {
    callback(config[key], key, fail)
  }
  const hooks = section(config.hooks, 'hooks', HOOK_KEYS, fail)
  for (const key of Object.keys(HOOK_KEYS) as Array<keyof ConnectionHooks>) {
    callback(hooks[key], `hooks.${key}`, fail)
  }
}

// ---- consistency and replica sessions ----

function resolveConsistency(
  config: ReplicatedDialectConfig<unknown, unknown>,
  fail: Fail,
): Pick<ResolvedConfig, 'consistency' | 'stickyWindowMs' | 'causalWaitTimeoutMs'> {
  // `=== undefined`, not `??`: a null is a mistake to report, not a request for the default.
  const consistency = config.consistency === undefined ? 'causal' : config.consistency
  if (typeof consistency !== 'string' || !Object.hasOwn(CONSISTENCY_MODES, consistency)) {
    fail(
      `unknown consistency mode ${describeValue(consistency)} in \`consistency\`: use 'eventual', 'sticky' or 'causal'`,
    )
  }
  return {
    consistency: consistency as ConsistencyMode,
    stickyWindowMs: durationMs(config.stickyWindowMs, 'stickyWindowMs', fail),
    causalWaitTimeoutMs: durationMs(config.causalWaitTimeoutMs, 'causalWaitTimeoutMs', fail) ?? 50,
  }
}

function resolveSession(
  config: ReplicatedDialectConfig<unknown, unknown>,
  fail: Fail,
): Pick<ResolvedConfig, 'replicaSessionReadOnly' | 'primaryFunctions' | 'defaultRoute'> {
  const functions = config.primaryFunctions === undefined ? [] : config.primaryFunctions
  if (!Array.isArray(functions)) {
    fail(`\`primaryFunctions\` must be an array of function names, got ${describeValue(functions)}`)
  }
  for (let i = 0; i < functions.length; i++) {
    const name = nonEmptyString(functions[i], `primaryFunctions[${i}]`, fail)
    // Calls are matched on the bare name: 'audit_log()' or ' ' would never match a call.
    const bare = normalizeFunctionName(name)
    if (bare === '' || /[()]/.test(bare)) {
      fail(
        `\`primaryFunctions[${i}]\` must be a function name such as 'audit_log' or 'audit.log', without parentheses, got ${describeValue(name)}`,
      )
    }
  }
  const defaultRoute = config.defaultRoute === undefined ? 'replicas' : config.defaultRoute
  if (defaultRoute !== 'replicas' && defaultRoute !== 'primary') {
    fail(`\`defaultRoute\` must be 'replicas' or 'primary', got ${describeValue(defaultRoute)}`)
  }
  return {
    replicaSessionReadOnly:
      flag(config.replicaSessionReadOnly, 'replicaSessionReadOnly', fail) ?? true,
    primaryFunctions: Object.freeze([...functions]),
    defaultRoute,
  }
}

// ---- replica selection ----

function resolveSelection(
  config: ReplicatedDialectConfig<unknown, unknown>,
  fail: Fail,
): Pick<ResolvedConfig, 'selector' | 'latency'> {
  const latency = section(config.latency, 'latency', LATENCY_KEYS, fail, {
    instead: 'leave it out for the defaults',
  })
  return {
    selector: checkSelector(config.selector, fail),
    latency: Object.freeze({
      ttlMs: durationMs(latency.ttlMs, 'latency.ttlMs', fail, true) ?? DEFAULT_LEAST_LATENCY_TTL_MS,
      sampleSize: count(latency.sampleSize, 'latency.sampleSize', fail),
      decayMs: durationMs(latency.decayMs, 'latency.decayMs', fail, true) ?? DEFAULT_DECAY_MS,
    }),
  }
}

/** A built-in name or an object with the {@link ReplicaSelector} methods; checked, not built. */
function checkSelector(value: unknown, fail: Fail): BuiltInSelectorName | ReplicaSelector {
  const names = BUILT_IN_SELECTOR_NAMES.map((n) => `'${n}'`).join(', ')
  if (value === undefined) return DEFAULT_SELECTOR_NAME
  if (typeof value === 'string' && (BUILT_IN_SELECTOR_NAMES as readonly string[]).includes(value)) {
    return value as BuiltInSelectorName
  }
  if (isObject(value)) {
    const { select, onResult } = value as { select?: unknown; onResult?: unknown }
    if (typeof select !== 'function') {
      fail(
        `\`selector\` must have a select(candidates, context) method, got ${describeValue(select)} for select; or use one of ${names}`,
      )
    }
    callback(onResult, 'selector.onResult', fail)
    return value as ReplicaSelector
  }
  return fail(
    `unknown \`selector\` ${describeValue(value)}: use one of ${names}, or an object with a select(candidates, context) method`,
  )
}

// ---- health ----

function resolveHealth(
  config: ReplicatedDialectConfig<unknown, unknown>,
  fail: Fail,
): Pick<
  ResolvedConfig,
  | 'probeIntervalMs'
  | 'probeTimeoutMs'
  | 'probeConcurrency'
  | 'cooldownMs'
  | 'maxCooldownMs'
  | 'maxReplicationLagMs'
  | 'readTimeoutMs'
> {
  const health = section(config.health, 'health', HEALTH_KEYS, fail, {
    instead: 'to turn the background prober off, write health: { probeIntervalMs: 0 }',
  })
  const cooldownMs = durationMs(health.cooldownMs, 'health.cooldownMs', fail) ?? 1000
  const maxCooldownMs = durationMs(health.maxCooldownMs, 'health.maxCooldownMs', fail) ?? 30_000
  if (maxCooldownMs < cooldownMs) {
    fail(
      `\`health.maxCooldownMs\` (${maxCooldownMs}) must be at least \`health.cooldownMs\` (${cooldownMs})`,
    )
  }
  return {
    probeIntervalMs: durationMs(health.probeIntervalMs, 'health.probeIntervalMs', fail) ?? 1000,
    probeTimeoutMs: durationMs(health.probeTimeoutMs, 'health.probeTimeoutMs', fail, true) ?? 1000,
    probeConcurrency: count(health.probeConcurrency, 'health.probeConcurrency', fail) ?? 4,
    cooldownMs,
    maxCooldownMs,
    maxReplicationLagMs: durationMs(config.maxReplicationLagMs, 'maxReplicationLagMs', fail),
    readTimeoutMs: durationMs(config.readTimeoutMs, 'readTimeoutMs', fail, true),
  }
}

// ---- retry and fallback ----

function resolveFailover(
  config: ReplicatedDialectConfig<unknown, unknown>,
  fail: Fail,
): Pick<ResolvedConfig, 'retryReads' | 'fallback' | 'maxPrimaryReads'> {
  const retry = section(config.retry, 'retry', RETRY_KEYS, fail, {
    instead: 'to turn read retries off, write retry: { reads: false }',
  })
  const retryReads = flag(retry.reads, 'retry.reads', fail) ?? true
  const fallback: unknown = config.fallback
  if (fallback === undefined || fallback === 'primary' || fallback === 'error') {
    return { retryReads, fallback: fallback ?? 'primary', maxPrimaryReads: undefined }
  }
  if (!isObject(fallback)) {
    fail(
      `unknown \`fallback\` ${describeValue(fallback)}: use 'primary', 'error' or { mode: 'primary', maxPrimaryReads }`,
    )
  }
  checkKeys(fallback, FALLBACK_KEYS, '`fallback`', fail)
  const { mode, maxPrimaryReads } = fallback as Partial<ObjectForm<'fallback'>>
  if (mode !== 'primary') {
    fail(
      `\`fallback.mode\` must be 'primary', got ${describeValue(mode)}; for errors write fallback: 'error'`,
    )
  }
  if (maxPrimaryReads === undefined) {
    fail(
      "`fallback.maxPrimaryReads` is missing: { mode: 'primary', maxPrimaryReads: n } caps the reads the primary runs for replicas; without a cap write fallback: 'primary'",
    )
  }
  return {
    retryReads,
    fallback: 'primary',
    maxPrimaryReads: count(maxPrimaryReads, 'fallback.maxPrimaryReads', fail),
  }
}

// ---- hedged reads ----

/** `hedge`: off when absent; `after` `'p90'` (default) or milliseconds, `budget` in (0, 1]. */
function resolveHedge(value: unknown, fail: Fail): ResolvedHedge | undefined {
  if (value === undefined) return undefined
  const hedge = section(value as ObjectForm<'hedge'>, 'hedge', HEDGE_KEYS, fail, {
    instead: 'leave it out to turn hedged reads off',
  })
  const after: unknown = hedge.after
  if (typeof after === 'string' && after !== 'p90') {
    fail(
      `unknown \`hedge.after\` ${describeValue(after)}: use 'p90' or a number of milliseconds above 0`,
    )
  }
  if (after !== undefined && typeof after !== 'string') durationMs(after, 'hedge.after', fail, true)
  const budget: unknown = hedge.budget
  if (
    budget !== undefined &&
    !(typeof budget === 'number' && Number.isFinite(budget) && budget > 0 && budget <= 1)
  ) {
    fail(
      `\`hedge.budget\` must be a number above 0 and at most 1 (hedges per read), got ${describeValue(budget)}`,
    )
  }
  return Object.freeze({
    after: (after as 'p90' | number | undefined) ?? 'p90',
    budget: (budget as number | undefined) ?? DEFAULT_HEDGE_BUDGET,
  })
}

// ---- observability ----

function resolveObservability(
  config: ReplicatedDialectConfig<unknown, unknown>,
  fail: Fail,
): Pick<ResolvedConfig, 'queryComments' | 'tracing' | 'metrics'> {
  const { queryComments, tracing } = config
  let comments: Partial<ObjectForm<'queryComments'>> = {}
  if (typeof queryComments !== 'boolean') {
    comments = section(queryComments, 'queryComments', QUERY_COMMENT_KEYS, fail, {
      forms: 'true or false',
    })
  }
  let tracingOptions: TracingOptions = {}
  if (typeof tracing !== 'boolean') {
    tracingOptions = section(tracing, 'tracing', TRACING_KEYS, fail, { forms: 'true or false' })
    const { mode, tracerName } = tracingOptions
    if (mode !== undefined && mode !== 'span' && mode !== 'attributes') {
      fail(`unknown \`tracing.mode\` ${describeValue(mode)}: use 'span' or 'attributes'`)
    }
    if (tracerName !== undefined) nonEmptyString(tracerName, 'tracing.tracerName', fail)
    flag(tracingOptions.includeQueryText, 'tracing.includeQueryText', fail)
  }
  const commentsOn = queryComments === true || isObject(queryComments)
  return {
    queryComments: Object.freeze({
      enabled: commentsOn,
      route: flag(comments.route, 'queryComments.route', fail) ?? true,
    }),
    tracing:
      tracing === true || isObject(tracing) ? Object.freeze({ ...tracingOptions }) : undefined,
    metrics: resolveMetrics(config.metrics, fail),
  }
}

/** `metrics`: `true`, `false` or `{ meterProvider }`, whose provider must have `getMeter`. */
function resolveMetrics(value: unknown, fail: Fail): MetricsOptions | undefined {
  if (value === undefined || value === false) return undefined
  if (value === true) return Object.freeze({})
  const options = section(value as MetricsOptions, 'metrics', METRICS_KEYS, fail, {
    forms: 'true or false',
  })
  const provider: unknown = options.meterProvider
  if (
    provider !== undefined &&
    !(isObject(provider) && typeof (provider as { getMeter?: unknown }).getMeter === 'function')
  ) {
    fail(
      `\`metrics.meterProvider\` must be an OpenTelemetry MeterProvider (an object with getMeter), got ${describeValue(provider)}`,
    )
  }
  return Object.freeze({ ...options })
}

// ---- settings that have no effect ----

/**
 * One process warning (code {@link CONFIG_WARNING_CODE}) listing the settings the rest of the
 * config makes ineffective: valid, so not an error, but likely a mistake.
 */
function warnAboutIgnoredSettings(
  config: ReplicatedDialectConfig<unknown, unknown>,
  resolved: ResolvedConfig,
  dialectName: string,
): void {
  const ignored: string[] = []
  const { selector, consistency } = resolved
  // A selector of your own may read `weight` and may not: only the built-ins are known.
  if (typeof selector === 'string' && selector !== 'weighted') {
    const weighted = (config.replicas ?? config.nodes ?? [])
      .filter((r) => r.weight !== undefined)
      .map((r) => `"${r.name}"`)
    if (weighted.length > 0) {
      ignored.push(
        `\`weight\` (on ${weighted.join(', ')}) is read only by selector 'weighted', not '${selector}'`,
      )
    }
  }
  if (selector !== 'least-latency') {
    for (const key of ['ttlMs', 'sampleSize'] as const) {
      if (config.latency?.[key] !== undefined) {
        ignored.push(`\`latency.${key}\` is read only by selector 'least-latency'`)
      }
    }
  }
  if (consistency === 'eventual' && config.stickyWindowMs !== undefined) {
    ignored.push("`stickyWindowMs` is read only by consistency 'sticky' and 'causal'")
  }
  if (consistency !== 'causal' && config.causalWaitTimeoutMs !== undefined) {
    ignored.push("`causalWaitTimeoutMs` is read only by consistency 'causal'")
  }
  if (ignored.length > 0) {
    process.emitWarning(`${dialectName}: settings without effect: ${ignored.join('; ')}`, {
      code: CONFIG_WARNING_CODE,
    })
  }
}
