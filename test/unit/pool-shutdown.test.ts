import { EventEmitter } from 'node:events'
import { expect } from 'chai'
import sinon from 'sinon'
import { ConnectionSetupError } from '../../src/core/contracts/errors.js'
import { openControlConnection } from '../../src/core/control-connection.js'
import { InFlight } from '../../src/core/in-flight.js'
import { endPool } from '../../src/core/pool-shutdown.js'

async function errorOf(promise: Promise<unknown>): Promise<any> {
  try {
    await promise
  } catch (error) {
    return error
  }
  expect.fail('expected an error')
}

/** Records the process's unhandled rejections while a test runs. */
function unhandled(): { readonly seen: unknown[]; stop(): void } {
  const seen: unknown[] = []
  const listener = (reason: unknown) => seen.push(reason)
  process.on('unhandledRejection', listener)
  return { seen, stop: () => process.off('unhandledRejection', listener) }
}

const tick = () => new Promise((resolve) => setTimeout(resolve, 5))

/** A socket that closes when told to (or when destroyed). */
class Socket extends EventEmitter {
  destroyed = false
  error: Error | undefined
  destroy(error?: Error) {
    if (this.destroyed) return
    this.destroyed = true
    this.error = error
    setImmediate(() => this.emit('close'))
  }
}

describe('InFlight (abandoning what runs on a connection)', () => {
  it('rejects the pending statement with the reason at once and drops the driver’s late error', async () => {
    const watch = unhandled()
    try {
      const inFlight = new InFlight()
      let fail: (error: Error) => void = () => {}
      const driver = new Promise<never>((_, reject) => {
        fail = reject
      })
      const running = inFlight.run(() => driver)
      const reason = new Error('hung')
      expect(inFlight.abandon(reason)).to.equal(true)
      expect(await errorOf(running)).to.equal(reason)
      fail(new Error('Connection terminated'))
      await tick()
      expect(watch.seen).to.deep.equal([])
    } finally {
      watch.stop()
    }
  })

  it('does nothing when nothing runs, and settles as the driver does otherwise', async () => {
    const inFlight = new InFlight()
    expect(inFlight.abandon(new Error('nothing runs'))).to.equal(false)
    expect(await inFlight.run(async () => 42)).to.equal(42)
    const failure = new Error('syntax')
    expect(await errorOf(inFlight.run(() => Promise.reject(failure)))).to.equal(failure)
    expect(inFlight.running).to.equal(false)
    expect(inFlight.abandoned).to.equal(undefined)
  })

  it('counts an open stream as running, and fails every later statement without sending it', async () => {
    const inFlight = new InFlight()
    inFlight.streamOpened()
    const reason = new Error('hung')
    expect(inFlight.abandon(reason)).to.equal(true)
    const send = sinon.spy(async () => 1)
    expect(await errorOf(inFlight.run(send))).to.equal(reason)
    sinon.assert.notCalled(send)
    expect(inFlight.abandon(new Error('again'))).to.equal(false)
    expect(inFlight.abandoned).to.equal(reason)
  })
})

describe('endPool (a bounded end)', () => {
  it('ends politely, waiting for the sockets to close, without forcing anything', async () => {
    const sockets = [new Socket(), new Socket()]
    const connections = sockets.map((stream) => Object.assign(new EventEmitter(), { stream }))
    await endPool({
      graceMs: 5000,
      connections,
      socketOf: (c) => c.stream,
      end: async () => {
        for (const s of sockets) setTimeout(() => s.destroy(), 10)
      },
      forcedError: () => new Error('forced'),
    })
    expect(sockets.map((s) => s.error)).to.deep.equal([undefined, undefined])
    // Every connection got a no-op 'error' listener: a late error throws nothing.
    expect(() => connections[0]!.emit('error', new Error('connect ETIMEDOUT'))).to.not.throw()
  })

  it('destroys what is still open once the grace ran out, and resolves', async () => {
    const socket = new Socket()
    const started = performance.now()
    await endPool<{ stream: Socket }>({
      graceMs: 50,
      connections: [{ stream: socket }],
      socketOf: (c) => c.stream,
      end: () => new Promise(() => {}),
      forcedError: () => new Error('forced'),
    })
    expect(performance.now() - started).to.be.within(45, 1000)
    expect(socket.error?.message).to.equal('forced')
  })

  it("rejects with the driver's early error after closing the rest, and drops a late one", async () => {
    const early = new Error('Called end on pool more than once')
    const socket = new Socket()
    const error = await errorOf(
      endPool<{ stream: Socket }>({
        graceMs: 5000,
        connections: [{ stream: socket }],
        socketOf: (c) => c.stream,
        end: () => Promise.reject(early),
        forcedError: () => new Error('forced'),
      }),
    )
    expect(error).to.equal(early)
    expect(socket.destroyed).to.equal(true)

    const watch = unhandled()
    try {
      await endPool({
        graceMs: 20,
        connections: [],
        socketOf: () => undefined,
        end: () => new Promise((_, reject) => setTimeout(() => reject(new Error('late')), 40)),
        forcedError: () => new Error('forced'),
      })
      await new Promise((resolve) => setTimeout(resolve, 60))
      expect(watch.seen).to.deep.equal([])
    } finally {
      watch.stop()
    }
  })
})

describe('openControlConnection', () => {
  const node = { name: 'replica-1', role: 'replica' as const }
  const connection = { node } as any

  it('fails with a connect timeout (ETIMEDOUT) when connecting takes longer, and discards what was made', async () => {
    const discard = sinon.spy()
    const error = await errorOf(
      openControlConnection({
        node,
        timeoutMs: 30,
        connect: () => new Promise(() => {}),
        setUp: async () => {},
        discard,
        isConnectionError: () => false,
      }),
    )
    expect(error.code).to.equal('ETIMEDOUT')
    expect(error.message).to.match(/replica-1.*30 ms/)
    sinon.assert.calledOnce(discard)
  })

  it('bounds the set-up too: a server that accepts and never answers', async () => {
    const discard = sinon.spy()
    const error = await errorOf(
      openControlConnection({
        node,
        timeoutMs: 30,
        connect: async () => connection,
        setUp: () => new Promise(() => {}),
        discard,
        isConnectionError: () => false,
      }),
    )
    expect(error.code).to.equal('ETIMEDOUT')
    sinon.assert.calledOnce(discard)
  })

  it('names the node in a set-up error that is not connection-level, and passes connection errors as they are', async () => {
    const sqlError = new Error('permission denied')
    const wrapped = await errorOf(
      openControlConnection({
        node,
        timeoutMs: 1000,
        connect: async () => connection,
        setUp: () => Promise.reject(sqlError),
        discard: () => {},
        isConnectionError: () => false,
      }),
    )
    expect(wrapped).to.be.instanceOf(ConnectionSetupError)
    expect(wrapped.node).to.equal('replica-1')
    expect(wrapped.cause).to.equal(sqlError)

    const lost = Object.assign(new Error('Connection lost'), { code: 'PROTOCOL_CONNECTION_LOST' })
    const passed = await errorOf(
      openControlConnection({
        node,
        timeoutMs: 1000,
        connect: async () => connection,
        setUp: () => Promise.reject(lost),
        discard: () => {},
        isConnectionError: () => true,
      }),
    )
    expect(passed).to.equal(lost)
  })

  it('returns the set-up connection', async () => {
    const setUp = sinon.spy(async (_connection: unknown) => {})
    const made = await openControlConnection({
      node,
      timeoutMs: 1000,
      connect: async () => connection,
      setUp,
      discard: () => {},
      isConnectionError: () => false,
    })
    expect(made).to.equal(connection)
    sinon.assert.calledOnceWithExactly(setUp, connection)
  })
})
