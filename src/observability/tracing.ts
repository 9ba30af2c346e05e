import { ReplicatedConfigError } from '../core/contracts/errors.js'

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
    setSpan(ctx: unknown, span: OtelSpan): unknown
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

  /**
   * Starts the telemetry of one statement: a span (made active around the work given to
   * {@link StatementSpan.run}, so the driver's own spans nest under it), or attributes on the
   * active span in `'attributes'` mode (then `undefined`: nothing to end).
   */
  start(s: StatementAttributes): StatementSpan | undefined {
    const attributes = this.attributes(s)
    const api = this.#api
    if (this.#mode === 'attributes') {
      api.trace.getActiveSpan()?.setAttributes(attributes)
      return undefined
    }
    const name =
      [attributes['db.operation.name'], s.namespace].filter((x) => x !== undefined).join(' ') ||
      s.system
    const parent = api.context.active()
    const span = this.#tracer.startSpan(name, { kind: api.SpanKind.CLIENT, attributes }, parent)
    const active = api.trace.setSpan(parent, span)
    return {
      run: (fn) => api.context.with(active, fn),
      end: (error) => {
        if (error instanceof Error) {
          span.recordException(error)
          span.setStatus({ code: api.SpanStatusCode.ERROR, message: error.message })
        }
        span.end()
      },
    }
  }
}

/** The span of one statement in progress. */
export interface StatementSpan {
  /** Runs `fn` with the span active. */
  run<T>(fn: () => T): T
  /** Ends the span, recording `error` when the statement failed. */
  end(error?: unknown): void
}

/** The statement's first keyword, upper-case (`SELECT`, `INSERT`, ...), skipping comments and parentheses. */
export function operationName(sqlText: string): string | undefined {
  const match = /^(?:\s|\(|\/\*[\s\S]*?\*\/|--[^\n]*\n)*([A-Za-z]+)/.exec(sqlText)
  return match?.[1]?.toUpperCase()
}
