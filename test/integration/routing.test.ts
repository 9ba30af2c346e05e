import { expect } from 'chai'
import { onPrimary, onReplica, readOnly } from '../../src/index.js'
import { forEachDialect, type TestDialect, useDialectCluster } from '../support/dialects.js'

forEachDialect((fx) => {
  describe('routing on a real replicated cluster', function () {
    this.timeout(60_000)
    const cluster = useDialectCluster(fx)
    let t: TestDialect

    before(async () => {
      t = fx.create(cluster(), {
        consistency: 'eventual',
        selector: 'round-robin',
        health: { probeIntervalMs: 0 },
      })
      await t.db.schema.dropTable('person').ifExists().execute()
      await t.db.schema
        .createTable('person')
        .addColumn('id', 'integer', (c) => c.primaryKey())
        .addColumn('name', 'varchar(64)')
        .execute()
      await cluster().waitForReplication()
    })
    after(async () => {
      await t?.db.destroy()
    })

    async function where(db = t.db): Promise<string> {
      const { rows } = await fx.whereAmI(cluster()).execute(db)
      return fx.nodeOf(cluster(), rows[0]!)
    }

    it('runs plain reads on the replicas, alternating, as the servers report', async () => {
      const seen = [await where(), await where(), await where(), await where()]
      expect(seen.every((n) => n.startsWith('replica-'))).to.equal(true)
      expect(new Set(seen).size).to.equal(2)
    })

    it('runs writes on the primary, as the primary reports', async () => {
      await t.db.insertInto('person').values({ id: 1, name: 'ada' }).execute()
      const rows = await onPrimary(t.db)
        .selectFrom('person')
        .select('name')
        .where('id', '=', 1)
        .execute()
      expect(rows).to.deep.equal([{ name: 'ada' }])
      expect(t.routes.at(-2)).to.include({ node: 'primary', reason: 'write' })
    })

    it('a write that reaches a replica fails loudly instead of diverging it', async () => {
      // Misconfigure on purpose: the "primary" pool points at a replica.
      const wrong = fx.create(cluster(), {
        consistency: 'eventual',
        health: { probeIntervalMs: 0 },
        primaryNode: 'replica-1',
        // The configured roles hold: the write is not moved to the real primary.
        topology: 'static',
      })
      try {
        const err = await wrong.db
          .insertInto('person')
          .values({ id: 2, name: 'x' })
          .execute()
          .catch((e: unknown) => e)
        expect(err).to.be.instanceOf(Error)
        expect((err as Error).message).to.match(fx.readOnlyErrorPattern)
        expect((err as Error).message).to.contain('(node "primary")')
      } finally {
        await wrong.db.destroy()
      }
    })

    it('runs locking reads on the primary', async () => {
      await t.db.connection().execute(async (conn) => {
        await conn.selectFrom('person').selectAll().forUpdate().execute()
        expect(await where(conn)).to.match(/^replica-/)
      })
      expect(t.routes.at(-2)).to.include({ node: 'primary', reason: 'locking-read' })
    })

    it('runs a transaction, savepoints included, on the primary', async () => {
      const trx = await t.db.startTransaction().execute()
      expect(await where(trx)).to.equal('primary')
      const sp = await trx.savepoint('sp1').execute()
      await sp.insertInto('person').values({ id: 10, name: 'rolled back' }).execute()
      const back = await sp.rollbackToSavepoint('sp1').execute()
      await back.insertInto('person').values({ id: 11, name: 'kept' }).execute()
      expect(await where(back)).to.equal('primary')
      await back.commit().execute()
      const rows = await onPrimary(t.db)
        .selectFrom('person')
        .select('id')
        .where('id', 'in', [10, 11])
        .execute()
      expect(rows.map((r) => Number(r.id))).to.deep.equal([11])
    })

    it('runs a read-only transaction whole on one replica', async () => {
      const nodes = await t.db
        .transaction()
        .setAccessMode('read only')
        .execute(async (trx) => [await where(trx), await where(trx), await where(trx)])
      expect(nodes[0]).to.match(/^replica-/)
      expect(new Set(nodes).size).to.equal(1)
    })

    it('onPrimary and onReplica(name) force the node', async () => {
      expect(await where(onPrimary(t.db))).to.equal('primary')
      expect(await where(onReplica(t.db, 'replica-2'))).to.equal('replica-2')
      expect(await where(onReplica(t.db, 'replica-2'))).to.equal('replica-2')
    })

    it('readOnly(db) reads from replicas', async () => {
      const ro = readOnly(t.db)
      const rows = await ro.selectFrom('person').selectAll().execute()
      expect(rows).to.be.an('array')
      expect(t.routes.at(-1)?.role).to.equal('replica')
    })

    it('streams from a replica', async () => {
      await t.db
        .insertInto('person')
        .values([20, 21, 22].map((id) => ({ id, name: `s${id}` })))
        .execute()
      await cluster().waitForReplication()
      const ids: number[] = []
      for await (const row of t.db
        .selectFrom('person')
        .select('id')
        .where('id', '>=', 20)
        .orderBy('id')
        .stream()) {
        ids.push(Number(row.id))
      }
      expect(ids).to.deep.equal([20, 21, 22])
      expect(t.routes.at(-1)?.role).to.equal('replica')
    })
  })
})
