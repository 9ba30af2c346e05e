import { expect } from 'chai'
import { CompiledQuery, Kysely } from 'kysely'
import {
  PrimaryChangedError,
  PrimaryUnavailableError,
  ReplicatedMysqlDialect,
  type ReplicationEvent,
  type RouteEvent,
} from '../../src/index.js'
import { type FakeMysqlNode, fakeMysqlNode } from '../support/fake-mysql.js'

/** Makes a fake node answer probes as a primary (writable) or a replica (read-only, replicating). */
function answerAs(node: FakeMysqlNode, role: 'writable' | 'read-only'): void {
  node.respond = (text) => {
    if (text.startsWith('select @@gtid_slave_pos')) {
      return [{ pos: '', ro: role === 'writable' ? 0 : 1, sro: 0 }]
    }
    if (text.startsWith('show slave status')) {
      return role === 'writable'
        ? []
        : [{ Seconds_Behind_Master: 0, Slave_SQL_Running: 'Yes', Slave_IO_Running: 'Yes' }]
    }
    if (role === 'read-only' && /^\s*insert/i.test(text)) {
      return Object.assign(new Error('The MariaDB server is running with the --read-only option'), {
        code: 'ER_OPTION_PREVENTS_STATEMENT',
        errno: 1290,
      })
    }
    return undefined
  }
}

function setup() {
  const primary = fakeMysqlNode('primary')
  const replicas = [fakeMysqlNode('replica-1'), fakeMysqlNode('replica-2')]
  answerAs(primary, 'writable')
  for (const r of replicas) answerAs(r, 'read-only')
  const events: ReplicationEvent[] = []
  const routes: RouteEvent[] = []
  const dialect = new ReplicatedMysqlDialect({
    primary: { pool: primary.pool },
    replicas: replicas.map((r) => ({ name: r.name, pool: r.pool })),
    consistency: 'eventual',
    health: { probeIntervalMs: 0 },
    topology: { writeWaitMs: 300 },
    onEvent: (e) => events.push(e),
    onRoute: (e) => routes.push(e),
  })
  return { primary, replicas, events, routes, dialect, db: new Kysely<any>({ dialect }) }
}

describe('topology (fake pools): roles follow what the servers say', () => {
  it('moves the primary when it stops taking writes and exactly one other node does', async () => {
    const { primary, replicas, events, routes, dialect, db } = setup()
    await dialect.probeNow()
    answerAs(primary, 'read-only')
    answerAs(replicas[0]!, 'writable')
    // The write is refused by the former primary, waits for the new one, and runs there.
    await db.insertInto('t').values({ id: 1 }).execute()
    expect(routes.at(-1)).to.include({ node: 'replica-1', reason: 'primary-changed' })
    expect(events).to.deep.include({
      type: 'primary-changed',
      node: 'replica-1',
      from: 'primary',
      to: 'replica-1',
    })
    const roles = Object.fromEntries(dialect.getReplicaInfo().map((n) => [n.name, n.role]))
    expect(roles).to.deep.equal({
      primary: 'replica',
      'replica-1': 'primary',
      'replica-2': 'replica',
    })
    await db.destroy()
  })

  it('reports a statement of a session bound to the former primary on that node, where it runs', async () => {
    const { primary, replicas, routes, dialect, db } = setup()
    await dialect.probeNow()
    await db.connection().execute(async (conn) => {
      // Session state binds the session to its primary.
      await conn.executeQuery(CompiledQuery.raw('set @x = 1'))
      answerAs(primary, 'read-only')
      answerAs(replicas[0]!, 'writable')
      await dialect.probeNow()
      expect(dialect.getReplicaInfo().find((n) => n.name === 'replica-1')?.role).to.equal('primary')
      const ranBefore = primary.statements.length
      await conn.executeQuery(CompiledQuery.raw('select @x'))
      // It ran on the former primary's session, and says so (a cancel reaches that node too).
      expect(primary.statements.slice(ranBefore).map((s) => s.sql)).to.include('select @x')
      expect(replicas[0]!.statements.map((s) => s.sql)).to.not.include('select @x')
      expect(routes.at(-1)).to.include({ node: 'primary', reason: 'session-pinned' })
      // A write there is refused (the node is read-only now): the session cannot follow the
      // primary, and the error says which primary it was bound to.
      const error = await conn
        .executeQuery(CompiledQuery.raw('insert into t (id) values (1)'))
        .catch((e: unknown) => e)
      expect(error).to.be.instanceOf(PrimaryChangedError)
      expect(error).to.include({ code: 'KR_PRIMARY_CHANGED', retriable: true, node: 'primary' })
      expect((error as Error).message).to.include('the primary "primary"')
    })
    await db.destroy()
  })

  it('fails a transaction whose primary stopped taking writes with PrimaryChangedError, retriable', async () => {
    const { primary, replicas, dialect, db } = setup()
    await dialect.probeNow()
    const error = await db
      .transaction()
      .execute(async (trx) => {
        await trx.insertInto('t').values({ id: 1 }).execute()
        answerAs(primary, 'read-only')
        answerAs(replicas[0]!, 'writable')
        await dialect.probeNow()
        await trx.insertInto('t').values({ id: 2 }).execute()
      })
      .catch((e: unknown) => e)
    expect(error).to.be.instanceOf(PrimaryChangedError)
    expect(error).to.include({ code: 'KR_PRIMARY_CHANGED', retriable: true, node: 'primary' })
    // Nothing of it reached the new primary; a retry of the whole transaction runs there.
    expect(
      replicas[0]!.statements.map((st) => st.sql).filter((q) => /insert/.test(q)),
    ).to.deep.equal([])
    await db.transaction().execute(async (trx) => {
      await trx.insertInto('t').values({ id: 3 }).execute()
    })
    expect(replicas[0]!.statements.some((st) => /insert/.test(st.sql))).to.equal(true)
    await db.destroy()
  })

  it('refuses a split brain: two writable nodes are a conflict, never a reason to move', async () => {
    const { primary, replicas, events, routes, dialect, db } = setup()
    answerAs(replicas[0]!, 'writable')
    await dialect.probeNow()
    expect(events.some((e) => e.type === 'topology-conflict')).to.equal(true)
    await db.insertInto('t').values({ id: 1 }).execute()
    expect(routes.at(-1)).to.include({ node: 'primary', reason: 'write' })
    // The current primary stops taking writes while two others do: writes fail, none moves.
    answerAs(primary, 'read-only')
    answerAs(replicas[1]!, 'writable')
    const error = await db
      .insertInto('t')
      .values({ id: 2 })
      .execute()
      .catch((e: unknown) => e)
    expect(error, JSON.stringify(routes.slice(-2))).to.be.instanceOf(PrimaryUnavailableError)
    expect((error as Error).message).to.match(/"replica-1".*"replica-2"|"replica-2".*"replica-1"/)
    expect(events.some((e) => e.type === 'primary-changed')).to.equal(false)
    await db.destroy()
  })

  it("keeps the configured roles with topology: 'static'", async () => {
    const primary = fakeMysqlNode('primary')
    const replica = fakeMysqlNode('replica-1')
    answerAs(primary, 'read-only')
    answerAs(replica, 'writable')
    const dialect = new ReplicatedMysqlDialect({
      primary: { pool: primary.pool },
      replicas: [{ name: 'replica-1', pool: replica.pool }],
      health: { probeIntervalMs: 0 },
      topology: 'static',
    })
    const db = new Kysely<any>({ dialect })
    await dialect.probeNow()
    const error = await db
      .insertInto('t')
      .values({ id: 1 })
      .execute()
      .catch((e: unknown) => e)
    expect((error as { errno?: number }).errno).to.equal(1290)
    expect(dialect.getReplicaInfo()[0]).to.include({ name: 'primary', role: 'primary' })
    await db.destroy()
  })
})
