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
 * walked nor tokenised again. Valid because a classification depends only on the SQL text and the
 * `ClassifyOptions` (see `classifyNode`): parameters are placeholders in the text, raw fragments
 * are part of it. Built queries and root raw nodes are kept apart, so that even a text on which
 * the two classifiers disagreed could not be answered by the other one.
 *
 * The lookup does not hash the whole text: Kysely compiles every execution into a new string, and
 * a `Map` keyed by it would hash all of it (about 1.5 µs for 1 KB). It fingerprints the length and
 * 24 characters (16 evenly spread, and the last 8), then compares the candidates' texts, which
 * stops at the first difference. Texts that share a fingerprint share a chain of at most 4
 * entries: a text pushed out of a full chain is simply classified again when it comes back.
 *
 * Bounded by two generations of `capacity / 2` entries: new entries go to the young one; when it
 * is full it becomes the old one and the previous old one is dropped; a hit in the old one moves
 * the entry back to the young one (an approximation of least-recently-used). Every operation is
 * O(1), and the statements in use stay while rarely seen ones age out. Texts longer than
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
  /** Entries per generation: the young one becomes the old one when it holds this many. */
  readonly #limit: number
  #young = new Generation()
  #old = new Generation()

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
    const raw = query.query.kind === 'RawNode'
    if (sql.length > this.#maxSqlLength) return this.#compute(query, raw)
    const key = fingerprint(sql, raw)
    const young = this.#young.get(key, sql, raw)
    if (young !== undefined) return young
    let result = this.#old.take(key, sql, raw)
    if (result === undefined) result = Object.freeze(this.#compute(query, raw))
    if (this.#young.size >= this.#limit) {
      this.#old = this.#young
      this.#young = new Generation()
    }
    this.#young.add(key, sql, raw, result)
    return result
  }

  /** How many classifications are kept. */
  get size(): number {
    return this.#young.size + this.#old.size
  }

  /** Forgets every classification. */
  clear(): void {
    this.#young = new Generation()
    this.#old = new Generation()
  }

  #compute(query: ClassifiableQuery, raw: boolean): Classification {
    return raw
      ? classifyRawSql(query.sql, this.#options)
      : classifyNode(query.query, query.sql, this.#options)
  }
}

/** A classification kept, and the next entry with the same fingerprint. */
interface Entry {
  readonly sql: string
  readonly raw: boolean
  readonly result: Classification
  next: Entry | undefined
}

/** The longest chain of entries sharing a fingerprint; a new one pushes the oldest out. */
const MAX_CHAIN = 4

/** One generation of the cache: fingerprint -> chain of entries, newest first. */
class Generation {
  readonly #chains = new Map<number, Entry>()
  size = 0

  get(key: number, sql: string, raw: boolean): Classification | undefined {
    for (let e = this.#chains.get(key); e !== undefined; e = e.next) {
      if (e.raw === raw && e.sql === sql) return e.result
    }
    return undefined
  }

  /** Removes the entry and returns its classification, if there is one. */
  take(key: number, sql: string, raw: boolean): Classification | undefined {
    let previous: Entry | undefined
    for (let e = this.#chains.get(key); e !== undefined; previous = e, e = e.next) {
      if (e.raw !== raw || e.sql !== sql) continue
      if (previous === undefined) {
        if (e.next === undefined) this.#chains.delete(key)
        else this.#chains.set(key, e.next)
      } else {
        previous.next = e.next
      }
      this.size--
      return e.result
    }
    return undefined
  }

  add(key: number, sql: string, raw: boolean, result: Classification): void {
    const head = this.#chains.get(key)
    let length = 1
    for (let e = head; e !== undefined; e = e.next) {
      if (++length >= MAX_CHAIN && e.next !== undefined) {
        for (
          let dropped: Entry | undefined = e.next;
          dropped !== undefined;
          dropped = dropped.next
        ) {
          this.size--
        }
        e.next = undefined
      }
    }
    this.#chains.set(key, { sql, raw, result, next: head })
    this.size++
  }
}

/**
 * A fingerprint of a text: its length, up to 24 of its characters (all of a short text; 16 spread
 * over a longer one, and its last 8, where texts that differ in a trailing literal or `LIMIT`
 * differ), and whether it is root raw SQL.
 */
function fingerprint(sql: string, raw: boolean): number {
  const len = sql.length
  let h = raw ? len ^ 0x5bd1e995 : len
  if (len <= 24) {
    for (let i = 0; i < len; i++) h = (Math.imul(h, 31) + sql.charCodeAt(i)) | 0
    return h
  }
  const spread = len - 8
  for (let i = 0; i < 16; i++) {
    h = (Math.imul(h, 31) + sql.charCodeAt(((i * spread) / 16) | 0)) | 0
  }
  for (let i = spread; i < len; i++) h = (Math.imul(h, 31) + sql.charCodeAt(i)) | 0
  return h
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
