/** Runs a task once a slot is free; see {@link limitConcurrency}. */
export type ConcurrencyLimit = <T>(task: () => Promise<T>) => Promise<T>

/**
 * Runs async tasks with at most `concurrency` of them in flight at once; the others start in
 * arrival order as slots free up. A task's rejection is passed to its caller and frees its slot.
 *
 * The prober bounds `health.probeConcurrency` with it. (It replaces the `p-limit` dependency,
 * which is ESM-only: the CommonJS build could not `require` it on Node 20 before 20.19.)
 *
 * @example
 * ```ts
 * const limit = limitConcurrency(4)
 * await Promise.all(replicas.map((node) => limit(() => probe(node))))
 * ```
 */
export function limitConcurrency(concurrency: number): ConcurrencyLimit {
  if (!Number.isInteger(concurrency) || concurrency < 1) {
    throw new RangeError(`concurrency must be a positive integer, got ${concurrency}`)
  }
  let active = 0
  const waiting: Array<() => void> = []
  return <T>(task: () => Promise<T>) =>
    new Promise<T>((resolve, reject) => {
      const start = async () => {
        active++
        try {
          resolve(await task())
        } catch (error) {
          reject(error)
        } finally {
          active--
          waiting.shift()?.()
        }
      }
      if (active < concurrency) void start()
      else waiting.push(() => void start())
    })
}
