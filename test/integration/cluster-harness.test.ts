import * as fs from 'node:fs'
import { expect } from 'chai'
import { createConnection } from 'mysql2/promise'
import pg from 'pg'
import {
  type MariadbCluster,
  type NodeConnectionOptions,
  type PostgresCluster,
  type ReplicatedTestCluster,
  startMariadbCluster,
  startPostgresCluster,
} from '../support/cluster.js'
import { useMariadbCluster, usePostgresCluster } from '../support/mocha-cluster.js'
import { pollUntil, sleep } from '../support/ports.js'

/** One open connection of the application user (or whoever the options name). */
interface TestClient {
  query(sql: string): Promise<any[]>
  close(): Promise<void>
}

async function mariadbConnect(options: NodeConnectionOptions): Promise<TestClient> {
  const connection = await createConnection(options)
  connection.on('error', () => {})
  return {
    query: async (sql) => (await connection.query(sql))[0] as any[],
    close: async () => connection.destroy(),
  }
}

async function postgresConnect(options: NodeConnectionOptions): Promise<TestClient> {
  const client = new pg.Client(options)
  client.on('error', () => {})
  try {
    await client.connect()
  } catch (error) {
    await client.end().catch(() => {})
    throw error
  }
  return {
    query: async (sql) => (await client.query(sql)).rows,
    close: () => client.end().catch(() => {}),
  }
}

/** Runs one statement over a connection of its own made with `options`. */
async function queryWith(
  connect: (options: NodeConnectionOptions) => Promise<TestClient>,
  options: NodeConnectionOptions,
  sql: string,
): Promise<any[]> {
  const client = await connect(options)
  try {
    return await client.query(sql)
  } finally {
    await client.close()
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

/** The error `promise` rejects with (fails the test when it resolves). */
async function errorOf(promise: Promise<unknown>): Promise<any> {
  try {
    await promise
  } catch (error) {
    return error
  }
  expect.fail('expected an error')
}

/** Runs one statement as the application user on a node. */
async function mariadbQuery(
  cluster: MariadbCluster,
  node: string,
  sql: string,
  params?: unknown[],
): Promise<any[]> {
  const connection = await createConnection(cluster.connectionOptions(node))
  try {
    const [rows] = await connection.query(sql, params)
    return rows as any[]
  } finally {
    connection.destroy()
  }
}

/** Runs one statement as the application user on a node. */
async function postgresQuery(
  cluster: PostgresCluster,
  node: string,
  sql: string,
  params?: unknown[],
): Promise<any[]> {
  const client = new pg.Client(cluster.connectionOptions(node))
  await client.connect()
  try {
    return (await client.query(sql, params as any[])).rows
  } finally {
    await client.end()
  }
}

function processExists(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

/** Pids of the processes whose command line mentions `dir` (Linux; empty elsewhere). */
function processesUsing(dir: string): number[] {
  if (process.platform !== 'linux') return []
  const pids: number[] = []
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    try {
      if (fs.readFileSync(`/proc/${entry}/cmdline`, 'utf8').includes(dir)) pids.push(Number(entry))
    } catch {
      // gone
    }
  }
  return pids.filter(processExists)
}

/** Calls `fn` with environment variables set, restoring them afterwards. */
async function withEnv<T>(variables: Record<string, string>, fn: () => Promise<T>): Promise<T> {
  const saved = Object.fromEntries(Object.keys(variables).map((key) => [key, process.env[key]]))
  Object.assign(process.env, variables)
  try {
    return await fn()
  } finally {
    for (const [key, value] of Object.entries(saved)) {
      if (value === undefined) delete process.env[key]
      else process.env[key] = value
    }
  }
}

/** What the engine-independent harness tests need to know about an engine. */
interface HarnessEngine<C extends ReplicatedTestCluster> {
  name: string
  /** What the engine calls a replica, in test titles. */
  replica: string
  /** Starts a cluster of the suite's own (`useMariadbCluster`, `usePostgresCluster`). */
  useCluster: () => () => C
  /** Starts a cluster, or connects to the one the URLs variable names. */
  start: () => Promise<C>
  urlsVariable: string
  /** The URL scheme of `urlsVariable`. */
  scheme: string
  /** Runs one statement as the application user on a node. */
  query: (cluster: C, node: string, sql: string) => Promise<any[]>
  /** Opens one connection. */
  connect: (options: NodeConnectionOptions) => Promise<TestClient>
  /** A statement whose one row says which server answered, and that row for a node. */
  who: { sql: string; expected: (cluster: C, node: string) => Record<string, unknown> }
  /** Properties of the error of a login with a wrong password. */
  wrongPasswordError: Record<string, unknown>
  /** Properties of the error of a login refused by `denyLogin`. */
  deniedLoginError: Record<string, unknown>
  /** Asked of the database: whether a node is a writable primary (not read-only, not in recovery). */
  isWritablePrimary: (cluster: C, node: string) => Promise<boolean>
  /** Asked of the database: the port of the server a replica replicates from. */
  sourcePort: (cluster: C, node: string) => Promise<number | undefined>
  /** Makes a replica stop receiving changes from its source (the test's own fault). */
  stopReceiving: (cluster: C, node: string) => Promise<void>
  /** Properties of the error an INSERT on a replica fails with. */
  readOnlyError: Record<string, unknown>
  /** `setReplicaDelay`'s argument, and how long (ms) it holds a new row back at least. */
  delay: { amount: number; atLeastMs: number }
  /** The engine's own tests, run after the first shared one. */
  ownTests: (cluster: () => C) => void
}

function describeHarness<C extends ReplicatedTestCluster>(engine: HarnessEngine<C>): void {
  describe(`cluster harness: ${engine.name}`, () => {
    const cluster = engine.useCluster()
    const query = (node: string, sql: string) => engine.query(cluster(), node, sql)
    const rowsWithId = (node: string, id: number) =>
      query(node, `SELECT id FROM items WHERE id = ${id}`)

    before(async () => {
      await query('primary', 'CREATE TABLE items (id INT PRIMARY KEY, label TEXT)')
    })

    it(`replicates a write on the primary to every ${engine.replica}`, async () => {
      const c = cluster()
      await query('primary', "INSERT INTO items VALUES (1, 'one')")
      await c.waitForReplication()
      for (const replica of c.replicas) {
        const rows = await query(replica.name, 'SELECT label FROM items WHERE id = 1')
        expect(rows, replica.name).to.deep.equal([{ label: 'one' }])
      }
    })

    engine.ownTests(cluster)

    it(`refuses writes by the application user on a ${engine.replica}`, async () => {
      let error: any
      try {
        await query('replica-1', "INSERT INTO items VALUES (99, 'nope')")
      } catch (caught) {
        error = caught
      }
      expect(error, `INSERT on a ${engine.replica}`).to.be.an('error')
      expect(error).to.include(engine.readOnlyError)
    })

    it('stopReplicaSqlThread holds changes back until startReplica', async () => {
      const c = cluster()
      await c.stopReplicaSqlThread('replica-2')
      await query('primary', "INSERT INTO items VALUES (2, 'two')")
      await c.waitForReplication() // replica-1 only: replica-2 is paused
      expect(await rowsWithId('replica-1', 2)).to.have.length(1)
      await sleep(100)
      expect(await rowsWithId('replica-2', 2)).to.have.length(0)
      await c.startReplica('replica-2')
      await c.waitForReplication()
      expect(await rowsWithId('replica-2', 2)).to.have.length(1)
    })

    it(`resumes replication after a ${engine.replica} is killed and restarted`, async function () {
      const c = cluster()
      if (c.external) this.skip()
      const pid = c.pid('replica-1')!
      await c.kill('replica-1')
      expect(processExists(pid), 'killed server process').to.equal(false)
      expect(c.isRunning('replica-1')).to.equal(false)
      await query('primary', "INSERT INTO items VALUES (3, 'three')")
      await c.waitForReplication() // skips the dead replica
      await c.restart('replica-1')
      expect(c.pid('replica-1')).to.be.a('number').and.not.equal(pid)
      await c.waitForReplication()
      expect(await rowsWithId('replica-1', 3)).to.have.length(1)
    })

    it('survives a primary kill and restart', async function () {
      const c = cluster()
      if (c.external) this.skip()
      await c.kill('primary')
      await c.restart('primary')
      await query('primary', "INSERT INTO items VALUES (6, 'six')")
      await c.waitForReplication()
      for (const replica of c.replicas) {
        expect(await rowsWithId(replica.name, 6), replica.name).to.have.length(1)
      }
    })

    it(`setReplicaDelay makes a ${engine.replica} stale for a while`, async function () {
      const c = cluster()
      if (c.external) this.skip()
      await c.setReplicaDelay('replica-1', engine.delay.amount)
      try {
        const written = Date.now()
        await query('primary', "INSERT INTO items VALUES (4, 'four')")
        await c.waitForReplication() // replica-2 only: replica-1 is delayed
        expect(await rowsWithId('replica-2', 4)).to.have.length(1)
        expect(await rowsWithId('replica-1', 4)).to.have.length(0)
        await pollUntil(
          async () => ((await rowsWithId('replica-1', 4)).length === 1 ? true : undefined),
          { timeoutMs: 5000, intervalMs: 20, onTimeout: () => new Error('never applied') },
        )
        expect(Date.now() - written).to.be.greaterThan(engine.delay.atLeastMs)
      } finally {
        await c.setReplicaDelay('replica-1', 0)
      }
    })

    it(`freeze() hangs a ${engine.replica} (open and new connections) until thaw()`, async function () {
      const c = cluster()
      if (c.external) this.skip()
      const open = await engine.connect(c.connectionOptions('replica-1'))
      try {
        await c.freeze('replica-1')
        expect(c.isFrozen('replica-1')).to.equal(true)
        const onOpen = open.query(engine.who.sql)
        const onNew = query('replica-1', engine.who.sql)
        onOpen.catch(() => {})
        onNew.catch(() => {})
        expect(await settlesWithin(Promise.race([onOpen, onNew]), 300)).to.equal('pending')
        // the harness's waits skip a frozen replica
        await query('primary', "INSERT INTO items VALUES (10, 'ten')")
        await c.waitForReplication()
        await c.thaw('replica-1')
        expect(c.isFrozen('replica-1')).to.equal(false)
        const expected = engine.who.expected(c, 'replica-1')
        expect(await onOpen).to.deep.equal([expected])
        expect(await onNew).to.deep.equal([expected])
      } finally {
        await c.thaw('replica-1')
        await open.close()
      }
      await c.waitForReplication()
      expect(await rowsWithId('replica-1', 10)).to.have.length(1)
    })

    it('a blackhole proxy hangs queries without error; back in pass mode, connections work', async () => {
      const c = cluster()
      const proxy = await c.proxyFor('replica-1')
      expect(await c.proxyFor('replica-1')).to.equal(proxy)
      const options = c.connectionOptions('replica-1', { viaProxy: true })
      expect(options.port).to.equal(proxy.port).and.not.equal(c.connectionOptions('replica-1').port)
      const expected = engine.who.expected(c, 'replica-1')
      const open = await engine.connect(options)
      try {
        expect(await open.query(engine.who.sql)).to.deep.equal([expected])
        await proxy.setMode('blackhole')
        const onOpen = open.query(engine.who.sql)
        const onNew = queryWith(engine.connect, options, engine.who.sql)
        onOpen.catch(() => {})
        onNew.catch(() => {})
        expect(await settlesWithin(Promise.race([onOpen, onNew]), 300)).to.equal('pending')
        // the harness's admin connections do not go through the proxy
        expect(await c.admin('replica-1', engine.who.sql)).to.deep.equal([expected])
        await proxy.setMode('pass')
        expect(await queryWith(engine.connect, options, engine.who.sql)).to.deep.equal([expected])
        // held bytes are delivered, like a healed partition
        expect(await onOpen).to.deep.equal([expected])
        expect(await onNew).to.deep.equal([expected])

        await proxy.setMode('reset')
        expect(await errorOf(open.query(engine.who.sql))).to.be.an('error')
        expect(await errorOf(queryWith(engine.connect, options, engine.who.sql))).to.be.an('error')
        await proxy.setMode('refuse')
        expect(await errorOf(queryWith(engine.connect, options, engine.who.sql))).to.include({
          code: 'ECONNREFUSED',
        })
        await proxy.setMode('pass')
        expect(await queryWith(engine.connect, options, engine.who.sql)).to.deep.equal([expected])
        expect(proxy.stats().accepted).to.be.greaterThan(3)
      } finally {
        await proxy.setMode('pass')
        await open.close()
      }
    })

    it('refuses a login with a wrong password', async () => {
      const c = cluster()
      const options = c.connectionOptions('replica-1', { password: 'wrong' })
      expect(options.password).to.equal('wrong')
      const error = await errorOf(queryWith(engine.connect, options, engine.who.sql))
      expect(error).to.include(engine.wrongPasswordError)
    })

    it(`denyLogin() refuses the application user on one ${engine.replica} only`, async function () {
      const c = cluster()
      if (c.external) this.skip()
      await c.denyLogin('replica-1')
      try {
        const error = await errorOf(query('replica-1', engine.who.sql))
        expect(error).to.include(engine.deniedLoginError)
        for (const node of ['primary', 'replica-2']) {
          expect(await query(node, engine.who.sql), node).to.deep.equal([
            engine.who.expected(c, node),
          ])
        }
        // replication goes on (MariaDB: the change made no replica-local GTID)
        await query('primary', "INSERT INTO items VALUES (11, 'eleven')")
        await c.waitForReplication()
        expect(await c.admin('replica-1', 'SELECT id FROM items WHERE id = 11')).to.have.length(1)
      } finally {
        await c.allowLogin('replica-1')
      }
      expect(await query('replica-1', engine.who.sql)).to.deep.equal([
        engine.who.expected(c, 'replica-1'),
      ])
      await query('primary', "INSERT INTO items VALUES (12, 'twelve')")
      await c.waitForReplication()
      expect(await rowsWithId('replica-1', 12)).to.have.length(1)
    })

    it(`points the harness at an existing cluster through ${engine.urlsVariable}`, async function () {
      const c = cluster()
      if (c.external) this.skip()
      const urls = c.nodes
        .map((node) => {
          const o = c.connectionOptions(node)
          return `${engine.scheme}://${o.user}:${o.password}@${o.host}:${o.port}/${o.database}`
        })
        .join(',')
      const external = await withEnv({ [engine.urlsVariable]: urls }, engine.start)
      expect(external.external).to.equal(true)
      // MariaDB: read from @@server_id; PostgreSQL: undefined on both
      expect(external.nodes.map((node) => node.serverId)).to.deep.equal(
        c.nodes.map((node) => node.serverId),
      )
      for (const node of c.nodes) {
        expect(external.connectionOptions(node.name)).to.deep.equal(c.connectionOptions(node))
      }
      await query('primary', "INSERT INTO items VALUES (5, 'five')")
      await external.waitForReplication()
      expect(await external.admin('replica-2', 'SELECT id FROM items WHERE id = 5')).to.have.length(
        1,
      )
      for (const operation of [
        () => external.kill('replica-1'),
        () => external.restart('replica-1'),
        () => external.setReplicaDelay('replica-1', 1),
      ]) {
        let error: Error | undefined
        await operation().catch((caught) => (error = caught))
        expect(error?.message).to.match(/needs a cluster started by the test harness/)
      }
      await external.stop()
      expect(c.isRunning('primary')).to.equal(true)
    })

    it(`switchover() makes a ${engine.replica} the primary; the others and the old primary follow it`, async function () {
      const c = cluster()
      if (c.external) this.skip()
      await query('primary', "INSERT INTO items VALUES (20, 'before')")
      const change = await c.switchover('replica-1')
      expect(change).to.include({ oldPrimary: 'primary', newPrimary: 'replica-1' })
      expect(c.primaryName()).to.equal('replica-1')
      expect(c.primary.name).to.equal('replica-1')
      expect(c.replicas.map((node) => node.name)).to.deep.equal(['primary', 'replica-2'])
      for (const node of c.nodes) {
        expect(await engine.isWritablePrimary(c, node.name), node.name).to.equal(
          node.name === 'replica-1',
        )
      }
      expect(await rowsWithId('replica-1', 20), 'nothing lost').to.have.length(1)
      await query('replica-1', "INSERT INTO items VALUES (21, 'after')")
      await c.waitForReplication()
      for (const node of ['replica-2', 'primary']) {
        expect(await engine.sourcePort(c, node), node).to.equal(c.primary.port)
        expect(await rowsWithId(node, 21), node).to.have.length(1)
      }
      const error = await errorOf(query('primary', "INSERT INTO items VALUES (22, 'old')"))
      expect(error, 'a write on the old primary').to.include(engine.readOnlyError)
      expect(await rowsWithId('replica-1', 22)).to.have.length(0)
    })

    it('failover() promotes a replica after it caught up with the other; rejoin() brings the old primary back', async function () {
      const c = cluster()
      if (c.external) this.skip()
      // primary: replica-1; replica-2 stops receiving, so only the node named 'primary' gets row 30
      await engine.stopReceiving(c, 'replica-2')
      await query('replica-1', "INSERT INTO items VALUES (30, 'only on one replica')")
      await c.waitForReplication(10_000, ['primary'])
      expect(await c.admin('replica-2', 'SELECT id FROM items WHERE id = 30')).to.have.length(0)

      const change = await c.failover('replica-2', { delayMs: 100 })
      expect(change).to.deep.include({
        oldPrimary: 'replica-1',
        newPrimary: 'replica-2',
        caughtUpFrom: ['primary'],
      })
      expect(change.durationMs).to.be.at.least(100)
      expect(c.primaryName()).to.equal('replica-2')
      expect(c.isRunning('replica-1')).to.equal(false)
      expect(await errorOf(query('replica-1', engine.who.sql))).to.include({
        code: 'ECONNREFUSED',
      })
      expect(await engine.isWritablePrimary(c, 'replica-2')).to.equal(true)
      expect(await engine.isWritablePrimary(c, 'primary')).to.equal(false)
      expect(await rowsWithId('replica-2', 30), 'nothing lost').to.have.length(1)
      await query('replica-2', "INSERT INTO items VALUES (31, 'after failover')")
      await c.waitForReplication()
      expect(await engine.sourcePort(c, 'primary')).to.equal(c.primary.port)
      expect(await rowsWithId('primary', 31)).to.have.length(1)

      await c.rejoin('replica-1')
      expect(c.isRunning('replica-1')).to.equal(true)
      await c.waitForReplication()
      expect(await engine.isWritablePrimary(c, 'replica-1')).to.equal(false)
      expect(await engine.sourcePort(c, 'replica-1')).to.equal(c.primary.port)
      expect(await rowsWithId('replica-1', 31)).to.have.length(1)
      const error = await errorOf(query('replica-1', "INSERT INTO items VALUES (32, 'old')"))
      expect(error, 'a write on the old primary').to.include(engine.readOnlyError)
    })

    it('stop() leaves no process and removes its directory', async function () {
      const c = cluster()
      if (c.external) this.skip()
      const pids = c.nodes.map((node) => c.pid(node)!)
      expect(pids.every((pid) => typeof pid === 'number' && processExists(pid))).to.equal(true)
      expect(processesUsing(c.directory!)).to.include.members(pids)
      await c.stop()
      await c.stop() // idempotent
      expect(pids.filter(processExists)).to.deep.equal([])
      expect(processesUsing(c.directory!)).to.deep.equal([])
      expect(fs.existsSync(c.directory!)).to.equal(false)
    })
  })
}

describeHarness<MariadbCluster>({
  name: 'MariaDB',
  replica: 'replica',
  useCluster: useMariadbCluster,
  start: startMariadbCluster,
  urlsVariable: 'KYSELY_REPLICATED_MYSQL_URLS',
  scheme: 'mysql',
  query: mariadbQuery,
  connect: mariadbConnect,
  who: {
    sql: 'SELECT @@server_id AS id',
    expected: (c, node) => ({ id: c.nodes.find((n) => n.name === node)!.serverId }),
  },
  wrongPasswordError: { errno: 1045 },
  deniedLoginError: { errno: 1045 },
  isWritablePrimary: async (c, node) => {
    const [row] = await c.admin(node, 'SELECT @@read_only AS ro')
    const [status] = await c.admin(node, 'SHOW SLAVE STATUS')
    return Number(row.ro) === 0 && status === undefined
  },
  sourcePort: async (c, node) => {
    const [status] = await c.admin(node, 'SHOW SLAVE STATUS')
    return status === undefined ? undefined : Number(status.Master_Port)
  },
  stopReceiving: async (c, node) => {
    await c.admin(node, 'STOP SLAVE IO_THREAD')
  },
  // read_only
  readOnlyError: { errno: 1290, code: 'ER_OPTION_PREVENTS_STATEMENT' },
  // whole-second timestamps: a 2 s delay holds the row back for more than 1 s
  delay: { amount: 2, atLeastMs: 900 },
  ownTests: (cluster) => {
    it('gives every node its own server_id (primary 1, replicas 2, 3)', async () => {
      const c = cluster()
      const ids = await Promise.all(
        c.nodes.map(async (node) => {
          const [row] = await mariadbQuery(c, node.name, 'SELECT @@server_id AS id')
          expect(Number(row.id)).to.equal(node.serverId)
          return Number(row.id)
        }),
      )
      expect(new Set(ids).size).to.equal(c.nodes.length)
      if (!c.external) expect(ids).to.deep.equal([1, 2, 3])
    })

    it('lets the application user read the replication status, without ALL privileges', async () => {
      const c = cluster()
      const [status] = await mariadbQuery(c, 'replica-1', 'SHOW SLAVE STATUS')
      expect(status.Slave_IO_Running).to.equal('Yes')
      expect(status.Slave_SQL_Running).to.equal('Yes')
      expect(status.Using_Gtid).to.equal('Slave_Pos')
      if (!c.external) {
        const grants = (await mariadbQuery(c, 'primary', 'SHOW GRANTS')).map(
          (row) => Object.values(row)[0] as string,
        )
        expect(grants.join('\n')).not.to.match(/ALL PRIVILEGES|READ ONLY ADMIN|SUPER/)
      }
    })
  },
})

describeHarness<PostgresCluster>({
  name: 'PostgreSQL',
  replica: 'standby',
  useCluster: usePostgresCluster,
  start: startPostgresCluster,
  urlsVariable: 'KYSELY_REPLICATED_PG_URLS',
  scheme: 'postgres',
  query: postgresQuery,
  connect: postgresConnect,
  who: {
    sql: 'SELECT inet_server_port() AS port',
    expected: (c, node) => ({ port: c.connectionOptions(node).port }),
  },
  wrongPasswordError: { code: '28P01' }, // invalid_password
  deniedLoginError: { code: '28000' }, // invalid_authorization_specification (pg_hba reject)
  isWritablePrimary: async (c, node) => {
    const [row] = await c.admin(
      node,
      "SELECT pg_is_in_recovery() AS standby, current_setting('default_transaction_read_only') AS ro",
    )
    return row.standby === false && row.ro === 'off'
  },
  sourcePort: async (c, node) => {
    const [row] = await c.admin(
      node,
      "SELECT sender_port FROM pg_stat_wal_receiver WHERE status = 'streaming'",
    )
    return row === undefined ? undefined : Number(row.sender_port)
  },
  stopReceiving: async (c, node) => {
    await c.admin(node, "ALTER SYSTEM SET primary_conninfo = ''")
    await c.admin(node, 'SELECT pg_reload_conf()')
    await pollUntil(
      async () =>
        (await c.admin(node, 'SELECT 1 FROM pg_stat_wal_receiver')).length === 0 ? true : undefined,
      { timeoutMs: 5000, onTimeout: () => new Error(`${node} still receives`) },
    )
  },
  readOnlyError: { code: '25006' }, // read_only_sql_transaction
  delay: { amount: 700, atLeastMs: 600 },
  ownTests: (cluster) => {
    it('runs each node as its own server: one primary, standbys in recovery', async () => {
      const c = cluster()
      const rows = await Promise.all(
        c.nodes.map(async (node) => {
          const [row] = await postgresQuery(
            c,
            node.name,
            'SELECT pg_is_in_recovery() AS standby, inet_server_port() AS port, current_user AS who',
          )
          return row
        }),
      )
      expect(rows.map((row) => row.standby)).to.deep.equal([false, true, true])
      expect(rows.map((row) => row.port)).to.deep.equal(c.nodes.map((node) => node.port))
      expect(new Set(rows.map((row) => row.port)).size).to.equal(3)
      expect(rows.every((row) => row.who === c.user)).to.equal(true)
    })

    it('refuses a connection to a database that does not exist (3D000)', async () => {
      const options = cluster().connectionOptions('replica-1', { database: 'no_such_db' })
      const error = await errorOf(queryWith(postgresConnect, options, 'SELECT 1'))
      expect(error).to.include({ code: '3D000' })
    })

    it('uses a non-superuser application role', async () => {
      const [role] = await postgresQuery(
        cluster(),
        'primary',
        'SELECT rolsuper, rolbypassrls, rolreplication FROM pg_roles WHERE rolname = current_user',
      )
      expect(role).to.deep.equal({ rolsuper: false, rolbypassrls: false, rolreplication: false })
    })
  },
})
