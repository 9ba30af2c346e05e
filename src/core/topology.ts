import { PrimaryUnavailableError } from './contracts/errors.js'
import type { ReplicationEvent } from './contracts/events.js'
import type { NodeRegistry } from './node-registry.js'
import type { NodeRuntime } from './node-runtime.js'

/** `topology` settings, resolved. */
export interface TopologySettings {
  /** `'dynamic'` (default): roles follow what the servers say. `'static'`: the configured roles. */
  readonly mode: 'dynamic' | 'static'
  /** How long a write refused by a former primary waits for exactly one writable node. */
  readonly writeWaitMs: number
}

/**
 * Follows the roles the servers report. Every probe says whether its node takes writes (not
 * read-only, not replicating); from that:
 * - the current primary keeps its role while it takes writes; another node that also does is a
 *   conflict (`topology-conflict`), never a reason to move;
 * - when the current primary stops taking writes (fenced, demoted, dead) and exactly one other
 *   node does, that node becomes the primary (`primary-changed`, `role-changed`); the former one
 *   becomes a replica and takes reads once it is read-only and replicating;
 * - when several others do, nothing moves and writes fail until only one does.
 * Pure bookkeeping over probe results; the probes themselves are the health monitor's.
 */
export class Topology {
  readonly #registry: NodeRegistry
  readonly #emit: (event: ReplicationEvent) => void
  readonly #settings: TopologySettings
  readonly #probeAll: () => Promise<void>
  readonly #now: () => number
  /** The last conflict reported (node names), so it is said once. */
  #conflict = ''

  constructor(options: {
    readonly registry: NodeRegistry
    readonly emit: (event: ReplicationEvent) => void
    readonly settings: TopologySettings
    /** Probes every node now and waits for the results. */
    readonly probeAll: () => Promise<void>
    readonly now: () => number
  }) {
    this.#registry = options.registry
    this.#emit = options.emit
    this.#settings = options.settings
    this.#probeAll = options.probeAll
    this.#now = options.now
  }

  get dynamic(): boolean {
    return this.#settings.mode === 'dynamic'
  }

  /** Reviews the roles after a probe result. */
  review(): void {
    if (!this.dynamic) return
    const registry = this.#registry
    const primary = registry.primary
    const writable = registry.all.filter((n) => n.writable === true && !n.draining)
    const others = writable.filter((n) => n !== primary)
    if (primary.writable !== false) {
      this.#reportConflict(others.length > 0 ? [primary, ...others] : [])
      return
    }
    if (others.length === 1) {
      this.#reportConflict([])
      this.#promote(others[0]!)
    } else {
      this.#reportConflict(others)
    }
  }

  /**
   * A write was refused by `former` (read-only, or no connection): waits, probing every node,
   * until another node is the one primary, at most `writeWaitMs`.
   */
  async awaitNewPrimary(former: NodeRuntime, cause?: unknown): Promise<NodeRuntime> {
    const registry = this.#registry
    const deadline = this.#now() + this.#settings.writeWaitMs
    let probed = false
    for (;;) {
      if (registry.primary !== former && registry.primary.writable !== false) {
        return registry.primary
      }
      // The same node back, taking writes again (a restart, a fence lifted): nothing ran, so the
      // statement can run there. Only on a fresh probe's word.
      if (probed && registry.primary === former && former.writable === true) return former
      if (!this.dynamic || this.#now() >= deadline) {
        const writable = registry.all.filter((n) => n.writable === true).map((n) => `"${n.name}"`)
        throw new PrimaryUnavailableError(
          `no single node took over the writes of "${former.name}" within ${this.#settings.writeWaitMs} ms (nodes taking writes: ${writable.join(', ') || 'none'})${cause instanceof Error ? `: ${cause.message}` : ''}`,
          former.name,
          { cause },
        )
      }
      await this.#probeAll()
      probed = true
      this.review()
      if (registry.primary === former) await new Promise((r) => setTimeout(r, 50))
    }
  }

  #promote(node: NodeRuntime): void {
    const from = this.#registry.promote(node)
    this.#emit({ type: 'primary-changed', node: node.name, from: from.name, to: node.name })
    this.#emit({ type: 'role-changed', node: node.name, role: 'primary' })
    this.#emit({ type: 'role-changed', node: from.name, role: 'replica' })
  }

  #reportConflict(nodes: readonly NodeRuntime[]): void {
    const key = nodes.map((n) => n.name).join(',')
    if (key === this.#conflict) return
    this.#conflict = key
    if (nodes.length < 2) return
    this.#emit({
      type: 'topology-conflict',
      node: this.#registry.primary.name,
      message: `several nodes take writes: ${nodes.map((n) => `"${n.name}"`).join(', ')}; writes stay on "${this.#registry.primary.name}" while it takes them`,
    })
  }
}
