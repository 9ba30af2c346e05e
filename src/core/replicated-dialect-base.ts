import type { Driver } from 'kysely'
import { createSelector } from '../selection/create-selector.js'
import { Cluster } from './cluster.js'
import {
  checkReplicaConfig,
  nodeConfigs,
  type ReplicaConfig,
  type ReplicatedDialectConfig,
  resolveConfig,
} from './config.js'
import type { Engine, EngineContext, NodeInfo, PhysicalConnection } from './contracts/engine.js'
import { DialectDestroyedError } from './contracts/errors.js'
import type { LifecycleNodePool } from './contracts/lifecycle.js'
import type { NodePoolSetup, NodeSource } from './contracts/node-setup.js'
import type { PoolStats, ReplicaInfo, RoutingStats } from './contracts/stats.js'
import { ManagedPool } from './managed-pool.js'
import { ReplicatedDriver } from './replicated-driver.js'

/** What an engine's dialect gives the shared base. */
export interface ReplicatedDialectParts<E extends Engine> {
  readonly config: ReplicatedDialectConfig<any, any>
  /** The dialect's class name, for error messages. */
  readonly dialectName: string
  /** Whether a value is a pool of this engine's driver. */
  readonly isPool: (value: unknown) => boolean
  /** Config keys of the engine's own (besides the shared ones). */
  readonly extraKeys?: readonly string[]
  readonly createEngine: (context: EngineContext) => E
  /** One node's pool: from the configured pool (or factory) or from `connection` options. */
  readonly createPool: (source: NodeSource, setup: NodePoolSetup, engine: E) => LifecycleNodePool
}

/**
 * What every replicated dialect shares: config validation, the cluster, the driver, and the
 * public inspection methods. Engines add their adapter, compiler, introspector and pools.
 */
export abstract class ReplicatedDialectBase<E extends Engine = Engine> {
  /** Builds a new cluster (pools, state) from the validated config. */
  readonly #build: () => Cluster
  /** Nodes given a pool instance (not a factory, not `connection`): such pools cannot reopen. */
  readonly #instancePools: readonly string[]
  readonly #dialectName: string
  readonly #isPool: (value: unknown) => boolean
  /** The cluster of the newest driver (the one the inspection methods report on). */
  #cluster: Cluster
  /** Whether a driver already took {@link #cluster}. */
  #taken = false

  protected constructor(parts: ReplicatedDialectParts<E>) {
    const { dialectName } = parts
    const resolved = resolveConfig({
      config: parts.config,
      isPool: parts.isPool,
      dialectName,
      extraKeys: parts.extraKeys,
    })
    this.#dialectName = dialectName
    this.#isPool = parts.isPool
    // Validated above: `nodes` (if given) as a provisional primary and its replicas.
    const config = nodeConfigs(parts.config)
    this.#instancePools = [
      { name: config.primary.name ?? 'primary', node: config.primary },
      ...config.replicas.map((r) => ({ name: r.name, node: r })),
    ]
      .filter(({ node }) => node.pool !== undefined && typeof node.pool !== 'function')
      .map(({ name }) => name)
    this.#build = () => {
      const selector = createSelector(resolved.selector, { latency: resolved.latency })
      let cluster: Cluster | undefined
      const engine = parts.createEngine({
        causalUnsupported: (node, message) => cluster?.planner.causalUnsupported(node, message),
      })
      const managed = (source: NodeSource, node: NodeInfo): ManagedPool =>
        new ManagedPool({
          inner: parts.createPool(
            source,
            Object.freeze({
              node,
              replicaSessionReadOnly: resolved.replicaSessionReadOnly,
              onCreateConnection: config.onCreateConnection,
              firstConnection: (connection: PhysicalConnection) =>
                cluster!.checkCapacity(node.name, connection),
              trackPositions: resolved.consistency === 'causal',
              isConnectionError: (error: unknown) => engine.isConnectionError(error),
            }),
            engine,
          ),
          node,
          maxLifetimeMs: source.maxLifetimeMs,
          hooks: config.hooks,
          isConnectionError: (error) => engine.isConnectionError(error),
        })
      const primaryName = config.primary.name ?? 'primary'
      cluster = new Cluster({
        engine,
        config: resolved,
        nodes: {
          primary: {
            name: primaryName,
            pool: managed(config.primary, { name: primaryName, role: 'primary' }),
          },
          replicas: config.replicas.map((r) => ({
            name: r.name,
            weight: r.weight ?? 1,
            pool: managed(r, { name: r.name, role: 'replica' }),
          })),
        },
        selector,
        onRoute: config.onRoute,
        onEvent: config.onEvent,
        onReserveConnection: config.onReserveConnection,
        decayMs: resolved.latency.decayMs,
        firstPassSample:
          resolved.selector === 'least-latency' ? resolved.latency.sampleSize : undefined,
        replicaPool: (source: NodeSource, name: string) =>
          managed(source, { name, role: 'replica' }),
        discoverRoles: parts.config.nodes !== undefined,
      })
      return cluster
    }
    this.#cluster = this.#build()
  }

  /**
   * @internal Creates the routing driver of one `Kysely` instance, with pools of its own, as
   * Kysely's own dialects do: pool factories (`pool: async () => createPool(...)`) and
   * `connection` options are called again for each driver, so one dialect serves several
   * `Kysely` instances one after the other. Pool instances cannot reopen once a `destroy()`
   * ended them: the next driver then fails with {@link DialectDestroyedError}.
   */
  protected createReplicatedDriver(): Driver {
    if (this.#taken) {
      const previous = this.#cluster
      this.#cluster = this.#build()
      if (previous.destroyed && this.#instancePools.length > 0) {
        this.#cluster.refuseInit(
          new DialectDestroyedError(
            `${this.#dialectName}: the pools of this dialect were ended by an earlier db.destroy(), and node${this.#instancePools.length > 1 ? 's' : ''} ${this.#instancePools.map((n) => `"${n}"`).join(', ')} ${this.#instancePools.length > 1 ? 'were' : 'was'} given a pool instance, which cannot be reopened: give pool factories (pool: async () => createPool(...)) or { connection } options to use one dialect for several Kysely instances, or create a new dialect`,
          ),
        )
      }
    }
    this.#taken = true
    return new ReplicatedDriver(this.#cluster)
  }

  /**
   * Adds a replica at run time (an autoscaled read replica): its pool is opened, it is probed,
   * and it takes reads once healthy. Its config is checked like the dialect's (`name` unique,
   * `pool` or `connection`, `weight`).
   *
   * @example
   * ```ts
   * await dialect.addReplica({ name: 'replica-3', pool: createPool({ host: 'replica3.internal', ... }) })
   * ```
   */
  async addReplica(replica: ReplicaConfig<unknown, unknown>): Promise<void> {
    checkReplicaConfig(replica, {
      isPool: this.#isPool,
      dialectName: this.#dialectName,
      names: this.#cluster.registry.all.map((n) => n.name),
    })
    await this.#cluster.addReplica(replica)
  }

  /**
   * Removes a replica at run time: it takes no new statement at once, the statements in flight
   * on it finish (at most `timeoutMs`, default 10 000 ms; then they are abandoned), and its pool
   * is ended. Reads keep running on the other nodes throughout.
   *
   * @example
   * ```ts
   * await dialect.removeReplica('replica-3')
   * ```
   */
  async removeReplica(name: string, options: { readonly timeoutMs?: number } = {}): Promise<void> {
    await this.#cluster.removeReplica(name, options.timeoutMs ?? 10_000)
  }

  /**
   * Per node: state, latency estimate, last probe round trip, lag, position, in-flight queries,
   * reads served, errors, and when a cooling-down node is next tried.
   */
  getReplicaInfo(): ReplicaInfo[] {
    return this.#cluster.getReplicaInfo()
  }

  /** Counters of routing decisions by reason and by node, and causal wait totals. */
  getRoutingStats(): RoutingStats {
    return this.#cluster.getRoutingStats()
  }

  /**
   * A causal token for the current scope's writes on this cluster, to hand to another request
   * or process (`consistencyScope(fn, { causalToken })`); `undefined` when the scope wrote nothing
   * with a known position.
   */
  getCausalToken(): string | undefined {
    return this.#cluster.causalToken()
  }

  /**
   * Per node: connections total / idle / in use, waiting acquirers, connections opened and closed,
   * and the time spent waiting for a connection (mean and max).
   */
  getPoolStats(): PoolStats[] {
    return this.#cluster.getPoolStats()
  }

  /** Probes every replica now and waits for the results (the background prober does this on its interval). */
  async probeNow(): Promise<void> {
    // The pools start lazily with Kysely's first query; a probe before that starts them.
    await this.#cluster.init()
    await this.#cluster.probeNow()
  }
}
