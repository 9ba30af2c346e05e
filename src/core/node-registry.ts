import { formatPosition, type ReplicationPosition } from '../consistency/position.js'
import type { ReplicaCandidate } from '../selection/replica-selector.js'
import type { ReplicaInfo } from './contracts/stats.js'
import type { NodeRuntime } from './node-runtime.js'

/**
 * The nodes of one dialect, their roles, and the set of replicas usable for reads. Roles change
 * when the servers say so (a switchover, a failover: see `Topology`) and nodes come and go at run
 * time (`addReplica`, `removeReplica`). `all`, `replicas` and the usable set are frozen arrays,
 * the same instances until something changes (selectors and the planner may compare them by
 * identity). A node's candidate `index` is a number it keeps for its life (see `replicaByIndex`).
 */
export class NodeRegistry {
  #primary: NodeRuntime
  #all: readonly NodeRuntime[]
  #replicas: readonly NodeRuntime[] = []
  readonly #byName = new Map<string, NodeRuntime>()
  /** By `candidate.index`: a number given to each node for its life. */
  readonly #byIndex = new Map<number, NodeRuntime>()
  /** Without a prober, a query after a cool-down is the half-open trial. */
  readonly #trialsByQuery: boolean
  #usable: readonly ReplicaCandidate[] = Object.freeze([])
  #dirty = true
  #recheckAtMs = Number.POSITIVE_INFINITY

  constructor(options: {
    readonly primary: NodeRuntime
    readonly replicas: readonly NodeRuntime[]
    readonly trialsByQuery: boolean
  }) {
    this.#primary = options.primary
    this.#all = Object.freeze([options.primary, ...options.replicas])
    for (const node of this.#all) {
      this.#byName.set(node.name, node)
      this.#byIndex.set(node.candidate.index, node)
    }
    this.#trialsByQuery = options.trialsByQuery
    this.#rebuild()
  }

  /** The node that takes writes. */
  get primary(): NodeRuntime {
    return this.#primary
  }

  /** The nodes in the replica role, draining ones excluded. */
  get replicas(): readonly NodeRuntime[] {
    return this.#replicas
  }

  /** Every node, in the order they were added (the first primary first). */
  get all(): readonly NodeRuntime[] {
    return this.#all
  }

  node(name: string): NodeRuntime | undefined {
    return this.#byName.get(name)
  }

  /** The node of a candidate (`candidate.index`). */
  replicaByIndex(index: number): NodeRuntime {
    return this.#byIndex.get(index)!
  }

  /** Makes `node` the primary; the former primary becomes a replica. */
  promote(node: NodeRuntime): NodeRuntime {
    const former = this.#primary
    if (former === node) return former
    former.setRole('replica')
    node.setRole('primary')
    this.#primary = node
    this.#rebuild()
    return former
  }

  /** Adds a node (a replica added at run time), whose candidate index no other node has. */
  add(node: NodeRuntime): void {
    if (this.#byName.has(node.name)) throw new Error(`a node named "${node.name}" exists already`)
    this.#all = Object.freeze([...this.#all, node])
    this.#byName.set(node.name, node)
    this.#byIndex.set(node.candidate.index, node)
    this.#rebuild()
  }

  /** Stops using `node` for new statements (it is being drained), then forgets it. */
  drain(node: NodeRuntime): void {
    node.draining = true
    this.#rebuild()
  }

  /** Forgets a drained node. */
  remove(node: NodeRuntime): void {
    this.#byName.delete(node.name)
    this.#byIndex.delete(node.candidate.index)
    this.#all = Object.freeze(this.#all.filter((n) => n !== node))
    this.#rebuild()
  }

  #rebuild(): void {
    this.#replicas = Object.freeze(
      this.#all.filter((n) => n !== this.#primary && !n.draining && n.info.role === 'replica'),
    )
    this.#dirty = true
  }

  /** A node's health changed: the usable set is recomputed on next use. */
  changed(): void {
    this.#dirty = true
  }

  /** The replicas usable for reads now. The same array instance until the set changes. */
  usableReplicas(nowMs: number): readonly ReplicaCandidate[] {
    if (this.#dirty || nowMs >= this.#recheckAtMs) {
      this.#dirty = false
      this.#recheckAtMs = Number.POSITIVE_INFINITY
      const usable: ReplicaCandidate[] = []
      for (const node of this.#replicas) {
        const next = node.health.nextAttemptAtMs
        if (node.health.usable()) {
          usable.push(node.candidate)
        } else if (next !== undefined) {
          if (this.#trialsByQuery && nowMs >= next) {
            usable.push(node.candidate)
          } else if (next < this.#recheckAtMs) {
            this.#recheckAtMs = next
          }
        }
      }
      if (!sameCandidates(usable, this.#usable)) this.#usable = Object.freeze(usable)
    }
    return this.#usable
  }

  /** `replica-1: healthy, replica-2: down`, for error messages. */
  describeReplicas(): string {
    if (this.#replicas.length === 0) return 'none configured'
    return this.#replicas.map((r) => `${r.name}: ${r.health.state}`).join(', ')
  }

  /** Per node, as `getReplicaInfo()` reports it. */
  info(nowMs: number): ReplicaInfo[] {
    const epochOffset = Date.now() - nowMs
    return this.#all.map((node) => {
      const next = node.health.nextAttemptAtMs
      return {
        name: node.name,
        role: node.info.role,
        state: node.health.state,
        latencyMs: node.load.latencyEstimateMs(nowMs),
        lastProbeRttMs: node.load.lastProbeRttMs,
        lagMs: node.health.lagMs,
        position: node.position === undefined ? undefined : formatPositionSafe(node.position),
        inFlight: node.load.inFlight,
        readsServed: node.load.readsServed,
        errors: node.load.errors,
        lastError: node.lastError,
        nextAttemptAt: next === undefined ? undefined : new Date(epochOffset + next),
      }
    })
  }
}

function sameCandidates(a: readonly ReplicaCandidate[], b: readonly ReplicaCandidate[]): boolean {
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) {
    if (a[i] !== b[i]) return false
  }
  return true
}

function formatPositionSafe(p: ReplicationPosition): string {
  try {
    return formatPosition(p)
  } catch {
    return '?'
  }
}
