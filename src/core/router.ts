import type { CompiledQuery } from 'kysely'
import type { ConsistencyScope } from '../consistency/scope.js'
import type { Classification } from '../routing/classification.js'
import { ReadOnlyViolationError, ReplicatedConfigError } from './contracts/errors.js'
import type { RouteReason } from './contracts/events.js'
import type { NodeRegistry } from './node-registry.js'
import type { NodeRuntime } from './node-runtime.js'
import type { ReadPlan, ReadPlanner } from './read-planner.js'
import type { RouteHint } from './route-hints.js'

/** One statement as the router sees it: what it needs, and the caller's hint. */
export interface Statement {
  /** The statement as Kysely compiled it. */
  readonly query: CompiledQuery
  readonly classification: Classification
  readonly hint: RouteHint | undefined
  /** A hard bound on it when it runs on a replica (`readTimeoutMs`, `withReadTimeout`). */
  readonly readTimeoutMs?: number | undefined
  /** The reason of a plain replica read of it: `'read'`, or `'read-only-transaction'` for the `begin` of one. */
  readonly readReason?: RouteReason
}

/**
 * A statement being planned, in a record its session reuses for every statement (the read path
 * then allocates none): it holds only until `executeQuery` returns, so whatever keeps a statement
 * past that keeps a copy ({@link keepStatement}) or, for a plain read, fills its read job's own
 * record ({@link copyStatementInto}).
 */
export interface StatementDraft extends Statement {
  query: CompiledQuery
  classification: Classification
  hint: RouteHint | undefined
  readTimeoutMs: number | undefined
  readReason: RouteReason | undefined
}

/** A statement record to fill, in the one shape every record has. */
export function newStatementRecord(query?: CompiledQuery): StatementDraft {
  return {
    query: query as CompiledQuery,
    classification: undefined as unknown as Classification,
    hint: undefined,
    readTimeoutMs: undefined,
    readReason: undefined,
  }
}

/** Copies `from` into the reused record `into` (which it then describes). */
export function copyStatementInto(into: StatementDraft, from: Statement): StatementDraft {
  into.query = from.query
  into.classification = from.classification
  into.hint = from.hint
  into.readTimeoutMs = from.readTimeoutMs
  into.readReason = from.readReason
  return into
}

/** A statement of its own, for what holds it past `executeQuery` (retries, hedges, writes). */
export function keepStatement(statement: Statement): Statement {
  return copyStatementInto(newStatementRecord(statement.query), statement)
}

/** The state of the routing connection (the Kysely connection) a statement arrives on. */
export interface SessionView {
  /** The read-your-writes scope its reads look up (lazily: eventual mode never asks). */
  readonly readScope: ConsistencyScope
  /** An earlier statement created session state: everything runs on the held primary session. */
  readonly pinned: boolean
  /** The connection holds a primary session (it wrote, or fell back to the primary). */
  readonly holdsPrimary: boolean
  /** The open builder transaction, if any. */
  readonly transaction: { readonly readOnly: boolean } | undefined
}

/**
 * Where a statement runs, decided before any I/O:
 * - `transaction`: on the open transaction's connection;
 * - `primary`: on the connection's primary session (`fallback` when it reads on behalf of
 *   replicas, which counts against `fallback.maxPrimaryReads`);
 * - `replica`: on one of `candidates`, picked by the selector;
 * - `wait`: on one of `candidates` after it has applied `position` (causal reads).
 */
export type Route =
  | { readonly kind: 'transaction'; readonly reason: 'transaction' | 'read-only-transaction' }
  | {
      readonly kind: 'primary'
      readonly reason: RouteReason
      readonly detail?: string | undefined
      readonly fallback: boolean
      /** A causal read whose wait timed out after this long (reason `'causal-timeout'`). */
      readonly waitedMs?: number | undefined
    }
  | Exclude<ReadPlan, { readonly kind: 'primary' }>

const DEFAULT_PRIMARY: Route = Object.freeze({
  kind: 'primary',
  reason: 'default-route',
  fallback: false,
})
const IN_TRANSACTION: Route = Object.freeze({ kind: 'transaction', reason: 'transaction' })
const IN_READ_ONLY_TRANSACTION: Route = Object.freeze({
  kind: 'transaction',
  reason: 'read-only-transaction',
})

/**
 * The routing policy in one place, as a pure function of the statement, the session and the
 * cluster's state: classification, hints, session pinning, the open transaction and the read
 * plan. No I/O; the executor carries the route out.
 */
export class Router {
  readonly #registry: NodeRegistry
  readonly #planner: ReadPlanner
  /** `defaultRoute: 'primary'`: reads go to replicas only through `onReplica` / `readOnly`. */
  readonly #primaryByDefault: boolean

  constructor(options: {
    readonly registry: NodeRegistry
    readonly planner: ReadPlanner
    readonly defaultRoute: 'replicas' | 'primary'
  }) {
    this.#registry = options.registry
    this.#planner = options.planner
    this.#primaryByDefault = options.defaultRoute === 'primary'
  }

  /**
   * Plans `statement`. `tried` lists replicas this statement already failed on: the plan is made
   * again without them (reason `'retry'`), ending on the primary.
   */
  plan(
    statement: Statement,
    session: SessionView,
    nowMs: number,
    tried?: readonly NodeRuntime[],
  ): Route {
    const transaction = session.transaction
    if (transaction !== undefined) {
      return transaction.readOnly ? IN_READ_ONLY_TRANSACTION : IN_TRANSACTION
    }
    const c = statement.classification
    const hint = statement.hint
    // A statement that reads the session's own state (`@x`, `@@warning_count`, `SHOW WARNINGS`)
    // after the connection wrote on its primary session reads that session.
    const sessionRead = c.readsSession && session.holdsPrimary
    if (!c.read || session.pinned || sessionRead || hint?.target === 'primary') {
      checkHintAllowsWrite(hint, c, statement.query.sql)
      let reason: RouteReason
      if ((session.pinned || sessionRead) && c.read) reason = 'session-pinned'
      else if (hint?.target === 'primary' && c.read) reason = 'hint'
      else reason = c.reason === 'read' ? 'session-pinned' : c.reason
      return { kind: 'primary', reason, detail: c.detail, fallback: false }
    }
    if (this.#primaryByDefault && hint === undefined) {
      return DEFAULT_PRIMARY
    }
    // A read: a replica, a causal wait, or the primary when no replica will do.
    const plan =
      hint?.target === 'replica'
        ? this.#hintPlan(hint.name, nowMs)
        : this.#planner.planRead(session, nowMs)
    if (plan.kind === 'primary') return primaryRead(tried !== undefined ? 'retry' : plan.reason)
    let candidates = plan.candidates
    if (tried !== undefined) {
      candidates = candidates.filter((c) => !tried.includes(this.#registry.replicaByIndex(c.index)))
      if (candidates.length === 0) return primaryRead('retry')
    }
    if (plan.kind === 'wait') {
      return candidates === plan.candidates ? plan : { ...plan, candidates }
    }
    const reason =
      tried !== undefined
        ? 'retry'
        : hint?.target === 'replica'
          ? 'hint'
          : plan.reason === 'read'
            ? (statement.readReason ?? 'read')
            : plan.reason
    return candidates === plan.candidates && reason === plan.reason
      ? plan
      : { kind: 'replica', candidates, reason }
  }

  #hintPlan(name: string | undefined, nowMs: number): ReadPlan {
    const registry = this.#registry
    if (name === undefined) {
      const usable = registry.usableReplicas(nowMs)
      return usable.length > 0
        ? { kind: 'replica', candidates: usable, reason: 'hint' }
        : { kind: 'primary', reason: 'no-replica' }
    }
    const node = registry.node(name)
    if (node === undefined || node.info.role !== 'replica') {
      throw new ReplicatedConfigError(
        `onReplica(db, "${name}"): no replica of that name (replicas: ${registry.replicas.map((r) => r.name).join(', ') || 'none'})`,
      )
    }
    return { kind: 'replica', candidates: [node.candidate], reason: 'hint' }
  }
}

/** A read the primary runs: on behalf of replicas (`no-replica`, `retry`) or for consistency. */
function primaryRead(reason: RouteReason): Route {
  return { kind: 'primary', reason, fallback: reason === 'no-replica' || reason === 'retry' }
}

/** A statement that needs the primary was sent through `readOnly(db)` or `onReplica(db)`. */
function checkHintAllowsWrite(
  hint: RouteHint | undefined,
  classification: Classification,
  sqlText: string,
): void {
  if (hint === undefined || classification.read) return
  if (hint.target === 'read-only' || hint.target === 'replica') {
    const via = hint.target === 'read-only' ? 'readOnly(db)' : 'onReplica(db)'
    throw new ReadOnlyViolationError(
      `a statement that must run on the primary (${classification.reason}${classification.detail ? `: ${classification.detail}` : ''}) was sent through ${via}; use the primary Kysely instance for it`,
      sqlText,
    )
  }
}
