import type { PhysicalConnection, ProbeResult } from '../core/contracts/engine.js'
import { withDeadline } from '../core/deadline.js'
import type { NodeRuntime } from '../core/node-runtime.js'
import { limitConcurrency } from './concurrency-limit.js'

/** What the prober needs from the cluster: the replicas, the settings, the probe, and where results go. */
export interface ProberPort {
  /** The nodes to probe (the replicas; every node when the topology is followed). */
  nodes(): readonly NodeRuntime[]
  readonly intervalMs: number
  readonly timeoutMs: number
  readonly concurrency: number
  now(): number
  /** A connection to probe `node` on (from its pool, or outside it when the pool is full). */
  connect(node: NodeRuntime, signal: AbortSignal): Promise<PhysicalConnection>
  /** The engine's probe on a connection of the node. */
  probe(connection: PhysicalConnection): Promise<ProbeResult>
  succeeded(node: NodeRuntime, rttMs: number, nowMs: number, result: ProbeResult): void
  failed(node: NodeRuntime, error: unknown, nowMs: number): void
  /** Every node of a round has answered (or failed). */
  roundDone?(): void
}

/** A probe did not answer within `health.probeTimeoutMs`. */
export class ProbeTimeoutError extends Error {
  constructor(node: string, ms: number) {
    super(`probe of node "${node}" timed out after ${ms} ms`)
    this.name = 'ProbeTimeoutError'
  }
}

/**
 * Background prober: on an interval, measures every replica with the engine's cheap probe
 * (round trip, applied position, lag, read-only), with bounded concurrency and a timeout per
 * probe. Cooling-down replicas are probed only once their wait is over (the half-open trial).
 * Its timer never keeps the process alive.
 */
export class Prober {
  readonly #port: ProberPort
  #timer: NodeJS.Timeout | undefined
  #running: Promise<void> | undefined
  /** Probes in flight, by node: a node is never probed twice at once. */
  readonly #probing = new Map<NodeRuntime, Promise<void>>()
  #stopped = false

  /** Replicas the first round probes at most (`latency.sampleSize` of `'least-latency'`); later rounds probe all. */
  readonly #firstPassSample: number | undefined
  #rounds = 0

  constructor(options: {
    readonly port: ProberPort
    readonly firstPassSample?: number | undefined
  }) {
    this.#port = options.port
    this.#firstPassSample = options.firstPassSample
  }

  start(): void {
    const interval = this.#port.intervalMs
    if (interval === 0 || this.#timer || this.#stopped) {
      return
    }
    void this.runOnce()
    this.#timer = setInterval(() => {
      if (this.#running === undefined) void this.runOnce()
    }, interval)
    this.#timer.unref()
  }

  async stop(): Promise<void> {
    this.#stopped = true
    if (this.#timer) {
      clearInterval(this.#timer)
      this.#timer = undefined
    }
    await this.#running
    await Promise.all(this.#probing.values())
  }

  /** One round over every replica that is due. */
  runOnce(): Promise<void> {
    if (this.#running) return this.#running
    const port = this.#port
    const limit = limitConcurrency(port.concurrency)
    const now = port.now()
    const nodes = port
      .nodes()
      .filter((node) => node.health.consecutiveFailures === 0 || node.health.claimTrial(now))
    const due = nodes.filter((node) => node.info.role === 'replica')
    const sample = this.#firstPassSample
    if (this.#rounds++ === 0 && sample !== undefined && sample < due.length) {
      // A large pool: the first round measures a random sample, so the first picks do not wait
      // for every replica; the rest are measured from the next round on.
      for (let k = due.length - 1; k > 0; k--) {
        const r = Math.floor(Math.random() * (k + 1))
        ;[due[k], due[r]] = [due[r]!, due[k]!]
      }
      due.length = sample
    }
    // The primary (probed when the topology is followed) is never left out of a round.
    for (const node of nodes) if (node.info.role !== 'replica') due.push(node)
    this.#running = Promise.all(due.map((node) => limit(() => this.#probe(node))))
      .then(() => port.roundDone?.())
      .finally(() => {
        this.#running = undefined
      })
    return this.#running
  }

  /** Probes `node` now (a suspected stall), unless a probe of it is already in flight. */
  probeNode(node: NodeRuntime): Promise<void> {
    return this.#probe(node)
  }

  #probe(node: NodeRuntime): Promise<void> {
    if (this.#stopped) return Promise.resolve()
    let probing = this.#probing.get(node)
    if (probing === undefined) {
      probing = this.#probeOnce(node).finally(() => this.#probing.delete(node))
      this.#probing.set(node, probing)
    }
    return probing
  }

  async #probeOnce(node: NodeRuntime): Promise<void> {
    const port = this.#port
    const timeoutMs = port.timeoutMs
    let timedOut = false
    const controller = new AbortController()
    const work = (async () => {
      const connection: PhysicalConnection = await port.connect(node, controller.signal)
      try {
        if (timedOut) throw new ProbeTimeoutError(node.name, timeoutMs)
        const t0 = port.now()
        const result = await port.probe(connection)
        const rtt = port.now() - t0
        if (timedOut) throw new ProbeTimeoutError(node.name, timeoutMs)
        connection.release()
        return { result, rtt }
      } catch (error) {
        // A connection whose probe failed or came too late is not trusted back into the pool.
        connection.destroy()
        throw error
      }
    })()
    const late = () => {
      timedOut = true
      controller.abort()
      throw new ProbeTimeoutError(node.name, timeoutMs)
    }
    try {
      const { result, rtt } = await withDeadline(work, timeoutMs, late, { unref: true })
      port.succeeded(node, rtt, port.now(), result)
    } catch (error) {
      port.failed(node, error, port.now())
    }
  }
}
