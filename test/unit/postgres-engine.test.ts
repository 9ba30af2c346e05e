import { EventEmitter } from 'node:events'
import { expect } from 'chai'
import { CompiledQuery } from 'kysely'
import pg from 'pg'
import sinon from 'sinon'
import { ConnectionSetupError, PoolWaitTimeoutError } from '../../src/core/contracts/errors.js'
import type { NodePoolSetup } from '../../src/core/contracts/node-setup.js'
import { PostgresEngine } from '../../src/postgres/postgres-engine.js'
import { PostgresNodePool } from '../../src/postgres/postgres-node-pool.js'
import { FakeCursor, type FakePgNode, fakePgNode } from '../support/fake-pg.js'

/** A `pg` `DatabaseError` as the server sends it (`severity`, `code`). */
function serverError(code: string, severity = 'ERROR', message = `${code} (fake)`): Error {
  return Object.assign(new Error(message), { code, severity })
}

function nodePool(fake: FakePgNode, cursor: unknown = FakeCursor) {
  const engine = new PostgresEngine({ causalUnsupported: () => {} })
  const setup: NodePoolSetup = {
    node: { name: 'replica-1', role: 'replica' },
    replicaSessionReadOnly: true,
    onCreateConnection: undefined,
    firstConnection: async () => {},
    trackPositions: true,
    isConnectionError: (e) => engine.isConnectionError(e),
  }
  return new PostgresNodePool({
    source: fake.pool,
    setup,
    setUpSession: (c) => engine.setUpConnection(c, setup),
    cursor: cursor as any,
  })
}

async function errorOf(promise: Promise<unknown>): Promise<any> {
  try {
    await promise
  } catch (error) {
    return error
  }
  expect.fail('expected an error')
}

describe('PostgresEngine.isConnectError', () => {
  const engine = new PostgresEngine({ causalUnsupported: () => {} })

  for (const [code, what] of [
    ['28P01', 'a wrong password'],
    ['28000', 'no pg_hba.conf entry or a role that may not log in'],
    ['3D000', 'a database that does not exist'],
  ] as const) {
    it(`is true for ${what} (${code}), which is no connection error`, () => {
      const error = serverError(code, 'FATAL')
      expect(engine.isConnectError(error)).to.equal(true)
      expect(engine.isConnectionError(error)).to.equal(false)
    })
  }

  it('is true for a missing CONNECT privilege (42501 FATAL), not for a missing grant on a table', () => {
    expect(engine.isConnectError(serverError('42501', 'FATAL'))).to.equal(true)
    expect(engine.isConnectError(serverError('42501', 'ERROR'))).to.equal(false)
  })

  it("is true for pg's own errors of a password it cannot send", () => {
    for (const message of [
      'SASL: SCRAM-SERVER-FIRST-MESSAGE: client password must be a string',
      'SASL: SCRAM-SERVER-FIRST-MESSAGE: client password must be a non-empty string',
      'Password must be a string',
      'The server does not support SSL connections',
    ]) {
      const error = new Error(message)
      expect(engine.isConnectError(error), message).to.equal(true)
      expect(engine.isConnectionError(error), message).to.equal(false)
    }
  })

  it('is true for an untrusted server certificate', () => {
    const error = Object.assign(new Error('self-signed certificate'), {
      code: 'DEPTH_ZERO_SELF_SIGNED_CERT',
    })
    expect(engine.isConnectError(error)).to.equal(true)
  })

  it('is true for every connection error (a connect timeout, a refused port, a terminated connection)', () => {
    for (const error of [
      Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }),
      new Error('Connection terminated due to connection timeout'),
      serverError('57P03', 'FATAL'),
    ]) {
      expect(engine.isConnectError(error)).to.equal(true)
      expect(engine.isConnectionError(error)).to.equal(true)
    }
  })

  it('looks through a ConnectionSetupError to the refusal that caused it', () => {
    const error = new ConnectionSetupError('setting up failed', 'replica-1', {
      cause: serverError('3D000', 'FATAL'),
    })
    expect(engine.isConnectError(error)).to.equal(true)
  })

  it('is false for SQL errors and non-errors', () => {
    for (const error of [
      serverError('42601'),
      serverError('23505'),
      serverError('40001'),
      new Error('plain'),
      'text',
      null,
    ]) {
      expect(engine.isConnectError(error)).to.equal(false)
    }
  })
})

describe('PostgresNodePool against a hung server (fake pg pool)', () => {
  it('abandon() rejects the running statement at once and closes the client; its late failure is dropped', async () => {
    const fake = fakePgNode('replica-1')
    fake.hang = /pg_sleep/
    const pool = nodePool(fake)
    await pool.init()
    const connection = await pool.acquire()
    const running = connection.execute(CompiledQuery.raw('select pg_sleep(5)'))
    const reason = new Error('hung')
    connection.abandon(reason)
    expect(await errorOf(running)).to.equal(reason)
    expect(fake.destroyed).to.deep.equal([1])
    // The client's own failure ('Connection terminated') comes later and goes nowhere.
    await new Promise((resolve) => setTimeout(resolve, 5))
    const next = await pool.acquire()
    expect(next.sessionId).to.equal(2)
    next.release()
  })

  it('abandon() fails what comes next on the connection with the same reason, sending nothing', async () => {
    const fake = fakePgNode('replica-1')
    fake.hang = /pg_sleep/
    const pool = nodePool(fake)
    await pool.init()
    const connection = await pool.acquire()
    const running = connection.execute(CompiledQuery.raw('select pg_sleep(5)'))
    const reason = new Error('hung')
    connection.abandon(reason)
    await errorOf(running)
    const sent = fake.statements.length
    expect(await errorOf(connection.execute(CompiledQuery.raw('select 1')))).to.equal(reason)
    expect(fake.statements.length).to.equal(sent)
  })

  it('abandon() between the steps of a stream makes its next step throw, without closing the cursor', async () => {
    const fake = fakePgNode('replica-1')
    fake.respond = (sql) => (sql.startsWith('select n') ? [{ n: 1 }, { n: 2 }] : undefined)
    const cursors: FakeCursor<unknown>[] = []
    class RecordingCursor<T> extends FakeCursor<T> {
      constructor(text: string, values: unknown[]) {
        super(text, values)
        cursors.push(this as FakeCursor<unknown>)
      }
    }
    const pool = nodePool(fake, RecordingCursor)
    await pool.init()
    const connection = await pool.acquire()
    const rows = connection.stream(CompiledQuery.raw('select n from t'), 1)
    expect((await rows.next()).value).to.deep.equal({ rows: [{ n: 1 }] })
    const reason = new Error('hung')
    connection.abandon(reason)
    expect(await errorOf(rows.next())).to.equal(reason)
    expect(fake.destroyed).to.deep.equal([1])
    // Closing it would wait for a server that does not answer.
    expect(cursors.map((c) => c.closed)).to.deep.equal([false])
  })

  it('abandon() tells the lifecycle owner once and leaves an idle connection alone', async () => {
    const fake = fakePgNode('replica-1')
    fake.hang = /pg_sleep/
    const pool = nodePool(fake)
    await pool.init()
    const idle = await pool.acquire()
    idle.abandon(new Error('late'))
    await idle.execute(CompiledQuery.raw('select 1'))
    idle.release()
    expect(fake.destroyed).to.deep.equal([])

    const connection = await pool.acquire()
    const owner = { retire: sinon.spy(() => false), destroyed: sinon.spy() }
    connection.owner = owner
    const running = connection.execute(CompiledQuery.raw('select pg_sleep(5)'))
    connection.abandon(new Error('hung'))
    connection.release()
    connection.destroy()
    await errorOf(running)
    sinon.assert.calledOnce(owner.destroyed)
    sinon.assert.notCalled(owner.retire)
  })

  it('end() resolves after its grace when the pool never ends', async () => {
    const fake = fakePgNode('replica-1')
    const pool = nodePool(fake)
    await pool.init()
    ;(await pool.acquire()).release()
    fake.pool.end = sinon.spy(() => new Promise<void>(() => {}))
    const started = performance.now()
    await pool.end(100)
    expect(performance.now() - started).to.be.within(90, 1000)
  })

  it('end() fails the callers still waiting for a client of the ending pool', async () => {
    const fake = fakePgNode('replica-1')
    const pool = nodePool(fake)
    await pool.init()
    const waiter = sinon.spy()
    ;(fake.pool as any)._pendingQueue = [{ callback: waiter }]
    await pool.end(100)
    sinon.assert.calledOnce(waiter)
    expect(waiter.firstCall.args[0].message).to.match(/ended while waiting for a client/)
  })

  it('connectTimeoutMs() reads connectionTimeoutMillis, undefined when none', async () => {
    const fake = fakePgNode('replica-1')
    const pool = nodePool(fake)
    await pool.init()
    expect(pool.connectTimeoutMs()).to.equal(undefined)
    ;(fake.pool as any).options = { connectionTimeoutMillis: 3000 }
    expect(pool.connectTimeoutMs()).to.equal(3000)
    ;(fake.pool as any).options = { connectionTimeoutMillis: 0 }
    expect(pool.connectTimeoutMs()).to.equal(undefined)
  })
})

/**
 * A `pg` `Client` without a server, for a real pg-pool: connects at once, or never while
 * `hang` is set (a hung node: the attempt ends only when the client is ended); answers every
 * query with an empty result.
 */
class ServerlessClient extends EventEmitter {
  static hang = false
  static nextPid = 1
  readonly processID = ServerlessClient.nextPid++
  _queryable = true
  _ending = false
  #connected: ((error?: Error) => void) | undefined

  connect(callback: (error?: Error) => void): void {
    if (ServerlessClient.hang) this.#connected = callback
    else setImmediate(callback)
  }

  isConnected(): boolean {
    return this.#connected === undefined
  }

  query(): Promise<{ command: string; rowCount: null; rows: unknown[] }> {
    return Promise.resolve({ command: 'SET', rowCount: null, rows: [] })
  }

  end(callback?: () => void): Promise<void> {
    this._ending = true
    const connected = this.#connected
    this.#connected = undefined
    connected?.(new Error('Connection terminated'))
    callback?.()
    return Promise.resolve()
  }
}

describe('PostgresNodePool: a checkout that times out in the queue of a real pg-pool', () => {
  const engine = new PostgresEngine({ causalUnsupported: () => {} })
  let pool: PostgresNodePool | undefined
  afterEach(async () => {
    ServerlessClient.hang = false
    await pool?.end(50)
    pool = undefined
  })

  const pgPool = () =>
    new pg.Pool({
      Client: ServerlessClient,
      max: 1,
      connectionTimeoutMillis: 50,
      password: 'secret-password',
    } as unknown as pg.PoolConfig)

  it('fails with PoolWaitTimeoutError, not a connection error, when every client stayed busy', async () => {
    pool = nodePool({ pool: pgPool() } as unknown as FakePgNode)
    await pool.init()
    const busy = await pool.acquire()
    const error = await errorOf(pool.acquire())
    expect(error).to.be.instanceOf(PoolWaitTimeoutError)
    expect(error).to.include({ node: 'replica-1', code: 'KR_POOL_WAIT_TIMEOUT' })
    expect(error.message).to.match(
      /^node "replica-1": no connection of its pool was free within 50 ms/,
    )
    expect(error.message).to.match(/all 1 were busy/)
    expect(error.message).to.match(/raise the pool's max \(poolSize\) or run fewer statements/)
    expect(error.message).not.to.include('secret-password')
    expect(error.cause.message).to.equal('timeout exceeded when trying to connect')
    // The failure this prevents: pg-pool's own error counts against the node.
    expect(engine.isConnectionError(error.cause)).to.equal(true)
    expect(engine.isConnectionError(error)).to.equal(false)
    expect(engine.isConnectError(error)).to.equal(false)
    busy.release()
    ;(await pool.acquire()).release()
  })

  it('keeps it a connection error when a connection was being opened for the waiting checkout (a hung node)', async () => {
    pool = nodePool({ pool: pgPool() } as unknown as FakePgNode)
    await pool.init()
    const busy = await pool.acquire()
    const waiting = errorOf(pool.acquire())
    // A slot frees up: pg-pool opens a client for the waiting checkout, and the node never answers.
    ServerlessClient.hang = true
    busy.destroy()
    const error = await waiting
    expect(error).not.to.be.instanceOf(PoolWaitTimeoutError)
    expect(error.message).to.equal('timeout exceeded when trying to connect')
    expect(engine.isConnectionError(error)).to.equal(true)
  })
})
