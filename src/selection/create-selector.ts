import { ReplicatedConfigError } from '../core/contracts/errors.js'
import { LeastLatencySelector } from './least-latency.js'
import { P2cEwmaSelector } from './p2c-ewma.js'
import { RandomSelector } from './random.js'
import type { BuiltInSelectorName, ReplicaSelector } from './replica-selector.js'
import { RoundRobinSelector } from './round-robin.js'
import { WeightedSelector } from './weighted.js'

/** The names `createSelector` accepts, in documentation order. */
export const BUILT_IN_SELECTOR_NAMES: readonly BuiltInSelectorName[] = Object.freeze([
  'round-robin',
  'random',
  'weighted',
  'least-latency',
  'p2c-ewma',
])

/** The selector used when the configuration names none. */
export const DEFAULT_SELECTOR_NAME: BuiltInSelectorName = 'p2c-ewma'

export interface CreateSelectorOptions {
  /** Options of `'least-latency'`. */
  readonly latency?: {
    readonly ttlMs?: number
    readonly sampleSize?: number
  }
  /** Time constant of the latency EWMA in ms (used by `'p2c-ewma'`; default 10 000). */
  readonly decayMs?: number
}

/**
 * Turns the dialect's `selector` setting into a {@link ReplicaSelector}: a built-in name, a
 * user object with a `select` method (returned as is), or `undefined` for the default
 * (`'round-robin'`). Every option is validated even when the chosen selector does not use it,
 * so a typo fails at construction. Throws {@link ReplicatedConfigError} on an unknown name, a
 * non-selector object or a bad option.
 *
 * @example
 * ```ts
 * const selector = createSelector('least-latency', { latency: { ttlMs: 500 } })
 * const custom = createSelector({ select: (candidates) => candidates[0] })
 * ```
 */
export function createSelector(
  spec: BuiltInSelectorName | ReplicaSelector | undefined,
  options: CreateSelectorOptions = {},
): ReplicaSelector {
  const latency = options.latency ?? {}
  // The constructors validate their own options; build the option-bearing ones up front so a
  // bad option fails whichever selector is chosen.
  const leastLatency = new LeastLatencySelector({
    ttlMs: latency.ttlMs,
    sampleSize: latency.sampleSize,
  })
  const p2c = new P2cEwmaSelector({ decayMs: options.decayMs })

  const name = spec ?? DEFAULT_SELECTOR_NAME
  if (typeof name === 'object' && name !== null) return validateCustomSelector(name)
  switch (name) {
    case 'round-robin':
      return new RoundRobinSelector()
    case 'random':
      return new RandomSelector()
    case 'weighted':
      return new WeightedSelector()
    case 'least-latency':
      return leastLatency
    case 'p2c-ewma':
      return p2c
    default:
      throw new ReplicatedConfigError(
        `Unknown replica selector ${describe(name)}: expected one of ${namesList()}, or an object with a select(candidates, context) method`,
      )
  }
}

function validateCustomSelector(selector: ReplicaSelector): ReplicaSelector {
  const { select, onResult } = selector as { select?: unknown; onResult?: unknown }
  if (typeof select !== 'function') {
    throw new ReplicatedConfigError(
      `A replica selector object must have a select(candidates, context) method; or use one of ${namesList()}`,
    )
  }
  if (onResult !== undefined && typeof onResult !== 'function') {
    throw new ReplicatedConfigError(`A replica selector's onResult must be a function when set`)
  }
  return selector
}

function namesList(): string {
  return BUILT_IN_SELECTOR_NAMES.map((n) => `'${n}'`).join(', ')
}

function describe(value: unknown): string {
  return typeof value === 'string' ? `'${value}'` : `of type ${typeof value}`
}
