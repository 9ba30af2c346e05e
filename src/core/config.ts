import type { DatabaseConnection } from 'kysely'
import type { TracingOptions } from '../observability/tracing.js'
import type { BuiltInSelectorName, ReplicaSelector } from '../selection/replica-selector.js'
import type { NodeInfo } from './contracts/engine.js'
import { ReplicatedConfigError } from './contracts/errors.js'
import type { ReplicationEvent, RouteEvent } from './contracts/events.js'

/** Read-your-writes guarantee. See docs/consistency.md. */
export type ConsistencyMode = 'eventual' | 'sticky' | 'causal'

/** A node of the cluster. `P` is the engine's pool type, `C` its connection options type. */
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
  /** Relative share of reads for the `'weighted'` selector. A positive finite number; default 1. */
  readonly weight?: number
}

/** Connection lifecycle hooks, on every node. */
export interface ConnectionHooks {
  /** Before the pool opens a new physical connection (as far as the pool lets the library see it). */
  readonly beforeConnect?: (node: NodeInfo) => void | Promise<void>
  /**
   * After a new physical connection is set up (after `onCreateConnection`), before its first query.
   * If it throws, the connection is closed, never reused, and a `ConnectionSetupError` is raised.
   */
  readonly afterConnect?: (connection: DatabaseConnection, node: NodeInfo) => Promise<void>
  /** A connection-level failure on the node (connect, or a query losing its connection). */
  readonly onConnectionFailure?: (error: unknown, node: NodeInfo) => void
}

/** Settings shared by every engine's replicated dialect. */
export interface ReplicatedDialectConfig<P, C = object> {
  readonly primary: NodeConfig<P, C>
  readonly replicas: ReadonlyArray<ReplicaConfig<P, C>>
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
    /** `'p2c-ewma'`: decay time of the latency average. Default 10 000 ms. */
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
  /** Makes every replica session read-only when it is created, so a misrouted write fails. Default `true`. */
  readonly replicaSessionReadOnly?: boolean
  /** Extra function names (case-insensitive) whose calls must run on the primary. */
  readonly primaryFunctions?: ReadonlyArray<string>
  /** Called for every routing decision. Keep it cheap: it runs on the query path. */
  readonly onRoute?: (event: RouteEvent) => void
  /** Called for node state changes and other notable events. */
  readonly onEvent?: (event: ReplicationEvent) => void
  /** Health checks and cool-down of failed replicas. */
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
  /** Read retries on connection-level failures. Default `{ reads: true }`. */
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
}

/** The validated, frozen form of the engine-independent settings. */
export interface ResolvedConfig {
  readonly consistency: ConsistencyMode
  readonly stickyWindowMs: number | undefined
  readonly causalWaitTimeoutMs: number
  readonly replicaSessionReadOnly: boolean
  readonly primaryFunctions: ReadonlyArray<string>
  readonly probeIntervalMs: number
  readonly probeTimeoutMs: number
  readonly probeConcurrency: number
  readonly cooldownMs: number
  readonly maxCooldownMs: number
  readonly maxReplicationLagMs: number | undefined
  readonly retryReads: boolean
  readonly fallback: 'primary' | 'error'
  readonly maxPrimaryReads: number | undefined
  readonly queryComments: { readonly enabled: boolean; readonly route: boolean }
  readonly tracing: TracingOptions | undefined
}

const CONSISTENCY_MODES: ReadonlySet<string> = new Set(['eventual', 'sticky', 'causal'])

const CONFIG_KEYS: readonly string[] = [
  'primary',
  'replicas',
  'selector',
  'latency',
  'consistency',
  'stickyWindowMs',
  'causalWaitTimeoutMs',
  'onCreateConnection',
  'replicaSessionReadOnly',
  'primaryFunctions',
  'onRoute',
  'onEvent',
  'health',
  'maxReplicationLagMs',
  'retry',
  'fallback',
  'hooks',
  'queryComments',
  'tracing',
]

const NODE_KEYS: readonly string[] = [
  'name',
  'pool',
  'connection',
  'poolSize',
  'idleTimeoutMs',
  'maxLifetimeMs',
]

const NESTED_KEYS: Readonly<Record<'health' | 'latency' | 'retry' | 'hooks', readonly string[]>> = {
  health: ['probeIntervalMs', 'probeTimeoutMs', 'probeConcurrency', 'cooldownMs', 'maxCooldownMs'],
  latency: ['ttlMs', 'sampleSize', 'decayMs'],
  retry: ['reads'],
  hooks: ['beforeConnect', 'afterConnect', 'onConnectionFailure'],
}

function checkKeys(
  value: object,
  allowed: readonly string[],
  where: string,
  fail: (m: string) => never,
): void {
  for (const key of Object.keys(value)) {
    if (!allowed.includes(key)) {
      fail(`unknown option "${key}" in ${where}: the options are ${allowed.join(', ')}`)
    }
  }
}

/**
 * Validates the parts of the config every engine shares and returns them frozen. Throws
 * {@link ReplicatedConfigError} with a message that names the offending setting.
 */
export function resolveConfig<P, C>(
  config: ReplicatedDialectConfig<P, C>,
  isPool: (value: unknown) => boolean,
  dialectName: string,
  extraKeys: readonly string[] = [],
): ResolvedConfig {
  const fail = (message: string): never => {
    throw new ReplicatedConfigError(`${dialectName}: ${message}`)
  }
  if (config === null || typeof config !== 'object') {
    fail('a config object is required: { primary: { pool }, replicas: [...] }')
  }
  // A misspelt option would otherwise be ignored without a word (plain JavaScript callers).
  checkKeys(config, [...CONFIG_KEYS, ...extraKeys], 'the config', fail)
  for (const key of ['health', 'latency', 'retry', 'hooks'] as const) {
    const value = config[key]
    if (value !== undefined && value !== null && typeof value === 'object') {
      checkKeys(value, NESTED_KEYS[key], `\`${key}\``, fail)
    }
  }
  if (config.primary !== null && typeof config.primary === 'object') {
    checkKeys(config.primary, NODE_KEYS, '`primary`', fail)
  }
  if (Array.isArray(config.replicas)) {
    config.replicas.forEach((replica, i) => {
      if (replica !== null && typeof replica === 'object') {
        checkKeys(replica, [...NODE_KEYS, 'weight'], `replicas[${i}]`, fail)
      }
    })
  }
  if (config.primary === null || typeof config.primary !== 'object') {
    fail('`primary` is missing: pass { primary: { pool }, replicas: [...] }')
  }
  checkNode(config.primary, 'primary', isPool, fail)
  if (!Array.isArray(config.replicas)) {
    fail('`replicas` must be an array (it may be empty)')
  }
  const names = new Set<string>()
  const primaryName = config.primary.name ?? 'primary'
  checkName(primaryName, 'primary.name', fail)
  names.add(primaryName)
  config.replicas.forEach((replica, i) => {
    if (replica === null || typeof replica !== 'object') {
      fail(`replicas[${i}] must be an object { name, pool, weight? }`)
    }
    checkName(replica.name, `replicas[${i}].name`, fail)
    if (names.has(replica.name)) {
      fail(`duplicate node name "${replica.name}" (replicas[${i}]): every node needs its own name`)
    }
    names.add(replica.name)
    checkNode(replica, `replica "${replica.name}"`, isPool, fail)
    if (replica.weight !== undefined && !(Number.isFinite(replica.weight) && replica.weight > 0)) {
      fail(
        `replica "${replica.name}": weight must be a positive finite number, got ${String(replica.weight)}`,
      )
    }
  })
  const consistency = config.consistency ?? 'causal'
  if (!CONSISTENCY_MODES.has(consistency)) {
    fail(`unknown consistency "${String(consistency)}": use 'eventual', 'sticky' or 'causal'`)
  }
  const health = config.health ?? {}
  let fallback: 'primary' | 'error' = 'primary'
  let maxPrimaryReads: number | undefined
  if (
    config.fallback === 'error' ||
    config.fallback === 'primary' ||
    config.fallback === undefined
  ) {
    fallback = config.fallback ?? 'primary'
  } else if (typeof config.fallback === 'object' && config.fallback.mode === 'primary') {
    maxPrimaryReads = positiveInteger(
      config.fallback.maxPrimaryReads,
      'fallback.maxPrimaryReads',
      fail,
    )
  } else {
    fail(
      `unknown fallback ${JSON.stringify(config.fallback)}: use 'primary', 'error' or { mode: 'primary', maxPrimaryReads }`,
    )
  }
  if (config.primaryFunctions !== undefined) {
    if (
      !Array.isArray(config.primaryFunctions) ||
      config.primaryFunctions.some((f) => typeof f !== 'string' || f === '')
    ) {
      fail('`primaryFunctions` must be an array of function names')
    }
  }
  for (const key of ['onCreateConnection', 'onRoute', 'onEvent'] as const) {
    if (config[key] !== undefined && typeof config[key] !== 'function') {
      fail(`\`${key}\` must be a function`)
    }
  }
  if (config.hooks !== undefined) {
    for (const key of ['beforeConnect', 'afterConnect', 'onConnectionFailure'] as const) {
      if (config.hooks[key] !== undefined && typeof config.hooks[key] !== 'function') {
        fail(`\`hooks.${key}\` must be a function`)
      }
    }
  }
  const comments = config.queryComments
  if (
    comments !== undefined &&
    typeof comments !== 'boolean' &&
    (typeof comments !== 'object' || comments === null)
  ) {
    fail('`queryComments` must be true, false or { route?: boolean }')
  }
  const tracing = config.tracing
  if (
    tracing !== undefined &&
    typeof tracing !== 'boolean' &&
    (typeof tracing !== 'object' || tracing === null)
  ) {
    fail(
      "`tracing` must be true, false or { mode?: 'span' | 'attributes', tracerName?, includeQueryText? }",
    )
  }
  if (
    typeof tracing === 'object' &&
    tracing.mode !== undefined &&
    tracing.mode !== 'span' &&
    tracing.mode !== 'attributes'
  ) {
    fail(`unknown tracing.mode "${String(tracing.mode)}": use 'span' or 'attributes'`)
  }
  const cooldownMs = nonNegative(health.cooldownMs, 1000, 'health.cooldownMs', fail)
  const maxCooldownMs = nonNegative(health.maxCooldownMs, 30_000, 'health.maxCooldownMs', fail)
  if (maxCooldownMs < cooldownMs) {
    fail('health.maxCooldownMs must be at least health.cooldownMs')
  }
  return Object.freeze({
    consistency,
    stickyWindowMs: optionalNonNegative(config.stickyWindowMs, 'stickyWindowMs', fail),
    causalWaitTimeoutMs: nonNegative(config.causalWaitTimeoutMs, 50, 'causalWaitTimeoutMs', fail),
    replicaSessionReadOnly: config.replicaSessionReadOnly ?? true,
    primaryFunctions: Object.freeze([...(config.primaryFunctions ?? [])]),
    probeIntervalMs: nonNegative(health.probeIntervalMs, 1000, 'health.probeIntervalMs', fail),
    probeTimeoutMs: positive(health.probeTimeoutMs, 1000, 'health.probeTimeoutMs', fail),
    probeConcurrency: positiveInteger(
      health.probeConcurrency ?? 4,
      'health.probeConcurrency',
      fail,
    ),
    cooldownMs,
    maxCooldownMs,
    maxReplicationLagMs: optionalNonNegative(
      config.maxReplicationLagMs,
      'maxReplicationLagMs',
      fail,
    ),
    retryReads: config.retry?.reads ?? true,
    fallback,
    maxPrimaryReads,
    queryComments: Object.freeze({
      enabled: comments === true || (typeof comments === 'object' && comments !== null),
      route: typeof comments === 'object' && comments !== null ? comments.route !== false : true,
    }),
    tracing:
      tracing === true
        ? Object.freeze({})
        : typeof tracing === 'object' && tracing !== null
          ? Object.freeze({ ...tracing })
          : undefined,
  })
}

function checkName(name: unknown, where: string, fail: (m: string) => never): void {
  if (typeof name !== 'string' || name.length === 0) {
    fail(`${where} must be a non-empty string`)
  }
}

function checkNode(
  node: NodeConfig<unknown, unknown>,
  where: string,
  isPool: (v: unknown) => boolean,
  fail: (m: string) => never,
): void {
  const hasPool = node.pool !== undefined && node.pool !== null
  const hasConnection = node.connection !== undefined && node.connection !== null
  if (hasPool && hasConnection) {
    fail(`${where}: give either \`pool\` or \`connection\`, not both`)
  }
  if (!hasPool && !hasConnection) {
    fail(
      `${where} has no pool: pass { pool: createPool(...) }, { pool: async () => createPool(...) } or { connection: { host, ... } }`,
    )
  }
  if (hasConnection && typeof node.connection !== 'object') {
    fail(`${where}: \`connection\` must be an object of driver connection options`)
  }
  if (hasPool) {
    checkPool(node.pool, where, isPool, fail)
    for (const key of ['poolSize', 'idleTimeoutMs'] as const) {
      if (node[key] !== undefined) {
        fail(
          `${where}: \`${key}\` applies to pools the library creates from \`connection\`; set it on your own pool instead`,
        )
      }
    }
  }
  if (node.poolSize !== undefined) positiveInteger(node.poolSize, `${where}: poolSize`, fail)
  if (node.idleTimeoutMs !== undefined)
    positive(node.idleTimeoutMs, 1, `${where}: idleTimeoutMs`, fail)
  if (node.maxLifetimeMs !== undefined)
    positive(node.maxLifetimeMs, 1, `${where}: maxLifetimeMs`, fail)
}

function checkPool(
  pool: unknown,
  where: string,
  isPool: (v: unknown) => boolean,
  fail: (m: string) => never,
): void {
  if (typeof pool !== 'function' && !isPool(pool)) {
    fail(`${where}: pool is not a supported pool object (or a function returning one)`)
  }
}

function nonNegative(
  value: number | undefined,
  fallback: number,
  where: string,
  fail: (m: string) => never,
): number {
  if (value === undefined) return fallback
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
    fail(`${where} must be a finite number >= 0, got ${String(value)}`)
  }
  return value
}

function optionalNonNegative(
  value: number | undefined,
  where: string,
  fail: (m: string) => never,
): number | undefined {
  return value === undefined ? undefined : nonNegative(value, 0, where, fail)
}

function positive(
  value: number | undefined,
  fallback: number,
  where: string,
  fail: (m: string) => never,
): number {
  const v = nonNegative(value, fallback, where, fail)
  if (v === 0) fail(`${where} must be greater than 0`)
  return v
}

function positiveInteger(value: number, where: string, fail: (m: string) => never): number {
  if (!Number.isInteger(value) || value <= 0) {
    fail(`${where} must be a positive integer, got ${String(value)}`)
  }
  return value
}
