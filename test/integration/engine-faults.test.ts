/**
 * The engines' node pools against hung and refusing servers, on the real clusters: a statement
 * abandoned on a frozen replica, a control connection beside an exhausted pool, a bounded end with
 * a frozen node and a black-holed one, refused logins, connect timeouts, and (MariaDB) pools that
 * reset sessions on release. Each test proves what happened from the server or the driver's pool,
 * and shows the failure the feature prevents where it can.
 */
import { expect } from 'chai'
import type { DatabaseConnection } from 'kysely'
import { CompiledQuery, Kysely, sql } from 'kysely'
import { createPool } from 'mysql2'
import pg from 'pg'
import Cursor from 'pg-cursor'
import sinon from 'sinon'
import type { PhysicalConnection } from '../../src/core/contracts/engine.js'
import type { LifecycleConnection } from '../../src/core/contracts/lifecycle.js'
import type { NodePoolSetup } from '../../src/core/contracts/node-setup.js'
import {
  consistencyScope,
  onPrimary,
  onReplica,
  ReplicatedMysqlDialect,
  ReplicatedPostgresDialect,
} from '../../src/index.js'
import { MysqlEngine } from '../../src/mysql/mysql-engine.js'
import { createMysqlPool, MysqlNodePool } from '../../src/mysql/mysql-node-pool.js'
import { PostgresEngine } from '../../src/postgres/postgres-engine.js'
import { createPostgresPool, PostgresNodePool } from '../../src/postgres/postgres-node-pool.js'
import type { ConnectionOverrides } from '../support/cluster.js'
import {
  type DialectFixture,
  forEachDialect,
  type TestCluster,
  useDialectCluster,
} from '../support/dialects.js'
import { pollUntil, sleep } from '../support/ports.js'

/** The node pool of either engine, with what these tests use. */
type NodePoolUnderTest = MysqlNodePool | PostgresNodePool

interface PoolOptions {
  /** The driver pool's size. */
  readonly size?: number
  readonly overrides?: ConnectionOverrides
  /** Extra driver pool options (mysql2 `createPool`, `pg` `Pool`). */
  readonly driver?: Record<string, unknown>
  readonly onCreateConnection?: NodePoolSetup['onCreateConnection']
  /** Let the library create the pool from `{ connection }` instead. */
  readonly fromConnection?: boolean
}

/** What differs between the engines in these tests. */
interface EngineKit {
  readonly isConnectionError: (error: unknown) => boolean
  readonly isConnectError: (error: unknown) => boolean
  nodePool(cluster: TestCluster, node: string, options?: PoolOptions): NodePoolUnderTest
  /** A statement that sleeps `seconds` on the server. */
  sleep(seconds: number): CompiledQuery
  /** A statement whose row `ro` is true when the session is read-only. */
  readonly readOnlyQuery: CompiledQuery
  /** A dialect from per-node `{ connection }` options. */
  dialect(config: Record<string, unknown>): ReplicatedMysqlDialect | ReplicatedPostgresDialect
}

function setupOf(
  name: string,
  role: 'primary' | 'replica',
  isConnectionError: (error: unknown) => boolean,
  onCreateConnection?: NodePoolSetup['onCreateConnection'],
): NodePoolSetup {
  return {
    node: { name, role },
    replicaSessionReadOnly: true,
    onCreateConnection,
    firstConnection: async () => {},
    trackPositions: true,
    isConnectionError,
  }
}

function roleOf(cluster: TestCluster, node: string): 'primary' | 'replica' {
  return cluster.nodes.find((n) => n.name === node)!.role
}

function mysqlKit(): EngineKit {
  const engine = new MysqlEngine({ causalUnsupported: () => {} })
  const isConnectionError = (e: unknown) => engine.isConnectionError(e)
  return {
    isConnectionError,
    isConnectError: (e) => engine.isConnectError(e),
    nodePool(cluster, node, options = {}) {
      const setup = setupOf(
        node,
        roleOf(cluster, node),
        isConnectionError,
        options.onCreateConnection,
      )
      const connection = {
        ...cluster.connectionOptions(node, options.overrides),
        ...options.driver,
      }
      return new MysqlNodePool({
        source: options.fromConnection
          ? () => createMysqlPool({ connection, poolSize: options.size })
          : createPool({ ...connection, connectionLimit: options.size ?? 10 }),
        setup,
        setUpSession: (c, raw) => engine.setUpConnection(c, raw, setup),
      })
    },
    sleep: (seconds) => CompiledQuery.raw(`select sleep(${seconds}) as s`),
    readOnlyQuery: CompiledQuery.raw('select @@session.tx_read_only = 1 as ro'),
    dialect: (config) => new ReplicatedMysqlDialect(config as any),
  }
}

function postgresKit(): EngineKit {
  const engine = new PostgresEngine({ causalUnsupported: () => {} })
  const isConnectionError = (e: unknown) => engine.isConnectionError(e)
  return {
    isConnectionError,
    isConnectError: (e) => engine.isConnectError(e),
    nodePool(cluster, node, options = {}) {
      const setup = setupOf(
        node,
        roleOf(cluster, node),
        isConnectionError,
        options.onCreateConnection,
      )
      const connection = {
        ...cluster.connectionOptions(node, options.overrides),
        ...options.driver,
      }
      let source: unknown
      if (options.fromConnection) {
        source = () => createPostgresPool({ connection, poolSize: options.size })
      } else {
        const pool = new pg.Pool({ ...connection, max: options.size ?? 10 })
        pool.on('error', () => {})
        source = pool
      }
      return new PostgresNodePool({
        source,
        setup,
        setUpSession: (c) => engine.setUpConnection(c, setup),
        cursor: Cursor,
      })
    },
    sleep: (seconds) => CompiledQuery.raw(`select pg_sleep(${seconds}) as s`),
    readOnlyQuery: CompiledQuery.raw(
      "select current_setting('default_transaction_read_only') = 'on' as ro",
    ),
    dialect: (config) => new ReplicatedPostgresDialect({ cursor: Cursor, ...(config as any) }),
  }
}

function kitOf(fixture: DialectFixture): EngineKit {
  return fixture.name === 'mysql' ? mysqlKit() : postgresKit()
}

/** Records what reaches the process as uncaught while it runs. */
function watchProcess(): { readonly seen: unknown[]; stop(): void } {
  const seen: unknown[] = []
  const onRejection = (reason: unknown) => seen.push(reason)
  const onException = (error: unknown) => seen.push(error)
  process.on('unhandledRejection', onRejection)
  process.on('uncaughtException', onException)
  return {
    seen,
    stop() {
      process.off('unhandledRejection', onRejection)
      process.off('uncaughtException', onException)
    },
  }
}

/** `'answered'` (or `'failed'`) if `promise` settles within `ms`, else `'pending'`. */
function settlesWithin(promise: Promise<unknown>, ms: number): Promise<string> {
  return Promise.race([
    promise.then(
      () => 'answered',
      () => 'failed',
    ),
    sleep(ms).then(() => 'pending'),
  ])
}

async function errorOf(promise: Promise<unknown>): Promise<any> {
  try {
    await promise
  } catch (error) {
    return error
  }
  expect.fail('expected an error')
}

/**
 * Abandons `connection` and reports what `pending` rejected with, and whether it did before the
 * event loop's next turn: no wait for any I/O or timer, so "at once" whatever the machine's load
 * (measured: about 0.5 ms from the call, a few ms the first time).
 */
async function abandonTiming(
  connection: PhysicalConnection,
  pending: Promise<unknown>,
  reason: Error,
): Promise<{ error: unknown; beforeTheNextTurn: boolean }> {
  let nextTurn = false
  let beforeTheNextTurn = false
  const settled = pending.then(
    () => expect.fail('expected a rejection'),
    (error: unknown) => {
      beforeTheNextTurn = !nextTurn
      return error
    },
  )
  connection.abandon(reason)
  setImmediate(() => {
    nextTurn = true
  })
  return { error: await settled, beforeTheNextTurn }
}

function one(rows: unknown[]): Record<string, unknown> {
  return rows[0] as Record<string, unknown>
}

forEachDialect((fixture) => {
  const cluster = useDialectCluster(fixture)

  describe('engine node pools against hung and refusing servers', function () {
    this.timeout(60_000)
    const kit = kitOf(fixture)
    const pools: NodePoolUnderTest[] = []
    let watch: ReturnType<typeof watchProcess>
    const nodePool = (node: string, options?: PoolOptions) => {
      const pool = kit.nodePool(cluster(), node, options)
      pools.push(pool)
      return pool
    }

    beforeEach(() => {
      watch = watchProcess()
    })
    afterEach(async () => {
      for (const node of cluster().nodes) await cluster().thaw(node.name)
      for (const node of cluster().nodes) {
        const proxy = await cluster().proxyFor(node.name)
        if (proxy.mode !== 'pass') await proxy.setMode('pass')
      }
      while (pools.length > 0) await pools.pop()!.end(200)
      watch.stop()
    })

    it('abandon() rejects a statement hung on a frozen replica at once and frees its pool slot', async () => {
      const pool = nodePool('replica-1', { size: 1 })
      await pool.init()
      const connection = await pool.acquire()
      const session = connection.sessionId
      const running = connection.execute(kit.sleep(5))
      running.catch(() => {})
      await sleep(50)
      await cluster().freeze('replica-1')
      await sleep(100)
      // Left to the driver, the statement waits for TCP: long after the server stopped.
      expect(await settlesWithin(running, 0)).to.equal('pending')

      const reason = new Error('replica-1 hung')
      expect(await abandonTiming(connection, running, reason)).to.deep.equal({
        error: reason,
        beforeTheNextTurn: true,
      })
      // The pool's own accounting: the slot is free (a size-1 pool can open a new connection).
      expect(pool.counts()!.total).to.equal(0)
      // Released or destroyed again by its holder: nothing happens.
      connection.release()
      connection.destroy()

      await cluster().thaw('replica-1')
      const next = await pool.acquire()
      expect(next.sessionId).to.not.equal(session)
      const { result } = await next.execute(CompiledQuery.raw('select 1 as one'))
      expect(Number(one(result.rows).one)).to.equal(1)
      next.release()
      // The late answer of the abandoned statement, and its socket's end, threw nothing.
      await sleep(100)
      expect(watch.seen).to.deep.equal([])
    })

    it('abandon() makes a stream waiting on a frozen replica throw at once', async () => {
      const pool = nodePool('replica-1', { size: 1 })
      await pool.init()
      const connection = await pool.acquire()
      const rows = connection.stream(kit.sleep(5), 1)
      const first = rows.next()
      first.catch(() => {})
      await sleep(50)
      await cluster().freeze('replica-1')
      await sleep(100)
      expect(await settlesWithin(first, 0)).to.equal('pending')

      const reason = new Error('replica-1 hung')
      expect(await abandonTiming(connection, first, reason)).to.deep.equal({
        error: reason,
        beforeTheNextTurn: true,
      })
      expect(pool.counts()!.total).to.equal(0)
      await cluster().thaw('replica-1')
      await sleep(100)
      expect(watch.seen).to.deep.equal([])
    })

    it('abandon() does nothing to a connection that runs nothing', async () => {
      const pool = nodePool('replica-1', { size: 1 })
      await pool.init()
      const connection = await pool.acquire()
      const session = connection.sessionId
      connection.abandon(new Error('late'))
      await connection.execute(CompiledQuery.raw('select 1 as one'))
      connection.release()
      const again = await pool.acquire()
      expect(again.sessionId).to.equal(session)
      again.release()
    })

    it('openControl() connects beside an exhausted pool, set up as a replica session without the hook', async () => {
      const hook = sinon.spy(async (_c: DatabaseConnection) => {})
      const pool = nodePool('replica-1', { size: 1, onCreateConnection: hook })
      await pool.init()
      const busy = await pool.acquire()
      const running = busy.execute(kit.sleep(5))
      running.catch(() => {})
      await sleep(50)
      // The failure it prevents: the pool has nothing to give.
      expect(await errorOf(pool.acquire(AbortSignal.timeout(200)))).to.have.property(
        'name',
        'TimeoutError',
      )

      const control = (await pool.openControl(2000)) as LifecycleConnection
      const { result } = await control.execute(CompiledQuery.raw('select 1 as one'))
      expect(Number(one(result.rows).one)).to.equal(1)
      const readOnly = await control.execute(kit.readOnlyQuery)
      expect(Boolean(Number(one(readOnly.result.rows).ro))).to.equal(true)
      expect(hook.callCount, 'the user hook ran once, on the pool connection only').to.equal(1)
      expect(pool.counts()!.total).to.equal(1)

      // What it is for: cancel the pool connection's statement.
      const engine =
        fixture.name === 'mysql'
          ? new MysqlEngine({ causalUnsupported: () => {} })
          : new PostgresEngine({ causalUnsupported: () => {} })
      const started = performance.now()
      await engine.cancel(control, busy.sessionId!, 'query')
      await running.catch(() => {})
      expect(performance.now() - started).to.be.below(2000)
      busy.release()

      const session = control.sessionId!
      expect(await fixture.serverSessions(cluster(), 'replica-1')).to.include(session)
      control.release()
      await pollUntil(
        async () =>
          (await fixture.serverSessions(cluster(), 'replica-1')).includes(session)
            ? undefined
            : true,
        {
          timeoutMs: 5000,
          intervalMs: 20,
          onTimeout: () => new Error('the control connection is still open on the server'),
        },
      )
    })

    it('openControl() to a node that never answers fails after its timeout with a connection error', async () => {
      const proxy = await cluster().proxyFor('replica-2')
      await proxy.setMode('blackhole')
      const pool = nodePool('replica-2', { overrides: { viaProxy: true } })
      await pool.init()
      const started = performance.now()
      const error = await errorOf(pool.openControl(300))
      const elapsed = performance.now() - started
      expect(elapsed).to.be.within(250, 1000)
      expect(kit.isConnectionError(error), String(error)).to.equal(true)
      await sleep(100)
      expect(watch.seen).to.deep.equal([])
    })

    it('end() resolves within its grace with a frozen node and a connection attempt to a black hole', async () => {
      const proxy = await cluster().proxyFor('replica-2')
      await proxy.setMode('blackhole')
      const hung = nodePool('replica-2', { overrides: { viaProxy: true } })
      const frozen = nodePool('replica-1')
      await Promise.all([hung.init(), frozen.init()])
      const attempt = hung.acquire()
      attempt.catch(() => {})
      const connection = await frozen.acquire()
      const running = connection.execute(kit.sleep(5))
      running.catch(() => {})
      const idle = await frozen.acquire()
      idle.release()
      await sleep(50)
      await cluster().freeze('replica-1')

      const started = performance.now()
      pools.length = 0
      await Promise.all([hung.end(300), frozen.end(300)])
      expect(performance.now() - started).to.be.within(250, 1200)
      // Nothing is left waiting: the attempt and the statement failed.
      expect(await settlesWithin(attempt, 50)).to.equal('failed')
      expect(await settlesWithin(running, 50)).to.equal('failed')
      expect(frozen.counts()).to.equal(undefined)
    })

    it('end() is polite and quick when the servers answer', async () => {
      const pool = nodePool('replica-1')
      await pool.init()
      const a = await pool.acquire()
      const b = await pool.acquire()
      const sessions = [a.sessionId!, b.sessionId!]
      a.release()
      b.release()
      pools.length = 0
      const started = performance.now()
      await pool.end(5000)
      expect(performance.now() - started).to.be.below(1000)
      const left = await fixture.serverSessions(cluster(), 'replica-1')
      expect(left.filter((id) => sessions.includes(id))).to.deep.equal([])
    })

    it('db.destroy() resolves in under 2 s with a black-holed replica and a frozen one, and nothing throws later', async function () {
      this.timeout(20_000)
      const c = cluster()
      const proxy = await c.proxyFor('replica-1')
      await proxy.setMode('blackhole')
      const connection = (node: string, viaProxy = false) => ({
        connection: c.connectionOptions(node, { viaProxy }),
      })
      const dialect = kit.dialect({
        primary: connection('primary'),
        replicas: [
          { name: 'replica-1', ...connection('replica-1', true) },
          { name: 'replica-2', ...connection('replica-2') },
        ],
        health: { probeIntervalMs: 0 },
      })
      const db = new Kysely<any>({ dialect })
      // A session on replica-2 that works, then a statement left running on it once it is frozen.
      await onReplica(db, 'replica-2').selectNoFrom(sql`1`.as('one')).execute()
      const background = [
        fixture.sleep(5).execute(onReplica(db, 'replica-2')),
        // Its connection attempt never gets an answer.
        onReplica(db, 'replica-1').selectNoFrom(sql`1`.as('one')).execute(),
      ].map((p) =>
        (p as Promise<unknown>).then(
          () => 'answered',
          () => 'failed',
        ),
      )
      await sleep(100)
      await c.freeze('replica-2')

      const started = performance.now()
      await db.destroy()
      const elapsed = performance.now() - started
      expect(elapsed).to.be.below(2000)
      // A library-created pool's connect timeout (3 s) and the frozen statement's socket would
      // surface now if anything was left behind.
      await sleep(3000)
      expect(watch.seen).to.deep.equal([])
      // Nothing is left waiting forever: both failed.
      const outcomes = background.map((p) => Promise.race([p, sleep(0).then(() => 'pending')]))
      expect(await Promise.all(outcomes)).to.deep.equal(['failed', 'failed'])
    })

    it('a wrong password fails acquire() with a connect error that is not a connection error', async () => {
      const pool = nodePool('replica-1', { overrides: { password: 'wrong' } })
      await pool.init()
      const error = await errorOf(pool.acquire())
      expect(kit.isConnectError(error), String(error)).to.equal(true)
      expect(kit.isConnectionError(error)).to.equal(false)
    })

    it('a database that does not exist fails acquire() with a connect error', async () => {
      const pool = nodePool('replica-1', { overrides: { database: 'missing_db' } })
      await pool.init()
      const error = await errorOf(pool.acquire())
      expect(kit.isConnectError(error), String(error)).to.equal(true)
      expect(kit.isConnectionError(error)).to.equal(false)
    })

    it('reports the connect timeout of a pool: 3 s when the library makes it, what the user set otherwise', async () => {
      const made = nodePool('replica-1', { fromConnection: true })
      const configured = nodePool('replica-1', {
        driver:
          fixture.name === 'mysql' ? { connectTimeout: 1234 } : { connectionTimeoutMillis: 1234 },
      })
      const plain = nodePool('replica-1')
      const overridden = nodePool('replica-1', {
        fromConnection: true,
        driver: fixture.name === 'mysql' ? { connectTimeout: 0 } : { connectionTimeoutMillis: 0 },
      })
      await Promise.all([made.init(), configured.init(), plain.init(), overridden.init()])
      expect(made.connectTimeoutMs()).to.equal(3000)
      expect(configured.connectTimeoutMs()).to.equal(1234)
      // mysql2 waits 10 s by default; pg has no timeout unless set.
      expect(plain.connectTimeoutMs()).to.equal(fixture.name === 'mysql' ? 10_000 : undefined)
      expect(overridden.connectTimeoutMs()).to.equal(undefined)
    })

    it("a library-made pool's connect timeout ends an attempt to a node that never answers", async function () {
      this.timeout(15_000)
      const proxy = await cluster().proxyFor('replica-2')
      await proxy.setMode('blackhole')
      const pool = nodePool('replica-2', { fromConnection: true, overrides: { viaProxy: true } })
      await pool.init()
      const started = performance.now()
      const error = await errorOf(pool.acquire())
      expect(performance.now() - started).to.be.within(2900, 4500)
      expect(kit.isConnectionError(error), String(error)).to.equal(true)
    })
  })

  describe('session set-up across checkouts', function () {
    this.timeout(60_000)

    if (fixture.name === 'mysql') {
      it('a mysql2 pool with resetOnRelease undoes session settings on release (the failure)', async () => {
        const pool = createPool({
          ...cluster().connectionOptions('replica-1'),
          connectionLimit: 1,
          resetOnRelease: true,
        }).promise()
        try {
          const first = await pool.getConnection()
          await first.query('set session transaction read only')
          const [[before]] = (await first.query('select @@session.tx_read_only as ro')) as any
          const id = first.threadId
          first.release()
          const second = await pool.getConnection()
          const [[after]] = (await second.query('select @@session.tx_read_only as ro')) as any
          expect(second.threadId).to.equal(id)
          second.release()
          expect([Number(before.ro), Number(after.ro)]).to.deep.equal([1, 0])
        } finally {
          await pool.end()
        }
      })
    }

    it(`keeps replica sessions read-only${fixture.name === 'mysql' ? ' and primary GTID tracking across resets (resetOnRelease)' : ' (pg-pool never resets a session)'}, so causal reads stay on replicas`, async () => {
      const mysql = fixture.name === 'mysql'
      const t = fixture.create(cluster(), {
        poolOptions: mysql ? { connectionLimit: 2, resetOnRelease: true } : { max: 2 },
        health: { probeIntervalMs: 0 },
      })
      const db = t.db
      try {
        await onPrimary(db).schema.dropTable('reset_rows').ifExists().execute()
        await onPrimary(db)
          .schema.createTable('reset_rows')
          .addColumn('id', 'integer', (col) => col.primaryKey())
          .execute()
        await cluster().waitForReplication()
        const sessions = new Set<number>()
        for (let i = 0; i < 20; i++) {
          const row = await onReplica(db, 'replica-1')
            .selectNoFrom([
              (mysql
                ? sql<unknown>`@@session.tx_read_only = 1`
                : sql<unknown>`current_setting('default_transaction_read_only') = 'on'`
              ).as('ro'),
              (mysql ? sql<unknown>`connection_id()` : sql<unknown>`pg_backend_pid()`).as('id'),
            ])
            .executeTakeFirstOrThrow()
          expect(Boolean(Number(row.ro)), `checkout ${i}`).to.equal(true)
          sessions.add(Number(row.id))
          if (mysql) {
            const tracked = await onPrimary(db)
              .selectNoFrom(sql<string>`@@session.session_track_system_variables`.as('v'))
              .executeTakeFirstOrThrow()
            expect(tracked.v, `checkout ${i}`).to.match(/last_gtid/)
          }
        }
        // The same physical connections were handed out again (and, on MariaDB, reset).
        expect(sessions.size).to.be.at.most(2)

        let onReplicas = 0
        for (let id = 1; id <= 30; id++) {
          await consistencyScope(async () => {
            await db.insertInto('reset_rows').values({ id }).execute()
            const before = t.routes.length
            const row = await db
              .selectFrom('reset_rows')
              .select('id')
              .where('id', '=', id)
              .executeTakeFirst()
            expect(row?.id, `read-back ${id}`).to.equal(id)
            if (t.routes.slice(before).some((r) => r.role === 'replica')) onReplicas++
          })
        }
        // Without a tracked write position a read-back would run on the primary.
        expect(onReplicas).to.be.at.least(25)
      } finally {
        await db.destroy()
      }
    })
  })
})
