import { ReplicatedConfigError } from '../core/errors.js'

/** OpenTelemetry integration settings. */
export interface TracingOptions {
  /**
   * `'span'` (default): a CLIENT span per statement, child of the active span.
   * `'attributes'`: no new span; the attributes are set on the active span, if any.
   */
  readonly mode?: 'span' | 'attributes'
  /** Tracer name (default `'kysely-replicated'`). */
  readonly tracerName?: string
  /** Adds `db.query.text` (the SQL with placeholders, never parameter values). Default `false`. */
  readonly includeQueryText?: boolean
}

/** The part of `@opentelemetry/api` this module uses (it stays an optional peer dependency). */
interface OtelApi {
  trace: {
    getTracer(name: string, version?: string): OtelTracer
    getActiveSpan(): OtelSpan | undefined
  }
  context: { active(): unknown; with<T>(ctx: unknown, fn: () => T): T }
  SpanKind: { CLIENT: number }
  SpanStatusCode: { ERROR: number }
}

interface OtelTracer {
  startSpan(
    name: string,
    options: { kind: number; attributes: Record<string, string | number> },
    ctx?: unknown,
  ): OtelSpan
}

interface OtelSpan {
  setAttributes(attributes: Record<string, string | number>): void
  setStatus(status: { code: number; message?: string }): void
  recordException(error: Error): void
  end(): void
}

/** What one statement's telemetry knows. */
export interface StatementAttributes {
  readonly system: string
  readonly namespace: string | undefined
  readonly serverAddress: string | undefined
  readonly serverPort: number | undefined
  readonly node: string
  readonly role: 'primary' | 'replica'
  readonly reason: string
  readonly causalWaitMs: number | undefined
  readonly sql: string
}

/**
 * Emits OpenTelemetry spans or attributes for statements, following the database semantic
 * conventions plus the routing attributes `db.replication.node`, `db.replication.role`,
 * `db.replication.reason` and `db.replication.causal_wait_ms`.
 */
export class Tracing {
  readonly #api: OtelApi
  readonly #tracer: OtelTracer
  readonly #mode: 'span' | 'attributes'
  readonly #includeQueryText: boolean

  private constructor(api: OtelApi, options: TracingOptions) {
    this.#api = api
    this.#mode = options.mode ?? 'span'
    this.#includeQueryText = options.includeQueryText === true
    this.#tracer = api.trace.getTracer(options.tracerName ?? 'kysely-replicated')
  }

  /** Loads `@opentelemetry/api` (only when tracing is configured). */
  static async load(options: TracingOptions): Promise<Tracing> {
    let api: OtelApi
    try {
      const specifier = '@opentelemetry/api'
      api = (await import(specifier)) as OtelApi
    } catch (error) {
      throw new ReplicatedConfigError(
        `tracing is enabled but @opentelemetry/api cannot be loaded (${error instanceof Error ? error.message : String(error)}): npm install @opentelemetry/api`,
      )
    }
    return new Tracing(api, options)
  }

  attributes(s: StatementAttributes): Record<string, string | number> {
    const operation = operationName(s.sql)
    const attributes: Record<string, string | number> = {
      'db.system': s.system,
      'db.system.name': s.system,
      'db.replication.node': s.node,
      'db.replication.role': s.role,
      'db.replication.reason': s.reason,
    }
    if (operation !== undefined) attributes['db.operation.name'] = operation
    if (s.namespace !== undefined) attributes['db.namespace'] = s.namespace
    if (s.serverAddress !== undefined) attributes['server.address'] = s.serverAddress
    if (s.serverPort !== undefined) attributes['server.port'] = s.serverPort
    if (s.causalWaitMs !== undefined) attributes['db.replication.causal_wait_ms'] = s.causalWaitMs
    if (this.#includeQueryText) attributes['db.query.text'] = s.sql
    return attributes
  }

  /** Runs `fn` inside a span (or annotates the active span) for one statement. */
  async trace<T>(s: StatementAttributes, fn: () => Promise<T>): Promise<T> {
    const attributes = this.attributes(s)
    if (this.#mode === 'attributes') {
      this.#api.trace.getActiveSpan()?.setAttributes(attributes)
      return fn()
    }
    const name =
      [attributes['db.operation.name'], s.namespace].filter((x) => x !== undefined).join(' ') ||
      s.system
    const span = this.#tracer.startSpan(
      name,
      { kind: this.#api.SpanKind.CLIENT, attributes },
      this.#api.context.active(),
    )
    try {
      return await fn()
    } catch (error) {
      if (error instanceof Error) {
        span.recordException(error)
        span.setStatus({ code: this.#api.SpanStatusCode.ERROR, message: error.message })
      }
      throw error
    } finally {
      span.end()
    }
  }
}

/** The statement's first keyword, upper-case (`SELECT`, `INSERT`, ...), skipping comments and parentheses. */
export function operationName(sqlText: string): string | undefined {
  const match = /^(?:\s|\(|\/\*[\s\S]*?\*\/|--[^\n]*\n)*([A-Za-z]+)/.exec(sqlText)
  return match?.[1]?.toUpperCase()
}
