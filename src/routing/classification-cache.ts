import type { OperationNode } from 'kysely'
import type { Classification, ClassifyOptions } from './classification.js'
import { classifyNode } from './classify-node.js'
import { classifyRawSql } from './raw-sql.js'

/** A compiled query as Kysely hands it to the driver: its root node and its SQL text. */
export interface ClassifiableQuery {
  readonly query: OperationNode
  readonly sql: string
}

export interface ClassificationCacheConfig {
  /** The most classifications kept (default 2000). */
  readonly capacity?: number
  /** Longer SQL texts are classified every time, not kept (default 4096 characters). */
  readonly maxSqlLength?: number
}

/**
 * A bounded map from SQL text to classification, so that a statement seen before is neither
 * walked nor tokenised again: one `Map` lookup. Valid because a classification depends only on
 * the SQL text and the `ClassifyOptions` (see `classifyNode`): parameters are placeholders in the
 * text, raw fragments are part of it. Built queries and root raw nodes are kept apart, so that
 * even a text on which the two classifiers disagreed could not be answered by the other one.
 *
 * Bounded by two generations of `capacity / 2` entries: new entries go to the young one; when it
 * is full it becomes the old one and the previous old one is dropped; a hit in the old one moves
 * the entry back to the young one (an approximation of least-recently-used). Every operation is O(1), a hit on a young entry is one lookup,
 * and the statements in use stay while rarely seen ones age out. Texts longer than
 * `maxSqlLength` are not kept, which bounds the memory held (bulk inserts are long and rarely
 * repeat). Returned classifications are frozen and shared.
 *
 * @example
 * ```ts
 * const cache = new ClassificationCache({ flavor: 'mysql', primaryFunctions: primaryFunctionSet('mysql') })
 * const compiled = db.selectFrom('person').selectAll().where('id', '=', 1).compile()
 * cache.classify(compiled) // walks the tree once
 * cache.classify(db.selectFrom('person').selectAll().where('id', '=', 2).compile()) // same text: a lookup
 * ```
 */
export class ClassificationCache {
  readonly #options: ClassifyOptions
  readonly #maxSqlLength: number
  /** Entries per generation: young ones are dropped into the old when there are this many. */
  readonly #limit: number
  /** Per generation, built queries (0) and root raw SQL (1). */
  #young: [Map<string, Classification>, Map<string, Classification>] = [new Map(), new Map()]
  #old: [Map<string, Classification>, Map<string, Classification>] = [new Map(), new Map()]

  constructor(options: ClassifyOptions, config: ClassificationCacheConfig = {}) {
    const capacity = config.capacity ?? 2000
    if (!Number.isInteger(capacity) || capacity < 2) {
      throw new RangeError(`capacity must be an integer of at least 2, not ${capacity}`)
    }
    this.#options = options
    this.#maxSqlLength = config.maxSqlLength ?? 4096
    this.#limit = capacity >> 1
  }

  /** The classification of a compiled query, as `classifyNode(query.query, query.sql, options)`. */
  classify(query: ClassifiableQuery): Classification {
    const sql = query.sql
    const kind = query.query.kind === 'RawNode' ? 1 : 0
    if (sql.length > this.#maxSqlLength) return this.#compute(query, kind)
    const young = this.#young[kind].get(sql)
    if (young !== undefined) return young
    const old = this.#old[kind]
    let result = old.get(sql)
    if (result !== undefined) old.delete(sql)
    else result = Object.freeze(this.#compute(query, kind))
    this.#add(kind, sql, result)
    return result
  }

  /** How many classifications are kept. */
  get size(): number {
    return this.#young[0].size + this.#young[1].size + this.#old[0].size + this.#old[1].size
  }

  /** Forgets every classification. */
  clear(): void {
    this.#young = [new Map(), new Map()]
    this.#old = [new Map(), new Map()]
  }

  #add(kind: 0 | 1, sql: string, result: Classification): void {
    if (this.#young[0].size + this.#young[1].size >= this.#limit) {
      this.#old = this.#young
      this.#young = [new Map(), new Map()]
    }
    this.#young[kind].set(sql, result)
  }

  #compute(query: ClassifiableQuery, kind: 0 | 1): Classification {
    return kind === 1
      ? classifyRawSql(query.sql, this.#options)
      : classifyNode(query.query, query.sql, this.#options)
  }
}

/** One cache per options object: the options of one dialect (engine lists plus its own). */
const CACHES = new WeakMap<ClassifyOptions, ClassificationCache>()

/**
 * `classifyNode` through a `ClassificationCache` kept for `options` (the options object is the
 * key, so keep one object per dialect, frozen: a dialect's functions must not change after its
 * first statement).
 *
 * @example
 * ```ts
 * const options = Object.freeze({ flavor: 'postgres', primaryFunctions: primaryFunctionSet('postgres') })
 * const compiled = db.selectFrom('person').selectAll().forUpdate().compile()
 * classifyCached(compiled, options).reason // 'locking-read', from the cache the second time
 * ```
 */
export function classifyCached(query: ClassifiableQuery, options: ClassifyOptions): Classification {
  let cache = CACHES.get(options)
  if (cache === undefined) {
    cache = new ClassificationCache(options)
    CACHES.set(options, cache)
  }
  return cache.classify(query)
}
