import type { ReplicationPosition } from '../consistency/position.js'
import { type HealthSettings, NodeHealth } from '../health/node-health.js'
import { NodeLoad } from '../health/node-load.js'
import type { ReplicaCandidate } from '../selection/replica-selector.js'
import type { NodeInfo, PhysicalConnection } from './contracts/engine.js'
import type { ManagedPool } from './managed-pool.js'

/** Everything the library tracks about one node. Mutable, owned by the node registry. */
export class NodeRuntime {
  readonly info: NodeInfo
  readonly pool: ManagedPool
  readonly load: NodeLoad
  readonly health: NodeHealth
  /** The view selectors get (replicas only). Identity-stable: selectors may key caches on it. */
  readonly candidate: ReplicaCandidate
  /** Latest known applied replication position (replicas), from probes and successful waits. */
  position: ReplicationPosition | undefined
  /** A causal wait for this position timed out: no more waits here until `position` covers it. */
  timedOutPosition: ReplicationPosition | undefined
  /** When that wait timed out (clock reading). */
  timedOutAtMs = 0
  /** Whether the server refuses writes, from the last probe. */
  readOnly: boolean | undefined
  /** Clock reading of the last probe (successful or not). */
  lastProbeAtMs: number | undefined
  /** The message of the failure that last took the node down. */
  lastError: string | undefined
  /** Connections running a statement now (to rescue them when the node is found dead). */
  readonly running = new Set<PhysicalConnection>()

  constructor(options: {
    readonly info: NodeInfo
    readonly pool: ManagedPool
    /** Relative share of reads for weight-aware selectors. */
    readonly weight: number
    /** Position in the replica list (`-1` for the primary). */
    readonly index: number
    readonly health: HealthSettings
    readonly decayMs: number | undefined
  }) {
    this.info = options.info
    this.pool = options.pool
    this.load = new NodeLoad({ decayMs: options.decayMs })
    this.health = new NodeHealth(options.health)
    this.candidate = Object.freeze({
      name: options.info.name,
      weight: options.weight,
      index: options.index,
      stats: this.load,
    })
  }

  get name(): string {
    return this.info.name
  }
}
