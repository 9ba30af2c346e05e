/**
 * A TCP proxy that injects network faults between a client and one database server, for the
 * cluster harness (`cluster.proxyFor(node)`). It listens on 127.0.0.1 and runs in the calling
 * process; its listening socket is unref'd, so it never keeps the process alive by itself.
 *
 * Modes, switchable at any time:
 * - `pass`: forwards bytes both ways.
 * - `blackhole`: a partition that hangs. New connections are accepted (the client's `connect`
 *   succeeds) but reach no server; open connections stay open; no byte moves either way, and
 *   nothing closes or errors. Bytes sent meanwhile are held (and the sender is backpressured), as
 *   TCP would hold them: back in `pass`, held bytes are delivered in order and new connections
 *   reach the server, like a healed network partition.
 * - `reset`: open connections are reset (RST), and each new connection is accepted then reset.
 * - `refuse`: the proxy stops listening (new connections get ECONNREFUSED) and resets open ones;
 *   leaving `refuse` listens again on the same port.
 *
 * The target is looked up for each new upstream connection, so a node restarted on another port
 * stays reachable through the same proxy port. When the target does not accept, the client's
 * connection is closed.
 *
 * @example
 * ```ts
 * const proxy = new FaultProxy({ target: () => ({ host: '127.0.0.1', port: 3306 }) })
 * const port = await proxy.start()
 * await proxy.setMode('blackhole') // queries through `port` now hang
 * await proxy.setMode('pass')
 * await proxy.close()
 * ```
 */
import * as net from 'node:net'

const LOOPBACK = '127.0.0.1'

/** What a {@link FaultProxy} does with connections; see the module documentation. */
export type ProxyMode = 'pass' | 'blackhole' | 'reset' | 'refuse'

/** Options of a {@link FaultProxy}. */
export interface FaultProxyOptions {
  /** Where to forward new connections to; called once per upstream connection. */
  readonly target: () => { host: string; port: number }
  /** The port to listen on (default: a free one, kept for the proxy's life). */
  readonly listenPort?: number
  /** The initial mode (default `pass`). */
  readonly mode?: ProxyMode
}

/** Counters of a {@link FaultProxy}. */
export interface FaultProxyStats {
  /** Client connections accepted so far (including those reset at once). */
  readonly accepted: number
  /** Client connections open now. */
  readonly open: number
}

/** Destroys a socket with a TCP RST where Node can, else with a plain close. */
function reset(socket: net.Socket): void {
  if (socket.destroyed) return
  try {
    socket.resetAndDestroy()
  } catch {
    socket.destroy()
  }
}

/** One direction of a proxied connection: bytes from `from` to `to`, held while not passing. */
class Flow {
  readonly #held: Buffer[] = []
  #ended = false
  #draining = false

  constructor(
    readonly from: net.Socket,
    private readonly passing: () => boolean,
    private readonly to: () => net.Socket | undefined,
  ) {
    from.on('data', (chunk: Buffer) => {
      this.#held.push(chunk)
      this.flush()
    })
    // with allowHalfOpen, the end of one side is passed on once its bytes are
    from.on('end', () => {
      this.#ended = true
      this.flush()
    })
  }

  /** Delivers held bytes (and a held end) when passing; otherwise stops reading. */
  flush(): void {
    const to = this.to()
    if (!this.passing() || to === undefined) {
      this.from.pause()
      return
    }
    while (this.#held.length > 0) {
      if (to.destroyed) return
      if (!to.write(this.#held.shift()!) && !this.#draining) {
        this.#draining = true
        this.from.pause()
        to.once('drain', () => {
          this.#draining = false
          this.flush()
        })
      }
    }
    if (this.#ended) {
      if (!to.destroyed) to.end()
      return
    }
    if (!this.#draining) this.from.resume()
  }
}

/** A client connection and its (possibly not yet made) connection to the server. */
class ProxiedConnection {
  upstream: net.Socket | undefined
  readonly #toServer: Flow
  #toClient: Flow | undefined

  constructor(
    readonly client: net.Socket,
    private readonly proxy: { passing(): boolean; target(): { host: string; port: number } },
    private readonly onClose: () => void,
  ) {
    client.setNoDelay(true)
    this.#toServer = new Flow(
      client,
      () => proxy.passing(),
      () => this.upstream,
    )
    client.on('error', () => this.close())
    client.on('close', () => this.close())
    if (proxy.passing()) this.connectUpstream()
  }

  connectUpstream(): void {
    if (this.upstream !== undefined || this.client.destroyed) return
    const { host, port } = this.proxy.target()
    const upstream = net.connect({ host, port, noDelay: true, allowHalfOpen: true })
    this.upstream = upstream
    this.#toClient = new Flow(
      upstream,
      () => this.proxy.passing(),
      () => this.client,
    )
    upstream.on('error', () => this.close())
    upstream.on('close', () => this.close())
  }

  /** Moves bytes again (connecting to the server first if this connection never did). */
  pass(): void {
    this.connectUpstream()
    this.#toServer.flush()
    this.#toClient?.flush()
  }

  /** Stops reading both ways; held bytes stay held. */
  hold(): void {
    this.client.pause()
    this.upstream?.pause()
  }

  /** Resets both sides. */
  reset(): void {
    reset(this.client)
    if (this.upstream !== undefined) reset(this.upstream)
    this.onClose()
  }

  close(): void {
    if (!this.client.destroyed) this.client.destroy()
    if (this.upstream !== undefined && !this.upstream.destroyed) this.upstream.destroy()
    this.onClose()
  }
}

/** A TCP proxy to one server with switchable faults; see the module documentation. */
export class FaultProxy {
  readonly #target: () => { host: string; port: number }
  readonly #connections = new Set<ProxiedConnection>()
  #port: number
  #mode: ProxyMode
  #server: net.Server | undefined
  #accepted = 0
  #closed = false

  constructor(options: FaultProxyOptions) {
    this.#target = options.target
    this.#port = options.listenPort ?? 0
    this.#mode = options.mode ?? 'pass'
  }

  /** The port it listens on (0 before {@link start}). */
  get port(): number {
    return this.#port
  }

  get mode(): ProxyMode {
    return this.#mode
  }

  stats(): FaultProxyStats {
    return { accepted: this.#accepted, open: this.#connections.size }
  }

  /** Starts listening on 127.0.0.1 (unless the mode is `refuse`); returns the port. */
  async start(): Promise<number> {
    if (this.#closed) throw new Error('fault proxy: closed')
    if (this.#mode !== 'refuse') await this.#listen()
    else if (this.#port === 0) {
      // refuse from the start: reserve a port anyway, so that the proxy has one
      await this.#listen()
      await this.#unlisten()
    }
    return this.#port
  }

  /**
   * Switches the mode. Resolves once the switch is in effect: connections reset, the port closed
   * (`refuse`) or listening again (leaving `refuse`).
   */
  async setMode(mode: ProxyMode): Promise<void> {
    if (this.#closed) throw new Error('fault proxy: closed')
    const previous = this.#mode
    this.#mode = mode
    switch (mode) {
      case 'pass':
        for (const connection of this.#connections) connection.pass()
        break
      case 'blackhole':
        for (const connection of this.#connections) connection.hold()
        break
      case 'reset':
      case 'refuse':
        for (const connection of [...this.#connections]) connection.reset()
        break
    }
    if (mode === 'refuse') await this.#unlisten()
    else if (previous === 'refuse' || this.#server === undefined) await this.#listen()
  }

  /** Resets every connection and stops listening, for good. */
  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    for (const connection of [...this.#connections]) connection.reset()
    await this.#unlisten()
  }

  #passing(): boolean {
    return this.#mode === 'pass'
  }

  #accept(client: net.Socket): void {
    this.#accepted++
    client.on('error', () => {})
    if (this.#mode === 'reset' || this.#mode === 'refuse' || this.#closed) {
      reset(client)
      return
    }
    const connection: ProxiedConnection = new ProxiedConnection(
      client,
      { passing: () => this.#passing(), target: this.#target },
      () => this.#connections.delete(connection),
    )
    this.#connections.add(connection)
  }

  async #listen(): Promise<void> {
    if (this.#server !== undefined) return
    const server = net.createServer({ allowHalfOpen: true, noDelay: true }, (client) =>
      this.#accept(client),
    )
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen({ host: LOOPBACK, port: this.#port, exclusive: true }, () => {
        server.off('error', reject)
        resolve()
      })
    })
    server.unref()
    this.#port = (server.address() as net.AddressInfo).port
    this.#server = server
  }

  async #unlisten(): Promise<void> {
    const server = this.#server
    this.#server = undefined
    if (server !== undefined) await new Promise<void>((resolve) => server.close(() => resolve()))
  }
}
