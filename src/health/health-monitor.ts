import type { Engine, PhysicalConnection, ProbeResult } from '../core/contracts/engine.js'
import { NodeUnreachableError } from '../core/contracts/errors.js'
import type { ReplicationEvent } from '../core/contracts/events.js'
import type { NodeRegistry } from '../core/node-registry.js'
import type { NodeRuntime } from '../core/node-runtime.js'
import type { HealthTransition } from './node-health.js'
import { Prober, ProbeTimeoutError } from './prober.js'

/**
 * How long the queries in flight on a replica must have been waiting, on average, before the
 * node is suspected of a stall and probed at once (at least; also at least
 * {@link STALL_LATENCY_FACTOR} times its latency estimate). A legitimately long query is never
 * killed by this: a probe that answers clears the suspicion.
 */
export const STALL_FLOOR_MS = 250
/** A node is suspect when its pending queries are this many times older than its estimate. */
export const STALL_LATENCY_FACTOR = 8

/**
 * Owns the health of the nodes: feeds statement outcomes and probe results to each node's load
 * figures and health state machine, runs the background prober and the stall watchdog, rescues
 * the statements in flight on a node found dead, and reports state changes (`node-down`,
 * `node-up`, `lag-exceeded`, ...). The only writer of node health.
 */
export class HealthMonitor {
  readonly #registry: NodeRegistry
  readonly #engine: Pick<Engine, 'isConnectionError' | 'isConnectError' | 'probe'>
  readonly #emit: (event: ReplicationEvent) => void
  readonly #onResult: ((node: NodeRuntime, latencyMs: number, ok: boolean) => void) | undefined
  readonly #now: () => number
  readonly #prober: Prober
  readonly #onProbed: (() => void) | undefined
  readonly #probeTimeoutMs: number
  readonly #watchdogMs: number
  #watchdog: NodeJS.Timeout | undefined
  /** When each node was last probed on suspicion of a stall. */
  readonly #suspectedAt = new Map<NodeRuntime, number>()

  constructor(options: {
    readonly registry: NodeRegistry
    readonly engine: Pick<Engine, 'isConnectionError' | 'isConnectError' | 'probe'>
    readonly emit: (event: ReplicationEvent) => void
    /** The selector's feedback hook (replicas only). */
    readonly onResult?: ((node: NodeRuntime, latencyMs: number, ok: boolean) => void) | undefined
    readonly now: () => number
    readonly probeIntervalMs: number
    readonly probeTimeoutMs: number
    readonly probeConcurrency: number
    /** Replicas the first probe round measures at most (`'least-latency'`'s `sampleSize`). */
    readonly firstPassSample?: number | undefined
    /** Whether every node is probed, the primary included (the topology is followed). */
    readonly probeAllNodes: boolean
    /**
     * Told after every complete probe round (the topology's review: it must see every node's
     * fresh answer, never a mix of fresh and stale ones).
     */
    readonly onProbed?: (() => void) | undefined
  }) {
    this.#onProbed = options.onProbed
    this.#registry = options.registry
    this.#engine = options.engine
    this.#emit = options.emit
    this.#onResult = options.onResult
    this.#now = options.now
    this.#probeTimeoutMs = options.probeTimeoutMs
    const interval = options.probeIntervalMs
    this.#watchdogMs = interval === 0 ? 250 : Math.min(250, Math.max(25, interval / 4))
    this.#prober = new Prober({
      firstPassSample: options.firstPassSample,
      port: {
        // With no replica there is nothing to fail over to: the primary alone is not probed.
        nodes: () => {
          const registry = options.registry
          if (!options.probeAllNodes || registry.replicas.length === 0) return registry.replicas
          return registry.all.filter((n) => !n.draining)
        },
        intervalMs: interval,
        timeoutMs: options.probeTimeoutMs,
        concurrency: options.probeConcurrency,
        now: options.now,
        connect: (node, signal) => this.#probeConnection(node, signal),
        probe: (connection) => this.#engine.probe(connection),
        succeeded: (node, rtt, now, result) => this.probeSucceeded(node, rtt, now, result),
        failed: (node, error, now) => this.probeFailed(node, error, now),
        roundDone: () => this.#onProbed?.(),
      },
    })
  }

  start(): void {
    this.#prober.start()
    // Always: replicas may be added later (`addReplica`); a tick without replicas costs nothing.
    if (this.#watchdog === undefined) {
      this.#watchdog = setInterval(() => this.#watch(), this.#watchdogMs)
      this.#watchdog.unref()
    }
  }

  stop(): Promise<void> {
    if (this.#watchdog !== undefined) {
      clearInterval(this.#watchdog)
      this.#watchdog = undefined
    }
    return this.#prober.stop()
  }

  /** Runs one probe round now and waits for it. */
  probeNow(): Promise<void> {
    return this.#prober.runOnce()
  }

  /** A statement started on `connection` of `node` (pair with {@link succeeded} or {@link failed}). */
  started(node: NodeRuntime, connection: PhysicalConnection, nowMs?: number): number {
    const now = nowMs ?? this.#now()
    node.load.start(now)
    node.running.add(connection)
    return now
  }

  /** A statement that {@link started} on `connection` of `node` succeeded. */
  succeeded(node: NodeRuntime, connection: PhysicalConnection, startedAtMs: number): void {
    const now = this.#now()
    const latencyMs = now - startedAtMs
    node.running.delete(connection)
    node.load.finish(latencyMs, now, true)
    if (node.info.role === 'replica') {
      this.#onResult?.(node, latencyMs, true)
      if (node.health.consecutiveFailures > 0) this.#transition(node, node.health.onSuccess())
    }
  }

  /**
   * A statement that {@link started} on `connection` of `node` failed. Only connection-level
   * failures count against the node. A statement this monitor abandoned (its node was found
   * dead) feeds no latency sample: its wait measured the outage, not the node.
   */
  failed(
    node: NodeRuntime,
    connection: PhysicalConnection,
    error: unknown,
    startedAtMs: number,
    connectionLevel: boolean,
  ): void {
    const now = this.#now()
    node.running.delete(connection)
    const abandoned = error instanceof NodeUnreachableError
    const latencyMs = now - startedAtMs
    node.load.finish(latencyMs, now, false, !abandoned)
    if (connectionLevel) node.pool.connectionFailed(error)
    if (node.info.role === 'replica') {
      this.#onResult?.(node, latencyMs, false)
      if (connectionLevel && !abandoned) {
        this.#transition(node, node.health.onFailure(now, Math.random), error)
      }
    }
  }

  /**
   * A statement that {@link started} on `connection` of `node` was cancelled by this library
   * because another attempt of it answered first (a hedged read): like a session this library
   * killed, it says nothing about the node's health, and it counts as neither a success nor an
   * error.
   */
  cancelled(node: NodeRuntime, connection: PhysicalConnection, startedAtMs: number): void {
    const now = this.#now()
    node.running.delete(connection)
    node.load.cancelled(now - startedAtMs, now)
  }

  /**
   * Reaching `node` failed before any statement ran (checkout, connect, causal wait). Refused
   * credentials, access or database count as connection failures here: the node cannot serve.
   * A replica found unreachable this way has its statements in flight rescued. A checkout that
   * waited for a busy pool (`PoolWaitTimeoutError`) is no failure of the node.
   * Returns whether the failure counts against the node.
   */
  unreachable(node: NodeRuntime, error: unknown): boolean {
    const now = this.#now()
    const engine = this.#engine
    const connectionLevel =
      error instanceof NodeUnreachableError ||
      (engine.isConnectError?.(error) ?? engine.isConnectionError(error))
    node.load.unreachable()
    if (connectionLevel) {
      node.pool.connectionFailed(error)
      if (node.info.role === 'replica') {
        this.#transition(node, node.health.onFailure(now, Math.random), error)
        this.#rescue(node, error)
      }
    }
    return connectionLevel
  }

  /** Applies a probe's findings. */
  probeSucceeded(node: NodeRuntime, rttMs: number, nowMs: number, result: ProbeResult): void {
    node.load.recordProbe(rttMs, nowMs)
    node.lastProbeAtMs = nowMs
    if (result.position !== undefined) node.position = result.position
    if (result.readOnly === false && node.readOnly !== false && node.info.role === 'replica') {
      this.#emit({ type: 'not-read-only', node: node.name })
    }
    node.readOnly = result.readOnly
    node.writable = result.writable ?? (result.readOnly === true ? false : undefined)
    if (result.lagMs !== undefined) this.#transition(node, node.health.onLag(result.lagMs))
    this.#transition(node, node.health.onSuccess())
  }

  probeFailed(node: NodeRuntime, error: unknown, nowMs: number): void {
    node.lastProbeAtMs = nowMs
    const engine = this.#engine
    const connectionLevel =
      error instanceof ProbeTimeoutError ||
      (engine.isConnectError?.(error) ?? engine.isConnectionError(error))
    if (connectionLevel) {
      // A node that cannot be reached takes no writes either (a failover's dead primary).
      node.writable = false
      this.#transition(node, node.health.onFailure(nowMs, Math.random), error)
      this.#rescue(node, error)
    } else {
      this.#emit({ type: 'probe-failed', node: node.name, error })
    }
  }

  /** Probes one node now and waits for the result. */
  probeNode(node: NodeRuntime): Promise<void> {
    return this.#prober.probeNode(node)
  }

  /** Probes every node now (a write refused by the primary), and waits for the results. */
  probeAll(): Promise<void> {
    return Promise.all(
      this.#registry.all.filter((n) => !n.draining).map((n) => this.#prober.probeNode(n)),
    ).then(() => this.#onProbed?.())
  }

  /**
   * The node was found dead or hung (a probe, a connect): the statements in flight on it will not
   * answer in useful time. Abandon them, so their callers re-run reads elsewhere now (the retry
   * policy) instead of waiting for TCP to give up.
   */
  #rescue(node: NodeRuntime, cause: unknown): void {
    if (node.health.usable()) return
    const reason = new NodeUnreachableError(
      `node "${node.name}" stopped answering (${cause instanceof Error ? cause.message : String(cause)}): the statement was abandoned`,
      node.name,
      { cause },
    )
    for (const connection of [...node.running]) connection.abandon?.(reason)
    // Connections being opened for statements: they give up now (see `NodeRuntime.rescue`).
    const rescue = node.rescue
    node.renewRescue()
    rescue.abort(reason)
  }

  /** A connection for a probe: from the pool, or outside it when the pool has none to spare. */
  #probeConnection(node: NodeRuntime, signal: AbortSignal): Promise<PhysicalConnection> {
    const counts = node.pool.counts()
    const full =
      counts !== undefined &&
      counts.idle === 0 &&
      counts.limit !== undefined &&
      counts.total >= counts.limit
    if (full && node.pool.openControl !== undefined) {
      return node.pool.openControl(this.#probeTimeoutMs)
    }
    return node.pool.acquire(signal)
  }

  /**
   * The stall watchdog: a replica whose statements in flight have been waiting much longer than
   * its latency estimate is probed at once, instead of at the next round. A hung node then fails
   * its probe within the probe timeout and its statements are rescued.
   */
  #watch(): void {
    const now = this.#now()
    for (const node of this.#registry.replicas) {
      const load = node.load
      if (load.inFlight === 0 || !node.health.usable()) continue
      const estimate = load.latencyEstimateMs(now) ?? load.lastProbeRttMs ?? 0
      const threshold = Math.max(STALL_FLOOR_MS, STALL_LATENCY_FACTOR * estimate)
      if (load.pendingAgeMs(now) < threshold) continue
      const last = this.#suspectedAt.get(node)
      if (last !== undefined && now - last < Math.max(this.#probeTimeoutMs, STALL_FLOOR_MS))
        continue
      this.#suspectedAt.set(node, now)
      void this.#prober.probeNode(node)
    }
  }

  #transition(node: NodeRuntime, t: HealthTransition, error?: unknown): void {
    if (t === undefined) return
    this.#registry.changed()
    switch (t.type) {
      case 'down':
        node.lastError = error instanceof Error ? error.message : String(error)
        this.#emit({ type: 'node-down', node: node.name, error, retryInMs: t.retryInMs })
        break
      case 'up':
        // Back from an outage or a stall: start the estimate again from the probe's round trip.
        node.load.recover(node.load.lastProbeRttMs, this.#now())
        this.#emit({ type: 'node-up', node: node.name })
        break
      case 'lag-exceeded':
        this.#emit({ type: 'lag-exceeded', node: node.name, lagMs: t.lagMs })
        break
      case 'lag-recovered':
        this.#emit({ type: 'lag-recovered', node: node.name, lagMs: t.lagMs })
        break
    }
  }
}
