import type { DatabaseConnection } from 'kysely'
import type { BuiltInSelectorName, ReplicaSelector } from '../selection/replica-selector.js'
import type { NodeInfo } from './engine.js'
import { ReplicatedConfigError } from './errors.js'
import type { ReplicationEvent, RouteEvent } from './events.js'

/** Read-your-writes guarantee. See docs/consistency.md. */
export type ConsistencyMode = 'eventual' | 'sticky' | 'causal'

/** A node of the cluster. `P` is the engine's pool type. */
export interface NodeConfig<P> {
  /** Unique name, used in events, errors and `onReplica(db, name)`. The primary defaults to `'primary'`. */
  readonly name?: string
  /** The pool, or an async factory called once at initialisation. */
  readonly pool: P | (() => Promise<P>)
}

export interface ReplicaConfig<P> extends NodeConfig<P> {
  readonly name: string
  /** Relative share of reads for the `'weighted'` selector. A positive finite number; default 1. */
  readonly weight?: number
}

/** Settings shared by every engine's replicated dialect. */
export interface ReplicatedDialectConfig<P> {
  readonly primary: NodeConfig<P>
  readonly replicas: ReadonlyArray<ReplicaConfig<P>>
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
  readonly fallback?: 'primary' | 'error' | { readonly mode: 'primary'; readonly maxPrimaryReads: number }
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
}

const CONSISTENCY_MODES: ReadonlySet<string> = new Set(['eventual', 'sticky', 'causal'])

/**
 * Validates the parts of the config every engine shares and returns them frozen. Throws
 * {@link ReplicatedConfigError} with a message that names the offending setting.
 */
export function resolveConfig<P>(
  config: ReplicatedDialectConfig<P>,
  isPool: (value: unknown) => boolean,
  dialectName: string,
): ResolvedConfig {
  const fail = (message: string): never => {
    throw new ReplicatedConfigError(`${dialectName}: ${message}`)
  }
  if (config === null || typeof config !== 'object') {
    fail('a config object is required: { primary: { pool }, replicas: [...] }')
  }
  if (config.primary === null || typeof config.primary !== 'object') {
    fail('`primary` is missing: pass { primary: { pool }, replicas: [...] }')
  }
  checkPool(config.primary.pool, 'primary', isPool, fail)
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
    checkPool(replica.pool, `replica "${replica.name}"`, isPool, fail)
    if (replica.weight !== undefined && !(Number.isFinite(replica.weight) && replica.weight > 0)) {
      fail(`replica "${replica.name}": weight must be a positive finite number, got ${String(replica.weight)}`)
    }
  })
  const consistency = config.consistency ?? 'causal'
  if (!CONSISTENCY_MODES.has(consistency)) {
    fail(`unknown consistency "${String(consistency)}": use 'eventual', 'sticky' or 'causal'`)
  }
  const health = config.health ?? {}
  let fallback: 'primary' | 'error' = 'primary'
  let maxPrimaryReads: number | undefined
  if (config.fallback === 'error' || config.fallback === 'primary' || config.fallback === undefined) {
    fallback = config.fallback ?? 'primary'
  } else if (typeof config.fallback === 'object' && config.fallback.mode === 'primary') {
    maxPrimaryReads = positiveInteger(config.fallback.maxPrimaryReads, 'fallback.maxPrimaryReads', fail)
  } else {
    fail(`unknown fallback ${JSON.stringify(config.fallback)}: use 'primary', 'error' or { mode: 'primary', maxPrimaryReads }`)
  }
  if (config.primaryFunctions !== undefined) {
    if (!Array.isArray(config.primaryFunctions) || config.primaryFunctions.some((f) => typeof f !== 'string' || f === '')) {
      fail('`primaryFunctions` must be an array of function names')
    }
  }
  for (const key of ['onCreateConnection', 'onRoute', 'onEvent'] as const) {
    if (config[key] !== undefined && typeof config[key] !== 'function') {
      fail(`\`${key}\` must be a function`)
    }
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
    probeConcurrency: positiveInteger(health.probeConcurrency ?? 4, 'health.probeConcurrency', fail),
    cooldownMs,
    maxCooldownMs,
    maxReplicationLagMs: optionalNonNegative(config.maxReplicationLagMs, 'maxReplicationLagMs', fail),
    retryReads: config.retry?.reads ?? true,
    fallback,
    maxPrimaryReads,
  })
}

function checkName(name: unknown, where: string, fail: (m: string) => never): void {
  if (typeof name !== 'string' || name.length === 0) {
    fail(`${where} must be a non-empty string`)
  }
}

function checkPool(pool: unknown, where: string, isPool: (v: unknown) => boolean, fail: (m: string) => never): void {
  if (pool === undefined || pool === null) {
    fail(`${where} has no pool: pass { pool: createPool(...) } or { pool: async () => createPool(...) }`)
  }
  if (typeof pool !== 'function' && !isPool(pool)) {
    fail(`${where}: pool is not a supported pool object (or a function returning one)`)
  }
}

function nonNegative(value: number | undefined, fallback: number, where: string, fail: (m: string) => never): number {
  if (value === undefined) return fallback
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
    fail(`${where} must be a finite number >= 0, got ${String(value)}`)
  }
  return value
}

function optionalNonNegative(value: number | undefined, where: string, fail: (m: string) => never): number | undefined {
  return value === undefined ? undefined : nonNegative(value, 0, where, fail)
}

function positive(value: number | undefined, fallback: number, where: string, fail: (m: string) => never): number {
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
