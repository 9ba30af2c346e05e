import type { PhysicalConnection } from './contracts/engine.js'

/**
 * The connections running a statement (or a causal wait) on one node, for a rescue to abandon
 * them when the node is found dead. Added and removed on every statement, so without hashing:
 * an array, each connection keeping its index (`runningSlot`), removal by swapping the last one
 * in. A `Set` costs measurably more here (its deleted entries are compacted by rehashing).
 *
 * @example
 * ```ts
 * const running = new RunningConnections()
 * running.add(connection)
 * for (const c of [...running]) c.abandon(reason)
 * running.delete(connection)
 * ```
 */
export class RunningConnections {
  readonly #items: PhysicalConnection[] = []

  get size(): number {
    return this.#items.length
  }

  add(connection: PhysicalConnection): void {
    const slot = connection.runningSlot
    if (slot !== undefined && this.#items[slot] === connection) return
    connection.runningSlot = this.#items.length
    this.#items.push(connection)
  }

  /** Removes `connection`; `false` when it was not running here. */
  delete(connection: PhysicalConnection): boolean {
    const items = this.#items
    const slot = connection.runningSlot
    if (slot === undefined || items[slot] !== connection) return false
    const last = items.pop()!
    if (last !== connection) {
      items[slot] = last
      last.runningSlot = slot
    }
    connection.runningSlot = undefined
    return true
  }

  has(connection: PhysicalConnection): boolean {
    const slot = connection.runningSlot
    return slot !== undefined && this.#items[slot] === connection
  }

  [Symbol.iterator](): IterableIterator<PhysicalConnection> {
    return this.#items[Symbol.iterator]()
  }
}
