/**
 * `promise`'s outcome, or, when `ms` pass first, what `onDeadline()` returns (or throws). The
 * promise's later outcome is then ignored, never thrown. `unref`: the timer does not keep the
 * process alive (background work: probes, shutdown).
 *
 * @example
 * ```ts
 * const ended = await withDeadline(pool.end(), 1000, () => 'timed out' as const)
 * ```
 */
export async function withDeadline<T, U>(
  promise: Promise<T>,
  ms: number,
  onDeadline: () => U,
  options: { readonly unref?: boolean } = {},
): Promise<T | U> {
  promise.catch(() => {})
  let timer: NodeJS.Timeout | undefined
  try {
    return await Promise.race([
      promise,
      new Promise<U>((resolve, reject) => {
        timer = setTimeout(() => {
          try {
            resolve(onDeadline())
          } catch (error) {
            reject(error)
          }
        }, ms)
        if (options.unref === true) timer.unref()
      }),
    ])
  } finally {
    clearTimeout(timer)
  }
}
