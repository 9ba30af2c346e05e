/**
 * `npm run demo`: starts a local replicated cluster (a primary and two replicas as plain server
 * processes in a temp directory), takes a short tour of the routing — each statement, the node the
 * server says it ran on, and the router's reason — and stops the cluster. With `--switchover`, the
 * tour ends with a switchover to replica-1 under a small load of writes and reads: the events as
 * they come, and where the writes ran before and after, as the servers recorded it.
 *
 *   npm run demo                      # MariaDB (GTID replication)
 *   npm run demo -- --dialect postgres  # PostgreSQL (streaming replication)
 *   npm run demo -- --switchover        # then a switchover (also with --dialect postgres)
 */
import { type Kysely, type RawBuilder, sql } from 'kysely'
import {
  consistencyScope,
  onPrimary,
  type ReplicationEvent,
  type RouteEvent,
} from '../src/index.js'
import { DIALECTS, type DialectFixture, type TestCluster } from '../test/support/dialects.js'

const dialectName = argValue('--dialect') ?? 'mysql'
const withSwitchover = process.argv.includes('--switchover')

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
    if (withSwitchover) await switchoverTour(fixture, cluster)
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

/**
 * A planned switchover under load: two writers insert rows that record the server they ran on
 * (`@@server_id` / `inet_server_port()`, evaluated by the server itself), two readers ask where
 * they ran, and half-way the harness switches the primary over to replica-1. Default health
 * settings: writes the old primary refuses make the dialect probe every node at once.
 */
async function switchoverTour(fx: DialectFixture, cluster: TestCluster): Promise<void> {
  const target = 'replica-1'
  const t0 = performance.now()
  const at = () => `${((performance.now() - t0) / 1000).toFixed(2).padStart(5)} s`
  const say = (line: string) => process.stdout.write(`  [${at()}] ${line}\n`)
  const t = fx.create(cluster, {
    onEvent: (e: ReplicationEvent) => {
      if (e.type !== 'pool-oversized') say(`event ${describeEvent(e)}`)
    },
  })
  const db = t.db as Kysely<any>
  // The server's own identity, computed by the server that runs the insert.
  const serverId = fx.name === 'mysql' ? sql<number>`@@server_id` : sql<number>`inet_server_port()`
  const nodeOfServer = (server: number) =>
    fx.nodeOf(cluster, fx.name === 'mysql' ? { server_id: server } : { port: server })

  process.stdout.write(
    `\nSwitchover under load: 2 writers, 2 readers; the primary moves to ${target} half-way.\n`,
  )
  await db.schema.dropTable('demo_switch').ifExists().execute()
  await db.schema
    .createTable('demo_switch')
    .addColumn('id', 'integer', (c) => c.primaryKey())
    .addColumn('server', 'integer', (c) => c.notNull())
    .execute()
  await cluster.waitForReplication()

  let nextId = 1
  let stopping = false
  let written = 0
  const failedWrites: string[] = []
  const failedReads: string[] = []
  const readsOn = new Map<string, number>()
  const writer = async () => {
    while (!stopping) {
      try {
        await db.insertInto('demo_switch').values({ id: nextId++, server: serverId }).execute()
        written++
      } catch (error) {
        failedWrites.push(
          error instanceof Error ? `${error.name}: ${error.message}` : String(error),
        )
      }
    }
  }
  const reader = async () => {
    while (!stopping) {
      try {
        const { rows } = await fx.whereAmI(cluster).execute(db)
        const node = fx.nodeOf(cluster, rows[0]!)
        readsOn.set(node, (readsOn.get(node) ?? 0) + 1)
      } catch (error) {
        failedReads.push(error instanceof Error ? error.message : String(error))
      }
      await new Promise((resolve) => setTimeout(resolve, 5))
    }
  }
  const workers = [writer(), writer(), reader(), reader()]
  const routesBefore = t.routes.length

  await new Promise((resolve) => setTimeout(resolve, 1000))
  say(
    `${written} writes so far; switchover to ${target} begins (fence the primary, promote ${target})`,
  )
  const change = await cluster.switchover(target)
  say(
    `switchover done by the harness in ${change.durationMs} ms: ${change.oldPrimary} -> ${change.newPrimary}`,
  )
  await new Promise((resolve) => setTimeout(resolve, 1000))
  stopping = true
  await Promise.all(workers)
  say(`load stopped: ${written} writes acknowledged, ${failedWrites.length} failed`)

  // Where the writes ran, as the servers recorded it, in the order they were issued.
  const runs = await onPrimary(db)
    .selectFrom('demo_switch')
    .select((eb) => [
      'server',
      eb.fn.countAll<number>().as('n'),
      eb.fn.min<number>('id').as('first'),
      eb.fn.max<number>('id').as('last'),
    ])
    .groupBy('server')
    .orderBy('first')
    .execute()
  process.stdout.write('\nWhere the writes ran (the server column each insert filled in):\n')
  for (const run of runs) {
    process.stdout.write(
      `  ids ${run.first}..${run.last}: ${Number(run.n)} writes on ${nodeOfServer(Number(run.server))} (${fx.name === 'mysql' ? 'server_id' : 'port'} ${run.server})\n`,
    )
  }
  const followed = t.routes.slice(routesBefore).filter((r) => r.reason === 'primary-changed')
  process.stdout.write(
    `  ${followed.length} statement(s) refused by the old primary ran on the new one (reason primary-changed)\n`,
  )
  process.stdout.write(
    `Reads during the run: ${[...readsOn].map(([node, n]) => `${node} ${n}`).join(', ')}; ${failedReads.length} failed\n`,
  )
  for (const error of new Set(failedWrites)) process.stdout.write(`  failed write: ${error}\n`)

  const last = nextId++
  await db.insertInto('demo_switch').values({ id: last, server: serverId }).execute()
  const row = await onPrimary(db)
    .selectFrom('demo_switch')
    .select('server')
    .where('id', '=', last)
    .executeTakeFirstOrThrow()
  process.stdout.write(
    `A last write ran on ${nodeOfServer(Number(row.server))}, the server says; the roles now: ${t.dialect
      .getReplicaInfo()
      .map((n) => `${n.name} ${n.role}`)
      .join(', ')}\n`,
  )
  await db.schema.dropTable('demo_switch').execute()
  await db.destroy()
}

/** An `onEvent` event on one line: its type and fields, an error as its message. */
function describeEvent(event: ReplicationEvent): string {
  const fields = Object.entries(event)
    .filter(([key]) => key !== 'type')
    .map(([key, value]) => `${key}=${eventValue(value)}`)
  return `${event.type} ${fields.join(' ')}`
}

function eventValue(value: unknown): string {
  if (value instanceof Error) return JSON.stringify(value.message)
  if (typeof value === 'number') return String(Math.round(value))
  return String(value)
}

function pad(s: string, n: number): string {
  return s.length >= n ? s : s + ' '.repeat(n - s.length)
}

main().catch((error) => {
  console.error(error instanceof Error ? error.message : error)
  process.exitCode = 1
})
