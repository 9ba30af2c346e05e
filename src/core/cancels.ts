import type { Engine, PhysicalConnection } from './contracts/engine.js'
import { withDeadline } from './deadline.js'
import type { NodeRuntime } from './node-runtime.js'

/** How long a cancel (connect and statement) may take before the target is destroyed instead. */
export const CONTROL_TIMEOUT_MS = 2000

/** `work` cancels the statement running on `connection`: its release waits for it. */
export function trackCancel(connection: PhysicalConnection, work: Promise<unknown>): void {
  const settled = work.then(
    () => undefined,
    () => undefined,
  )
  connection.cancelling = settled
  void settled.then(() => {
    if (connection.cancelling === settled) connection.cancelling = undefined
  })
}

/**
 * Returns `connection` to its pool (or closes it) once no cancel aimed at it is in flight. A
 * cancel is sent by session id: released earlier, the session could already run another
 * caller's statement when the cancel lands, and interrupt it.
 */
export function releaseAfterCancel(connection: PhysicalConnection, destroy: boolean): void {
  const cancel = connection.cancelling
  if (cancel === undefined) {
    if (destroy) connection.destroy()
    else connection.release()
    return
  }
  void cancel.then(() => {
    if (destroy || connection.killed) connection.destroy()
    else connection.release()
  })
}

/**
 * Cancels (or kills) the statement running on `connection` of `node` as session `sessionId`, from
 * a control connection opened outside the node's pool (so a pool full of aborted statements can
 * always be cancelled), or one of the pool's own when the pool cannot open one. Tracked with
 * {@link trackCancel}: the connection's release waits for it. The promise rejects when the
 * cancel failed or timed out ({@link CONTROL_TIMEOUT_MS}); whether the statement stopped is then
 * unknown, which the caller must answer by not reusing the connection.
 */
export function sendCancel(
  engine: Engine,
  node: NodeRuntime,
  connection: PhysicalConnection,
  sessionId: number,
  kind: 'query' | 'session',
): Promise<void> {
  const work = (async () => {
    const pool = node.pool
    let control: PhysicalConnection | undefined
    if (pool.openControl !== undefined) {
      try {
        control = await pool.openControl(CONTROL_TIMEOUT_MS)
      } catch (error) {
        // A pool that cannot say how to reach its node (no config to copy): use one of its own.
        if (engine.isConnectionError(error)) throw error
      }
    }
    const outside = control !== undefined
    control ??= await pool.acquire(AbortSignal.timeout(CONTROL_TIMEOUT_MS))
    try {
      await withDeadline(engine.cancel(control, sessionId, kind), CONTROL_TIMEOUT_MS, () => {
        throw new Error(`the cancel on node "${node.name}" timed out`)
      })
      if (outside) control.destroy()
      else control.release()
    } catch (error) {
      control.destroy()
      throw error
    }
  })()
  trackCancel(connection, work)
  return work
}

/**
 * Cancels the statement running on `connection` of `node` on the library's own account (a hedged
 * read's loser, a read past its read timeout) from a control connection, as `cancelQuery` does
 * ({@link sendCancel}): the connection's release waits for the cancel; a cancel that fails marks
 * it `killed` (it is then closed instead of reused). Without a session id the statement is
 * abandoned with `reason` instead (its connection closed at once).
 */
export function cancelStatement(
  engine: Engine,
  node: NodeRuntime,
  connection: PhysicalConnection,
  reason: Error,
): void {
  const sessionId = connection.sessionId
  if (sessionId === undefined) {
    connection.abandon(reason)
    return
  }
  // Whether the statement stopped is unknown: its session is not reused.
  sendCancel(engine, node, connection, sessionId, 'query').catch(() => {
    connection.killed = true
  })
}
