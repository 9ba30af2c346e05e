import type { ResolvedHedge } from './config.js'
import type { NodeRuntime } from './node-runtime.js'

/**
 * How long a hedged read's loser may run on before its statement is cancelled (at least; longer
 * when the hedge delay is). Cancelling costs a control connection to the node: measured on the
 * spike benchmark, cancelling every late point read at once halved the throughput, while letting
 * it finish costs one pooled connection for a few more milliseconds. A loser that runs long (a
 * report query, a hung node) is still cancelled.
 */
export const HEDGE_CANCEL_GRACE_MS = 100

/** Hedges the budget allows at once before any read has earned one (and at most saved up). */
export const HEDGE_BURST = 10

/**
 * The policy of hedged reads (`hedge` setting): when a read may be backed up by a second
 * statement on another replica, and how many may be. A token bucket holds the budget: each
 * hedge-eligible read earns `budget` tokens, each hedge spends one, and at most
 * {@link HEDGE_BURST} are kept (the bucket starts full), so hedges sent never exceed
 * `budget × reads + HEDGE_BURST`. The delay is a fixed number of milliseconds, or a recent 90th
 * percentile latency (`NodeLoad.latencyP90Ms`, O(1)). No I/O, no timer: {@link runHedged}
 * carries a hedged read out.
 *
 * @example
 * ```ts
 * const hedging = new Hedging({ after: 'p90', budget: 0.1 })
 * const delay = hedging.delayFor(node.load.latencyP90Ms()) // undefined: no latency history yet
 * if (delay !== undefined && hedging.take()) {
 *   // send the second statement
 * }
 * ```
 */
export class Hedging {
  readonly #after: 'p90' | number
  readonly #budget: number
  #tokens = HEDGE_BURST

  constructor(options: ResolvedHedge) {
    this.#after = options.after
    this.#budget = options.budget
  }

  /** Whether the delay is a latency percentile (then {@link delayFor} wants one). */
  get byP90(): boolean {
    return this.#after === 'p90'
  }

  /**
   * A hedge-eligible read starts: it earns its share of the budget. Returns how long to wait for
   * its answer before hedging it: the fixed delay, or `p90Ms` (the candidates' recent 90th
   * percentile latency, see `Executor`), `undefined` when there is none (no latency history
   * yet): then it is not hedged.
   */
  delayFor(p90Ms: number | undefined): number | undefined {
    const tokens = this.#tokens + this.#budget
    this.#tokens = tokens > HEDGE_BURST ? HEDGE_BURST : tokens
    return this.#after === 'p90' ? p90Ms : this.#after
  }

  /** Spends one hedge of the budget; `false` when it is spent. */
  take(): boolean {
    if (this.#tokens < 1) return false
    this.#tokens -= 1
    return true
  }

  /** Gives back a hedge taken but not sent (the first statement answered meanwhile). */
  refund(): void {
    const tokens = this.#tokens + 1
    this.#tokens = tokens > HEDGE_BURST ? HEDGE_BURST : tokens
  }

  /** Tokens left (for tests). */
  get tokens(): number {
    return this.#tokens
  }
}

/** How an attempt of a statement ended, without throwing. */
export type Settled<T> =
  | { readonly ok: true; readonly value: T }
  | { readonly ok: false; readonly error: unknown }

/**
 * What {@link runHedged} needs from the executor, for one statement (`C` its context: session,
 * statement, signal), its attempts `A`, their results `T`, and a connection reserved on the
 * hedge's node `R`. The executor keeps every rule of its own (accounting, retry policy, reports);
 * this module only orders the two attempts.
 */
export interface HedgePort<C, A, T, R> {
  /** Reaches the route's node and starts the statement (the first attempt, or a retry). */
  begin(context: C): Promise<A>
  /**
   * The node of `attempt` when a hedge may back it up (a replica read picked freely among at
   * least two candidates), else `undefined`.
   */
  hedgeable(context: C, attempt: A): NodeRuntime | undefined
  /** The recent 90th percentile latency to wait for (`after: 'p90'`), `undefined` without history. */
  p90(context: C, node: NodeRuntime): number | undefined
  /** Runs the started attempt; the span ends and its timers are cleared either way. */
  run(context: C, attempt: A): Promise<T>
  /** Accounts a successful attempt and releases its connection. */
  succeeded(context: C, attempt: A): void
  /**
   * Accounts a failed attempt and releases its connection, then applies the retry policy:
   * returns when the statement was re-planned (run it again), throws when it fails.
   */
  failed(context: C, attempt: A, error: unknown): Promise<void>
  /**
   * Reserves a connection on another candidate than `node` (picked by the selector), or
   * `undefined` when there is none or it cannot be reached; `signal` gives up the checkout.
   */
  reserve(context: C, node: NodeRuntime, signal: AbortSignal): Promise<R | undefined>
  /** Gives back a reserved connection that was not used. */
  unreserve(reserved: R): void
  /** Starts the statement on the reserved connection, reported with reason `'hedge'`. */
  start(context: C, reserved: R): A
  /**
   * The other attempt answered first: gives `attempt` `graceMs` to end on its own (a point read
   * that was merely late costs less to finish than to cancel), then cancels its statement; once
   * `running` ended, accounts it (a cancelled one as neither a success nor a failure of its
   * node) and releases its connection.
   */
  abandon(context: C, attempt: A, running: Promise<Settled<T>>, graceMs: number): void
  /**
   * Whether the caller gave up on the statement (its signal aborted): then an attempt still
   * running after the other failed is not waited for but abandoned at once.
   */
  gaveUp(context: C): boolean
  /** A hedge was sent; `won` once it is known to have answered first. */
  sent(): void
  won(): void
}

const FIRST_DONE: unique symbol = Symbol('first done')

function settle<T>(promise: Promise<T>): Promise<Settled<T>> {
  return promise.then(
    (value) => ({ ok: true, value }),
    (error: unknown) => ({ ok: false, error }),
  )
}

/** `running`'s outcome, or `undefined` when `ms` pass first. One timer, cleared on the answer. */
function within<T>(running: Promise<T>, ms: number): Promise<T | undefined> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms, undefined)
    void running.then((value) => {
      clearTimeout(timer)
      resolve(value)
    })
  })
}

/**
 * Runs one hedge-eligible read: the first attempt as the executor would; if it has not answered
 * after {@link Hedging.delayFor} and the budget allows, the same statement on a second replica,
 * the first answer wins and the other is abandoned (cancelled, its connection released after its
 * end). A failure before the hedge is sent goes through the retry policy as usual; after it, the
 * other attempt is waited for, and only when both failed does the retry policy decide (on the
 * last failure).
 *
 * @example
 * ```ts
 * return runHedged(hedging, port, { session, statement, signal })
 * ```
 */
export async function runHedged<C, A, T, R>(
  hedging: Hedging,
  port: HedgePort<C, A, T, R>,
  context: C,
): Promise<T> {
  for (;;) {
    const first = await port.begin(context)
    const firstRun = settle(port.run(context, first))
    const node = port.hedgeable(context, first)
    const delay =
      node === undefined
        ? undefined
        : hedging.delayFor(hedging.byP90 ? port.p90(context, node) : undefined)
    let outcome = delay === undefined ? await firstRun : await within(firstRun, delay)
    if (outcome === undefined) {
      const took = hedging.take()
      const second = took ? await reserveWhile(port, context, node!, firstRun) : undefined
      if (second !== undefined && second !== FIRST_DONE) {
        const hedge = port.start(context, second)
        port.sent()
        const grace = delay! > HEDGE_CANCEL_GRACE_MS ? delay! : HEDGE_CANCEL_GRACE_MS
        const result = await race(port, context, first, firstRun, hedge, grace)
        if (result !== undefined) return result.value
        continue
      }
      // Not sent (no other replica, or the first answered meanwhile): the budget keeps it.
      if (took) hedging.refund()
      outcome = await firstRun
    }
    if (outcome.ok) {
      port.succeeded(context, first)
      return outcome.value
    }
    await port.failed(context, first, outcome.error)
  }
}

/** Reserves the hedge's connection unless the first attempt ends meanwhile (`FIRST_DONE`). */
async function reserveWhile<C, A, T, R>(
  port: HedgePort<C, A, T, R>,
  context: C,
  node: NodeRuntime,
  firstRun: Promise<Settled<T>>,
): Promise<R | typeof FIRST_DONE | undefined> {
  const controller = new AbortController()
  const reserving = port.reserve(context, node, controller.signal)
  const reached = await Promise.race([
    reserving,
    firstRun.then((): typeof FIRST_DONE => FIRST_DONE),
  ])
  if (reached === FIRST_DONE) {
    controller.abort()
    void reserving.then((reserved) => {
      if (reserved !== undefined) port.unreserve(reserved)
    })
  }
  return reached
}

/**
 * The two attempts race: the first success wins and the other is abandoned. A failure waits for
 * the other attempt; the retry policy sees only the last failure (the first is accounted). Returns
 * the winner's result, or `undefined` when both failed and the statement was re-planned.
 */
async function race<C, A, T, R>(
  port: HedgePort<C, A, T, R>,
  context: C,
  first: A,
  firstRun: Promise<Settled<T>>,
  hedge: A,
  graceMs: number,
): Promise<{ readonly value: T } | undefined> {
  const hedgeRun = settle(port.run(context, hedge))
  const done = await Promise.race([
    firstRun.then((outcome) => ({ outcome, hedgeFirst: false })),
    hedgeRun.then((outcome) => ({ outcome, hedgeFirst: true })),
  ])
  const [winner, loser, loserRun] = done.hedgeFirst
    ? [hedge, first, firstRun]
    : [first, hedge, hedgeRun]
  if (done.outcome.ok) {
    port.succeeded(context, winner)
    port.abandon(context, loser, loserRun, graceMs)
    if (done.hedgeFirst) port.won()
    return { value: done.outcome.value }
  }
  if (port.gaveUp(context)) {
    // The caller gave up (a cancel reached the first attempt, or its signal ended one): the
    // other is cancelled now instead of running on to its end on its server.
    port.abandon(context, loser, loserRun, 0)
    await port.failed(context, winner, done.outcome.error)
    return undefined
  }
  // One failed: accounted and released; whether to retry is decided on the other's outcome.
  await port.failed(context, winner, done.outcome.error).catch(() => undefined)
  const other = await loserRun
  if (other.ok) {
    port.succeeded(context, loser)
    if (!done.hedgeFirst) port.won()
    return { value: other.value }
  }
  await port.failed(context, loser, other.error)
  return undefined
}
