import type { Engine, ProbeResult } from '../core/contracts/engine.js'
import type { ReplicationEvent } from '../core/contracts/events.js'
import type { NodeRegistry } from '../core/node-registry.js'
import type { NodeRuntime } from '../core/node-runtime.js'
import type { HealthTransition } from './node-health.js'
import { Prober, ProbeTimeoutError } from './prober.js'

/**
 * Owns the health of the nodes: feeds statement outcomes and probe results to each node's load
 * figures and health state machine, runs the background prober, and reports state changes
 * (`node-down`, `node-up`, `lag-exceeded`, ...). The only writer of node health.
 */
export class HealthMonitor {
  readonly #registry: NodeRegistry
  readonly #engine: Pick<Engine, 'isConnectionError' | 'probe'>
  readonly #emit: (event: ReplicationEvent) => void
  readonly #onResult: ((node: NodeRuntime, latencyMs: number, ok: boolean) => void) | undefined
  readonly #now: () => number
  readonly #prober: Prober

  constructor(options: {
    readonly registry: NodeRegistry
    readonly engine: Pick<Engine, 'isConnectionError' | 'probe'>
    readonly emit: (event: ReplicationEvent) => void
    /** The selector's feedback hook (replicas only). */
    readonly onResult?: ((node: NodeRuntime, latencyMs: number, ok: boolean) => void) | undefined
    readonly now: () => number
    readonly probeIntervalMs: number
    readonly probeTimeoutMs: number
    readonly probeConcurrency: number
    /** Replicas the first probe round measures at most (`'least-latency'`'s `sampleSize`). */
    readonly firstPassSample?: number | undefined
  }) {
    this.#registry = options.registry
    this.#engine = options.engine
    this.#emit = options.emit
    this.#onResult = options.onResult
    this.#now = options.now
    this.#prober = new Prober({
      firstPassSample: options.firstPassSample,
      port: {
        replicas: options.registry.replicas,
        intervalMs: options.probeIntervalMs,
        timeoutMs: options.probeTimeoutMs,
        concurrency: options.probeConcurrency,
        now: options.now,
        probe: (connection) => this.#engine.probe(connection),
        succeeded: (node, rtt, now, result) => this.probeSucceeded(node, rtt, now, result),
        failed: (node, error, now) => this.probeFailed(node, error, now),
      },
    })
  }

  start(): void {
    this.#prober.start()
  }

  stop(): Promise<void> {
    return this.#prober.stop()
  }

  /** Runs one probe round now and waits for it. */
  probeNow(): Promise<void> {
    return this.#prober.runOnce()
  }

  /** A statement started on `node` (pair with {@link succeeded} or {@link failed}). */
  started(node: NodeRuntime): number {
    node.load.start()
    return this.#now()
  }

  /** A statement that {@link started} on `node` succeeded. */
  succeeded(node: NodeRuntime, startedAtMs: number): void {
    const now = this.#now()
    const latencyMs = now - startedAtMs
    node.load.finish(latencyMs, now, true)
    if (node.info.role === 'replica') {
      this.#onResult?.(node, latencyMs, true)
      if (node.health.consecutiveFailures > 0) this.#transition(node, node.health.onSuccess())
    }
  }

  /**
   * A statement that {@link started} on `node` failed (`startedAtMs` given), or reaching the node
   * failed before any statement ran (acquire, causal wait: `startedAtMs` undefined, so the load's
   * in-flight count is left alone). Only connection-level failures count against the node.
   */
  failed(
    node: NodeRuntime,
    error: unknown,
    startedAtMs: number | undefined,
    connectionLevel: boolean,
  ): void {
    const now = this.#now()
    const latencyMs = startedAtMs === undefined ? 0 : now - startedAtMs
    if (startedAtMs !== undefined) node.load.finish(latencyMs, now, false)
    else node.load.unreachable()
    if (connectionLevel) node.pool.connectionFailed(error)
    if (node.info.role === 'replica') {
      this.#onResult?.(node, latencyMs, false)
      if (connectionLevel) this.#transition(node, node.health.onFailure(now, Math.random), error)
    }
  }

  /** Applies a probe's findings. */
  probeSucceeded(node: NodeRuntime, rttMs: number, nowMs: number, result: ProbeResult): void {
    node.load.recordProbe(rttMs, nowMs)
    node.lastProbeAtMs = nowMs
    if (result.position !== undefined) node.position = result.position
    if (result.readOnly === false && node.readOnly !== false) {
      this.#emit({ type: 'not-read-only', node: node.name })
    }
    node.readOnly = result.readOnly
    if (result.lagMs !== undefined) this.#transition(node, node.health.onLag(result.lagMs))
    this.#transition(node, node.health.onSuccess())
  }

  probeFailed(node: NodeRuntime, error: unknown, nowMs: number): void {
    node.lastProbeAtMs = nowMs
    if (this.#engine.isConnectionError(error) || error instanceof ProbeTimeoutError) {
      this.#transition(node, node.health.onFailure(nowMs, Math.random), error)
    } else {
      this.#emit({ type: 'probe-failed', node: node.name, error })
    }
  }

  #transition(node: NodeRuntime, t: HealthTransition, error?: unknown): void {
    if (t === undefined) return
    this.#registry.changed()
    switch (t.type) {
      case 'down':
        this.#emit({ type: 'node-down', node: node.name, error, retryInMs: t.retryInMs })
        break
      case 'up':
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
