import { performance } from 'node:perf_hooks'
import { encodeCausalToken } from '../consistency/causal-token.js'
import { currentScope } from '../consistency/scope.js'
import { HealthMonitor } from '../health/health-monitor.js'
import { Metrics } from '../observability/metrics.js'
import { Tracing } from '../observability/tracing.js'
import { ClassificationCache } from '../routing/classification-cache.js'
import { primaryFunctionSet } from '../routing/primary-functions.js'
import type { ReplicaSelector } from '../selection/replica-selector.js'
import type { ReplicaConfig, ResolvedConfig } from './config.js'
import type { Engine, PhysicalConnection } from './contracts/engine.js'
import {
  NodeUnreachableError,
  PrimaryUnavailableError,
  ReplicatedConfigError,
} from './contracts/errors.js'
import type { ReplicationEvent, RouteEvent } from './contracts/events.js'
import type { NodeSource } from './contracts/node-setup.js'
import type { PoolStats, ReplicaInfo, RoutingStats } from './contracts/stats.js'
import { withDeadline } from './deadline.js'
import { Executor } from './executor.js'
import type { ManagedPool } from './managed-pool.js'
import { NodeRegistry } from './node-registry.js'
import { type MutableNodeInfo, NodeRuntime } from './node-runtime.js'
import { ReadPlanner } from './read-planner.js'
import { Router } from './router.js'
import type { RoutingContext } from './routing-connection.js'
import { RoutingStatistics } from './routing-statistics.js'
import type { ReserveHook } from './session.js'
import { Topology } from './topology.js'

/** How long `destroy()` lets the prober and the pools end politely before it moves on. */
export const DESTROY_GRACE_MS = 1000

/** The nodes of a cluster as the dialect built them. */
export interface ClusterNodes {
  readonly primary: { readonly name: string; readonly pool: ManagedPool }
  readonly replicas: ReadonlyArray<{
    readonly name: string
    readonly pool: ManagedPool
    readonly weight: number
  }>
}

/**
 * The composition root of one replicated dialect: builds the node registry, the health monitor,
 * the read planner, the routing statistics, the router and the executor, and wires them through
 * narrow ports. Owns the start (pools, tracing, prober) and the end of the cluster's life.
 */
export class Cluster {
  readonly engine: Engine
  readonly config: ResolvedConfig
  readonly registry: NodeRegistry
  readonly statistics: RoutingStatistics
  readonly planner: ReadPlanner
  readonly monitor: HealthMonitor
  readonly topology: Topology
  /** What every routing connection of this cluster shares. */
  readonly routing: RoutingContext
  #tracing: Tracing | undefined
  readonly #replicaPool: (source: NodeSource, name: string) => ManagedPool
  readonly #decayMs: number | undefined
  readonly #discoverRoles: boolean
  #initPromise: Promise<void> | undefined
  #refusal: Error | undefined
  #destroyed = false

  constructor(options: {
    readonly engine: Engine
    readonly config: ResolvedConfig
    readonly nodes: ClusterNodes
    readonly selector: ReplicaSelector
    readonly onRoute?: ((event: RouteEvent) => void) | undefined
    readonly onEvent?: ((event: ReplicationEvent) => void) | undefined
    readonly onReserveConnection?: ReserveHook | undefined
    /** Decay of the nodes' latency estimates (`latency.decayMs`). */
    readonly decayMs: number | undefined
    /** `'least-latency'`'s `sampleSize`: replicas the first probe round measures at most. */
    readonly firstPassSample?: number | undefined
    /** Builds the pool of a replica added at run time. */
    readonly replicaPool: (source: NodeSource, name: string) => ManagedPool
    /** The config listed `nodes`: which one is the primary is asked of the servers at start. */
    readonly discoverRoles?: boolean
  }) {
    this.#discoverRoles = options.discoverRoles === true
    this.#replicaPool = options.replicaPool
    this.#decayMs = options.decayMs
    const { engine, config, nodes, selector } = options
    this.engine = engine
    this.config = config
    const now = () => performance.now()
    // The health settings (`cooldownMs`, `maxCooldownMs`, `maxReplicationLagMs`) are the config's.
    const health = config
    const primary = new NodeRuntime({
      info: nodes.primary.pool.info as MutableNodeInfo,
      pool: nodes.primary.pool,
      weight: 1,
      index: 0,
      health,
      decayMs: options.decayMs,
    })
    const replicas = nodes.replicas.map(
      (r, index) =>
        new NodeRuntime({
          info: r.pool.info as MutableNodeInfo,
          pool: r.pool,
          weight: r.weight,
          index: index + 1,
          health,
          decayMs: options.decayMs,
        }),
    )
    this.registry = new NodeRegistry({
      primary,
      replicas,
      trialsByQuery: config.probeIntervalMs === 0,
    })
    this.statistics = new RoutingStatistics({ onRoute: options.onRoute, onEvent: options.onEvent })
    const emit = (event: ReplicationEvent) => this.statistics.emit(event)
    this.planner = new ReadPlanner({
      registry: this.registry,
      settings: config,
      positionKind: () => engine.positionKind,
      emit,
      lagResolutionMs: engine.lagResolutionMs,
    })
    this.monitor = new HealthMonitor({
      registry: this.registry,
      engine,
      emit,
      onResult:
        selector.onResult === undefined
          ? undefined
          : (node, latencyMs, ok) => selector.onResult?.(node.candidate, latencyMs, ok),
      now,
      probeIntervalMs: config.probeIntervalMs,
      probeTimeoutMs: config.probeTimeoutMs,
      probeConcurrency: config.probeConcurrency,
      firstPassSample: options.firstPassSample,
      probeAllNodes: config.topology.mode === 'dynamic',
      onProbed: () => this.topology.review(),
    })
    this.topology = new Topology({
      registry: this.registry,
      emit,
      settings: config.topology,
      probeAll: () => this.monitor.probeAll(),
      now,
    })
    const router = new Router({
      registry: this.registry,
      planner: this.planner,
      defaultRoute: config.defaultRoute,
    })
    const executor = new Executor({
      engine,
      config,
      registry: this.registry,
      planner: this.planner,
      monitor: this.monitor,
      statistics: this.statistics,
      router,
      selector,
      now,
      tracing: () => this.#tracing,
      onReserveConnection: options.onReserveConnection,
      topology: this.topology,
    })
    this.routing = Object.freeze({
      engine,
      consistency: config.consistency,
      readTimeoutMs: config.readTimeoutMs,
      onReserveConnection: options.onReserveConnection,
      classifier: new ClassificationCache(
        Object.freeze({
          flavor: engine.flavor,
          primaryFunctions: primaryFunctionSet(engine.flavor, config.primaryFunctions),
        }),
      ),
      registry: this.registry,
      router,
      executor,
      planner: this.planner,
      statistics: this.statistics,
      now,
    })
  }

  now(): number {
    return performance.now()
  }

  /** Whether {@link destroy} ran. */
  get destroyed(): boolean {
    return this.#destroyed
  }

  /** Makes {@link init} fail with `error` (the pools it would open are gone). */
  refuseInit(error: Error): void {
    this.#refusal = error
  }

  /** Loads tracing, initialises every pool (in parallel) and starts the prober. Idempotent. */
  init(signal?: AbortSignal): Promise<void> {
    if (this.#refusal !== undefined) return Promise.reject(this.#refusal)
    this.#initPromise ??= (async () => {
      if (this.config.tracing !== undefined && this.#tracing === undefined) {
        this.#tracing = await Tracing.load(this.config.tracing)
      }
      // Metrics (observability/metrics.ts): loaded beside tracing; `undefined` when off.
      if (this.config.metrics !== undefined && this.statistics.metrics === undefined) {
        this.statistics.metrics = await Metrics.load(this.config.metrics, {
          system: () => this.engine.systemName,
          poolStats: () => this.getPoolStats(),
          replicaInfo: () => this.getReplicaInfo(),
        })
        for (const node of this.registry.all) node.pool.metrics = this.statistics.metrics
      }
      await Promise.all(this.registry.all.map((n) => n.pool.init(signal)))
      this.#warnNoConnectTimeout()
      if (this.#discoverRoles) await this.#discover()
      this.monitor.start()
    })().catch((error: unknown) => {
      // Let a later call try again.
      this.#initPromise = undefined
      throw error
    })
    return this.#initPromise
  }

  /**
   * Stops the prober and the watchdog and ends every pool, within about
   * {@link DESTROY_GRACE_MS} twice even when a node hangs: the pools end politely, then destroy
   * what is left. Never rejects after it resolved.
   */
  async destroy(): Promise<void> {
    this.#destroyed = true
    this.statistics.metrics?.close() // Metrics: no more collection of a destroyed cluster.
    // A probe of a hung node ends at its timeout; destroy does not wait that long.
    await withDeadline(this.monitor.stop(), DESTROY_GRACE_MS, () => undefined, { unref: true })
    const ending = Promise.allSettled(this.registry.all.map((n) => n.pool.end(DESTROY_GRACE_MS)))
    const results = await withDeadline(ending, DESTROY_GRACE_MS + 250, () => undefined, {
      unref: true,
    })
    if (results === undefined) return
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected')
    if (failed) throw failed.reason
  }

  /**
   * Once per node, on its first physical connection (during its setup, so no extra connection):
   * compares the pool's size with what the server has room for (`max_connections` minus the
   * connections others use) and warns through a `pool-oversized` event. Never fails the setup.
   */
  async checkCapacity(nodeName: string, connection: PhysicalConnection): Promise<void> {
    const node = this.registry.node(nodeName)
    if (node === undefined || this.engine.serverCapacity === undefined) return
    const limit = node.pool.counts()?.limit
    if (limit === undefined) return
    try {
      const capacity = await this.engine.serverCapacity(connection)
      const ours = node.pool.counts()?.total ?? 1
      const others = Math.max(0, capacity.used - ours)
      if (limit > capacity.max - others) {
        this.statistics.emit({
          type: 'pool-oversized',
          node: node.name,
          message: `the pool of node "${node.name}" may open ${limit} connections, but the server allows ${capacity.max} and others use ${others}: lower the pool size or raise max_connections`,
        })
      }
    } catch {
      // Advice only: a failure here says nothing about the node.
    }
  }

  getReplicaInfo(): ReplicaInfo[] {
    return this.registry.info(this.now())
  }

  getRoutingStats(): RoutingStats {
    return this.statistics.snapshot()
  }

  getPoolStats(): PoolStats[] {
    return this.registry.all.map((n) => n.pool.stats())
  }

  /** A causal token for the current scope's writes on this cluster, if it wrote any. */
  causalToken(): string | undefined {
    const required = this.planner.requirement(currentScope(), this.now())
    return required.position === undefined ? undefined : encodeCausalToken(required.position)
  }

  /**
   * Once per dialect: a replica pool without a connect timeout waits for TCP when its node is
   * black-holed, so new connections to it hang long after the health checks gave up on it.
   */
  #warnNoConnectTimeout(): void {
    const without = this.registry.replicas.filter((n) => n.pool.connectTimeoutMs() === undefined)
    if (without.length === 0) return
    process.emitWarning(
      `kysely-replicated: the pool${without.length > 1 ? 's' : ''} of ${without.map((n) => `"${n.name}"`).join(', ')} ${without.length > 1 ? 'have' : 'has'} no connect timeout: a node that accepts connections and never answers would hold new connections until TCP gives up. Set connectTimeout (mysql2) or connectionTimeoutMillis (pg) on the pool, e.g. 3000 ms`,
      { code: 'KYSELY_REPLICATED_CONFIG' },
    )
  }

  /**
   * The `nodes` form: every node is asked whether it takes writes; exactly one must, and it is
   * the primary. Otherwise the start fails with `PrimaryUnavailableError`, naming them.
   */
  async #discover(): Promise<void> {
    await this.monitor.probeAll()
    const writable = this.registry.all.filter((n) => n.writable === true)
    if (writable.length !== 1) {
      throw new PrimaryUnavailableError(
        `the roles of the nodes could not be told at start: ${writable.length === 0 ? 'no node takes writes' : `several nodes take writes (${writable.map((n) => `"${n.name}"`).join(', ')})`} (${this.registry.all.map((n) => `${n.name}: ${n.writable === undefined ? 'unreachable or unknown' : n.writable ? 'writable' : 'read-only'}`).join(', ')})`,
        this.registry.primary.name,
      )
    }
    const primary = writable[0]!
    if (primary !== this.registry.primary) {
      const from = this.registry.promote(primary)
      this.statistics.emit({ type: 'role-changed', node: primary.name, role: 'primary' })
      this.statistics.emit({ type: 'role-changed', node: from.name, role: 'replica' })
    }
  }

  /** Adds a replica at run time (see `dialect.addReplica`). */
  async addReplica(replica: ReplicaConfig<unknown, unknown>): Promise<void> {
    const pool = this.#replicaPool(replica, replica.name)
    await pool.init()
    const node = new NodeRuntime({
      info: pool.info as MutableNodeInfo,
      pool,
      weight: replica.weight ?? 1,
      index: Math.max(...this.registry.all.map((n) => n.candidate.index)) + 1,
      health: this.config,
      decayMs: this.#decayMs,
    })
    // Probed before it takes reads: its lag and position are known from the start.
    await this.monitor.probeNode(node)
    this.registry.add(node)
    this.statistics.emit({ type: 'replica-added', node: node.name })
  }

  /** Drains and removes a replica (see `dialect.removeReplica`). */
  async removeReplica(name: string, timeoutMs: number): Promise<void> {
    const node = this.registry.node(name)
    if (node === undefined || node === this.registry.primary) {
      throw new ReplicatedConfigError(
        `removeReplica("${name}"): ${node === undefined ? 'no node of that name' : 'it is the primary'} (replicas: ${this.registry.replicas.map((r) => `"${r.name}"`).join(', ') || 'none'})`,
      )
    }
    this.registry.drain(node)
    const deadline = this.now() + timeoutMs
    while ((node.running.size > 0 || node.pool.stats().inUse > 0) && this.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
    for (const connection of [...node.running]) {
      connection.abandon?.(
        new NodeUnreachableError(
          `replica "${name}" was removed: the statement was abandoned`,
          name,
        ),
      )
    }
    await node.pool.end(DESTROY_GRACE_MS)
    this.registry.remove(node)
    this.statistics.emit({ type: 'replica-removed', node: name })
  }

  /** Runs the prober once now (tests and `dialect.probeNow()`). */
  probeNow(): Promise<void> {
    return this.monitor.probeNow()
  }
}
