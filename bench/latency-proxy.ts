/**
 * A latency-injecting TCP proxy for the cluster benchmarks, on Node's `net`, loopback only.
 *
 * Every chunk is held for the current delay of its direction, in order: a chunk never overtakes
 * an earlier one when the delay shrinks. `setDelay(ms)` sets both directions (a request and its
 * reply each pay it, so a query's round trip grows by about twice `ms`); `setDelays(toServer,
 * toClient)` sets them separately. Node's timers have millisecond granularity, so each hold
 * lasts up to about a millisecond longer than asked: one hold per round trip (replies only) keeps
 * the added latency closest to the nominal value. Delays can change at any time, and the proxy
 * can be "killed" (every socket destroyed, the port closed) and restarted on the same port.
 *
 * {@link LatencyProxy} runs in the calling process. {@link ProxyProcess} runs proxies in a child
 * process, so their timers do not queue behind the load generator's work on the main event loop;
 * {@link RemoteLatencyProxy} is the handle of one proxy there.
 *
 * @example
 * ```ts
 * const proxies = await ProxyProcess.start()
 * const proxy = await proxies.create({ targetPort: replicaPort })
 * await proxy.setDelays(0, 2) // replies held 2 ms: about +2 ms per query
 * createPool({ ...options, host: '127.0.0.1', port: proxy.port })
 * ```
 */
import { type ChildProcess, fork } from 'node:child_process'
import * as net from 'node:net'
import { performance } from 'node:perf_hooks'
import { fileURLToPath, pathToFileURL } from 'node:url'

const LOOPBACK = '127.0.0.1'

export interface LatencyProxyOptions {
  /** Where to forward to: a loopback address (default 127.0.0.1). */
  readonly targetHost?: string
  readonly targetPort: number
  /** Port to listen on (default: a free one, kept across restarts). */
  readonly listenPort?: number
  /** Initial delay per chunk toward the server, in ms (default 0). */
  readonly toServerMs?: number
  /** Initial delay per chunk toward the client, in ms (default 0). */
  readonly toClientMs?: number
}

export interface LatencyProxyStats {
  readonly connections: number
  readonly openConnections: number
  readonly chunks: number
  readonly bytes: number
  readonly refused: number
}

function assertLoopback(host: string): void {
  if (!(host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host))) {
    throw new Error(`latency proxy: refusing to forward to ${host}: loopback addresses only`)
  }
}

/**
 * Forwards one direction of a connection, holding each chunk until `delay` after it arrived and
 * never reordering. With no delay and nothing queued, a chunk is written at once.
 */
class DelayedPipe {
  readonly #from: net.Socket
  readonly #to: net.Socket
  readonly #delay: () => number
  readonly #onChunk: (bytes: number) => void
  readonly #queue: Array<{ at: number; chunk: Buffer }> = []
  #head = 0
  #lastAt = 0
  #timer: NodeJS.Timeout | undefined

  constructor(
    from: net.Socket,
    to: net.Socket,
    delay: () => number,
    onChunk: (bytes: number) => void,
  ) {
    this.#from = from
    this.#to = to
    this.#delay = delay
    this.#onChunk = onChunk
    from.on('data', (chunk: Buffer) => this.#push(chunk))
  }

  #push(chunk: Buffer): void {
    this.#onChunk(chunk.length)
    const now = performance.now()
    const at = Math.max(now + this.#delay(), this.#lastAt)
    this.#lastAt = at
    if (at <= now && this.#head === this.#queue.length) {
      this.#write(chunk)
      return
    }
    this.#queue.push({ at, chunk })
    this.#schedule(now)
  }

  #schedule(now: number): void {
    if (this.#timer !== undefined || this.#head === this.#queue.length) return
    const wait = Math.max(0, this.#queue[this.#head]!.at - now)
    this.#timer = setTimeout(() => this.#flush(), wait)
  }

  #flush(): void {
    this.#timer = undefined
    const now = performance.now()
    // setTimeout may fire a little early on a sub-millisecond remainder: allow 0.05 ms.
    while (this.#head < this.#queue.length && this.#queue[this.#head]!.at <= now + 0.05) {
      this.#write(this.#queue[this.#head]!.chunk)
      this.#head++
    }
    if (this.#head === this.#queue.length) {
      this.#queue.length = 0
      this.#head = 0
    }
    this.#schedule(now)
  }

  #write(chunk: Buffer): void {
    if (this.#to.destroyed) return
    if (!this.#to.write(chunk) && !this.#from.isPaused()) {
      this.#from.pause()
      this.#to.once('drain', () => this.#from.resume())
    }
  }

  stop(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer)
    this.#timer = undefined
    this.#queue.length = 0
    this.#head = 0
  }
}

/** A latency-injecting TCP proxy in this process. */
export class LatencyProxy {
  readonly #targetHost: string
  readonly #targetPort: number
  #port: number
  #toServerMs: number
  #toClientMs: number
  #server: net.Server | undefined
  readonly #sockets = new Set<net.Socket>()
  readonly #pipes = new Set<DelayedPipe>()
  #connections = 0
  #chunks = 0
  #bytes = 0
  #refused = 0

  constructor(options: LatencyProxyOptions) {
    this.#targetHost = options.targetHost ?? LOOPBACK
    assertLoopback(this.#targetHost)
    this.#targetPort = options.targetPort
    this.#port = options.listenPort ?? 0
    this.#toServerMs = options.toServerMs ?? 0
    this.#toClientMs = options.toClientMs ?? 0
  }

  /** The port it listens on (0 before the first start). */
  get port(): number {
    return this.#port
  }

  /** The current delays per chunk, in ms. */
  get delays(): { toServerMs: number; toClientMs: number } {
    return { toServerMs: this.#toServerMs, toClientMs: this.#toClientMs }
  }

  get listening(): boolean {
    return this.#server !== undefined
  }

  /** Sets the delay per chunk and direction, in ms; applies to chunks arriving from now on. */
  setDelay(ms: number): void {
    this.setDelays(ms, ms)
  }

  /** Sets the delay of each direction, in ms; applies to chunks arriving from now on. */
  setDelays(toServerMs: number, toClientMs: number): void {
    for (const ms of [toServerMs, toClientMs]) {
      if (!Number.isFinite(ms) || ms < 0) throw new Error(`latency proxy: bad delay ${ms}`)
    }
    this.#toServerMs = toServerMs
    this.#toClientMs = toClientMs
  }

  stats(): LatencyProxyStats {
    return {
      connections: this.#connections,
      openConnections: this.#sockets.size / 2,
      chunks: this.#chunks,
      bytes: this.#bytes,
      refused: this.#refused,
    }
  }

  /** Starts listening on 127.0.0.1 (on the same port as before after a kill); returns the port. */
  async start(): Promise<number> {
    if (this.#server !== undefined) return this.#port
    const server = net.createServer({ noDelay: true }, (client) => this.#accept(client))
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen({ host: LOOPBACK, port: this.#port, exclusive: true }, () => {
        server.off('error', reject)
        resolve()
      })
    })
    this.#port = (server.address() as net.AddressInfo).port
    this.#server = server
    return this.#port
  }

  /** Destroys every connection and stops listening: clients see resets and refused connections. */
  async kill(): Promise<void> {
    const server = this.#server
    this.#server = undefined
    for (const pipe of this.#pipes) pipe.stop()
    this.#pipes.clear()
    for (const socket of this.#sockets) socket.destroy()
    this.#sockets.clear()
    if (server !== undefined) await new Promise<void>((resolve) => server.close(() => resolve()))
  }

  /** Listens again on the same port after {@link kill}. */
  async restart(): Promise<void> {
    await this.start()
  }

  /** Same as {@link kill}: the proxy is gone. */
  close(): Promise<void> {
    return this.kill()
  }

  #accept(client: net.Socket): void {
    this.#connections++
    client.setNoDelay(true)
    const upstream = net.connect({ host: this.#targetHost, port: this.#targetPort, noDelay: true })
    this.#sockets.add(client)
    this.#sockets.add(upstream)
    const count = (bytes: number) => {
      this.#chunks++
      this.#bytes += bytes
    }
    const up = new DelayedPipe(client, upstream, () => this.#toServerMs, count)
    const down = new DelayedPipe(upstream, client, () => this.#toClientMs, count)
    this.#pipes.add(up)
    this.#pipes.add(down)
    let connected = false
    upstream.once('connect', () => {
      connected = true
    })
    const teardown = () => {
      up.stop()
      down.stop()
      this.#pipes.delete(up)
      this.#pipes.delete(down)
      this.#sockets.delete(client)
      this.#sockets.delete(upstream)
      client.destroy()
      upstream.destroy()
    }
    upstream.on('error', () => {
      if (!connected) this.#refused++
      teardown()
    })
    client.on('error', teardown)
    upstream.on('close', teardown)
    client.on('close', teardown)
  }
}

// ---- proxies in a child process ----------------------------------------------------------------

type Command =
  | { op: 'create'; options: LatencyProxyOptions }
  | { op: 'setDelays'; proxy: number; toServerMs: number; toClientMs: number }
  | { op: 'kill' | 'restart' | 'stats'; proxy: number }
type Request = Command & { id: number }
type Reply = { id: number; ok: true; value?: unknown } | { id: number; ok: false; error: string }

/** The handle of a {@link LatencyProxy} running in a {@link ProxyProcess}. */
export class RemoteLatencyProxy {
  readonly #process: ProxyProcess
  readonly #id: number
  readonly port: number
  #toServerMs = 0
  #toClientMs = 0

  /** @internal */
  constructor(process: ProxyProcess, id: number, port: number) {
    this.#process = process
    this.#id = id
    this.port = port
  }

  /** The delays last set, per chunk, in ms. */
  get delays(): { toServerMs: number; toClientMs: number } {
    return { toServerMs: this.#toServerMs, toClientMs: this.#toClientMs }
  }

  /** The same delay in both directions. */
  setDelay(ms: number): Promise<void> {
    return this.setDelays(ms, ms)
  }

  async setDelays(toServerMs: number, toClientMs: number): Promise<void> {
    await this.#process.call({ op: 'setDelays', proxy: this.#id, toServerMs, toClientMs })
    this.#toServerMs = toServerMs
    this.#toClientMs = toClientMs
  }

  async kill(): Promise<void> {
    await this.#process.call({ op: 'kill', proxy: this.#id })
  }

  async restart(): Promise<void> {
    await this.#process.call({ op: 'restart', proxy: this.#id })
  }

  async stats(): Promise<LatencyProxyStats> {
    return (await this.#process.call({ op: 'stats', proxy: this.#id })) as LatencyProxyStats
  }
}

/** A child process running latency proxies (started with tsx, like the benchmark itself). */
export class ProxyProcess {
  readonly #child: ChildProcess
  readonly #pending = new Map<
    number,
    { resolve: (v: unknown) => void; reject: (e: Error) => void }
  >()
  #nextId = 1
  #exited = false

  private constructor(child: ChildProcess) {
    this.#child = child
    child.on('message', (message: Reply) => {
      const pending = this.#pending.get(message.id)
      if (pending === undefined) return
      this.#pending.delete(message.id)
      if (message.ok) pending.resolve(message.value)
      else pending.reject(new Error(message.error))
    })
    child.on('exit', (code, signal) => {
      this.#exited = true
      for (const pending of this.#pending.values()) {
        pending.reject(new Error(`latency proxy process exited (${signal ?? code})`))
      }
      this.#pending.clear()
    })
  }

  static async start(): Promise<ProxyProcess> {
    const child = fork(fileURLToPath(import.meta.url), ['--latency-proxy-child'], {
      execArgv: ['--import', 'tsx'],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    })
    const proxies = new ProxyProcess(child)
    await new Promise<void>((resolve, reject) => {
      child.once('spawn', resolve)
      child.once('error', reject)
    })
    return proxies
  }

  /** Creates and starts a proxy in the child process. */
  async create(options: LatencyProxyOptions): Promise<RemoteLatencyProxy> {
    const { id, port } = (await this.call({ op: 'create', options })) as {
      id: number
      port: number
    }
    const proxy = new RemoteLatencyProxy(this, id, port)
    await proxy.setDelays(options.toServerMs ?? 0, options.toClientMs ?? 0)
    return proxy
  }

  /** @internal */
  call(request: Command): Promise<unknown> {
    if (this.#exited) return Promise.reject(new Error('latency proxy process has exited'))
    const id = this.#nextId++
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject })
      this.#child.send({ ...request, id })
    })
  }

  /** Stops every proxy and the child process. */
  async stop(): Promise<void> {
    if (this.#exited) return
    const exited = new Promise<void>((resolve) => this.#child.once('exit', () => resolve()))
    this.#child.kill('SIGTERM')
    await exited
  }
}

function serveChild(): void {
  const proxies = new Map<number, LatencyProxy>()
  let nextId = 1
  const proxy = (id: number) => {
    const p = proxies.get(id)
    if (p === undefined) throw new Error(`no proxy ${id}`)
    return p
  }
  process.on('message', async (request: Request) => {
    let reply: Reply
    try {
      let value: unknown
      switch (request.op) {
        case 'create': {
          const p = new LatencyProxy(request.options)
          const id = nextId++
          proxies.set(id, p)
          value = { id, port: await p.start() }
          break
        }
        case 'setDelays':
          proxy(request.proxy).setDelays(request.toServerMs, request.toClientMs)
          break
        case 'kill':
          await proxy(request.proxy).kill()
          break
        case 'restart':
          await proxy(request.proxy).restart()
          break
        case 'stats':
          value = proxy(request.proxy).stats()
          break
      }
      reply = { id: request.id, ok: true, value }
    } catch (error) {
      reply = {
        id: request.id,
        ok: false,
        error: error instanceof Error ? error.message : String(error),
      }
    }
    process.send?.(reply)
  })
  const shutdown = async () => {
    await Promise.all([...proxies.values()].map((p) => p.kill()))
    process.exit(0)
  }
  process.on('SIGTERM', () => void shutdown())
  // The parent is gone: so are we.
  process.on('disconnect', () => void shutdown())
}

const isMain =
  process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href
if (isMain && process.argv.includes('--latency-proxy-child')) serveChild()
