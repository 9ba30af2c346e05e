import { formatPosition, type ReplicationPosition } from '../consistency/position.js'
import type { ReplicaCandidate } from '../selection/replica-selector.js'
import type { ReplicaInfo } from './contracts/stats.js'
import type { NodeRuntime } from './node-runtime.js'

/**
 * The nodes of one dialect and the set of replicas usable for reads. The usable set is one
 * frozen array, the same instance until a node's state changes (selectors and the planner may
 * compare it by identity), recomputed lazily after {@link changed} or when a cool-down ends.
 */
export class NodeRegistry {
  readonly primary: NodeRuntime
  readonly replicas: readonly NodeRuntime[]
  /** Primary first, then the replicas in configuration order. */
  readonly all: readonly NodeRuntime[]
  readonly #byName = new Map<string, NodeRuntime>()
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
    this.primary = options.primary
    this.replicas = options.replicas
    this.all = Object.freeze([options.primary, ...options.replicas])
    for (const node of this.all) this.#byName.set(node.name, node)
    this.#trialsByQuery = options.trialsByQuery
  }

  node(name: string): NodeRuntime | undefined {
    return this.#byName.get(name)
  }

  replicaByIndex(index: number): NodeRuntime {
    return this.replicas[index]!
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
      for (const node of this.replicas) {
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
    if (this.replicas.length === 0) return 'none configured'
    return this.replicas.map((r) => `${r.name}: ${r.health.state}`).join(', ')
  }

  /** Per node, as `getReplicaInfo()` reports it. */
  info(nowMs: number): ReplicaInfo[] {
    const epochOffset = Date.now() - nowMs
    return this.all.map((node) => {
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
