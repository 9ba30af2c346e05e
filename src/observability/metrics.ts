import { ReplicatedConfigError } from '../core/contracts/errors.js'
import type { PoolStats, ReplicaInfo } from '../core/contracts/stats.js'
import { operationName } from './tracing.js'

/**
 * The part of an OpenTelemetry `MeterProvider` this library uses: the SDK's `MeterProvider`
 * (`@opentelemetry/sdk-metrics`) and the API's global one both fit.
 */
export interface MetricsMeterProvider {
  getMeter(name: string): OtelMeter
}

/** OpenTelemetry metrics settings. */
export interface MetricsOptions {
  /**
   * Where the instruments are created. Default: the global `MeterProvider` of
   * `@opentelemetry/api`, read when the dialect starts (its first query): register it before.
   */
  readonly meterProvider?: MetricsMeterProvider
}

/** An OpenTelemetry `Meter`, as far as this module uses it. */
export interface OtelMeter {
  createHistogram(name: string, options?: InstrumentOptions): OtelHistogram
  createCounter(name: string, options?: InstrumentOptions): OtelCounter
  createObservableGauge(name: string, options?: InstrumentOptions): object
  createObservableUpDownCounter(name: string, options?: InstrumentOptions): object
  addBatchObservableCallback(callback: BatchCallback, observables: object[]): void
  removeBatchObservableCallback(callback: BatchCallback, observables: object[]): void
}

interface InstrumentOptions {
  description?: string
  unit?: string
  advice?: { explicitBucketBoundaries?: number[] }
}

type Attributes = Record<string, string | number>

interface OtelHistogram {
  record(value: number, attributes?: Attributes): void
}

interface OtelCounter {
  add(value: number, attributes?: Attributes): void
}

type BatchCallback = (observer: {
  observe(observable: object, value: number, attributes?: Attributes): void
}) => void

/** The part of `@opentelemetry/api` this module uses (it stays an optional peer dependency). */
interface OtelMetricsApi {
  metrics: { getMeterProvider(): MetricsMeterProvider }
}

/** What the observable instruments read at collection time (never on the query path). */
export interface MetricsSources {
  /** `db.system.name` (MySQL's engine learns `mariadb` or `mysql` on its first connection). */
  readonly system: () => string
  /** One entry per node, as `getPoolStats()` reports them. */
  readonly poolStats: () => readonly PoolStats[]
  /** One entry per node, as `getReplicaInfo()` reports them. */
  readonly replicaInfo: () => readonly ReplicaInfo[]
}

/** The node a statement ran on, as the executor's target holds it. */
export interface MeteredNode {
  readonly name: string
  readonly info: { readonly role: 'primary' | 'replica' }
  readonly pool: {
    endpoint(): { host?: string; port?: number; database?: string } | undefined
  }
}

/** One attempt of a statement: where it ran and why. */
export interface MeteredStatement {
  readonly node: MeteredNode
  readonly reason: string
}

/** The semantic conventions' buckets for `db.client.operation.duration`, in seconds. */
export const OPERATION_DURATION_BUCKETS = [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10]

/** Buckets of the waits (connection checkout, causal wait), in seconds: mostly well under 1 ms. */
export const WAIT_BUCKETS = [0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10]

const POOL_NAME = 'db.client.connection.pool.name'
const NODE = 'db.replication.node'
const ROLE = 'db.replication.role'
const REASON = 'db.replication.reason'

/** A node's attributes that do not change from one statement to the next. */
interface NodeAttributes {
  readonly system: string
  readonly attributes: Readonly<Attributes>
}

/**
 * OpenTelemetry metrics of a replicated dialect, after the database client semantic conventions
 * (`db.client.operation.duration`, `db.client.connection.*`) plus the library's own routing
 * metrics (`kysely_replicated.*`). The core holds `undefined` when metrics are off; when on, the
 * methods it calls on the query path are O(1): a histogram record or a counter add.
 *
 * @example
 * ```ts
 * const dialect = new ReplicatedMysqlDialect({ primary, replicas, metrics: true })
 * // or, with a provider of your own: metrics: { meterProvider }
 * ```
 */
export class Metrics {
  readonly #sources: MetricsSources
  readonly #meter: OtelMeter
  readonly #duration: OtelHistogram
  readonly #routes: OtelCounter
  readonly #hedgesWon: OtelCounter
  readonly #causalWait: OtelHistogram
  readonly #connectionWait: OtelHistogram
  readonly #poolCallback: BatchCallback
  readonly #poolObservables: object[]
  readonly #nodeCallback: BatchCallback
  readonly #nodeObservables: object[]
  /** Per node: the attributes every statement there shares. */
  readonly #nodes = new Map<string, NodeAttributes>()
  /** Per node, then per reason: the attributes of a route count (reused, not rebuilt). */
  readonly #routeAttributes = new Map<string, Map<string, Attributes>>()
  /** Per node: `{ 'db.client.connection.pool.name': node }`. */
  readonly #poolAttributes = new Map<string, Attributes>()
  #closed = false

  private constructor(meter: OtelMeter, sources: MetricsSources) {
    this.#meter = meter
    this.#sources = sources
    this.#duration = meter.createHistogram('db.client.operation.duration', {
      description: 'Duration of database client operations.',
      unit: 's',
      advice: { explicitBucketBoundaries: OPERATION_DURATION_BUCKETS },
    })
    this.#connectionWait = meter.createHistogram('db.client.connection.wait_time', {
      description: 'The time it took to obtain an open connection from the pool.',
      unit: 's',
      advice: { explicitBucketBoundaries: WAIT_BUCKETS },
    })
    this.#routes = meter.createCounter('kysely_replicated.routes', {
      description: 'Routing decisions, by node, role and reason.',
      unit: '{route}',
    })
    this.#hedgesWon = meter.createCounter('kysely_replicated.hedges_won', {
      description:
        "Hedged reads whose second statement answered first (those sent: routes with reason 'hedge').",
      unit: '{hedge}',
    })
    this.#causalWait = meter.createHistogram('kysely_replicated.causal_wait.duration', {
      description: 'Time reads waited for a replica to apply the writes they must see.',
      unit: 's',
      advice: { explicitBucketBoundaries: WAIT_BUCKETS },
    })

    const count = meter.createObservableUpDownCounter('db.client.connection.count', {
      description:
        'The number of connections that are currently in the state of the state attribute.',
      unit: '{connection}',
    })
    const pending = meter.createObservableUpDownCounter('db.client.connection.pending_requests', {
      description: 'The number of current pending requests for an open connection.',
      unit: '{request}',
    })
    const max = meter.createObservableUpDownCounter('db.client.connection.max', {
      description: 'The maximum number of open connections allowed.',
      unit: '{connection}',
    })
    this.#poolObservables = [count, pending, max]
    this.#poolCallback = (observer) => {
      for (const stats of this.#sources.poolStats()) {
        const pool = stats.node
        observer.observe(count, stats.inUse, {
          [POOL_NAME]: pool,
          'db.client.connection.state': 'used',
        })
        if (stats.idle !== undefined) {
          observer.observe(count, stats.idle, {
            [POOL_NAME]: pool,
            'db.client.connection.state': 'idle',
          })
        }
        observer.observe(pending, stats.waiting, { [POOL_NAME]: pool })
        if (stats.limit !== undefined) observer.observe(max, stats.limit, { [POOL_NAME]: pool })
      }
    }
    meter.addBatchObservableCallback(this.#poolCallback, this.#poolObservables)

    const lag = meter.createObservableGauge('kysely_replicated.replica.lag', {
      description:
        'Replication lag of each replica, from the last probe (absent when unknown or stopped).',
      unit: 's',
    })
    const up = meter.createObservableGauge('kysely_replicated.node.up', {
      description:
        'Whether the node takes statements: 1 when healthy, 0 when lagging, cooling down or down.',
      unit: '1',
    })
    this.#nodeObservables = [lag, up]
    this.#nodeCallback = (observer) => {
      for (const info of this.#sources.replicaInfo()) {
        const attributes = { [NODE]: info.name, [ROLE]: info.role }
        observer.observe(up, info.state === 'healthy' ? 1 : 0, attributes)
        if (info.role === 'replica' && typeof info.lagMs === 'number') {
          observer.observe(lag, info.lagMs / 1000, attributes)
        }
      }
    }
    meter.addBatchObservableCallback(this.#nodeCallback, this.#nodeObservables)
  }

  /**
   * Creates the instruments on `options.meterProvider`, or on the global provider of
   * `@opentelemetry/api`, which is then loaded (only when metrics are configured without a
   * provider of their own).
   */
  static async load(options: MetricsOptions, sources: MetricsSources): Promise<Metrics> {
    let provider = options.meterProvider
    if (provider === undefined) {
      try {
        const specifier = '@opentelemetry/api'
        provider = ((await import(specifier)) as OtelMetricsApi).metrics.getMeterProvider()
      } catch (error) {
        throw new ReplicatedConfigError(
          `metrics are enabled but @opentelemetry/api cannot be loaded (${error instanceof Error ? error.message : String(error)}): npm install @opentelemetry/api, or pass metrics: { meterProvider }`,
        )
      }
    }
    return new Metrics(provider.getMeter('kysely-replicated'), sources)
  }

  /**
   * One attempt of a statement ended, after `durationMs`: `db.client.operation.duration`, with
   * `error.type` when it failed.
   */
  statement(target: MeteredStatement, sql: string, durationMs: number, error?: unknown): void {
    const attributes: Attributes = {
      ...this.#nodeAttributes(target.node),
      [REASON]: target.reason,
    }
    const operation = operationName(sql)
    if (operation !== undefined) attributes['db.operation.name'] = operation
    if (error !== undefined) attributes['error.type'] = errorType(error)
    this.#duration.record(durationMs / 1000, attributes)
  }

  /** A routing decision: `kysely_replicated.routes`. */
  route(node: string, role: 'primary' | 'replica', reason: string): void {
    let byReason = this.#routeAttributes.get(node)
    if (byReason === undefined) {
      byReason = new Map()
      this.#routeAttributes.set(node, byReason)
    }
    let attributes = byReason.get(reason)
    if (attributes === undefined) {
      attributes = { [NODE]: node, [ROLE]: role, [REASON]: reason }
      byReason.set(reason, attributes)
    }
    this.#routes.add(1, attributes)
  }

  /** A hedged read's second statement answered first: `kysely_replicated.hedges_won`. */
  hedgeWon(): void {
    this.#hedgesWon.add(1)
  }

  /** A causal wait ended (caught up or timed out): `kysely_replicated.causal_wait.duration`. */
  causalWait(ms: number): void {
    this.#causalWait.record(ms / 1000)
  }

  /** A connection of `node`'s pool was obtained after `ms`: `db.client.connection.wait_time`. */
  connectionWait(node: string, ms: number): void {
    let attributes = this.#poolAttributes.get(node)
    if (attributes === undefined) {
      attributes = { [POOL_NAME]: node }
      this.#poolAttributes.set(node, attributes)
    }
    this.#connectionWait.record(ms / 1000, attributes)
  }

  /** Stops the observable instruments' callbacks (the dialect was destroyed). Idempotent. */
  close(): void {
    if (this.#closed) return
    this.#closed = true
    this.#meter.removeBatchObservableCallback(this.#poolCallback, this.#poolObservables)
    this.#meter.removeBatchObservableCallback(this.#nodeCallback, this.#nodeObservables)
  }

  #nodeAttributes(node: MeteredNode): Readonly<Attributes> {
    const system = this.#sources.system()
    const known = this.#nodes.get(node.name)
    if (known !== undefined && known.system === system) return known.attributes
    const attributes: Attributes = {
      'db.system.name': system,
      [NODE]: node.name,
      [ROLE]: node.info.role,
    }
    const endpoint = node.pool.endpoint()
    if (endpoint?.database !== undefined) attributes['db.namespace'] = endpoint.database
    if (endpoint?.host !== undefined) attributes['server.address'] = endpoint.host
    if (endpoint?.port !== undefined) attributes['server.port'] = endpoint.port
    this.#nodes.set(node.name, { system, attributes: Object.freeze(attributes) })
    return attributes
  }
}

/**
 * The `error.type` of a failed statement: the driver's error code (`ER_DUP_ENTRY` from mysql2,
 * the SQLSTATE from pg, `ECONNREFUSED`), else the error's class name, else `_OTHER`.
 */
export function errorType(error: unknown): string {
  if (typeof error === 'object' && error !== null) {
    const { code, name } = error as { code?: unknown; name?: unknown }
    if ((typeof code === 'string' && code !== '') || typeof code === 'number') return String(code)
    if (typeof name === 'string' && name !== '') return name
  }
  return '_OTHER'
}
