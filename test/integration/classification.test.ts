import { expect } from 'chai'
import { sql } from 'kysely'
import { forEachDialect, type TestDialect, useDialectCluster } from '../support/dialects.js'

/** The statement classifier's cases that only a real server can prove right. */
forEachDialect((fx) => {
  describe('classification on a real replicated cluster', function () {
    this.timeout(60_000)
    const cluster = useDialectCluster(fx)
    let t: TestDialect
    /** A dialect whose "primary" is replica-1: what a statement sent there by mistake would meet. */
    let misrouted: TestDialect
    const serverOf =
      fx.name === 'mysql'
        ? sql<number>`@@server_id`.as('server_id')
        : sql<number>`inet_server_port()`.as('port')

    before(async () => {
      const settings = { consistency: 'eventual', health: { probeIntervalMs: 0 } } as const
      t = fx.create(cluster(), settings)
      misrouted = fx.create(cluster(), { ...settings, primaryNode: 'replica-1' })
      await t.db.schema.dropTable('classified').ifExists().execute()
      await t.db.schema
        .createTable('classified')
        .addColumn('id', 'integer', (c) => c.primaryKey())
        .addColumn('n', 'integer')
        .execute()
      await t.db.insertInto('classified').values({ id: 1, n: 1 }).execute()
      await cluster().waitForReplication()
    })
    after(async () => {
      await misrouted?.db.destroy()
      await t?.db.destroy()
    })

    it('runs a locking read whose clause is split across raw fragments on the primary; a replica refuses it', async () => {
      // Neither `for` nor `update` alone is a lock clause: only the statement's whole text is.
      const locking = (db: TestDialect['db']) =>
        db
          .selectFrom('classified')
          .select(serverOf)
          .where('id', '=', 1)
          .modifyEnd(sql`for ${sql.raw('update')}`)
      const row = await locking(t.db).executeTakeFirstOrThrow()
      expect(fx.nodeOf(cluster(), row)).to.equal('primary')
      expect(t.routes.at(-1)).to.include({ role: 'primary', reason: 'locking-read' })
      const refused = await locking(misrouted.db)
        .execute()
        .catch((e: unknown) => e)
      expect(String(refused)).to.match(fx.readOnlyErrorPattern)
    })

    if (fx.name === 'mysql') {
      it('runs EXPLAIN of a delete on the primary: a read-only replica refuses it', async () => {
        await t.db.deleteFrom('classified').where('id', '=', 999).explain()
        expect(t.routes.at(-1)).to.include({
          role: 'primary',
          reason: 'write',
          detail: 'explain delete',
        })
        const refused = await misrouted.db
          .deleteFrom('classified')
          .where('id', '=', 999)
          .explain()
          .catch((e: unknown) => e)
        expect(String(refused)).to.match(fx.readOnlyErrorPattern)
      })

      it('keeps a user variable assigned in a built update on the db.connection() scope session', async () => {
        const value = await t.db.connection().execute(async (conn) => {
          await conn
            .updateTable('classified')
            .set({ n: sql`(@classified_n := n + 1)` })
            .where('id', '=', 1)
            .execute()
          const { rows } = await sql<{
            v: number | null
            server_id: number
          }>`select @classified_n as v, @@server_id as server_id`.execute(conn)
          expect(fx.nodeOf(cluster(), rows[0]!)).to.equal('primary')
          return rows[0]!.v
        })
        // On a replica, or another primary session, the variable would be NULL.
        expect(value).to.not.equal(null)
      })
    } else {
      it('runs EXPLAIN of a delete on a standby, which plans it', async () => {
        const plan = await t.db.deleteFrom('classified').where('id', '=', 999).explain()
        expect(plan.length).to.be.greaterThan(0)
        expect(t.routes.at(-1)).to.include({ role: 'replica', reason: 'read' })
        // The standby itself accepts it (and refuses EXPLAIN ANALYZE, which runs the delete).
        const planned = await misrouted.db.deleteFrom('classified').where('id', '=', 999).explain()
        expect(planned.length).to.be.greaterThan(0)
        const analyzed = await misrouted.db
          .deleteFrom('classified')
          .where('id', '=', 999)
          .explain(undefined, sql`analyze`)
          .catch((e: unknown) => e)
        expect(String(analyzed)).to.match(fx.readOnlyErrorPattern)
      })
    }
  })
})
