import { expect } from 'chai'
import fc from 'fast-check'
import { DEFAULT_MEDIAN_SLOTS } from '../../src/health/latency-median.js'
import { NO_HISTORY_PENALTY_MS, NodeLoad, peakEwmaLoad } from '../../src/health/node-load.js'
import { PeakEwma } from '../../src/health/peak-ewma.js'
import { BUILT_IN_SELECTOR_NAMES, createSelector } from '../../src/selection/create-selector.js'
import { LeastLatencySelector } from '../../src/selection/least-latency.js'
import { P2cEwmaSelector } from '../../src/selection/p2c-ewma.js'
import { RandomSelector } from '../../src/selection/random.js'
import type {
  ReplicaCandidate,
  ReplicaLoadView,
  ReplicaSelector,
  SelectionContext,
} from '../../src/selection/replica-selector.js'
import { RoundRobinSelector } from '../../src/selection/round-robin.js'
import { WeightedSelector } from '../../src/selection/weighted.js'
import { mulberry32 } from '../support/seeded-random.js'

interface FakeStats extends ReplicaLoadView {
  inFlight: number
  lastProbeRttMs: number | undefined
  estimateMs: number | undefined
  pendingMs: number
}

function stats(
  init: Partial<Omit<FakeStats, 'latencyEstimateMs' | 'pendingAgeMs'>> = {},
): FakeStats {
  return {
    inFlight: init.inFlight ?? 0,
    lastProbeRttMs: init.lastProbeRttMs,
    estimateMs: init.estimateMs,
    pendingMs: init.pendingMs ?? 0,
    pendingAgeMs(): number {
      return this.pendingMs
    },
    latencyEstimateMs(): number | undefined {
      return this.estimateMs
    },
  }
}

function candidate(
  name: string,
  init: Partial<Omit<FakeStats, 'latencyEstimateMs'>> & { weight?: number } = {},
  index = 0,
): ReplicaCandidate & { stats: FakeStats } {
  return { name, index, weight: init.weight ?? 1, stats: stats(init) }
}

function candidates(count: number): ReplicaCandidate[] {
  return Array.from({ length: count }, (_, i) => candidate(`r${i}`, {}, i))
}

function context(seed = 1, nowMs = 0): SelectionContext & { nowMs: number } {
  return { nowMs, random: mulberry32(seed) }
}

function tally(
  selector: ReplicaSelector,
  list: readonly ReplicaCandidate[],
  picks: number,
  ctx: SelectionContext = context(),
): Map<string, number> {
  const counts = new Map<string, number>(list.map((c) => [c.name, 0]))
  for (let k = 0; k < picks; k++) {
    const picked = selector.select(list, ctx)
    if (picked === undefined) throw new Error('selector declined')
    counts.set(picked.name, (counts.get(picked.name) ?? 0) + 1)
  }
  return counts
}

/** Pearson's chi-square statistic of observed counts against expected probabilities. */
function chiSquare(observed: readonly number[], probabilities: readonly number[]): number {
  const total = observed.reduce((a, b) => a + b, 0)
  let x2 = 0
  for (let i = 0; i < observed.length; i++) {
    const expected = probabilities[i]! * total
    x2 += (observed[i]! - expected) ** 2 / expected
  }
  return x2
}

describe('RoundRobinSelector', () => {
  it('cycles through the candidates in order, evenly', () => {
    const list = candidates(3)
    const selector = new RoundRobinSelector()
    const ctx = context()
    const names = Array.from({ length: 7 }, () => selector.select(list, ctx)?.name)
    expect(names).to.deep.equal(['r0', 'r1', 'r2', 'r0', 'r1', 'r2', 'r0'])
    const counts = tally(new RoundRobinSelector(), list, 3_000)
    expect([...counts.values()]).to.deep.equal([1_000, 1_000, 1_000])
  })

  it('keeps returning candidates of the current array when the array shrinks or grows', () => {
    const selector = new RoundRobinSelector()
    const ctx = context()
    const five = candidates(5)
    for (let k = 0; k < 4; k++) selector.select(five, ctx)
    const two = five.slice(0, 2)
    const picked = [selector.select(two, ctx), selector.select(two, ctx), selector.select(two, ctx)]
    for (const c of picked) expect(two).to.include(c)
    expect(new Set(picked.map((c) => c?.name)).size).to.equal(2)
    expect(five).to.include(selector.select(five, ctx))
  })
})

describe('RandomSelector', () => {
  it('picks uniformly (chi-square over 100k picks at a fixed seed)', () => {
    const list = candidates(10)
    const counts = tally(new RandomSelector(), list, 100_000, context(7))
    // 99.9th percentile of chi-square with 9 degrees of freedom.
    expect(chiSquare([...counts.values()], Array(10).fill(0.1))).to.be.below(27.88)
  })

  it('picks with context.random, so a fixed seed gives a fixed sequence', () => {
    const list = candidates(8)
    const ctxA = context(3)
    const ctxB = context(3)
    const selector = new RandomSelector()
    const first = Array.from({ length: 50 }, () => selector.select(list, ctxA)?.name)
    const second = Array.from({ length: 50 }, () => selector.select(list, ctxB)?.name)
    expect(first).to.deep.equal(second)
  })
})

describe('WeightedSelector', () => {
  it('picks in proportion to weight (1 and 3: 25% / 75%)', () => {
    const list = [candidate('light', { weight: 1 }, 0), candidate('heavy', { weight: 3 }, 1)]
    const counts = tally(new WeightedSelector(), list, 100_000, context(11))
    expect(counts.get('light')! / 100_000).to.be.closeTo(0.25, 0.015)
    expect(counts.get('heavy')! / 100_000).to.be.closeTo(0.75, 0.015)
  })

  it('matches 1024 random weights (chi-square, fixed seed), and the check rejects uniform picks', () => {
    const picks = 400_000
    const n = 1024
    // Mean + 6 standard deviations of chi-square with n - 1 degrees of freedom.
    const bound = n - 1 + 6 * Math.sqrt(2 * (n - 1))
    fc.assert(
      fc.property(
        fc.array(fc.double({ min: 1, max: 100, noNaN: true }), { minLength: n, maxLength: n }),
        fc.integer(),
        (weights, seed) => {
          const list = weights.map((weight, i) => candidate(`r${i}`, { weight }, i))
          const total = weights.reduce((a, b) => a + b, 0)
          const p = weights.map((w) => w / total)
          const counts = tally(new WeightedSelector(), list, picks, context(seed))
          expect(chiSquare([...counts.values()], p)).to.be.below(bound)

          const uniform = tally(new RandomSelector(), list, picks, context(seed))
          expect(chiSquare([...uniform.values()], p)).to.be.above(bound)
        },
      ),
      { seed: 424_242, numRuns: 3, endOnFailure: true },
    )
  })

  it('never picks a candidate whose weight is not a positive finite number', () => {
    const list = [
      candidate('zero', { weight: 0 }, 0),
      candidate('ok', { weight: 2 }, 1),
      candidate('nan', { weight: Number.NaN }, 2),
      candidate('negative', { weight: -1 }, 3),
    ]
    const counts = tally(new WeightedSelector(), list, 10_000, context(5))
    expect(counts.get('ok')).to.equal(10_000)
  })

  it('builds a new table when the candidates array changes', () => {
    const selector = new WeightedSelector()
    const a = candidate('a', { weight: 1 }, 0)
    const b = candidate('b', { weight: 1 }, 1)
    const both = [a, b]
    tally(selector, both, 100, context(1))
    const onlyB = [b]
    expect(tally(selector, onlyB, 100, context(2)).get('b')).to.equal(100)
    const skewed = [candidate('a', { weight: 9 }, 0), candidate('b', { weight: 1 }, 1)]
    const counts = tally(selector, skewed, 20_000, context(3))
    expect(counts.get('a')! / 20_000).to.be.closeTo(0.9, 0.015)
  })
})

describe('LeastLatencySelector', () => {
  it('picks the candidate with the lowest probe round trip', () => {
    const list = [
      candidate('a', { lastProbeRttMs: 3 }, 0),
      candidate('b', { lastProbeRttMs: 0.4 }, 1),
      candidate('c', { lastProbeRttMs: 1 }, 2),
    ]
    expect(new LeastLatencySelector().select(list, context())?.name).to.equal('b')
  })

  it('falls back to the latency estimate for a candidate without probes', () => {
    const list = [
      candidate('a', { lastProbeRttMs: 3 }, 0),
      candidate('b', { estimateMs: 2 }, 1),
      candidate('c', {}, 2),
    ]
    expect(new LeastLatencySelector().select(list, context())?.name).to.equal('b')
  })

  it('keeps the winner for the TTL even when another candidate gets faster', () => {
    const a = candidate('a', { lastProbeRttMs: 1 }, 0)
    const b = candidate('b', { lastProbeRttMs: 2 }, 1)
    const list = [a, b]
    const selector = new LeastLatencySelector({ ttlMs: 1_000 })
    const ctx = context(1, 0)
    expect(selector.select(list, ctx)?.name).to.equal('a')
    b.stats.lastProbeRttMs = 0.1
    ctx.nowMs = 999
    expect(selector.select(list, ctx)?.name).to.equal('a')
  })

  it('compares again once the TTL has expired', () => {
    const a = candidate('a', { lastProbeRttMs: 1 }, 0)
    const b = candidate('b', { lastProbeRttMs: 2 }, 1)
    const list = [a, b]
    const selector = new LeastLatencySelector({ ttlMs: 1_000 })
    const ctx = context(1, 0)
    expect(selector.select(list, ctx)?.name).to.equal('a')
    b.stats.lastProbeRttMs = 0.1
    ctx.nowMs = 1_000
    expect(selector.select(list, ctx)?.name).to.equal('b')
  })

  it('compares again within the TTL when the winner is no longer a candidate', () => {
    const a = candidate('a', { lastProbeRttMs: 1 }, 0)
    const b = candidate('b', { lastProbeRttMs: 2 }, 1)
    const c = candidate('c', { lastProbeRttMs: 3 }, 2)
    const selector = new LeastLatencySelector({ ttlMs: 1_000 })
    const ctx = context(1, 0)
    expect(selector.select([a, b, c], ctx)?.name).to.equal('a')
    ctx.nowMs = 10
    expect(selector.select([b, c], ctx)?.name).to.equal('b')
  })

  it('keeps the winner when the array changes but still holds it', () => {
    const a = candidate('a', { lastProbeRttMs: 1 }, 0)
    const b = candidate('b', { lastProbeRttMs: 2 }, 1)
    const c = candidate('c', { lastProbeRttMs: 3 }, 2)
    const selector = new LeastLatencySelector({ ttlMs: 1_000 })
    const ctx = context(1, 0)
    expect(selector.select([a, b], ctx)?.name).to.equal('a')
    b.stats.lastProbeRttMs = 0.1
    expect(selector.select([c, b, a], ctx)?.name).to.equal('a')
  })

  it('takes the candidates in turn while none has latency data', () => {
    const list = candidates(3)
    const selector = new LeastLatencySelector()
    const ctx = context()
    const names = Array.from({ length: 6 }, () => selector.select(list, ctx)?.name)
    expect(names).to.deep.equal(['r0', 'r1', 'r2', 'r0', 'r1', 'r2'])
  })

  it('skips candidates without data when another has data', () => {
    const list = [candidate('new', {}, 0), candidate('known', { lastProbeRttMs: 50 }, 1)]
    expect(new LeastLatencySelector().select(list, context())?.name).to.equal('known')
  })

  it('examines at most sampleSize candidates per comparison', () => {
    const reads = { count: 0 }
    const list = Array.from({ length: 100 }, (_, i) => countingCandidate(i, reads, i + 1, 0))
    const selector = new LeastLatencySelector({ ttlMs: 1_000, sampleSize: 8 })
    const ctx = context(9, 0)
    const seen = new Set<string>()
    for (let k = 0; k < 50; k++) {
      reads.count = 0
      ctx.nowMs += 1_000
      const picked = selector.select(list, ctx)!
      // `stats` and `lastProbeRttMs` per examined candidate, and the winner's name.
      expect(reads.count).to.be.at.most(2 * 8 + 1)
      seen.add(picked.name)
    }
    // Random windows: the winner differs between comparisons; without sampling it is always r0.
    expect(seen.size).to.be.greaterThan(1)
    reads.count = 0
    ctx.nowMs += 1_000
    expect(new LeastLatencySelector().select(list, ctx)?.name).to.equal('r0')
    expect(reads.count).to.be.at.least(100)
  })
})

describe('P2cEwmaSelector', () => {
  it('prefers the candidate with the lower latency estimate', () => {
    const list = [
      candidate('slow', { estimateMs: 50 }, 0),
      candidate('fast', { estimateMs: 10 }, 1),
    ]
    const counts = tally(new P2cEwmaSelector(), list, 1_000, context(2))
    expect(counts.get('fast')).to.equal(1_000)
  })

  it('avoids a fast candidate with many queries in flight', () => {
    const list = [
      candidate('busy', { estimateMs: 10, inFlight: 20 }, 0), // load 210
      candidate('idle', { estimateMs: 50, inFlight: 0 }, 1), // load 50
    ]
    const counts = tally(new P2cEwmaSelector(), list, 1_000, context(3))
    expect(counts.get('idle')).to.equal(1_000)
  })

  it('tries a never-seen candidate when it has nothing in flight', () => {
    const list = [candidate('known', { estimateMs: 1 }, 0), candidate('new', {}, 1)]
    const counts = tally(new P2cEwmaSelector(), list, 100, context(4))
    expect(counts.get('new')).to.equal(100)
  })

  it('does not flood a never-seen candidate that already has a query in flight', () => {
    const list = [
      candidate('known', { estimateMs: 500, inFlight: 10 }, 0),
      candidate('new', { inFlight: 1 }, 1),
    ]
    expect(NO_HISTORY_PENALTY_MS).to.be.greaterThan(500 * 11)
    const counts = tally(new P2cEwmaSelector(), list, 100, context(4))
    expect(counts.get('known')).to.equal(100)
  })

  it('never picks the most loaded of several candidates, and favours the least loaded', () => {
    const list = [
      candidate('c1', { estimateMs: 1 }, 0),
      candidate('c2', { estimateMs: 2 }, 1),
      candidate('c3', { estimateMs: 3 }, 2),
    ]
    const counts = tally(new P2cEwmaSelector(), list, 30_000, context(5))
    expect(counts.get('c3')).to.equal(0)
    // c1 wins both pairs it is drawn in (2 of 3 pairs), c2 the remaining one.
    expect(counts.get('c1')! / 30_000).to.be.closeTo(2 / 3, 0.015)
  })

  it('breaks ties at random', () => {
    const list = [candidate('a', { estimateMs: 5 }, 0), candidate('b', { estimateMs: 5 }, 1)]
    const counts = tally(new P2cEwmaSelector(), list, 10_000, context(6))
    expect(counts.get('a')! / 10_000).to.be.closeTo(0.5, 0.02)
  })

  it('returns the only candidate', () => {
    const only = candidate('only', { estimateMs: 1e9, inFlight: 100 }, 0)
    expect(new P2cEwmaSelector().select([only], context())).to.equal(only)
  })

  it("follows each node's own decay time: the load metric owns it, not the selector", () => {
    // 'quick' forgets its slow sample within seconds, 'slow' keeps its faster one for minutes.
    const quick = new NodeLoad({ decayMs: 1_000 })
    const slow = new NodeLoad({ decayMs: 100_000 })
    quick.recordProbe(100, 0)
    slow.recordProbe(50, 0)
    const list: ReplicaCandidate[] = [
      { name: 'quick', weight: 1, index: 0, stats: quick },
      { name: 'slow', weight: 1, index: 1, stats: slow },
    ]
    const selector = new P2cEwmaSelector()
    expect(tally(selector, list, 100, context(7, 0)).get('slow')).to.equal(100)
    // 5 s later: 100 × e^-5 ≈ 0.7 against 50 × e^-0.05 ≈ 47.6.
    expect(tally(selector, list, 100, context(7, 5_000)).get('quick')).to.equal(100)
  })
})

describe('P2cEwmaSelector over NodeLoad (the default latency estimate)', () => {
  /** Two replicas with a history: `fast` answers in `fastMs`, `slow` in `slowMs`, every 5 ms. */
  function twoReplicas(
    fastMs: number,
    slowMs: number,
  ): {
    fast: NodeLoad
    slow: NodeLoad
    list: ReplicaCandidate[]
    nowMs: number
  } {
    const fast = new NodeLoad()
    const slow = new NodeLoad()
    let t = 0
    for (let k = 0; k < 40; k++, t += 5) {
      fast.start(t)
      fast.finish(fastMs, t + fastMs, true)
      slow.start(t)
      slow.finish(slowMs, t + slowMs, true)
    }
    const list: ReplicaCandidate[] = [
      { name: 'fast', weight: 1, index: 0, stats: fast },
      { name: 'slow', weight: 1, index: 1, stats: slow },
    ]
    return { fast, slow, list, nowMs: t + slowMs }
  }

  it('keeps preferring the faster replica after a client stall delayed every reply on both', () => {
    const { fast, slow, list, nowMs } = twoReplicas(2, 20)
    // 8 queries in flight on each when the event loop stalls 100 ms: all come back 100 ms late.
    for (let q = 0; q < 8; q++) {
      fast.start(nowMs)
      slow.start(nowMs)
    }
    const end = nowMs + 100
    for (let q = 0; q < 8; q++) {
      fast.finish(100, end + q * 0.1, true)
      slow.finish(100, end + q * 0.1 + 0.05, true)
    }
    // Three queries still in flight on the fast one: 2 ms × 4 against 20 ms × 1.
    for (let q = 0; q < 3; q++) fast.start(end + 1)
    expect(tally(new P2cEwmaSelector(), list, 100, context(8, end + 1)).get('fast')).to.equal(100)

    // (The failure it prevents) with the peak-EWMA, both estimates are the stall's 100 ms and
    // the query count decides: 100 × 4 against 100 × 1.
    const peakFast = new NodeLoad({ estimator: new PeakEwma() })
    const peakSlow = new NodeLoad({ estimator: new PeakEwma() })
    for (const [load, ms] of [
      [peakFast, 2],
      [peakSlow, 20],
    ] as const) {
      load.start(0)
      load.finish(ms, ms, true)
      load.start(ms)
      load.finish(100, ms + 100, true)
    }
    for (let q = 0; q < 3; q++) peakFast.start(121)
    const peakList: ReplicaCandidate[] = [
      { name: 'fast', weight: 1, index: 0, stats: peakFast },
      { name: 'slow', weight: 1, index: 1, stats: peakSlow },
    ]
    expect(tally(new P2cEwmaSelector(), peakList, 100, context(8, 121)).get('slow')).to.equal(100)
  })

  /**
   * Feeds `changing` replies of `ms` (and `steady` its usual 5 ms ones alongside) until every
   * pick goes to `winner`: how many replies of `changing` that took.
   */
  function repliesUntil(
    replicas: ReturnType<typeof twoReplicas>,
    changing: NodeLoad,
    ms: number,
    winner: string,
  ): number {
    const { list, fast } = replicas
    let t = replicas.nowMs
    let replies = 0
    const selector = new P2cEwmaSelector()
    while (tally(selector, list, 20, context(9, t)).get(winner)! < 20 && replies < 100) {
      changing.start(t)
      fast.start(t)
      t += Math.max(ms, 5)
      changing.finish(ms, t, true)
      fast.finish(5, t, true)
      replies += 1
    }
    return replies
  }

  it('moves reads off a replica whose slowdown persists after half the window, not before', () => {
    const replicas = twoReplicas(5, 5)
    // 16 slots: the 9th slow reply makes them the majority (the 8th ties the median at 17.5 ms,
    // which already loses to 5 ms).
    const replies = repliesUntil(replicas, replicas.slow, 30, 'fast')
    expect(replies).to.be.within(DEFAULT_MEDIAN_SLOTS / 2, DEFAULT_MEDIAN_SLOTS / 2 + 1)
  })

  it('gives reads back to a replica whose slowdown ended within half the window', () => {
    const replicas = twoReplicas(5, 40)
    const replies = repliesUntil(replicas, replicas.slow, 2, 'slow')
    expect(replies).to.be.within(DEFAULT_MEDIAN_SLOTS / 2, DEFAULT_MEDIAN_SLOTS / 2 + 1)
  })

  it('gives reads to a replica at once when it comes back from an outage (recover)', () => {
    const { slow, list, nowMs } = twoReplicas(5, 5_000)
    slow.recover(0.5, nowMs)
    expect(tally(new P2cEwmaSelector(), list, 20, context(11, nowMs)).get('slow')).to.equal(20)
  })

  it('tries a replica without history, one query at a time', () => {
    const { list, nowMs } = twoReplicas(1, 1)
    const fresh = new NodeLoad()
    const withFresh = [list[0]!, { name: 'fresh', weight: 1, index: 2, stats: fresh }]
    const selector = new P2cEwmaSelector()
    expect(selector.select(withFresh, context(12, nowMs))?.name).to.equal('fresh')
    fresh.start(nowMs)
    expect(tally(selector, withFresh, 20, context(12, nowMs)).get('fresh')).to.equal(0)
    expect(peakEwmaLoad(fresh, nowMs)).to.equal(NO_HISTORY_PENALTY_MS)
  })
})

describe('createSelector', () => {
  it('defaults to p2c-ewma', () => {
    expect(createSelector(undefined)).to.be.instanceOf(P2cEwmaSelector)
  })

  it('builds each built-in selector by name', () => {
    expect(createSelector('round-robin')).to.be.instanceOf(RoundRobinSelector)
    expect(createSelector('random')).to.be.instanceOf(RandomSelector)
    expect(createSelector('weighted')).to.be.instanceOf(WeightedSelector)
    expect(createSelector('least-latency')).to.be.instanceOf(LeastLatencySelector)
    expect(createSelector('p2c-ewma')).to.be.instanceOf(P2cEwmaSelector)
    expect(BUILT_IN_SELECTOR_NAMES).to.deep.equal([
      'round-robin',
      'random',
      'weighted',
      'least-latency',
      'p2c-ewma',
    ])
  })

  it('passes the options on', () => {
    const a = candidate('a', { lastProbeRttMs: 1 }, 0)
    const b = candidate('b', { lastProbeRttMs: 2 }, 1)
    const selector = createSelector('least-latency', { latency: { ttlMs: 5 } })
    const ctx = context(1, 0)
    expect(selector.select([a, b], ctx)?.name).to.equal('a')
    b.stats.lastProbeRttMs = 0.5
    ctx.nowMs = 5
    expect(selector.select([a, b], ctx)?.name).to.equal('b')
  })

  it('returns a user selector object as is', () => {
    const custom: ReplicaSelector = { select: (list) => list[0] }
    expect(createSelector(custom)).to.equal(custom)
  })
})

const factories: ReadonlyArray<readonly [string, () => ReplicaSelector]> = [
  ['round-robin', () => new RoundRobinSelector()],
  ['random', () => new RandomSelector()],
  ['weighted', () => new WeightedSelector()],
  ['least-latency', () => new LeastLatencySelector({ ttlMs: 1_000 })],
  ['least-latency (sampleSize 4)', () => new LeastLatencySelector({ ttlMs: 50, sampleSize: 4 })],
  ['p2c-ewma', () => new P2cEwmaSelector()],
]

describe('every built-in selector', () => {
  const anyNumber = fc.oneof(fc.double(), fc.double({ min: 0, max: 1e4, noNaN: true }))
  const candidateArb = fc.record({
    weight: anyNumber,
    inFlight: fc.nat(1_000),
    lastProbeRttMs: fc.option(anyNumber, { nil: undefined }),
    estimateMs: fc.option(anyNumber, { nil: undefined }),
  })
  const listsArb = fc.array(fc.array(candidateArb, { minLength: 1, maxLength: 64 }), {
    minLength: 1,
    maxLength: 4,
  })
  const stepsArb = fc.array(
    fc.record({ list: fc.nat(), dt: fc.integer({ min: 0, max: 3_000 }), mutate: fc.boolean() }),
    { minLength: 1, maxLength: 40 },
  )

  for (const [name, make] of factories) {
    it(`${name}: only ever returns an element of the candidates array`, () => {
      fc.assert(
        fc.property(listsArb, stepsArb, fc.integer(), (specs, steps, seed) => {
          const lists = specs.map((spec) =>
            spec.map((s, i) => candidate(`r${i}`, s, i) as ReplicaCandidate & { stats: FakeStats }),
          )
          const selector = make()
          const ctx = context(seed, 0)
          const random = mulberry32(seed ^ 0x5bd1e995)
          for (const step of steps) {
            const list = lists[step.list % lists.length]!
            ctx.nowMs += step.dt
            if (step.mutate) {
              const victim = list[Math.floor(random() * list.length)]!
              victim.stats.lastProbeRttMs = random() * 10
              victim.stats.inFlight = Math.floor(random() * 5)
            }
            const picked = selector.select(list, ctx)
            expect(picked).not.to.equal(undefined)
            expect(list).to.include(picked)
          }
        }),
        { seed: 8_675_309, numRuns: 150 },
      )
    })

    it(`${name}: returns undefined for an empty array, before and after other picks`, () => {
      const selector = make()
      const ctx = context()
      expect(selector.select([], ctx)).to.equal(undefined)
      const list = [candidate('a', { lastProbeRttMs: 1, estimateMs: 1 }, 0)]
      expect(selector.select(list, ctx)).to.equal(list[0])
      expect(selector.select([], ctx)).to.equal(undefined)
    })
  }
})

/** A candidate whose every property and stats accessor read is counted. */
function countingCandidate(
  index: number,
  reads: { count: number },
  probeMs: number,
  inFlight: number,
): ReplicaCandidate {
  const view: ReplicaLoadView = {
    get inFlight() {
      reads.count += 1
      return inFlight
    },
    get lastProbeRttMs() {
      reads.count += 1
      return probeMs
    },
    latencyEstimateMs() {
      reads.count += 1
      return probeMs
    },
    pendingAgeMs() {
      reads.count += 1
      return 0
    },
  }
  return {
    get name() {
      reads.count += 1
      return `r${index}`
    },
    get weight() {
      reads.count += 1
      return 1 + (index % 7)
    },
    get index() {
      reads.count += 1
      return index
    },
    get stats() {
      reads.count += 1
      return view
    },
  }
}

describe('selection cost', () => {
  const n = 1_024
  const picks = 10_000
  const perPick = 8 // a bounded number of accessor reads per pick
  const perCandidate = 4 // accessor reads per candidate in a full pass

  /** Picks `picks` times (1 ms apart) and returns the accessor reads beyond the allowed full passes. */
  function excessReads(selector: ReplicaSelector, fullPasses: number): number {
    const reads = { count: 0 }
    const list = Array.from({ length: n }, (_, i) =>
      countingCandidate(i, reads, 1 + (i % 97), i % 3),
    )
    const ctx = context(13, 0)
    for (let k = 0; k < picks; k++) {
      ctx.nowMs += 1
      expect(selector.select(list, ctx)).not.to.equal(undefined)
    }
    return reads.count - (fullPasses * perCandidate * n + perPick * picks)
  }

  it('round-robin, random and p2c-ewma read a bounded number of figures per pick', () => {
    expect(excessReads(new RoundRobinSelector(), 0)).to.be.at.most(0)
    expect(excessReads(new RandomSelector(), 0)).to.be.at.most(0)
    expect(excessReads(new P2cEwmaSelector(), 0)).to.be.at.most(0)
  })

  it('weighted reads the weights once per candidates array', () => {
    expect(excessReads(new WeightedSelector(), 1)).to.be.at.most(0)
  })

  it('least-latency scans the candidates at most once per TTL', () => {
    // 10 000 ms of picks with a 1 000 ms TTL: the first comparison and one per expiry.
    expect(excessReads(new LeastLatencySelector({ ttlMs: 1_000 }), 11)).to.be.at.most(0)
  })

  it('would catch a selector that scans every candidate on each pick', () => {
    const scanning: ReplicaSelector = {
      select(list, ctx) {
        let best = list[0]
        for (const c of list) {
          if (
            (c.stats.latencyEstimateMs(ctx.nowMs) ?? 0) <
            (best?.stats.latencyEstimateMs(ctx.nowMs) ?? 0)
          ) {
            best = c
          }
        }
        return best
      },
    }
    expect(excessReads(scanning, 11)).to.be.greaterThan(0)
  })
})
