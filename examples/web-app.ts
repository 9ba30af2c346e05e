/**
 * `npm run example:web`: read-your-writes across two web servers with a causal token.
 *
 * Starts a local MariaDB primary and two replicas, then two Express servers, A and B, each with
 * its own Kysely instance and pools, as two processes behind a load balancer would have. A client
 * creates a note on A and reads it back on B, passing the causal token A returned. The example
 * drives the requests itself, prints where each read ran, stops everything and exits.
 */
import type { Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import express, { type NextFunction, type Request, type Response } from 'express'
import { type Generated, Kysely, sql } from 'kysely'
import { createPool } from 'mysql2'
import {
  consistencyScope,
  getCausalToken,
  InvalidCausalTokenError,
  ReplicatedMysqlDialect,
  type RouteEvent,
} from '../src/index.js'
import {
  type MariadbCluster,
  mariadbAvailability,
  startMariadbCluster,
} from '../test/support/cluster.js'

interface DB {
  note: { id: Generated<number>; body: string }
}

const TOKEN_HEADER = 'x-causal-token'

/** One server's database handle: its own pools on every node, and a log of its routing decisions. */
function connect(cluster: MariadbCluster) {
  const routes: RouteEvent[] = []
  const pool = (name: string) =>
    createPool({ ...cluster.connectionOptions(name), connectionLimit: 5 })
  const dialect = new ReplicatedMysqlDialect({
    primary: { pool: pool('primary') },
    replicas: cluster.replicas.map((r) => ({ name: r.name, pool: pool(r.name) })),
    health: { probeIntervalMs: 250 },
    onRoute: (e) => routes.push(e),
  })
  return { db: new Kysely<DB>({ dialect }), dialect, routes }
}

/** The application: the same code runs on server A and on server B. */
function createApp(db: Kysely<DB>, cluster: MariadbCluster) {
  const app = express()
  app.use(express.json())

  // One read-your-writes scope per request, seeded with the token the client sends back.
  app.use((req: Request, _res: Response, next: NextFunction) =>
    consistencyScope(next, { causalToken: req.get(TOKEN_HEADER) || undefined }),
  )

  app.post('/notes', async (req, res) => {
    const { insertId } = await db
      .insertInto('note')
      .values({ body: req.body.body })
      .executeTakeFirstOrThrow()
    const token = getCausalToken() // the scope's writes, as a string the client sends back
    if (token !== undefined) res.set(TOKEN_HEADER, token)
    res.status(201).json({ id: Number(insertId) })
  })

  app.get('/notes/:id', async (req, res) => {
    // @@server_id in the same statement: the server itself says which node answered.
    const note = await db
      .selectFrom('note')
      .select(['id', 'body', sql<number>`@@server_id`.as('serverId')])
      .where('id', '=', Number(req.params.id))
      .executeTakeFirst()
    if (note === undefined) {
      res.status(404).json({ error: 'not found' })
      return
    }
    const servedBy = cluster.nodes.find((n) => n.serverId === Number(note.serverId))?.name
    res.json({ id: note.id, body: note.body, servedBy })
  })

  // A malformed or oversized token is the client's mistake: 400, before any query runs.
  app.use((error: unknown, _req: Request, res: Response, next: NextFunction) => {
    if (error instanceof InvalidCausalTokenError) res.status(400).json({ error: error.message })
    else next(error)
  })
  return app
}

async function listen(app: express.Express): Promise<{ server: Server; url: string }> {
  const server = app.listen(0, '127.0.0.1')
  await new Promise<void>((resolve) => server.once('listening', resolve))
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` }
}

async function main(): Promise<void> {
  const availability = mariadbAvailability()
  if (!availability.ok) throw new Error(availability.message)
  process.stdout.write('Starting a MariaDB primary and two replicas...\n')
  const cluster = await startMariadbCluster()
  const a = connect(cluster)
  const b = connect(cluster)
  const servers: Server[] = []
  try {
    await a.db.schema
      .createTable('note')
      .addColumn('id', 'integer', (c) => c.primaryKey().autoIncrement())
      .addColumn('body', 'varchar(200)', (c) => c.notNull())
      .execute()
    await cluster.waitForReplication()

    const serverA = await listen(createApp(a.db, cluster))
    const serverB = await listen(createApp(b.db, cluster))
    servers.push(serverA.server, serverB.server)
    process.stdout.write(`Server A on ${serverA.url}, server B on ${serverB.url}\n\n`)

    const create = async (body: string) => {
      const res = await fetch(`${serverA.url}/notes`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ body }),
      })
      const { id } = (await res.json()) as { id: number }
      const token = res.headers.get(TOKEN_HEADER) ?? ''
      process.stdout.write(
        `POST A /notes              -> ${res.status} id ${id}, ${TOKEN_HEADER}: ${token}\n`,
      )
      return { id, token }
    }
    const read = async (
      id: number,
      token?: string,
      label = token ? 'with token' : 'without token',
    ) => {
      const before = b.routes.length
      const res = await fetch(`${serverB.url}/notes/${id}`, {
        headers: token ? { [TOKEN_HEADER]: token } : {},
      })
      const body = (await res.json()) as { servedBy?: string; error?: string }
      const route = b.routes.slice(before).find((r) => r.sql.startsWith('select'))
      const how = route
        ? ` (${route.reason}${route.waitedMs !== undefined ? `, waited ${route.waitedMs.toFixed(1)} ms` : ''})`
        : ''
      const what = res.ok ? `found on ${body.servedBy}` : `${body.error}`
      process.stdout.write(
        `GET  B /notes/${id} ${label.padEnd(13)} -> ${res.status} ${what}${how}\n`,
      )
    }

    process.stdout.write('Replicas keep up:\n')
    const first = await create('hello')
    await read(first.id, first.token)
    await read(first.id, first.token)

    process.stdout.write('\nReplicas delayed by 2 s (MASTER_DELAY):\n')
    for (const r of cluster.replicas) await cluster.setReplicaDelay(r.name, 2)
    const second = await create('written while the replicas lag')
    await read(second.id)
    await read(second.id, second.token)
    await read(second.id, second.token)
    await read(second.id, second.token)
    await read(second.id, 'kr1.m.not-a-gtid', 'bad token')

    const stats = b.dialect.getRoutingStats()
    process.stdout.write(
      `\nServer B routing counters: ${JSON.stringify(stats.byReason)}; ${stats.causalWaits} causal waits, ${stats.causalWaitMs.toFixed(1)} ms in all\n`,
    )
  } finally {
    for (const server of servers) {
      server.closeAllConnections()
      server.close()
    }
    await Promise.allSettled([a.db.destroy(), b.db.destroy()])
    await cluster.stop()
    process.stdout.write('Stopped.\n')
  }
}

main().catch((error) => {
  console.error(error)
  process.exitCode = 1
})
