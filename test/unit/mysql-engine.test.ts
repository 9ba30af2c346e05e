import { expect } from 'chai'
import { CompiledQuery } from 'kysely'
import sinon from 'sinon'
import { ConnectionSetupError } from '../../src/core/contracts/errors.js'
import type { NodePoolSetup } from '../../src/core/contracts/node-setup.js'
import { MysqlEngine } from '../../src/mysql/mysql-engine.js'
import { MysqlNodePool } from '../../src/mysql/mysql-node-pool.js'
import { type FakeMysqlNode, fakeMysqlNode } from '../support/fake-mysql.js'

/** mysql2's error of a statement or a login the server refused (`Packet.asError`). */
function serverError(errno: number, code: string, sqlState: string): Error {
  return Object.assign(new Error(`${code} (fake)`), { errno, code, sqlState, sqlMessage: code })
}

function setupOf(role: 'primary' | 'replica', engine: MysqlEngine): NodePoolSetup {
  return {
    node: { name: role === 'primary' ? 'primary' : 'replica-1', role },
    replicaSessionReadOnly: true,
    onCreateConnection: undefined,
    firstConnection: async () => {},
    trackPositions: true,
    isConnectionError: (e) => engine.isConnectionError(e),
  }
}

function nodePool(fake: FakeMysqlNode, role: 'primary' | 'replica' = 'replica') {
  const engine = new MysqlEngine({ causalUnsupported: () => {} })
  const setup = setupOf(role, engine)
  return new MysqlNodePool({
    source: fake.pool,
    setup,
    setUpSession: (c, raw) => engine.setUpConnection(c, raw, setup),
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

describe('MysqlEngine.isConnectError', () => {
  const engine = new MysqlEngine({ causalUnsupported: () => {} })
  const refusals: Array<[number, string, string]> = [
    [1045, 'ER_ACCESS_DENIED_ERROR', '28000'],
    [1044, 'ER_DBACCESS_DENIED_ERROR', '42000'],
    [1049, 'ER_BAD_DB_ERROR', '42000'],
    [1698, 'ER_ACCESS_DENIED_NO_PASSWORD_ERROR', '28000'],
    [1862, 'ER_MUST_CHANGE_PASSWORD_LOGIN', 'HY000'],
    [3118, 'ER_ACCOUNT_HAS_BEEN_LOCKED', 'HY000'],
    [1524, 'ER_PLUGIN_IS_NOT_LOADED', 'HY000'],
  ]
  for (const [errno, code, sqlState] of refusals) {
    it(`is true for a login refused with ${errno} ${code}, which is no connection error`, () => {
      const error = serverError(errno, code, sqlState)
      expect(engine.isConnectError(error)).to.equal(true)
      expect(engine.isConnectionError(error)).to.equal(false)
    })
  }

  it('is true for a refusal that carries only a code', () => {
    expect(engine.isConnectError({ code: 'ER_BAD_DB_ERROR' })).to.equal(true)
  })

  it("is true for MariaDB's locked account (4151)", () => {
    expect(
      engine.isConnectError({ errno: 4151, code: 'ER_BULK_PARSER_INCOMPLETE_ESCAPE_SEQUENCE' }),
    ).to.equal(true)
  })

  it('is true for every connection error (a connect timeout, a refused port, a fatal error)', () => {
    const timeout = Object.assign(new Error('connect ETIMEDOUT'), {
      code: 'ETIMEDOUT',
      fatal: true,
    })
    const refused = Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' })
    const auth = Object.assign(new Error('auth plugin'), {
      code: 'AUTH_SWITCH_PLUGIN_ERROR',
      fatal: true,
    })
    for (const error of [timeout, refused, auth]) {
      expect(engine.isConnectError(error)).to.equal(true)
      expect(engine.isConnectionError(error)).to.equal(true)
    }
  })

  it('looks through a ConnectionSetupError to the refusal that caused it', () => {
    const error = new ConnectionSetupError('setting up failed', 'replica-1', {
      cause: serverError(1820, 'ER_MUST_CHANGE_PASSWORD', 'HY000'),
    })
    expect(engine.isConnectError(error)).to.equal(true)
    expect(engine.isConnectionError(error)).to.equal(false)
  })

  it('is false for SQL errors and non-errors', () => {
    for (const error of [
      serverError(1064, 'ER_PARSE_ERROR', '42000'),
      serverError(1062, 'ER_DUP_ENTRY', '23000'),
      serverError(1146, 'ER_NO_SUCH_TABLE', '42S02'),
      new Error('plain'),
      'text',
      null,
      undefined,
    ]) {
      expect(engine.isConnectError(error)).to.equal(false)
    }
  })
})

describe('MysqlNodePool against a hung server (fake mysql2 pool)', () => {
  it('abandon() rejects the running statement at once, destroys its socket and frees the pool slot', async () => {
    const fake = fakeMysqlNode('replica-1')
    fake.hang = /sleep/
    const pool = nodePool(fake)
    await pool.init()
    const connection = await pool.acquire()
    const running = connection.execute(CompiledQuery.raw('select sleep(5)'))
    const reason = new Error('hung')
    connection.abandon(reason)
    expect(await errorOf(running)).to.equal(reason)
    const raw = fake.all[0]!
    expect(raw.destroyed).to.equal(true)
    expect(raw.stream.destroyed).to.equal(true)
    expect(raw.stream.destroyError?.message).to.match(/statement abandoned: hung/)
    expect(fake.pool._allConnections).to.deep.equal([])
    // The next checkout opens a new connection.
    const next = await pool.acquire()
    expect(next.sessionId).to.equal(2)
    next.release()
  })

  it('abandon() fails what comes next on the connection with the same reason', async () => {
    const fake = fakeMysqlNode('replica-1')
    fake.hang = /sleep/
    const pool = nodePool(fake)
    await pool.init()
    const connection = await pool.acquire()
    const running = connection.execute(CompiledQuery.raw('select sleep(5)'))
    const reason = new Error('hung')
    connection.abandon(reason)
    await errorOf(running)
    const statements = fake.statements.length
    expect(await errorOf(connection.execute(CompiledQuery.raw('select 1')))).to.equal(reason)
    expect(fake.statements.length, 'nothing sent').to.equal(statements)
  })

  it('abandon() makes a waiting stream throw the reason', async () => {
    const fake = fakeMysqlNode('replica-1')
    fake.hang = /sleep/
    const pool = nodePool(fake)
    await pool.init()
    const connection = await pool.acquire()
    const rows = connection.stream(CompiledQuery.raw('select sleep(5)'), 1)
    const first = rows.next()
    await new Promise((resolve) => setImmediate(resolve))
    const reason = new Error('hung')
    connection.abandon(reason)
    expect(await errorOf(first)).to.equal(reason)
  })

  it('abandon() tells the lifecycle owner once, and release() or destroy() afterwards do nothing', async () => {
    const fake = fakeMysqlNode('replica-1')
    fake.hang = /sleep/
    const pool = nodePool(fake)
    await pool.init()
    const connection = await pool.acquire()
    const owner = { retire: sinon.spy(() => false), destroyed: sinon.spy() }
    connection.owner = owner
    const running = connection.execute(CompiledQuery.raw('select sleep(5)'))
    connection.abandon(new Error('hung'))
    connection.abandon(new Error('again'))
    connection.release()
    connection.destroy()
    await errorOf(running)
    sinon.assert.calledOnce(owner.destroyed)
    sinon.assert.notCalled(owner.retire)
  })

  it('abandon() leaves a connection that runs nothing alone', async () => {
    const fake = fakeMysqlNode('replica-1')
    const pool = nodePool(fake)
    await pool.init()
    const connection = await pool.acquire()
    connection.abandon(new Error('late'))
    await connection.execute(CompiledQuery.raw('select 1'))
    connection.release()
    expect(fake.all[0]!.destroyed).to.equal(false)
    const again = await pool.acquire()
    expect(again.sessionId).to.equal(1)
    again.release()
  })

  it('destroy() closes the socket too (a hung server never closes its side)', async () => {
    const fake = fakeMysqlNode('replica-1')
    const pool = nodePool(fake)
    await pool.init()
    const connection = await pool.acquire()
    connection.destroy()
    expect(fake.all[0]!.destroyed).to.equal(true)
    expect(fake.all[0]!.stream.destroyed).to.equal(true)
  })

  it('end() resolves after its grace when the pool never ends, destroying every socket', async () => {
    const fake = fakeMysqlNode('replica-1')
    const pool = nodePool(fake)
    await pool.init()
    const a = await pool.acquire()
    const b = await pool.acquire()
    a.release()
    b.release()
    fake.pool.end = sinon.spy(() => {}) // a hung server: COM_QUIT never gets through
    const started = performance.now()
    await pool.end(100)
    expect(performance.now() - started).to.be.within(90, 1000)
    expect(fake.all.map((c) => c.stream.destroyed)).to.deep.equal([true, true])
    expect(fake.all[0]!.stream.destroyError?.message).to.match(/the pool was ended/)
  })

  it('end() waits for the sockets to close after the pool called back, then no longer', async () => {
    const fake = fakeMysqlNode('replica-1')
    const pool = nodePool(fake)
    await pool.init()
    ;(await pool.acquire()).release()
    const started = performance.now()
    await pool.end(5000)
    expect(performance.now() - started).to.be.below(1000)
    expect(fake.all[0]!.stream.destroyError).to.equal(undefined)
  })

  it('end() rejects at once when the pool reports an error, and closes what is left', async () => {
    const fake = fakeMysqlNode('replica-1')
    const pool = nodePool(fake)
    await pool.init()
    ;(await pool.acquire()).release()
    const failure = new Error('Pool is closed.')
    fake.pool.end = sinon.spy((cb: (e: unknown) => void) => setImmediate(() => cb(failure)))
    expect(await errorOf(pool.end(5000))).to.equal(failure)
    expect(fake.all[0]!.stream.destroyed).to.equal(true)
  })

  it('connectTimeoutMs() reads the pool config, undefined for a pool without one', async () => {
    const fake = fakeMysqlNode('replica-1')
    const pool = nodePool(fake)
    expect(pool.connectTimeoutMs()).to.equal(undefined)
    await pool.init()
    expect(pool.connectTimeoutMs()).to.equal(undefined)
    ;(fake.pool.config as any).connectionConfig = { connectTimeout: 10_000 }
    expect(pool.connectTimeoutMs()).to.equal(10_000)
    ;(fake.pool.config as any).connectionConfig = { connectTimeout: 0 }
    expect(pool.connectTimeoutMs()).to.equal(undefined)
  })

  it('openControl() needs a mysql2 connection config', async () => {
    const fake = fakeMysqlNode('replica-1')
    const pool = nodePool(fake)
    expect((await errorOf(pool.openControl(100))).message).to.match(/before init/)
    await pool.init()
    expect((await errorOf(pool.openControl(100))).message).to.match(/no mysql2 connection config/)
  })
})

describe('MysqlNodePool with resetOnRelease (fake mysql2 pool)', () => {
  const setUpStatements = (fake: FakeMysqlNode) =>
    fake.statements.filter((s) => /^set session/i.test(s.sql)).map((s) => s.sql.trim())

  it('applies the replica session set-up again within each reset, before the next checkout', async () => {
    const fake = fakeMysqlNode('replica-1', { resetOnRelease: true })
    const pool = nodePool(fake)
    await pool.init()
    for (let i = 0; i < 3; i++) {
      const connection = await pool.acquire()
      const before = fake.statements.length
      await connection.execute(CompiledQuery.raw('select 1'))
      // The checkout itself sent nothing but the statement.
      expect(fake.statements.slice(before).map((s) => s.sql)).to.deep.equal(['select 1'])
      connection.release()
      await new Promise((resolve) => setImmediate(resolve))
      await new Promise((resolve) => setImmediate(resolve))
    }
    expect(fake.all.length).to.equal(1)
    expect(fake.all[0]!.resets).to.equal(3)
    expect(setUpStatements(fake)).to.deep.equal([
      'set session transaction read only',
      'set session transaction read only',
      'set session transaction read only',
      'set session transaction read only',
    ])
  })

  it('tracks GTIDs again on the primary after each reset', async () => {
    const fake = fakeMysqlNode('primary', { resetOnRelease: true })
    const pool = nodePool(fake, 'primary')
    await pool.init()
    ;(await pool.acquire()).release()
    await new Promise((resolve) => setTimeout(resolve, 5))
    const tracking = fake.statements.filter((s) => /session_track_system_variables/.test(s.sql))
    expect(tracking.length).to.equal(2)
  })

  it('applies the set-up at the next checkout when the pool reset the session another way', async () => {
    const fake = fakeMysqlNode('replica-1')
    ;(fake.pool.config as { resetOnRelease: boolean }).resetOnRelease = true
    const pool = nodePool(fake)
    await pool.init()
    ;(await pool.acquire()).release()
    expect(setUpStatements(fake).length).to.equal(1)
    const again = await pool.acquire()
    expect(setUpStatements(fake).length).to.equal(2)
    again.release()
  })

  it('sets a session up once when the pool does not reset', async () => {
    const fake = fakeMysqlNode('replica-1')
    const pool = nodePool(fake)
    await pool.init()
    for (let i = 0; i < 3; i++) (await pool.acquire()).release()
    expect(setUpStatements(fake).length).to.equal(1)
  })
})
