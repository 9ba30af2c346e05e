import type { ClusterRuntime } from '../core/cluster-runtime.js'
import type { PhysicalConnection } from '../core/engine.js'
import type { NodeRuntime } from '../core/node-runtime.js'
import { limitConcurrency } from './concurrency-limit.js'

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
  readonly #cluster: ClusterRuntime
  #timer: NodeJS.Timeout | undefined
  #running: Promise<void> | undefined
  #stopped = false

  /** Replicas the first round probes at most (`latency.sampleSize` of `'least-latency'`); later rounds probe all. */
  readonly #firstPassSample: number | undefined
  #rounds = 0

  constructor(cluster: ClusterRuntime, options: { firstPassSample?: number | undefined } = {}) {
    this.#cluster = cluster
    this.#firstPassSample = options.firstPassSample
  }

  start(): void {
    const interval = this.#cluster.config.probeIntervalMs
    if (interval === 0 || this.#cluster.replicas.length === 0 || this.#timer || this.#stopped) {
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
  }

  /** One round over every replica that is due. */
  runOnce(): Promise<void> {
    if (this.#running) return this.#running
    const cluster = this.#cluster
    const limit = limitConcurrency(cluster.config.probeConcurrency)
    const now = cluster.now()
    const due = cluster.replicas.filter(
      (node) => node.health.consecutiveFailures === 0 || node.health.claimTrial(now),
    )
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
    this.#running = Promise.all(due.map((node) => limit(() => this.#probe(node))))
      .then(() => undefined)
      .finally(() => {
        this.#running = undefined
      })
    return this.#running
  }

  async #probe(node: NodeRuntime): Promise<void> {
    if (this.#stopped) return
    const cluster = this.#cluster
    const timeoutMs = cluster.config.probeTimeoutMs
    let timedOut = false
    let timer: NodeJS.Timeout | undefined
    const controller = new AbortController()
    const work = (async () => {
      const connection: PhysicalConnection = await node.pool.acquire(controller.signal)
      try {
        if (timedOut) throw new ProbeTimeoutError(node.name, timeoutMs)
        const t0 = cluster.now()
        const result = await cluster.engine.probe(connection)
        const rtt = cluster.now() - t0
        if (timedOut) throw new ProbeTimeoutError(node.name, timeoutMs)
        connection.release()
        return { result, rtt }
      } catch (error) {
        // A connection whose probe failed or came too late is not trusted back into the pool.
        connection.destroy()
        throw error
      }
    })()
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        timedOut = true
        controller.abort()
        reject(new ProbeTimeoutError(node.name, timeoutMs))
      }, timeoutMs)
      timer.unref()
    })
    work.catch(() => {})
    try {
      const { result, rtt } = await Promise.race([work, timeout])
      cluster.probeSucceeded(node, rtt, cluster.now(), result)
    } catch (error) {
      cluster.probeFailed(node, error, cluster.now())
    } finally {
      clearTimeout(timer)
    }
  }
}
