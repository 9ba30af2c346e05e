/**
 * `npm run demo`: starts a local replicated cluster (a primary and two replicas as plain server
 * processes in a temp directory), takes a short tour of the routing — each statement, the node the
 * server says it ran on, and the router's reason — and stops the cluster.
 *
 *   npm run demo                      # MariaDB (GTID replication)
 *   npm run demo -- --dialect postgres  # PostgreSQL (streaming replication)
 */
import { type Kysely, type RawBuilder, sql } from 'kysely'
import { consistencyScope, type RouteEvent } from '../src/index.js'
import { DIALECTS, type DialectFixture, type TestCluster } from '../test/support/dialects.js'

const dialectName = argValue('--dialect') ?? 'mysql'

function argValue(flag: string): string | undefined {
  const i = process.argv.indexOf(flag)
  if (i >= 0) return process.argv[i + 1]
  const prefixed = process.argv.find((a) => a.startsWith(`${flag}=`))
  return prefixed?.slice(flag.length + 1)
}

async function main(): Promise<void> {
  const fixture = DIALECTS.find((d) => d.name === dialectName)
  if (!fixture) {
    throw new Error(
      `unknown --dialect "${dialectName}": use ${DIALECTS.map((d) => d.name).join(' or ')}`,
    )
  }
  const availability = fixture.available()
  if (!availability.ok) throw new Error(availability.message)
  process.stdout.write(
    `Starting a ${fixture.name === 'mysql' ? 'MariaDB' : 'PostgreSQL'} primary and two replicas...\n`,
  )
  const started = Date.now()
  const cluster = await fixture.startCluster()
  process.stdout.write(
    `Cluster up in ${Date.now() - started} ms: ${cluster.nodes.map((n) => `${n.name} :${n.port}`).join(', ')}\n\n`,
  )
  try {
    await tour(fixture, cluster)
  } finally {
    await cluster.stop()
    process.stdout.write('\nCluster stopped.\n')
  }
}

async function tour(fx: DialectFixture, cluster: TestCluster): Promise<void> {
  const t = fx.create(cluster, { health: { probeIntervalMs: 500 } })
  const db = t.db as Kysely<any>
  let last: RouteEvent | undefined
  const lines: string[] = []
  const notes: string[] = []
  const show = async <R>(title: string, run: () => Promise<R>, whereSql?: RawBuilder<any>) => {
    const before = t.routes.length
    const result = await run()
    const events = t.routes.slice(before)
    last = events.at(-1)
    for (const e of events) {
      lines.push(
        `  ${pad(e.sql.replace(/\s+/g, ' ').slice(0, 58), 60)} -> ${pad(e.node, 10)} (${e.reason}${e.detail ? `: ${e.detail}` : ''})`,
      )
    }
    let served = ''
    if (whereSql) {
      const { rows } = await whereSql.execute(db)
      served = ` [server says: ${fx.nodeOf(cluster, rows[0]!)}]`
    }
    process.stdout.write(`${title}${served}\n${[...lines, ...notes].join('\n')}\n\n`)
    lines.length = 0
    notes.length = 0
    return result
  }

  await show('Schema change (DDL goes to the primary):', async () => {
    await db.schema.dropTable('demo_person').ifExists().execute()
    await db.schema
      .createTable('demo_person')
      .addColumn('id', 'integer', (c) => c.primaryKey())
      .addColumn('name', 'varchar(64)')
      .execute()
  })

  await show('A write:', () =>
    db.insertInto('demo_person').values({ id: 1, name: 'Ada' }).execute(),
  )

  await show(
    'Read-your-writes: the read right after the write waits for a replica to apply it (causal):',
    () => db.selectFrom('demo_person').selectAll().where('id', '=', 1).execute(),
  )

  await consistencyScope(() =>
    show('A plain read in a fresh request scope (a replica, no wait):', async () => {
      const { rows } = await fx.whereAmI(cluster).execute(db)
      notes.push(
        `  the server answers ${JSON.stringify(rows[0])}: it is ${fx.nodeOf(cluster, rows[0]!)}`,
      )
    }),
  )

  await show('A locking read (SELECT ... FOR UPDATE) must run on the primary:', () =>
    db
      .transaction()
      .execute((trx) => trx.selectFrom('demo_person').selectAll().forUpdate().execute()),
  )

  await consistencyScope(() =>
    show('A locking read outside a transaction:', () =>
      db.selectFrom('demo_person').selectAll().forUpdate().execute(),
    ),
  )

  await show('A transaction: every statement on the primary:', () =>
    db.transaction().execute(async (trx) => {
      await trx.updateTable('demo_person').set({ name: 'Ada L.' }).where('id', '=', 1).execute()
      await trx.selectFrom('demo_person').selectAll().execute()
    }),
  )

  await consistencyScope(() =>
    show('A read-only transaction: whole on one replica:', () =>
      db
        .transaction()
        .setAccessMode('read only')
        .execute(async (trx) => {
          await trx.selectFrom('demo_person').selectAll().execute()
          await trx.selectFrom('demo_person').select('name').execute()
        }),
    ),
  )

  const setVar =
    fx.name === 'mysql'
      ? sql`set @myrole = 'master'`
      : sql`select set_config('demo.myrole', 'master', false)`
  const getVar =
    fx.name === 'mysql'
      ? sql<{ v: string }>`select @myrole as v`
      : sql<{ v: string }>`select current_setting('demo.myrole', true) as v`
  const value: unknown = await show(
    "Session state inside db.connection(): SET then SELECT stay on the primary's session:",
    () =>
      db.connection().execute(async (conn) => {
        await setVar.execute(conn)
        const v = (await getVar.execute(conn)).rows[0]?.v
        notes.push(
          `  the variable reads back as ${JSON.stringify(v)} (on a replica it would be empty)`,
        )
        return v
      }),
  )
  void value

  await db.schema.dropTable('demo_person').execute()
  const stats = t.dialect.getRoutingStats()
  process.stdout.write(`Routing counters: ${JSON.stringify(stats.byReason)}\n`)
  process.stdout.write(
    `Replicas: ${t.dialect
      .getReplicaInfo()
      .map(
        (n) =>
          `${n.name} ${n.state}${n.lastProbeRttMs !== undefined ? ` rtt ${n.lastProbeRttMs.toFixed(2)} ms` : ''}`,
      )
      .join(', ')}\n`,
  )
  void last
  await db.destroy()
}

function pad(s: string, n: number): string {
  return s.length >= n ? s : s + ' '.repeat(n - s.length)
}

main().catch((error) => {
  console.error(error instanceof Error ? error.message : error)
  process.exitCode = 1
})
