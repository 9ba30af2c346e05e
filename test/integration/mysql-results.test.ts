import { expect } from 'chai'
import { Kysely, MysqlDialect, sql } from 'kysely'
import { createPool } from 'mysql2'
import { onPrimary } from '../../src/index.js'
import { mysqlFixture, type TestDialect, useDialectCluster } from '../support/dialects.js'

interface DB {
  gadget: { id: number; name: string; price: string; made: Date; qty: number | null }
}

describe('[mysql] results identical to Kysely’s MysqlDialect', function () {
  this.timeout(60_000)
  const cluster = useDialectCluster(mysqlFixture)
  let t: TestDialect
  let plain: Kysely<DB>

  before(async () => {
    t = mysqlFixture.create(cluster(), { health: { probeIntervalMs: 0 } })
    plain = new Kysely<DB>({
      dialect: new MysqlDialect({ pool: createPool(cluster().connectionOptions('primary')) }),
    })
    await sql`drop table if exists gadget`.execute(plain)
    await sql`create table gadget (id int primary key auto_increment, name varchar(32), price decimal(8,2), made datetime, qty int null)`.execute(
      plain,
    )
  })
  after(async () => {
    await t?.db.destroy()
    await plain?.destroy()
  })

  /** Runs the same builder on both Kysely instances, on fresh rows, and returns both results. */
  async function both<R>(run: (db: Kysely<DB>, base: number) => Promise<R>): Promise<[R, R]> {
    const ours = await run(t.db as Kysely<DB>, 100)
    const theirs = await run(plain, 200)
    return [ours, theirs]
  }

  it('insert: insertId and numInsertedOrUpdatedRows', async () => {
    const [ours, theirs] = await both((db, base) =>
      db
        .insertInto('gadget')
        .values(
          [1, 2, 3].map((i) => ({
            id: base + i,
            name: `g${i}`,
            price: '9.50',
            made: new Date('2026-01-02T03:04:05Z'),
            qty: i === 2 ? null : i,
          })),
        )
        .executeTakeFirstOrThrow(),
    )
    expect(ours.numInsertedOrUpdatedRows).to.equal(theirs.numInsertedOrUpdatedRows)
    expect(ours.insertId! - 100n).to.equal(theirs.insertId! - 200n)
  })

  it('update: numUpdatedRows and numChangedRows', async () => {
    const [ours, theirs] = await both((db, base) =>
      db
        .updateTable('gadget')
        .set({ name: 'g1' })
        .where('id', '>', base)
        .where('id', '<=', base + 3)
        .executeTakeFirstOrThrow(),
    )
    expect(ours).to.deep.equal(theirs)
    expect(ours.numChangedRows).to.equal(2n)
  })

  it('select: rows with the same values and types (decimal, datetime, null)', async () => {
    await cluster().waitForReplication()
    const [ours, theirs] = await both((db, base) =>
      db
        .selectFrom('gadget')
        .select(['name', 'price', 'made', 'qty'])
        .where('id', '>', base)
        .where('id', '<=', base + 3)
        .orderBy('id')
        .execute(),
    )
    expect(ours).to.deep.equal(theirs)
    expect(ours[0]!.made).to.be.instanceOf(Date)
    const [primaryRows] = await both((db, base) =>
      onPrimary(db)
        .selectFrom('gadget')
        .selectAll()
        .where('id', '=', base + 2)
        .execute(),
    )
    expect(primaryRows[0]!.qty).to.equal(null)
  })

  it('delete: numDeletedRows; errors keep their code and errno', async () => {
    const [ours, theirs] = await both((db, base) =>
      db
        .deleteFrom('gadget')
        .where('id', '=', base + 3)
        .executeTakeFirstOrThrow(),
    )
    expect(ours).to.deep.equal(theirs)
    const [e1, e2] = await both((db, base) =>
      db
        .insertInto('gadget')
        .values({ id: base + 1, name: 'dup', price: '1', made: new Date(), qty: 1 })
        .execute()
        .then(
          () => new Error('no error') as Error & { code?: string; errno?: number },
          (e: unknown) => e as Error & { code?: string; errno?: number },
        ),
    )
    expect(e1.code).to.equal(e2.code).and.to.equal('ER_DUP_ENTRY')
    expect(e1.errno).to.equal(e2.errno)
    expect(e1.message.startsWith(e2.message.replace(/'\d+'/, "'101'").slice(0, 20))).to.equal(true)
    expect(e1.message).to.contain('(node "primary")')
  })
})
