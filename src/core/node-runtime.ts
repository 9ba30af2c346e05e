import type { ReplicationPosition } from '../consistency/position.js'
import { type HealthSettings, NodeHealth } from '../health/node-health.js'
import { NodeLoad } from '../health/node-load.js'
import type { ReplicaCandidate } from '../selection/replica-selector.js'
import type { NodeInfo, NodePool } from './engine.js'

/** Everything the library tracks about one node. Mutable, owned by the cluster runtime. */
export class NodeRuntime {
  readonly info: NodeInfo
  readonly pool: NodePool
  readonly load: NodeLoad
  readonly health: NodeHealth
  /** The view selectors get (replicas only). */
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

  constructor(
    info: NodeInfo,
    pool: NodePool,
    weight: number,
    index: number,
    healthSettings: HealthSettings,
    decayMs: number | undefined,
  ) {
    this.info = info
    this.pool = pool
    this.load = new NodeLoad({ decayMs })
    this.health = new NodeHealth(healthSettings)
    this.candidate = Object.freeze({ name: info.name, weight, index, stats: this.load })
  }

  get name(): string {
    return this.info.name
  }
}
