import {
  type Classification,
  type ClassificationReason,
  type ClassifyOptions,
  READ,
  READ_OF_SESSION,
} from './classification.js'
import {
  primaryFunctionEffect,
  SESSION_PINNING_FUNCTIONS,
  SESSION_READING_FUNCTIONS,
} from './primary-functions.js'
import type { StatementEffect } from './statement-effect.js'

export type TransactionControl = NonNullable<Classification['transactionControl']>

/** The weight of each reason: the heaviest one found is reported (see `ClassificationReason`). */
const RANK: Readonly<Record<ClassificationReason, number>> = {
  read: 0,
  'locking-read': 1,
  'primary-function': 2,
  'transaction-control': 3,
  'session-state': 4,
  write: 5,
  unclassified: 6,
}

/**
 * The signals of one statement (or of several, for raw text), accumulated into a
 * `Classification`. Both classifiers mark what they find here, so that the same signals give the
 * same classification whatever order they are found in: the heaviest reason wins (the first of
 * equal ones), pinning and session reads add up, and the effect follows the part-counting rule of
 * `StatementEffect`. Internal to `src/routing`.
 */
export class Verdict {
  read = true
  reason: ClassificationReason = 'read'
  detail: string | undefined = undefined
  pins = false
  readsSession = false
  tc: TransactionControl | undefined = undefined
  #rank = 0
  /** The effect of the first data-changing part. */
  #firstEffect: StatementEffect = 'none'
  #parts = 0
  #unknown = false

  /**
   * Records a reason to run on the primary. `effect` other than `'none'` is a data-changing part
   * of the statement; `tc` is raw transaction control (a savepoint never overrides begin or end).
   */
  mark(
    reason: ClassificationReason,
    detail: string | undefined,
    pins: boolean,
    effect: StatementEffect = 'none',
    tc?: TransactionControl,
  ): void {
    const rank = RANK[reason]
    if (rank > this.#rank) {
      this.#rank = rank
      this.read = false
      this.reason = reason
      this.detail = detail
    }
    if (pins) this.pins = true
    if (effect !== 'none') this.part(effect)
    if (tc !== undefined && (tc !== 'savepoint' || this.tc === undefined)) this.tc = tc
  }

  /**
   * A call of function `name` (lower-case, unqualified): a primary-only function (which may pin
   * the session and may change data), a function reading the session, or neither.
   */
  call(name: string, options: ClassifyOptions): void {
    if (SESSION_READING_FUNCTIONS.has(name)) this.readsSession = true
    if (options.primaryFunctions.has(name)) {
      this.mark(
        'primary-function',
        name,
        SESSION_PINNING_FUNCTIONS.has(name),
        primaryFunctionEffect(name, options.flavor),
      )
    }
  }

  /** A data-changing part (see `StatementEffect`). */
  part(effect: StatementEffect): void {
    if (effect === 'unknown') this.#unknown = true
    else if (this.#parts++ === 0) this.#firstEffect = effect
  }

  get effect(): StatementEffect {
    if (this.#unknown) return 'unknown'
    if (this.#parts > 1) return 'write'
    return this.#firstEffect
  }

  result(): Classification {
    if (this.read) return this.readsSession ? READ_OF_SESSION : READ
    return build(this, this.pins, this.readsSession, this.tc, this.effect)
  }

  /**
   * Combines two readings of one ambiguous text (strings read with and without backslash
   * escapes): a read only when both are; otherwise the heavier reading's reason (the first's when
   * equal), pinning and session reads if either has them, and an effect that covers both.
   */
  static either(first: Verdict, second: Verdict): Classification {
    if (first.read && second.read) {
      return first.readsSession || second.readsSession ? READ_OF_SESSION : READ
    }
    const base = second.#rank > first.#rank ? second : first
    const a = first.effect
    const b = second.effect
    const effect =
      a === b
        ? a
        : a === 'unknown' || b === 'unknown'
          ? 'unknown'
          : a === 'none'
            ? b
            : b === 'none'
              ? a
              : 'write'
    return build(
      base,
      first.pins || second.pins,
      first.readsSession || second.readsSession,
      first.tc ?? second.tc,
      effect,
    )
  }
}

function build(
  base: Verdict,
  pinsSession: boolean,
  readsSession: boolean,
  transactionControl: TransactionControl | undefined,
  effect: StatementEffect,
): Classification {
  const result: {
    read: boolean
    reason: ClassificationReason
    effect: StatementEffect
    pinsSession: boolean
    readsSession: boolean
    transactionControl?: TransactionControl
    detail?: string
  } = { read: false, reason: base.reason, effect, pinsSession, readsSession }
  if (transactionControl !== undefined) result.transactionControl = transactionControl
  if (base.detail !== undefined) result.detail = base.detail
  return result
}
