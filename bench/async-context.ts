/**
 * Turning every `AsyncLocalStorage` off between measurements, for the overhead benchmark.
 *
 * Where `AsyncLocalStorage` runs on async hooks (Node.js 20 and 22 by default), the first `run()`
 * of any storage turns promise hooks on for the whole process, and they stay on until every
 * storage that ran is `disable()`d: from then on every promise anywhere costs more, inside a
 * context or not. The overhead benchmark alternates dialects that run inside a per-request
 * context with dialects that run outside any, in one process; without this, the first context
 * would make every later "outside" measurement pay for the hooks too, and a context variant
 * would pay for the storage of the one before it as well (each promise propagates every storage
 * turned on). The library's own storage
 * (behind `consistencyScope`) is private, so {@link trackStorages} wraps the storage prototype's
 * `_enable` (the Node.js method every `run()` and `enterWith()` goes through) to remember each
 * storage that turned itself on. Where that method does not exist (a Node.js whose storages need
 * no hooks), there is nothing to turn off and {@link StorageTracker.active} is false.
 *
 * @example
 * ```ts
 * const storages = trackStorages() // before the first run()
 * storage.run({}, work)
 * storages.disableAll() // promise hooks off again
 * ```
 */
import { AsyncLocalStorage } from 'node:async_hooks'

export interface StorageTracker {
  /** Whether storages are tracked (false where `AsyncLocalStorage` has no `_enable`). */
  readonly active: boolean
  /** Disables every storage that turned itself on since the last call; returns how many. */
  disableAll(): number
}

let tracker: StorageTracker | undefined

/** Starts tracking the storages that turn themselves on (once per process; later calls share it). */
export function trackStorages(): StorageTracker {
  if (tracker !== undefined) return tracker
  const enabled = new Set<AsyncLocalStorage<unknown>>()
  const prototype = AsyncLocalStorage.prototype as unknown as { _enable?: () => void }
  const original = prototype._enable
  if (typeof original !== 'function') {
    tracker = { active: false, disableAll: () => 0 }
    return tracker
  }
  prototype._enable = function (this: AsyncLocalStorage<unknown>) {
    enabled.add(this)
    original.call(this)
  }
  tracker = {
    active: true,
    disableAll() {
      const count = enabled.size
      for (const storage of enabled) storage.disable()
      enabled.clear()
      return count
    },
  }
  return tracker
}
