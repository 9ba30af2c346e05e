import type { NodeInfo, PhysicalConnection } from './contracts/engine.js'
import { ConnectionSetupError } from './contracts/errors.js'
import { withDeadline } from './deadline.js'

/**
 * The error of a connection not made within `timeoutMs`: code `ETIMEDOUT`, which every engine's
 * `isConnectionError` recognises, as mysql2's own connect timeout.
 */
export function connectTimeoutError(node: string, timeoutMs: number): Error {
  return Object.assign(
    new Error(`connect ETIMEDOUT: no connection to node "${node}" within ${timeoutMs} ms`),
    { code: 'ETIMEDOUT', node },
  )
}

/**
 * Opens a control connection (`NodePool.openControl`), the same way for every engine: `connect()`
 * makes the driver's connection outside the pool and wraps it, `setUp()` runs the engine's session
 * set-up on it (never the user's hooks). The whole of it must finish within `timeoutMs`, else it
 * fails with {@link connectTimeoutError}: a hung server may accept the connection and never answer
 * the set-up. On any failure `discard()` destroys what was made. An error of the set-up that is
 * not connection-level becomes a {@link ConnectionSetupError} naming the node.
 */
export async function openControlConnection<C extends PhysicalConnection>(options: {
  readonly node: NodeInfo
  readonly timeoutMs: number
  readonly connect: () => Promise<C>
  readonly setUp: (connection: C) => Promise<void>
  readonly discard: () => void
  readonly isConnectionError: (error: unknown) => boolean
}): Promise<C> {
  const { node, timeoutMs } = options
  const open = (async () => {
    const connection = await options.connect()
    try {
      await options.setUp(connection)
    } catch (error) {
      if (options.isConnectionError(error)) throw error
      throw new ConnectionSetupError(
        `setting up a control connection on node "${node.name}" failed: ${error instanceof Error ? error.message : String(error)}`,
        node.name,
        { cause: error },
      )
    }
    return connection
  })()
  try {
    // Lost against the deadline, `open`'s later failure means nothing.
    return await withDeadline(open, timeoutMs, () => {
      throw connectTimeoutError(node.name, timeoutMs)
    })
  } catch (error) {
    options.discard()
    throw error
  }
}
