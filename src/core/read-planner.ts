import {
  mergePositions,
  positionCovers,
  type ReplicationPosition,
} from '../consistency/position.js'
import type { ConsistencyScope } from '../consistency/scope.js'
import type { ReplicaCandidate } from '../selection/replica-selector.js'
import type { ConsistencyMode } from './config.js'
import { NoReplicaAvailableError } from './contracts/errors.js'
import type { ReplicationEvent, RouteReason } from './contracts/events.js'
import type { NodeRegistry } from './node-registry.js'
import type { NodeRuntime } from './node-runtime.js'

/** Where a read goes, decided before any I/O. */
export type ReadPlan =
  | {
      readonly kind: 'replica'
      readonly candidates: readonly ReplicaCandidate[]
      readonly reason: RouteReason
    }
  | {
      readonly kind: 'wait'
      readonly candidates: readonly ReplicaCandidate[]
      readonly position: ReplicationPosition
    }
  | { readonly kind: 'primary'; readonly reason: RouteReason }

/** The settings the planner reads. */
export interface ReadPlannerSettings {
  readonly consistency: ConsistencyMode
  readonly stickyWindowMs: number | undefined
  readonly causalWaitTimeoutMs: number
  readonly probeIntervalMs: number
  readonly fallback: 'primary' | 'error'
  readonly maxPrimaryReads: number | undefined
}

/**
 * Read-your-writes: what the scopes' writes require of a read, what each replica is known to
 * have applied, and from both, where a plain read goes ({@link planRead}, pure, no I/O). Also
 * keeps the cap on reads the primary runs on behalf of replicas.
 */
export class ReadPlanner {
  readonly #registry: NodeRegistry
  readonly #settings: ReadPlannerSettings
  readonly #positionKind: () => ReplicationPosition['kind']
  readonly #emit: (event: ReplicationEvent) => void
  readonly #lagResolutionMs: number
  #fallbackReads = 0
  #readPlan: Extract<ReadPlan, { kind: 'replica' }> | undefined
  /**
   * The last causal plan that found replicas caught up, with what it was made from: the required
   * position, the usable set and each usable replica's known position (objects compared by
   * identity; each changes only by being replaced).
   */
  #caughtUp:
    | {
        readonly required: ReplicationPosition
        readonly usable: readonly ReplicaCandidate[]
        readonly applied: readonly (ReplicationPosition | undefined)[]
        readonly plan: ReadPlan
      }
    | undefined
  #causalSupported = true
  #causalUnsupportedReported = false
  #unknownWriteReported = false

  constructor(options: {
    readonly registry: NodeRegistry
    readonly settings: ReadPlannerSettings
    /** The engine's position kind (a MySQL engine learns MariaDB or MySQL on first connection). */
    readonly positionKind: () => ReplicationPosition['kind']
    readonly emit: (event: ReplicationEvent) => void
    /** The granularity of the probes' lag readings (see `Engine.lagResolutionMs`). */
    readonly lagResolutionMs: number
  }) {
    this.#lagResolutionMs = options.lagResolutionMs
    this.#registry = options.registry
    this.#settings = options.settings
    this.#positionKind = options.positionKind
    this.#emit = options.emit
  }

  /** What `scope` requires of reads on this cluster (scopes key their records by the planner). */
  requirement(scope: ConsistencyScope, nowMs: number) {
    return scope.requirement(this, this.#positionKind(), nowMs)
  }

  /** Decides where a plain read of `scope` goes: the pure core of read-your-writes. */
  planRead(source: { readonly readScope: ConsistencyScope }, nowMs: number): ReadPlan {
    const usable = this.#registry.usableReplicas(nowMs)
    const mode = this.#settings.consistency
    if (mode === 'eventual') return this.#anyReplica(usable)
    // The scope is looked up only now: eventual mode never needs one.
    const theScope = source.readScope
    const kind = this.#positionKind()
    const required = theScope.requirement(this, kind, nowMs)
    if (required.lastWriteAtMs === undefined) {
      const foreign = theScope.foreignTokenKind(this, kind)
      if (foreign !== undefined) {
        this.#emit({
          type: 'causal-token-ignored',
          node: this.#registry.primary.name,
          message: `the scope's causal token is for a ${foreign} cluster, not this ${kind} one: it is ignored here`,
        })
      }
      return this.#anyReplica(usable)
    }
    const window = this.#settings.stickyWindowMs
    if (mode === 'sticky' || !this.#causalSupported) {
      if (within(required.lastWriteAtMs, window, nowMs))
        return { kind: 'primary', reason: 'sticky' }
      return this.#anyReplica(usable)
    }
    // causal
    if (within(required.unknownWriteAtMs, window, nowMs))
      return { kind: 'primary', reason: 'sticky' }
    const position = required.position
    if (position === undefined) return this.#anyReplica(usable)
    if (usable.length === 0) return this.#noReplica()
    // Between two writes every read asks the same: the plan made for the last one still holds
    // while the replicas' known positions are the ones it was made with.
    const caughtUp = this.#caughtUp
    if (
      caughtUp !== undefined &&
      caughtUp.required === position &&
      caughtUp.usable === usable &&
      this.#sameApplied(caughtUp.applied, usable)
    ) {
      return caughtUp.plan
    }
    let covering: ReplicaCandidate[] | undefined
    let waitable: ReplicaCandidate[] | undefined
    // A lag reading within its granularity (MariaDB reports whole seconds) does not rule a replica
    // out: under steady writes it reads 1 s while the replica is milliseconds behind.
    const lagLimit = this.#settings.causalWaitTimeoutMs + this.#lagResolutionMs
    for (const candidate of usable) {
      const node = this.#registry.replicaByIndex(candidate.index)
      if (node.position !== undefined && positionCovers(node.position, position)) {
        ;(covering ??= []).push(candidate)
        continue
      }
      if (covering !== undefined) continue
      const lag = node.health.lagMs
      const knownBehind =
        (lag !== undefined && (lag === null || lag > lagLimit)) ||
        this.#waitWouldTimeOut(node, position, nowMs)
      if (!knownBehind) (waitable ??= []).push(candidate)
    }
    if (covering !== undefined) {
      const plan: ReadPlan = Object.freeze({
        kind: 'replica',
        candidates: covering.length === usable.length ? usable : covering,
        reason: 'causal-caught-up',
      })
      this.#caughtUp = {
        required: position,
        usable,
        applied: usable.map((c) => this.#registry.replicaByIndex(c.index).position),
        plan,
      }
      return plan
    }
    if (waitable === undefined) return { kind: 'primary', reason: 'causal-behind' }
    return {
      kind: 'wait',
      candidates: waitable.length === usable.length ? usable : waitable,
      position,
    }
  }

  /** Whether the replicas of `usable` know the positions `applied` lists (same objects). */
  #sameApplied(
    applied: readonly (ReplicationPosition | undefined)[],
    usable: readonly ReplicaCandidate[],
  ): boolean {
    for (let i = 0; i < usable.length; i++) {
      if (this.#registry.replicaByIndex(usable[i]!.index).position !== applied[i]) return false
    }
    return true
  }

  #anyReplica(usable: readonly ReplicaCandidate[]): ReadPlan {
    if (usable.length === 0) return this.#noReplica()
    // One plan object per usable set (the set is identity-stable): no allocation per read.
    if (this.#readPlan?.candidates !== usable) {
      this.#readPlan = Object.freeze({ kind: 'replica', candidates: usable, reason: 'read' })
    }
    return this.#readPlan
  }

  #noReplica(): ReadPlan {
    if (this.#settings.fallback === 'error') {
      throw new NoReplicaAvailableError(
        `no replica is usable for reads (${this.#registry.describeReplicas()}) and fallback is 'error'`,
      )
    }
    return NO_REPLICA
  }

  /**
   * A wait on `node` for `position` timed out recently, for a position this read also needs
   * (`position` covers it), and the node is not known to have caught up since: waiting again
   * would time out again. Only reads that need at least as much are affected, so a forged token
   * with a huge position costs its own requests a wait and the primary, nobody else's. The mark
   * expires after a while, so a cluster without a prober waits again eventually.
   */
  #waitWouldTimeOut(node: NodeRuntime, position: ReplicationPosition, nowMs: number): boolean {
    const timedOut = node.timedOutPosition
    if (timedOut === undefined) return false
    if (nowMs - node.timedOutAtMs > Math.max(1000, 2 * this.#settings.probeIntervalMs)) {
      node.timedOutPosition = undefined
      return false
    }
    if (node.position !== undefined && positionCovers(node.position, timedOut)) return false
    return positionCovers(position, timedOut)
  }

  /** A causal wait for `position` on `node` timed out. */
  waitTimedOut(node: NodeRuntime, position: ReplicationPosition, nowMs: number): void {
    node.timedOutPosition = position
    node.timedOutAtMs = nowMs
  }

  /** A replica is known to have applied `position` (a successful wait). */
  learnPosition(node: NodeRuntime, position: ReplicationPosition): void {
    node.position = node.position === undefined ? position : mergePositions(node.position, position)
  }

  /** A write committed at `position` (or at an unknown position) in `scope`. */
  recordWrite(
    scope: ConsistencyScope,
    position: ReplicationPosition | undefined,
    nowMs: number,
  ): void {
    if (this.#settings.consistency === 'eventual') return
    scope.recordWrite(this, this.#positionKind(), position, nowMs)
  }

  /** The cluster does not report write positions: causal mode behaves as sticky, said once. */
  causalUnsupported(node: string, message: string): void {
    this.#causalSupported = false
    if (!this.#causalUnsupportedReported) {
      this.#causalUnsupportedReported = true
      this.#emit({ type: 'causal-unsupported', node, message })
    }
  }

  /**
   * A write came back without a replication position (binary log or GTIDs off, an old server):
   * its scope's reads fall back to sticky. Said once through a `causal-unsupported` event.
   */
  writeWithoutPosition(node: string): void {
    if (this.#unknownWriteReported) return
    this.#unknownWriteReported = true
    this.#emit({
      type: 'causal-unsupported',
      node,
      message: `a write on node "${node}" came back without a replication position (are the binary log and GTIDs on?): reads after such writes fall back to 'sticky' in their scope`,
    })
  }

  /** Claims a slot for a read the primary runs on behalf of replicas; throws past the cap. */
  enterFallbackRead(): () => void {
    const cap = this.#settings.maxPrimaryReads
    if (cap !== undefined && this.#fallbackReads >= cap) {
      throw new NoReplicaAvailableError(
        `no replica is usable for reads (${this.#registry.describeReplicas()}) and the primary already runs ${cap} fallback reads (fallback.maxPrimaryReads)`,
      )
    }
    this.#fallbackReads++
    let done = false
    return () => {
      if (!done) {
        done = true
        this.#fallbackReads--
      }
    }
  }
}

const NO_REPLICA: ReadPlan = Object.freeze({ kind: 'primary', reason: 'no-replica' })

/** Whether a write at `atMs` is within the sticky window (`undefined`: no window) at `nowMs`. */
function within(atMs: number | undefined, window: number | undefined, nowMs: number): boolean {
  return atMs !== undefined && (window === undefined || nowMs - atMs < window)
}
