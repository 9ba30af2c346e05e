/**
 * What runs on one physical connection, kept so that `abandon(reason)` can give up on it at once
 * (`PhysicalConnection.abandon`): the reject of the pending statement, the open streams, and the
 * reason once abandoned. Engine-independent: each engine's connection owns one and destroys its
 * socket after {@link abandon}; whatever the driver reports later for the statement is swallowed.
 *
 * One statement at a time, as Kysely and the core run them on a connection; a statement queued
 * behind another by the driver is failed by the driver when the socket is destroyed.
 *
 * @example
 * ```ts
 * const inFlight = new InFlight()
 * const rows = inFlight.run(() => client.query('select pg_sleep(5)'))
 * inFlight.abandon(new Error('node hung')) // `rows` rejects now with that error
 * ```
 */
export class InFlight {
  #reject: ((reason: Error) => void) | undefined
  #streams = 0
  #reason: Error | undefined

  /** The reason given to {@link abandon}, once it was abandoned. */
  get abandoned(): Error | undefined {
    return this.#reason
  }

  /** Whether a statement or a stream runs. */
  get running(): boolean {
    return this.#reject !== undefined || this.#streams > 0
  }

  /**
   * A statement starts; `reject` fails its promise. Returns `false` (having called `reject` with the
   * reason) when the connection was abandoned already: the statement must not be sent.
   */
  start(reject: (reason: Error) => void): boolean {
    if (this.#reason !== undefined) {
      reject(this.#reason)
      return false
    }
    this.#reject = reject
    return true
  }

  /** The statement started with `reject` settled. */
  settled(reject: (reason: Error) => void): void {
    if (this.#reject === reject) this.#reject = undefined
  }

  /**
   * Calls `send` (unless the connection was abandoned) and settles as the driver's promise it
   * returns does, or rejects with the reason as soon as the connection is abandoned; a later result
   * or error of the driver is then dropped.
   */
  run<T>(send: () => Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      if (!this.start(reject)) return
      let promise: Promise<T>
      try {
        promise = send()
      } catch (error) {
        this.settled(reject)
        reject(error)
        return
      }
      promise.then(
        (value) => {
          this.settled(reject)
          resolve(value)
        },
        (error: unknown) => {
          this.settled(reject)
          reject(error)
        },
      )
    })
  }

  /** A stream opened: the connection runs something until {@link streamEnded}. */
  streamOpened(): void {
    this.#streams++
  }

  /**
   * The stream opened with {@link streamOpened} ends: `close` (the driver's clean-up of a stream
   * left early) runs first, followed like a statement, unless the connection was abandoned (it
   * would wait for a server that does not answer).
   */
  async streamEnded(close?: () => Promise<unknown>): Promise<void> {
    try {
      if (close !== undefined && this.#reason === undefined) await this.run(close)
    } finally {
      if (this.#streams > 0) this.#streams--
    }
  }

  /**
   * Fails the pending statement with `reason` now, and every later one (a stream's next step
   * included). Returns `false`, changing nothing, when nothing runs or it was abandoned already.
   */
  abandon(reason: Error): boolean {
    if (this.#reason !== undefined || !this.running) return false
    this.#reason = reason
    const reject = this.#reject
    this.#reject = undefined
    reject?.(reason)
    return true
  }
}
