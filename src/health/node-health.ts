import type { NodeState } from '../core/contracts/events.js'

/** Settings of the health state machine (milliseconds). */
export interface HealthSettings {
  readonly cooldownMs: number
  readonly maxCooldownMs: number
  readonly maxReplicationLagMs: number | undefined
}

/** What a transition asks the caller to report. */
export type HealthTransition =
  | { readonly type: 'down'; readonly retryInMs: number }
  | { readonly type: 'up' }
  | { readonly type: 'lag-exceeded'; readonly lagMs: number | null }
  | { readonly type: 'lag-recovered'; readonly lagMs: number }
  | undefined

/** Consecutive failures after which a cooling-down node is reported `down`. */
const DOWN_AFTER_FAILURES = 3

/**
 * The health state machine of one replica. Pure: the caller passes the clock and the random
 * source, and reports transitions itself.
 *
 * - `healthy`: used for reads.
 * - `cooling-down`: a connection-level failure; not used until `nextAttemptAtMs`, then half-open:
 *   one trial (a probe or a query) decides. Backoff doubles per consecutive failure, with jitter,
 *   from `cooldownMs` up to `maxCooldownMs`.
 * - `down`: the same once {@link DOWN_AFTER_FAILURES} attempts in a row failed (the first failure,
 *   then failed trials; failures of queries already in flight do not count).
 * - `lagging`: reachable, but behind by more than `maxReplicationLagMs` (or replication stopped).
 */
export class NodeHealth {
  readonly #settings: HealthSettings
  #state: NodeState = 'healthy'
  #failures = 0
  #nextAttemptAtMs: number | undefined
  #trialInFlight = false
  #lagMs: number | null | undefined
  #lagging = false

  constructor(settings: HealthSettings) {
    this.#settings = settings
  }

  get state(): NodeState {
    return this.#state
  }

  get lagMs(): number | null | undefined {
    return this.#lagMs
  }

  get nextAttemptAtMs(): number | undefined {
    return this.#failures > 0 ? this.#nextAttemptAtMs : undefined
  }

  get consecutiveFailures(): number {
    return this.#failures
  }

  /** Whether the node takes reads now (healthy: no failure since its last success, not lagging). */
  usable(): boolean {
    if (this.#failures === 0) {
      return !this.#lagging
    }
    return false
  }

  /** Whether a trial (half-open probe or query) may be sent now; claims it when so. */
  claimTrial(nowMs: number): boolean {
    if (this.#failures === 0 || this.#trialInFlight) {
      return false
    }
    if (this.#nextAttemptAtMs !== undefined && nowMs >= this.#nextAttemptAtMs) {
      this.#trialInFlight = true
      return true
    }
    return false
  }

  /**
   * A connection-level failure (of a query or a probe). Failures that arrive while the node is
   * already cooling down (queries that were in flight when it died) do not escalate the backoff:
   * only a failed trial after the wait does. Otherwise a replica killed under load would reach
   * the longest backoff within milliseconds and stay unused long after it is back.
   */
  onFailure(nowMs: number, random: () => number): HealthTransition {
    const wasTrial = this.#trialInFlight
    this.#trialInFlight = false
    if (
      !wasTrial &&
      this.#failures > 0 &&
      this.#nextAttemptAtMs !== undefined &&
      nowMs < this.#nextAttemptAtMs
    ) {
      return undefined
    }
    const wasUp = this.#failures === 0
    this.#failures++
    const base = Math.min(
      this.#settings.maxCooldownMs,
      this.#settings.cooldownMs * 2 ** Math.min(this.#failures - 1, 30),
    )
    // Full jitter on the upper half: spreads retries of many processes, never below half the backoff.
    const retryInMs = base / 2 + (base / 2) * random()
    this.#nextAttemptAtMs = nowMs + retryInMs
    this.#state = this.#failures >= DOWN_AFTER_FAILURES ? 'down' : 'cooling-down'
    return wasUp ? { type: 'down', retryInMs } : undefined
  }

  /** A successful query or probe. */
  onSuccess(): HealthTransition {
    this.#trialInFlight = false
    if (this.#failures === 0) {
      return undefined
    }
    this.#failures = 0
    this.#nextAttemptAtMs = undefined
    this.#state = this.#lagging ? 'lagging' : 'healthy'
    return { type: 'up' }
  }

  /** A lag reading from a probe: milliseconds, or `null` when replication is stopped. */
  onLag(lagMs: number | null): HealthTransition {
    this.#lagMs = lagMs
    const limit = this.#settings.maxReplicationLagMs
    const tooFar = lagMs === null || (limit !== undefined && lagMs > limit)
    if (tooFar && !this.#lagging) {
      this.#lagging = true
      if (this.#failures === 0) this.#state = 'lagging'
      return { type: 'lag-exceeded', lagMs }
    }
    if (!tooFar && this.#lagging) {
      this.#lagging = false
      if (this.#failures === 0) this.#state = 'healthy'
      return { type: 'lag-recovered', lagMs: lagMs as number }
    }
    return undefined
  }
}
