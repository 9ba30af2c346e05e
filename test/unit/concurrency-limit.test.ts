import { expect } from 'chai'
import { limitConcurrency } from '../../src/health/concurrency-limit.js'

/** A task whose end the test decides. */
function deferred() {
  let resolve!: () => void
  let reject!: (error: Error) => void
  const promise = new Promise<void>((res, rej) => {
    resolve = res
    reject = rej
  })
  return { promise, resolve, reject }
}

const tick = () => new Promise((resolve) => setImmediate(resolve))

describe('concurrency limit', () => {
  it('never runs more than the limit at once, and starts the waiting tasks in arrival order', async () => {
    const limit = limitConcurrency(2)
    const tasks = [0, 1, 2, 3, 4].map(() => deferred())
    const started: number[] = []
    let active = 0
    let peak = 0
    const all = Promise.all(
      tasks.map((task, i) =>
        limit(async () => {
          started.push(i)
          peak = Math.max(peak, ++active)
          await task.promise
          active--
          return i
        }),
      ),
    )
    await tick()
    expect(started).to.deep.equal([0, 1])
    tasks[1]!.resolve()
    await tick()
    expect(started).to.deep.equal([0, 1, 2])
    for (const task of tasks) task.resolve()
    expect(await all).to.deep.equal([0, 1, 2, 3, 4])
    expect(peak).to.equal(2)
  })

  it("passes a task's failure to its caller and frees its slot", async () => {
    const limit = limitConcurrency(1)
    const first = limit(() => Promise.reject(new Error('probe failed')))
    const thrown = limit(() => {
      throw new Error('threw before returning a promise')
    })
    const second = limit(async () => 'ran')
    const [a, b] = await Promise.allSettled([first, thrown])
    expect(a.status === 'rejected' && (a.reason as Error).message).to.equal('probe failed')
    expect(b.status === 'rejected' && (b.reason as Error).message).to.equal(
      'threw before returning a promise',
    )
    expect(await second).to.equal('ran')
  })

  it('refuses a limit that is not a positive integer', () => {
    for (const bad of [0, -1, 1.5, Number.NaN]) {
      expect(() => limitConcurrency(bad)).to.throw(RangeError)
    }
  })
})
