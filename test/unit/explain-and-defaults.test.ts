import { expect } from 'chai'
import { CompiledQuery, Kysely, sql } from 'kysely'
import sinon from 'sinon'
import {
  explainRoute,
  onPrimary,
  onReplica,
  ReadOnlyViolationError,
  ReplicatedMysqlDialect,
  type ReplicatedMysqlDialectConfig,
  type RouteEvent,
  readOnly,
} from '../../src/index.js'
import { fakeMysqlNode } from '../support/fake-mysql.js'

interface DB {
  person: { id: number; name: string }
}

function setup(overrides: Partial<ReplicatedMysqlDialectConfig> = {}) {
  const primary = fakeMysqlNode('primary')
  const replicas = [fakeMysqlNode('replica-1'), fakeMysqlNode('replica-2')]
  const routes: RouteEvent[] = []
  const dialect = new ReplicatedMysqlDialect({
    primary: { pool: primary.pool },
    replicas: replicas.map((r) => ({ name: r.name, pool: r.pool })),
    consistency: 'eventual',
    health: { probeIntervalMs: 0 },
    onRoute: (e) => routes.push(e),
    ...overrides,
  })
  return { primary, replicas, routes, db: new Kysely<DB>({ dialect }) }
}

describe('explainRoute, defaultRoute and onReserveConnection (fake pools)', () => {
  describe('explainRoute', () => {
    it('tells where a builder or compiled query would run, without running it', async () => {
      const { db, primary, replicas } = setup()
      const read = await explainRoute(db, db.selectFrom('person').selectAll())
      expect(read).to.deep.equal({
        role: 'replica',
        node: undefined,
        reason: 'read',
        candidates: ['replica-1', 'replica-2'],
      })
      expect(await explainRoute(db, db.selectFrom('person').selectAll().forUpdate())).to.include({
        role: 'primary',
        node: 'primary',
        reason: 'locking-read',
      })
      expect(await explainRoute(db, CompiledQuery.raw('delete from person'))).to.include({
        role: 'primary',
        reason: 'write',
      })
      expect(
        await explainRoute(
          onReplica(db, 'replica-2'),
          onReplica(db, 'replica-2').selectFrom('person').selectAll(),
        ),
      ).to.include({ role: 'replica', node: 'replica-2', reason: 'hint' })
      expect(await explainRoute(db, onPrimary(db).selectFrom('person').selectAll())).to.include({
        role: 'primary',
        reason: 'hint',
      })
      // Nothing ran, and no connection was taken anywhere.
      for (const node of [primary, ...replicas]) sinon.assert.notCalled(node.pool.getConnection)
      await db.destroy()
    })

    it('throws what the real execution would: a write through readOnly(db)', async () => {
      const { db } = setup()
      const error = await explainRoute(
        db,
        sql`delete from person`.compile(readOnly(db) as never),
      ).catch((e: unknown) => e)
      expect(error).to.be.instanceOf(ReadOnlyViolationError)
      await db.destroy()
    })
  })

  describe("defaultRoute: 'primary'", () => {
    it('runs reads on the primary unless they come through onReplica(db) or readOnly(db)', async () => {
      const { db, routes, primary, replicas } = setup({ defaultRoute: 'primary' })
      await db.selectFrom('person').selectAll().execute()
      expect(routes.at(-1)).to.include({ role: 'primary', reason: 'default-route' })
      await onReplica(db).selectFrom('person').selectAll().execute()
      expect(routes.at(-1)).to.include({ role: 'replica', reason: 'hint' })
      await readOnly(db).selectFrom('person').selectAll().execute()
      expect(routes.at(-1)).to.include({ role: 'replica' })
      sinon.assert.calledOnce(primary.pool.getConnection)
      sinon.assert.callCount(replicas[0]!.pool.getConnection, 1)
      sinon.assert.callCount(replicas[1]!.pool.getConnection, 1)
      await db.destroy()
    })

    it('is refused when misspelt, naming the setting', () => {
      expect(() => setup({ defaultRoute: 'master' as never })).to.throw(/defaultRoute/)
    })
  })

  describe('onReserveConnection', () => {
    it('runs on every replica connection a read reserves and once on the primary session', async () => {
      const reserved: string[] = []
      const { db, replicas } = setup({
        onReserveConnection: async (connection, node) => {
          reserved.push(node.name)
          await connection.executeQuery(CompiledQuery.raw("set @tenant = 'acme'"))
        },
      })
      await db.selectFrom('person').selectAll().execute()
      await db.selectFrom('person').selectAll().execute()
      await db.connection().execute(async (conn) => {
        await conn.insertInto('person').values({ id: 1, name: 'a' }).execute()
        await conn.insertInto('person').values({ id: 2, name: 'b' }).execute()
      })
      expect(reserved.filter((n) => n === 'primary')).to.have.length(1)
      expect(reserved.filter((n) => n.startsWith('replica-'))).to.have.length(2)
      // The hook's statement ran on the very connection of the read, just before it.
      const onReplica1 = replicas.flatMap((r) => r.statements).map((s) => s.sql)
      expect(onReplica1.filter((s) => s === "set @tenant = 'acme'")).to.have.length(2)
      await db.destroy()
    })
  })
})
