import { expect } from 'chai'
import fc from 'fast-check'
import { ReplicatedConfigError } from '../../src/core/contracts/errors.js'
import { NO_HISTORY_PENALTY_MS, NodeLoad, peakEwmaLoad } from '../../src/health/node-load.js'
import { DEFAULT_DECAY_MS, PeakEwma } from '../../src/health/peak-ewma.js'

describe('PeakEwma', () => {
  it('has no estimate before the first sample', () => {
    const ewma = new PeakEwma()
    expect(ewma.estimate(0)).to.equal(undefined)
    expect(ewma.estimate(1_000_000)).to.equal(undefined)
  })

  it('takes the first sample as the cost', () => {
    const ewma = new PeakEwma()
    ewma.observe(12, 500)
    expect(ewma.estimate(500)).to.equal(12)
  })

  it('jumps to a peak at once, whatever the time since the last sample', () => {
    const ewma = new PeakEwma(10_000)
    ewma.observe(5, 0)
    ewma.observe(400, 1)
    expect(ewma.estimate(1)).to.equal(400)
  })

  it('moves toward a lower sample by w = exp(-Δt/τ)', () => {
    const ewma = new PeakEwma(10_000)
    ewma.observe(100, 0)
    ewma.observe(10, 10_000)
    const w = Math.exp(-1)
    expect(ewma.estimate(10_000)).to.be.closeTo(100 * w + 10 * (1 - w), 1e-9)
    expect(ewma.estimate(10_000)).to.be.closeTo(43.1091, 1e-4)
  })

  it('uses the configured time constant', () => {
    const ewma = new PeakEwma(2_000)
    ewma.observe(80, 1_000)
    ewma.observe(20, 2_000) // Δt = τ/2
    const w = Math.exp(-0.5)
    expect(ewma.estimate(2_000)).to.be.closeTo(80 * w + 20 * (1 - w), 1e-9)
    expect(ewma.decayMs).to.equal(2_000)
  })

  it('defaults to a 10 s time constant', () => {
    expect(DEFAULT_DECAY_MS).to.equal(10_000)
    const ewma = new PeakEwma()
    ewma.observe(100, 0)
    ewma.observe(0, 5_000)
    expect(ewma.estimate(5_000)).to.be.closeTo(100 * Math.exp(-0.5), 1e-9)
  })

  it('ignores a lower sample taken at the same instant (w = 1)', () => {
    const ewma = new PeakEwma()
    ewma.observe(100, 7)
    ewma.observe(1, 7)
    expect(ewma.estimate(7)).to.equal(100)
  })

  it('converges to a steady latency', () => {
    const ewma = new PeakEwma(1_000)
    ewma.observe(500, 0)
    for (let t = 100; t <= 20_000; t += 100) ewma.observe(10, t)
    expect(ewma.estimate(20_000)).to.be.closeTo(10, 1e-5)
  })

  it('decays toward 0 between samples, as Finagle reads its cost, without changing state', () => {
    const ewma = new PeakEwma(10_000)
    ewma.observe(100, 0)
    expect(ewma.estimate(10_000)).to.be.closeTo(100 * Math.exp(-1), 1e-9)
    expect(ewma.estimate(20_000)).to.be.closeTo(100 * Math.exp(-2), 1e-9)

    // Reading did not move the stored cost: the next sample is weighted from the last sample.
    const unread = new PeakEwma(10_000)
    unread.observe(100, 0)
    ewma.observe(10, 10_000)
    unread.observe(10, 10_000)
    expect(ewma.estimate(10_000)).to.equal(unread.estimate(10_000))
  })

  it('treats a clock reading before the last sample as no time elapsed', () => {
    const ewma = new PeakEwma(10_000)
    ewma.observe(100, 5_000)
    expect(ewma.estimate(4_000)).to.equal(100)
    ewma.observe(10, 1_000)
    expect(ewma.estimate(5_000)).to.equal(100)
  })

  it('ignores non-finite samples and counts negative ones as 0', () => {
    const ewma = new PeakEwma(10_000)
    ewma.observe(Number.NaN, 0)
    ewma.observe(Number.POSITIVE_INFINITY, 0)
    expect(ewma.estimate(0)).to.equal(undefined)
    ewma.observe(-5, 0)
    expect(ewma.estimate(0)).to.equal(0)
  })

  it('rejects a time constant that is not a positive finite number', () => {
    for (const bad of [0, -1, Number.NaN, Number.POSITIVE_INFINITY]) {
      expect(() => new PeakEwma(bad), String(bad)).to.throw(ReplicatedConfigError, /decayMs/)
    }
  })

  it('stays between 0 and the largest sample, and at least the last sample when it is taken', () => {
    const sample = fc.record({
      rtt: fc.double({ min: 0, max: 1e6, noNaN: true }),
      dt: fc.double({ min: 0, max: 1e5, noNaN: true }),
    })
    fc.assert(
      fc.property(fc.array(sample, { minLength: 1, maxLength: 50 }), (samples) => {
        const ewma = new PeakEwma(10_000)
        let t = 0
        let max = 0
        for (const { rtt, dt } of samples) {
          t += dt
          ewma.observe(rtt, t)
          max = Math.max(max, rtt)
          const now = ewma.estimate(t)!
          expect(now).to.be.at.least(rtt * (1 - 1e-12))
          expect(now).to.be.at.most(max * (1 + 1e-12))
        }
      }),
      { seed: 20_240_601, numRuns: 200 },
    )
  })
})

describe('NodeLoad', () => {
  it('counts queries in flight and never goes below zero', () => {
    const load = new NodeLoad()
    load.start(0)
    load.start(0)
    expect(load.inFlight).to.equal(2)
    load.finish(1, 0, true)
    load.finish(1, 0, true)
    load.finish(1, 0, true)
    expect(load.inFlight).to.equal(0)
  })

  it('feeds the latency of a successful query to the estimate and counts it as served', () => {
    const load = new NodeLoad({ decayMs: 1_000 })
    expect(load.latencyEstimateMs(0)).to.equal(undefined)
    load.start(0)
    load.finish(40, 0, true)
    expect(load.latencyEstimateMs(0)).to.equal(40)
    load.start(0)
    load.finish(10, 1_000, true)
    // The default estimator: the median of the recent slots (here two, one sample each).
    expect(load.latencyEstimateMs(1_000)).to.equal(25)
    expect(load.readsServed).to.equal(2)
    expect(load.errors).to.equal(0)
  })

  it('uses the estimator it is given', () => {
    const load = new NodeLoad({ estimator: new PeakEwma(1_000) })
    load.start(0)
    load.finish(40, 0, true)
    load.start(0)
    load.finish(10, 1_000, true)
    const w = Math.exp(-1)
    expect(load.latencyEstimateMs(1_000)).to.be.closeTo(40 * w + 10 * (1 - w), 1e-9)
  })

  it('keeps its estimate through a client stall that delays every query in flight', () => {
    const load = new NodeLoad()
    let t = 0
    for (let k = 0; k < 50; k++, t += 10) {
      load.start(t)
      load.finish(3, t + 3, true)
    }
    // 20 queries in flight when the loop stalls for 120 ms: all come back at once, 120 ms late.
    for (let q = 0; q < 20; q++) load.start(t)
    t += 123
    for (let q = 0; q < 20; q++) load.finish(123, t + q * 0.05, true)
    expect(load.latencyEstimateMs(t + 1)).to.be.closeTo(3, 0.01)
    // (The failure it prevents) the peak-EWMA takes the stall as the node's latency.
    const peak = new NodeLoad({ estimator: new PeakEwma() })
    peak.start(0)
    peak.finish(3, 3, true)
    peak.start(3)
    peak.finish(123, 126, true)
    expect(peak.latencyEstimateMs(126)).to.equal(123)
  })

  it('does not let a fast failure change the estimate', () => {
    const load = new NodeLoad({ decayMs: 1_000 })
    load.start(0)
    load.finish(50, 0, true)
    const before = load.latencyEstimateMs(500)!
    load.start(0)
    load.finish(0.2, 500, false)
    expect(load.latencyEstimateMs(500)).to.equal(before)
    expect(load.errors).to.equal(1)
    expect(load.readsServed).to.equal(1)

    // The same reply as a success is a sample and moves the estimate: the rule is what kept it.
    const control = new NodeLoad({ decayMs: 1_000 })
    control.start(0)
    control.finish(50, 0, true)
    control.start(0)
    control.finish(0.2, 500, true)
    expect(control.latencyEstimateMs(500)).not.to.equal(before)
  })

  it('lets slow failures (timeouts) raise the estimate', () => {
    const load = new NodeLoad()
    load.start(0)
    load.finish(5, 0, true)
    load.start(0)
    load.finish(2_000, 10, false)
    expect(load.latencyEstimateMs(10)).to.be.above(5)
    load.start(10)
    load.finish(2_000, 20, false)
    expect(load.latencyEstimateMs(20)).to.equal(2_000)
    expect(load.errors).to.equal(2)
  })

  it('records a probe as the last probe round trip and as a latency sample', () => {
    const load = new NodeLoad({ decayMs: 1_000 })
    expect(load.lastProbeRttMs).to.equal(undefined)
    load.recordProbe(0.3, 100)
    expect(load.lastProbeRttMs).to.equal(0.3)
    expect(load.latencyEstimateMs(100)).to.equal(0.3)
    load.recordProbe(0.1, 200)
    expect(load.lastProbeRttMs).to.equal(0.1)
    expect(load.inFlight).to.equal(0)
  })

  it('rejects a bad decay time at construction', () => {
    expect(() => new NodeLoad({ decayMs: 0 })).to.throw(ReplicatedConfigError)
  })
})

describe('peakEwmaLoad', () => {
  it('is the latency estimate times the queries in flight plus one', () => {
    const load = new NodeLoad({ decayMs: 1_000 })
    load.recordProbe(8, 0)
    expect(peakEwmaLoad(load, 0)).to.equal(8)
    load.start(0)
    load.start(0)
    expect(peakEwmaLoad(load, 0)).to.equal(24)
    // It decays with the node's own time constant: 8 × e^-1 one decay time later, when idle.
    const idle = new NodeLoad({ decayMs: 1_000 })
    idle.recordProbe(8, 0)
    expect(peakEwmaLoad(idle, 1_000)).to.be.closeTo(8 * Math.exp(-1), 1e-9)
  })

  it('counts queries in flight with the time they have been waiting (a stall shows at once)', () => {
    const load = new NodeLoad({ decayMs: 1_000 })
    load.recordProbe(2, 0)
    load.start(0)
    load.start(100)
    // Two queries pending, 300 ms and 200 ms old: the mean age, 250 ms, replaces the 2 ms estimate.
    expect(load.pendingAgeMs(300)).to.equal(250)
    expect(peakEwmaLoad(load, 300)).to.equal(250 * 3)
    load.finish(300, 300, true)
    expect(load.pendingAgeMs(300)).to.equal(200)
    load.finish(200, 300, true)
    expect(load.pendingAgeMs(300)).to.equal(0)
  })

  it('starts the estimate again from the probe when a node recovers', () => {
    const load = new NodeLoad({ decayMs: 10_000 })
    load.start(0)
    load.finish(5_000, 5_000, true)
    expect(load.latencyEstimateMs(5_000)).to.equal(5_000)
    load.recover(0.4, 6_000)
    expect(load.latencyEstimateMs(6_000)).to.equal(0.4)
  })

  it('costs a node without history nothing while idle and a penalty per query in flight', () => {
    const load = new NodeLoad()
    expect(peakEwmaLoad(load, 0)).to.equal(0)
    load.start(0)
    load.start(0)
    expect(peakEwmaLoad(load, 0)).to.equal(2 * NO_HISTORY_PENALTY_MS)
  })
})
