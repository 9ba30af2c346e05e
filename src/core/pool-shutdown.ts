/**
 * Engine-independent pieces of ending pools and closing connections when a server may be hung
 * (SIGSTOPped, or behind a network that drops packets): TCP stays open and a polite goodbye is never
 * answered, so every wait here is bounded and ends by destroying sockets.
 */

import { withDeadline } from './deadline.js'

/** The part of a Node socket (`net.Socket`, `tls.TLSSocket`) these helpers use. */
interface SocketLike {
  readonly destroyed?: boolean
  destroy(error?: Error): unknown
  once(event: 'close', listener: () => void): unknown
}

function isSocket(value: unknown): value is SocketLike {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as SocketLike).destroy === 'function' &&
    typeof (value as SocketLike).once === 'function'
  )
}

/** Does nothing: an `'error'` listener for driver objects whose later errors mean nothing. */
export function ignoreError(): void {}

/** A driver's connection as {@link endPool} sees it: an emitter of `'error'`, when it is one. */
interface EndingConnection {
  on?(event: 'error', listener: (error: Error) => void): unknown
}

/**
 * Ends a driver's pool within about `graceMs`: its own `end()` (a goodbye on each connection once
 * it is free), and waits until every socket of `connections` (snapshot taken before, connection
 * attempts included) has closed. What is still open when the grace runs out is destroyed with
 * `forcedError()`, which the statements and connection attempts still waiting then fail with:
 * a hung server never answers the goodbye, and TCP stays open. Every connection gets a no-op
 * `'error'` listener first, so a connection attempt that fails meanwhile (connect timeout) or the
 * destruction throws nothing. Rejects only with an error of the driver's `end()` raised before the
 * grace ran out; a later one is dropped.
 *
 * @example
 * ```ts
 * await endPool({
 *   graceMs: 1000,
 *   connections: [...pool._allConnections],
 *   socketOf: (c) => c.stream,
 *   end: () => new Promise((resolve, reject) => pool.end((e) => (e ? reject(e) : resolve()))),
 *   forcedError: () => new Error('pool ended'),
 * })
 * ```
 */
export function endPool<C extends object>(options: {
  readonly graceMs: number
  readonly connections: readonly C[]
  readonly socketOf: (connection: C) => unknown
  readonly end: () => Promise<void>
  readonly forcedError: () => Error
}): Promise<void> {
  const { connections, socketOf } = options
  for (const connection of connections) {
    ;(connection as EndingConnection).on?.('error', ignoreError)
  }
  return endWithGrace({
    graceMs: options.graceMs,
    polite: async () => {
      await options.end()
      // Drivers call back once the goodbye is sent (mysql2) or a connection left the pool (pg),
      // not when the server closed it.
      await Promise.all(connections.map((connection) => socketClosed(socketOf(connection))))
    },
    force: () => {
      const error = options.forcedError()
      for (const connection of connections) destroySocket(socketOf(connection), error)
    },
  })
}

/**
 * Runs `polite()` for at most `graceMs`, then `force()` if it has not finished (or failed).
 * Resolves within about `graceMs`. Rejects only with an error `polite()` raised before the grace
 * ran out (after forcing the rest); a later one is dropped.
 */
async function endWithGrace(options: {
  readonly graceMs: number
  readonly polite: () => Promise<void>
  readonly force: () => void
}): Promise<void> {
  let failure: { readonly error: unknown } | undefined
  const polite = Promise.resolve()
    .then(options.polite)
    .then(
      () => true,
      (error: unknown) => {
        failure = { error }
        return true
      },
    )
  const finished = await withDeadline(polite, Math.max(0, options.graceMs), () => false)
  if (!finished || failure !== undefined) options.force()
  if (finished && failure !== undefined) throw failure.error
}

/** Destroys a driver's socket now; nothing when it is gone already or is not a socket. */
export function destroySocket(socket: unknown, error?: Error): void {
  if (!isSocket(socket) || socket.destroyed === true) return
  try {
    socket.destroy(error)
  } catch {
    // already gone
  }
}

/** Resolves once `socket` has closed: at once when it is destroyed already or is not a socket. */
export function socketClosed(socket: unknown): Promise<void> {
  if (!isSocket(socket) || socket.destroyed === true) return Promise.resolve()
  return new Promise((resolve) => {
    socket.once('close', () => resolve())
  })
}

/**
 * Destroys `socket` unless it closed within `ms`: after a polite goodbye (`COM_QUIT`, `Terminate`)
 * that a hung server never answers. The timer itself never keeps the process alive.
 */
export function destroySocketAfter(socket: unknown, ms: number): void {
  if (!isSocket(socket) || socket.destroyed === true) return
  const timer = setTimeout(() => destroySocket(socket), ms)
  timer.unref()
  socket.once('close', () => clearTimeout(timer))
}
