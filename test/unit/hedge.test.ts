import { expect } from 'chai'
import fc from 'fast-check'
import { HEDGE_BURST, Hedging } from '../../src/core/hedge.js'
import { NodeLoad } from '../../src/health/node-load.js'

/** The p90 the executor hands over: `p90` (or none). */
const node = (p90: number | undefined) => p90

describe('Hedging (the budget and the delay of hedged reads)', () => {
  it('waits a fixed number of milliseconds, or the p90 it is given', () => {
    expect(new Hedging({ after: 20, budget: 0.1 }).delayFor(node(3))).to.equal(20)
    expect(new Hedging({ after: 'p90', budget: 0.1 }).delayFor(node(3))).to.equal(3)
    // No history: no way to time it, so it is not hedged.
    expect(new Hedging({ after: 'p90', budget: 0.1 }).delayFor(node(undefined))).to.equal(undefined)
  })

  it('reads the p90 from the node load’s latency window', () => {
    const load = new NodeLoad()
    expect(load.latencyP90Ms()).to.equal(undefined)
    for (let i = 1; i <= 10; i++) load.recordProbe(i, i * 100)
    expect(load.latencyP90Ms()).to.equal(9)
  })

  it('starts with a burst of 10, then allows budget × reads', () => {
    const hedging = new Hedging({ after: 1, budget: 0.1 })
    let sent = 0
    // Every read asks for a hedge: the burst, then one per ten reads.
    for (let read = 0; read < 1000; read++) {
      hedging.delayFor(node(1))
      if (hedging.take()) sent++
    }
    expect(sent).to.be.within(100, 100 + HEDGE_BURST)
    expect(hedging.take()).to.equal(false)
  })

  it('never lets hedges exceed budget × reads + the burst, whatever the pattern', () => {
    fc.assert(
      fc.property(
        fc.double({ min: 0.001, max: 1, noNaN: true }),
        fc.array(fc.constantFrom('read', 'take', 'refund'), { maxLength: 500 }),
        (budget, steps) => {
          const hedging = new Hedging({ after: 1, budget })
          let reads = 0
          let sent = 0
          for (const step of steps) {
            if (step === 'read') {
              hedging.delayFor(node(1))
              reads++
            } else if (step === 'take') {
              if (hedging.take()) sent++
            } else if (sent > 0) {
              // A refund gives back a hedge taken and not sent.
              hedging.refund()
              sent--
            }
            expect(sent).to.be.at.most(budget * reads + HEDGE_BURST + 1e-9)
            expect(hedging.tokens).to.be.within(0, HEDGE_BURST)
          }
        },
      ),
      { seed: 3, numRuns: 300 },
    )
  })

  it('does not save up while full: a budget of 0.01 gives the burst and nothing more in 100 reads', () => {
    const hedging = new Hedging({ after: 1, budget: 0.01 })
    let sent = 0
    for (let read = 0; read < 100; read++) {
      hedging.delayFor(node(1))
      if (hedging.take()) sent++
    }
    expect(sent).to.equal(HEDGE_BURST)
  })
})
