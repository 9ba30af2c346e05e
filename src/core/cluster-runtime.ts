import { performance } from 'node:perf_hooks'
import {
  mergePositions,
  positionCovers,
  type ReplicationPosition,
} from '../consistency/position.js'
import type { ConsistencyScope } from '../consistency/scope.js'
import type { HealthTransition } from '../health/node-health.js'
import { Prober, ProbeTimeoutError } from '../health/prober.js'
import { Tracing } from '../observability/tracing.js'
import type { ClassifyOptions } from '../routing/classification.js'
import { primaryFunctionSet } from '../routing/primary-functions.js'
import type {
  ReplicaCandidate,
  ReplicaSelector,
  SelectionContext,
} from '../selection/replica-selector.js'
import type { ResolvedConfig } from './config.js'
import type { Engine, NodePool, PhysicalConnection } from './engine.js'
import { NoReplicaAvailableError } from './errors.js'
import type { NodeState, ReplicationEvent, RouteEvent, RouteReason } from './events.js'
import type { ManagedPool, PoolStats } from './managed-pool.js'
import { NodeRuntime } from './node-runtime.js'

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

/** Per node, as `getReplicaInfo()` reports it. */
export interface ReplicaInfo {
  readonly name: string
  readonly role: 'primary' | 'replica'
  readonly state: NodeState
  /** Peak-EWMA latency estimate (ms), when there are samples. */
  readonly latencyMs: number | undefined
  /** Round trip of the last successful probe (ms). */
  readonly lastProbeRttMs: number | undefined
  /** Replication lag (ms); `null` when replication is stopped; `undefined` when unknown. */
  readonly lagMs: number | null | undefined
  /** Applied replication position as the engine prints it, when known. */
  readonly position: string | undefined
  readonly inFlight: number
  readonly readsServed: number
  readonly errors: number
  /** When a cooling-down node is next tried (epoch milliseconds). */
  readonly nextAttemptAt: Date | undefined
}

/** Counters of routing decisions, by reason and by node. */
export interface RoutingStats {
  readonly byReason: Readonly<Record<string, number>>
  readonly byNode: Readonly<Record<string, number>>
  /** Causal waits run, and the milliseconds spent in them. */
  readonly causalWaits: number
  readonly causalWaitMs: number
}

export interface ClusterNodes {
  readonly primary: { readonly name: string; readonly pool: NodePool }
  readonly replicas: ReadonlyArray<{
    readonly name: string
    readonly pool: NodePool
    readonly weight: number
  }>
}

/**
 * The engine-independent state of one replicated dialect: its nodes, their health and positions,
 * the selector, the routing counters. Decisions over that state are synchronous and do no I/O.
 */
export class ClusterRuntime {
  readonly engine: Engine
  readonly config: ResolvedConfig
  readonly primary: NodeRuntime
  readonly replicas: readonly NodeRuntime[]
  readonly classifyOptions: ClassifyOptions
  readonly #selector: ReplicaSelector
  readonly #byName = new Map<string, NodeRuntime>()
  readonly #onRoute: ((event: RouteEvent) => void) | undefined
  readonly #onEvent: ((event: ReplicationEvent) => void) | undefined
  readonly #byReason: Record<string, number> = Object.create(null)
  readonly #byNode: Record<string, number> = Object.create(null)
  readonly #context: { nowMs: number; random: () => number }
  readonly #prober: Prober
  #usable: readonly ReplicaCandidate[] = []
  #usableDirty = true
  #recheckAtMs = Number.POSITIVE_INFINITY
  #causalWaits = 0
  #causalWaitMs = 0
  #fallbackReads = 0
  #causalUnsupportedReported = false
  #unknownWriteReported = false
  #initPromise: Promise<void> | undefined
  #causalSupported = true
  /** OpenTelemetry integration, loaded at init when `tracing` is configured. */
  tracing: Tracing | undefined

  constructor(
    engine: Engine,
    config: ResolvedConfig,
    nodes: ClusterNodes,
    selector: ReplicaSelector,
    hooks: {
      onRoute?: ((e: RouteEvent) => void) | undefined
      onEvent?: ((e: ReplicationEvent) => void) | undefined
    },
    decayMs: number | undefined,
    options: { firstPassSample?: number | undefined } = {},
  ) {
    this.engine = engine
    this.config = config
    this.#selector = selector
    this.#onRoute = hooks.onRoute
    this.#onEvent = hooks.onEvent
    const health = {
      cooldownMs: config.cooldownMs,
      maxCooldownMs: config.maxCooldownMs,
      maxReplicationLagMs: config.maxReplicationLagMs,
    }
    this.primary = new NodeRuntime(
      { name: nodes.primary.name, role: 'primary' },
      nodes.primary.pool,
      1,
      -1,
      health,
      decayMs,
    )
    this.replicas = nodes.replicas.map(
      (r, i) =>
        new NodeRuntime({ name: r.name, role: 'replica' }, r.pool, r.weight, i, health, decayMs),
    )
    for (const node of [this.primary, ...this.replicas]) {
      this.#byName.set(node.name, node)
    }
    this.classifyOptions = Object.freeze({
      flavor: engine.flavor,
      primaryFunctions: primaryFunctionSet(engine.flavor, config.primaryFunctions),
    })
    this.#context = { nowMs: 0, random: Math.random }
    this.#prober = new Prober(this, { firstPassSample: options.firstPassSample })
  }

  /** Initialises every pool (in parallel) and starts the prober. */
  /** Loads tracing, initialises every pool (in parallel) and starts the prober. Idempotent. */
  init(signal?: AbortSignal): Promise<void> {
    this.#initPromise ??= (async () => {
      if (this.config.tracing !== undefined && this.tracing === undefined) {
        this.tracing = await Tracing.load(this.config.tracing)
      }
      await Promise.all([this.primary, ...this.replicas].map((n) => n.pool.init(signal)))
      this.#prober.start()
    })().catch((error: unknown) => {
      // Let a later call try again.
      this.#initPromise = undefined
      throw error
    })
    return this.#initPromise
  }

  getPoolStats(): PoolStats[] {
    return [this.primary, ...this.replicas].map((n) => (n.pool as ManagedPool).stats())
  }

  /**
   * Once per node, on its first physical connection (during its setup, so no extra connection):
   * compares the pool's size with what the server has room for (`max_connections` minus the
   * connections others use) and warns through a `pool-oversized` event. Never fails the setup.
   */
  async checkCapacity(nodeName: string, connection: PhysicalConnection): Promise<void> {
    const node = this.#byName.get(nodeName)
    if (node === undefined || this.engine.serverCapacity === undefined) return
    const limit = node.pool.counts?.()?.limit
    if (limit === undefined) return
    try {
      const capacity = await this.engine.serverCapacity(connection)
      const ours = node.pool.counts?.()?.total ?? 1
      const others = Math.max(0, capacity.used - ours)
      if (limit > capacity.max - others) {
        this.emitEvent({
          type: 'pool-oversized',
          node: node.name,
          message: `the pool of node "${node.name}" may open ${limit} connections, but the server allows ${capacity.max} and others use ${others}: lower the pool size or raise max_connections`,
        })
      }
    } catch {
      // Advice only: a failure here says nothing about the node.
    }
  }

  /** Stops the prober and ends every pool. */
  async destroy(): Promise<void> {
    await this.#prober.stop()
    const results = await Promise.allSettled(
      [this.primary, ...this.replicas].map((n) => n.pool.end()),
    )
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected')
    if (failed) {
      throw failed.reason
    }
  }

  now(): number {
    return performance.now()
  }

  node(name: string): NodeRuntime | undefined {
    return this.#byName.get(name)
  }

  replicaByIndex(index: number): NodeRuntime {
    return this.replicas[index]!
  }

  /** The replicas usable for reads now. The same array instance until the set changes. */
  usableReplicas(nowMs: number): readonly ReplicaCandidate[] {
    if (this.#usableDirty || nowMs >= this.#recheckAtMs) {
      this.#usableDirty = false
      this.#recheckAtMs = Number.POSITIVE_INFINITY
      const usable: ReplicaCandidate[] = []
      const trialsByQuery = this.config.probeIntervalMs === 0
      for (const node of this.replicas) {
        const next = node.health.nextAttemptAtMs
        if (node.health.usable()) {
          usable.push(node.candidate)
        } else if (next !== undefined) {
          if (trialsByQuery && nowMs >= next) {
            // Without a prober, a query is the half-open trial.
            usable.push(node.candidate)
          } else if (next < this.#recheckAtMs) {
            this.#recheckAtMs = next
          }
        }
      }
      if (!sameCandidates(usable, this.#usable)) {
        this.#usable = Object.freeze(usable)
      }
    }
    return this.#usable
  }

  /** Picks one of `candidates` with the configured selector. */
  select(candidates: readonly ReplicaCandidate[], nowMs: number): NodeRuntime | undefined {
    if (candidates.length === 0) return undefined
    this.#context.nowMs = nowMs
    const picked = this.#selector.select(candidates, this.#context as SelectionContext)
    return picked === undefined ? undefined : this.replicas[picked.index]
  }

  /**
   * Decides where a plain read of `scope` goes: the pure core of read-your-writes. No I/O.
   */
  planRead(source: { readonly scope: ConsistencyScope }, nowMs: number): ReadPlan {
    const usable = this.usableReplicas(nowMs)
    const mode = this.config.consistency
    if (mode === 'eventual') {
      return usable.length > 0
        ? { kind: 'replica', candidates: usable, reason: 'read' }
        : this.#noReplica()
    }
    // The scope is looked up only now: eventual mode never needs one.
    const required = source.scope.requirement(this, this.engine.positionKind, nowMs)
    if (required.lastWriteAtMs === undefined) {
      const foreign = source.scope.foreignTokenKind(this, this.engine.positionKind)
      if (foreign !== undefined) {
        this.emitEvent({
          type: 'causal-token-ignored',
          node: this.primary.name,
          message: `the scope's causal token is for a ${foreign} cluster, not this ${this.engine.positionKind} one: it is ignored here`,
        })
      }
      return usable.length > 0
        ? { kind: 'replica', candidates: usable, reason: 'read' }
        : this.#noReplica()
    }
    const window = this.config.stickyWindowMs
    const withinWindow = (at: number | undefined) =>
      at !== undefined && (window === undefined || nowMs - at < window)
    if (mode === 'sticky' || !this.#causalSupported) {
      if (withinWindow(required.lastWriteAtMs)) return { kind: 'primary', reason: 'sticky' }
      return usable.length > 0
        ? { kind: 'replica', candidates: usable, reason: 'read' }
        : this.#noReplica()
    }
    // causal
    if (withinWindow(required.unknownWriteAtMs)) {
      return { kind: 'primary', reason: 'sticky' }
    }
    const position = required.position
    if (position === undefined) {
      return usable.length > 0
        ? { kind: 'replica', candidates: usable, reason: 'read' }
        : this.#noReplica()
    }
    if (usable.length === 0) {
      return this.#noReplica()
    }
    let covering: ReplicaCandidate[] | undefined
    let waitable: ReplicaCandidate[] | undefined
    const lagLimit = this.config.causalWaitTimeoutMs
    for (const candidate of usable) {
      const node = this.replicas[candidate.index]!
      if (node.position !== undefined && positionCovers(node.position, position)) {
        ;(covering ??= []).push(candidate)
        continue
      }
      if (covering !== undefined) continue
      const lag = node.health.lagMs
      const knownBehind =
        (lag !== undefined && (lag === null || lag > lagLimit)) ||
        this.#waitWouldTimeOut(node, position, nowMs)
      if (!knownBehind) {
        ;(waitable ??= []).push(candidate)
      }
    }
    if (covering !== undefined) {
      return {
        kind: 'replica',
        candidates: covering.length === usable.length ? usable : covering,
        reason: 'causal-caught-up',
      }
    }
    if (waitable === undefined) {
      return { kind: 'primary', reason: 'causal-behind' }
    }
    return {
      kind: 'wait',
      candidates: waitable.length === usable.length ? usable : waitable,
      position,
    }
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
    if (nowMs - node.timedOutAtMs > Math.max(1000, 2 * this.config.probeIntervalMs)) {
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

  #noReplica(): ReadPlan {
    if (this.config.fallback === 'error') {
      throw new NoReplicaAvailableError(
        `no replica is usable for reads (${this.#describeReplicas()}) and fallback is 'error'`,
      )
    }
    return { kind: 'primary', reason: 'no-replica' }
  }

  /** Claims a slot for a read the primary runs on behalf of replicas; throws past the cap. */
  enterFallbackRead(): () => void {
    const cap = this.config.maxPrimaryReads
    if (cap !== undefined && this.#fallbackReads >= cap) {
      throw new NoReplicaAvailableError(
        `no replica is usable for reads (${this.#describeReplicas()}) and the primary already runs ${cap} fallback reads (fallback.maxPrimaryReads)`,
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

  #describeReplicas(): string {
    if (this.replicas.length === 0) return 'none configured'
    return this.replicas.map((r) => `${r.name}: ${r.health.state}`).join(', ')
  }

  /** A write committed at `position` (or at an unknown position) in `scope`. */
  recordWrite(
    scope: ConsistencyScope,
    position: ReplicationPosition | undefined,
    nowMs: number,
  ): void {
    if (this.config.consistency === 'eventual') return
    scope.recordWrite(this, this.engine.positionKind, position, nowMs)
  }

  /** A replica is known to have applied `position` (a successful wait, a probe). */
  learnPosition(node: NodeRuntime, position: ReplicationPosition): void {
    node.position = node.position === undefined ? position : mergePositions(node.position, position)
  }

  /** The cluster does not report write positions: causal mode behaves as sticky, said once. */
  causalUnsupported(node: string, message: string): void {
    this.#causalSupported = false
    if (!this.#causalUnsupportedReported) {
      this.#causalUnsupportedReported = true
      this.emitEvent({ type: 'causal-unsupported', node, message })
    }
  }

  /**
   * A write came back without a replication position (binary log or GTIDs off, an old server):
   * its scope's reads fall back to sticky. Said once through a `causal-unsupported` event.
   */
  writeWithoutPosition(node: string): void {
    if (this.#unknownWriteReported) return
    this.#unknownWriteReported = true
    this.emitEvent({
      type: 'causal-unsupported',
      node,
      message: `a write on node "${node}" came back without a replication position (are the binary log and GTIDs on?): reads after such writes fall back to 'sticky' in their scope`,
    })
  }

  get causalSupported(): boolean {
    return this.#causalSupported
  }

  recordCausalWait(ms: number): void {
    this.#causalWaits++
    this.#causalWaitMs += ms
  }

  /** Reports a routing decision to the counters and to `onRoute`. */
  route(
    node: NodeRuntime,
    reason: RouteReason,
    sql: string,
    detail?: string,
    waitedMs?: number,
  ): void {
    this.#byReason[reason] = (this.#byReason[reason] ?? 0) + 1
    this.#byNode[node.name] = (this.#byNode[node.name] ?? 0) + 1
    if (this.#onRoute !== undefined) {
      try {
        this.#onRoute({ node: node.name, role: node.info.role, reason, sql, detail, waitedMs })
      } catch {
        // A listener's error must not fail the statement or leak the connection it was routed to.
      }
    }
  }

  emitEvent(event: ReplicationEvent): void {
    try {
      this.#onEvent?.(event)
    } catch {
      // A listener's error must not break routing.
    }
  }

  /** Feeds a query outcome to health and load; reports state changes. */
  querySucceeded(node: NodeRuntime, latencyMs: number, nowMs: number): void {
    node.load.finish(latencyMs, nowMs, true)
    if (node.info.role === 'replica') {
      this.#selector.onResult?.(node.candidate, latencyMs, true)
      if (node.health.consecutiveFailures > 0) this.#transition(node, node.health.onSuccess())
    }
  }

  queryFailed(
    node: NodeRuntime,
    error: unknown,
    latencyMs: number,
    nowMs: number,
    connectionLevel: boolean,
  ): void {
    node.load.finish(latencyMs, nowMs, false)
    if (connectionLevel) (node.pool as ManagedPool).connectionFailed?.(error)
    if (node.info.role === 'replica') {
      this.#selector.onResult?.(node.candidate, latencyMs, false)
      if (connectionLevel) this.#transition(node, node.health.onFailure(nowMs, Math.random), error)
    }
  }

  /** Applies a probe's findings (called by the prober). */
  probeSucceeded(
    node: NodeRuntime,
    rttMs: number,
    nowMs: number,
    result: {
      position?: ReplicationPosition | undefined
      lagMs?: number | null | undefined
      readOnly?: boolean | undefined
    },
  ): void {
    node.load.recordProbe(rttMs, nowMs)
    node.lastProbeAtMs = nowMs
    if (result.position !== undefined) {
      node.position = result.position
    }
    if (result.readOnly === false && node.readOnly !== false) {
      this.emitEvent({ type: 'not-read-only', node: node.name })
    }
    node.readOnly = result.readOnly
    if (result.lagMs !== undefined) {
      this.#transition(node, node.health.onLag(result.lagMs))
    }
    this.#transition(node, node.health.onSuccess())
  }

  probeFailed(node: NodeRuntime, error: unknown, nowMs: number): void {
    node.lastProbeAtMs = nowMs
    if (this.engine.isConnectionError(error) || error instanceof ProbeTimeoutError) {
      this.#transition(node, node.health.onFailure(nowMs, Math.random), error)
    } else {
      this.emitEvent({ type: 'probe-failed', node: node.name, error })
    }
  }

  #transition(node: NodeRuntime, t: HealthTransition, error?: unknown): void {
    if (t === undefined) return
    this.#usableDirty = true
    switch (t.type) {
      case 'down':
        this.emitEvent({ type: 'node-down', node: node.name, error, retryInMs: t.retryInMs })
        break
      case 'up':
        this.emitEvent({ type: 'node-up', node: node.name })
        break
      case 'lag-exceeded':
        this.emitEvent({ type: 'lag-exceeded', node: node.name, lagMs: t.lagMs })
        break
      case 'lag-recovered':
        this.emitEvent({ type: 'lag-recovered', node: node.name, lagMs: t.lagMs })
        break
    }
  }

  getReplicaInfo(): ReplicaInfo[] {
    const now = this.now()
    const epochOffset = Date.now() - now
    return [this.primary, ...this.replicas].map((node) => {
      const next = node.health.nextAttemptAtMs
      return {
        name: node.name,
        role: node.info.role,
        state: node.health.state,
        latencyMs: node.load.latencyEstimateMs(now),
        lastProbeRttMs: node.load.lastProbeRttMs,
        lagMs: node.health.lagMs,
        position: node.position === undefined ? undefined : formatPositionSafe(node.position),
        inFlight: node.load.inFlight,
        readsServed: node.load.readsServed,
        errors: node.load.errors,
        nextAttemptAt: next === undefined ? undefined : new Date(epochOffset + next),
      }
    })
  }

  getRoutingStats(): RoutingStats {
    return {
      byReason: { ...this.#byReason },
      byNode: { ...this.#byNode },
      causalWaits: this.#causalWaits,
      causalWaitMs: this.#causalWaitMs,
    }
  }

  /** Runs the prober once now (tests and `dialect.probeNow()`). */
  probeNow(): Promise<void> {
    return this.#prober.runOnce()
  }
}

function sameCandidates(a: readonly ReplicaCandidate[], b: readonly ReplicaCandidate[]): boolean {
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) {
    if (a[i] !== b[i]) return false
  }
  return true
}

import { formatPosition } from '../consistency/position.js'

function formatPositionSafe(p: ReplicationPosition): string {
  try {
    return formatPosition(p)
  } catch {
    return '?'
  }
}
