import { LeastLatencySelector, type LeastLatencySelectorOptions } from './least-latency.js'
import { P2cEwmaSelector } from './p2c-ewma.js'
import { RandomSelector } from './random.js'
import {
  type BuiltInSelectorName,
  DEFAULT_SELECTOR_NAME,
  type ReplicaSelector,
} from './replica-selector.js'
import { RoundRobinSelector } from './round-robin.js'
import { WeightedSelector } from './weighted.js'

export { BUILT_IN_SELECTOR_NAMES, DEFAULT_SELECTOR_NAME } from './replica-selector.js'

export interface CreateSelectorOptions {
  /** Options of `'least-latency'`. */
  readonly latency?: LeastLatencySelectorOptions
}

/**
 * Turns a validated `selector` setting into a {@link ReplicaSelector}: a built-in name builds a
 * new selector, a user object is returned as is, `undefined` gives the default (`'p2c-ewma'`).
 * It validates nothing: `resolveConfig` has checked the name, the object and the options (its
 * `ResolvedConfig` carries `selector` and `latency` for this call), so it cannot fail on them.
 *
 * @example
 * ```ts
 * const resolved = resolveConfig({ config, isPool, dialectName: 'ReplicatedMysqlDialect' })
 * const selector = createSelector(resolved.selector, { latency: resolved.latency })
 * ```
 */
export function createSelector(
  spec: BuiltInSelectorName | ReplicaSelector = DEFAULT_SELECTOR_NAME,
  options: CreateSelectorOptions = {},
): ReplicaSelector {
  if (typeof spec === 'object') return spec
  switch (spec) {
    case 'round-robin':
      return new RoundRobinSelector()
    case 'random':
      return new RandomSelector()
    case 'weighted':
      return new WeightedSelector()
    case 'least-latency':
      return new LeastLatencySelector(options.latency)
    case 'p2c-ewma':
      return new P2cEwmaSelector()
    default: {
      const unknown: never = spec
      throw new TypeError(`createSelector: unknown selector ${String(unknown)} (not validated?)`)
    }
  }
}
