import type { Driver } from 'kysely'
import { encodeCausalToken } from '../consistency/causal-token.js'
import { currentScope } from '../consistency/scope.js'
import { createSelector } from '../selection/create-selector.js'
import { ClusterRuntime, type ReplicaInfo, type RoutingStats } from './cluster-runtime.js'
import {
  type ConnectionHooks,
  type NodeConfig,
  type ReplicatedDialectConfig,
  resolveConfig,
} from './config.js'
import type { Engine, NodeInfo, PhysicalConnection } from './engine.js'
import { type LifecycleNodePool, ManagedPool, type PoolStats } from './managed-pool.js'
import { ReplicatedDriver } from './replicated-driver.js'

/** Per-node settings handed to an engine's pool factory. */
export interface NodePoolSetup {
  readonly node: NodeInfo
  readonly replicaSessionReadOnly: boolean
  readonly onCreateConnection: ReplicatedDialectConfig<unknown>['onCreateConnection']
  readonly afterConnect: ConnectionHooks['afterConnect']
  /** Called once per pool, on its first new connection, after the hooks (the pool-size check). */
  readonly firstConnection: (connection: PhysicalConnection) => Promise<void>
  /** Whether write positions are used (causal mode): else the engine neither tracks nor parses them. */
  readonly trackPositions: boolean
}

/** A node's config as the engine's pool factory gets it. */
export type NodeSource = NodeConfig<unknown, unknown>

/**
 * What every replicated dialect shares: config validation, the cluster runtime, the driver, and
 * the public inspection methods. Engines add their adapter, compiler, introspector and pools.
 */
export abstract class ReplicatedDialectBase {
  /** @internal */
  protected readonly cluster: ClusterRuntime
  protected constructor(
    config: ReplicatedDialectConfig<any, any>,
    engine: Engine,
    dialectName: string,
    isPool: (value: unknown) => boolean,
    createPool: (node: NodeSource, setup: NodePoolSetup) => LifecycleNodePool,
    extraKeys: readonly string[] = [],
  ) {
    const resolved = resolveConfig({ config, isPool, dialectName, extraKeys })
    const selector = createSelector(resolved.selector, { latency: resolved.latency })
    const setupFor = (node: NodeInfo): NodePoolSetup =>
      Object.freeze({
        node,
        replicaSessionReadOnly: resolved.replicaSessionReadOnly,
        onCreateConnection: config.onCreateConnection,
        afterConnect: config.hooks?.afterConnect,
        firstConnection: (connection: PhysicalConnection) =>
          this.cluster.checkCapacity(node.name, connection),
        trackPositions: resolved.consistency === 'causal',
      })
    const managed = (source: NodeSource, node: NodeInfo): ManagedPool =>
      new ManagedPool(createPool(source, setupFor(node)), node, {
        maxLifetimeMs: source.maxLifetimeMs,
        hooks: config.hooks,
        isConnectionError: (error) => engine.isConnectionError(error),
      })
    const primaryName = config.primary.name ?? 'primary'
    this.cluster = new ClusterRuntime(
      engine,
      resolved,
      {
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
      { onRoute: config.onRoute, onEvent: config.onEvent },
      config.latency?.decayMs,
      {
        firstPassSample:
          config.selector === 'least-latency' ? config.latency?.sampleSize : undefined,
      },
    )
  }

  /** @internal Creates the routing driver. Drivers of one dialect share its pools and state. */
  protected createReplicatedDriver(): Driver {
    return new ReplicatedDriver(this.cluster)
  }

  /**
   * Per node: state, latency estimate, last probe round trip, lag, position, in-flight queries,
   * reads served, errors, and when a cooling-down node is next tried.
   */
  getReplicaInfo(): ReplicaInfo[] {
    return this.cluster.getReplicaInfo()
  }

  /** Counters of routing decisions by reason and by node, and causal wait totals. */
  getRoutingStats(): RoutingStats {
    return this.cluster.getRoutingStats()
  }

  /**
   * A causal token for the current scope's writes on this cluster, to hand to another request
   * or process (`consistencyScope(fn, { causalToken })`); `undefined` when the scope wrote nothing
   * with a known position.
   */
  getCausalToken(): string | undefined {
    const cluster = this.cluster
    const required = currentScope().requirement(cluster, cluster.engine.positionKind, cluster.now())
    return required.position === undefined ? undefined : encodeCausalToken(required.position)
  }

  /**
   * Per node: connections total / idle / in use, waiting acquirers, connections opened and closed,
   * and the time spent waiting for a connection (mean and max).
   */
  getPoolStats(): PoolStats[] {
    return this.cluster.getPoolStats()
  }

  /** Probes every replica now and waits for the results (the background prober does this on its interval). */
  async probeNow(): Promise<void> {
    // The pools start lazily with Kysely's first query; a probe before that starts them.
    await this.cluster.init()
    await this.cluster.probeNow()
  }
}
