import type { ReplicaCandidate, ReplicaSelector, SelectionContext } from './replica-selector.js'

/** Vose's alias table: column `i` is kept with probability `keep[i]`, else `alias[i]` is taken. */
interface AliasTable {
  readonly keep: Float64Array
  readonly alias: Uint32Array
}

/**
 * Picks a candidate at random in proportion to its `weight`. The alias table (Vose's method) is
 * built once per candidates array, cached by the array's identity, so each pick costs O(1): one
 * random number, one table lookup. A candidate whose weight is not a positive finite number is
 * never picked; when no candidate has a usable weight the pick is uniform.
 *
 * @example
 * ```ts
 * const replicas = [
 *   { name: 'big', pool: bigPool, weight: 3 },
 *   { name: 'small', pool: smallPool, weight: 1 },
 * ]
 * new ReplicatedMysqlDialect({ primary, replicas, selector: new WeightedSelector() })
 * ```
 */
export class WeightedSelector implements ReplicaSelector {
  readonly #tables = new WeakMap<readonly ReplicaCandidate[], AliasTable>()

  select(
    candidates: readonly ReplicaCandidate[],
    context: SelectionContext,
  ): ReplicaCandidate | undefined {
    const n = candidates.length
    if (n === 0) return undefined
    let table = this.#tables.get(candidates)
    if (table === undefined) {
      table = buildAliasTable(candidates)
      this.#tables.set(candidates, table)
    }
    // One random number chooses the column (integer part) and the coin (fractional part).
    const u = context.random() * n
    const floor = Math.floor(u)
    const column = floor >= 0 ? Math.min(floor, n - 1) : 0
    const keep = table.keep[column]!
    return candidates[u - column < keep ? column : table.alias[column]!]
  }
}

function buildAliasTable(candidates: readonly ReplicaCandidate[]): AliasTable {
  const n = candidates.length
  const weights = new Float64Array(n)
  let max = 0
  for (let i = 0; i < n; i++) {
    const w = candidates[i]!.weight
    const usable = typeof w === 'number' && Number.isFinite(w) && w > 0 ? w : 0
    weights[i] = usable
    if (usable > max) max = usable
  }
  const keep = new Float64Array(n).fill(1)
  const alias = new Uint32Array(n)
  for (let i = 0; i < n; i++) alias[i] = i
  if (max === 0) return { keep, alias }

  // Scale to mean 1 (dividing by the maximum first keeps the sum finite for huge weights).
  let total = 0
  for (let i = 0; i < n; i++) total += weights[i]! / max
  const scaled = new Float64Array(n)
  const small: number[] = []
  const large: number[] = []
  for (let i = 0; i < n; i++) {
    const p = ((weights[i]! / max) * n) / total
    scaled[i] = p
    ;(p < 1 ? small : large).push(i)
  }
  while (small.length > 0 && large.length > 0) {
    const s = small.pop()!
    const l = large.pop()!
    keep[s] = scaled[s]!
    alias[s] = l
    const rest = scaled[l]! + scaled[s]! - 1
    scaled[l] = rest
    ;(rest < 1 ? small : large).push(l)
  }
  // Whatever is left has probability 1 up to rounding: `keep` is already 1 there.
  return { keep, alias }
}
