import type { PhysicalConnection } from './contracts/engine.js'

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
