import { setMaxListeners } from 'node:events'
import type { ReplicationPosition } from '../consistency/position.js'
import { type HealthSettings, NodeHealth } from '../health/node-health.js'
import { NodeLoad } from '../health/node-load.js'
import type { ReplicaCandidate } from '../selection/replica-selector.js'
import type { NodeInfo } from './contracts/engine.js'
import type { ManagedPool } from './managed-pool.js'
import { RunningConnections } from './running-connections.js'

/** A node's name and role, as the library keeps it: the role changes with the topology. */
export interface MutableNodeInfo extends NodeInfo {
  role: NodeInfo['role']
}

/** Everything the library tracks about one node. Mutable, owned by the node registry. */
export class NodeRuntime {
  /** The node's name and current role (the same object hooks and events get). */
  readonly info: MutableNodeInfo
  readonly pool: ManagedPool
  readonly load: NodeLoad
  readonly health: NodeHealth
  /** The view selectors get (replicas only). Identity-stable: selectors may key caches on it. */
  readonly candidate: ReplicaCandidate
  /** Latest known applied replication position (replicas), from probes and successful waits. */
  position: ReplicationPosition | undefined
  /** Statements routed to this node (`getRoutingStats().byNode`, kept here: no lookup per statement). */
  routed = 0
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
  readonly running = new RunningConnections()
  /**
   * Aborted when the node is found dead or hung: connections being opened to it for a statement
   * give up at once instead of waiting for their connect timeout. Replaced after each rescue.
   */
  rescue = unboundedController()
  /** Being removed: no new statements (`removeReplica`). */
  draining = false
  /** What the last probe said of writes: accepted (`true`), refused, or unknown. */
  writable: boolean | undefined

  constructor(options: {
    readonly info: MutableNodeInfo
    readonly pool: ManagedPool
    /** Relative share of reads for weight-aware selectors. */
    readonly weight: number
    /** A number the node keeps for its life, unique in its dialect (`candidate.index`). */
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

  /** A fresh {@link rescue} signal (the previous one was aborted). */
  renewRescue(): void {
    this.rescue = unboundedController()
  }

  /**
   * The node changed role (a switchover, a failover). Its pool's connections were set up for the
   * old role (read-only replica sessions, GTID tracking on the primary): they are retired.
   */
  setRole(role: NodeInfo['role']): void {
    if (this.info.role === role) return
    this.info.role = role
    this.pool.retireAll()
  }
}

/** An AbortController whose signal any number of pending acquisitions may listen to. */
function unboundedController(): AbortController {
  const controller = new AbortController()
  setMaxListeners(0, controller.signal)
  return controller
}
