/**
 * `npm run example:metrics`: the dialect's OpenTelemetry metrics, served to Prometheus.
 *
 * Starts a local MariaDB primary and two replicas, a MeterProvider whose reader is the
 * OpenTelemetry Prometheus exporter (an HTTP endpoint on 127.0.0.1:9464/metrics), and a dialect
 * with `metrics: { meterProvider }`. It runs a few writes and reads, scrapes the endpoint once as
 * Prometheus would, prints the library's series, stops everything and exits.
 *
 *   npm run example:metrics                  # one scrape, printed
 *   npm run example:metrics -- --serve 120   # then keep serving for 120 s under a light load,
 *                                            # for a Prometheus that scrapes 127.0.0.1:9464
 *
 * In an application the same three lines do it: a `PrometheusExporter`, a `MeterProvider` with
 * it as reader, and `metrics: { meterProvider }` (or `metrics: true` with a global provider
 * registered by the OpenTelemetry Node SDK). docs/operations.md#metrics lists the series and
 * PromQL queries for a dashboard.
 */
import { PrometheusExporter } from '@opentelemetry/exporter-prometheus'
import { MeterProvider } from '@opentelemetry/sdk-metrics'
import { type Generated, Kysely } from 'kysely'
import { createPool } from 'mysql2'
import { consistencyScope, ReplicatedMysqlDialect } from '../src/index.js'
import { mariadbAvailability, startMariadbCluster } from '../test/support/cluster.js'

interface DB {
  note: { id: Generated<number>; body: string }
}

const PORT = 9464
/** Series of this library (and of the conventions it follows) in Prometheus' names. */
const OURS = /^(db_client_|kysely_replicated_)/

function argValue(flag: string): string | undefined {
  const i = process.argv.indexOf(flag)
  return i >= 0 ? process.argv[i + 1] : undefined
}

async function main(): Promise<void> {
  const serveSeconds = Number(argValue('--serve') ?? 0)
  if (!(Number.isFinite(serveSeconds) && serveSeconds >= 0 && serveSeconds <= 3600)) {
    throw new Error('--serve takes a number of seconds from 0 to 3600')
  }
  const availability = mariadbAvailability()
  if (!availability.ok) throw new Error(availability.message)
  process.stdout.write('Starting a MariaDB primary and two replicas...\n')
  const cluster = await startMariadbCluster()

  // The Prometheus exporter is a metric reader: it collects when Prometheus scrapes.
  const exporter = new PrometheusExporter({ host: '127.0.0.1', port: PORT })
  const meterProvider = new MeterProvider({ readers: [exporter] })
  const pool = (name: string) =>
    createPool({ ...cluster.connectionOptions(name), connectionLimit: 5 })
  const db = new Kysely<DB>({
    dialect: new ReplicatedMysqlDialect({
      primary: { pool: pool('primary') },
      replicas: cluster.replicas.map((r) => ({ name: r.name, pool: pool(r.name) })),
      health: { probeIntervalMs: 250 },
      metrics: { meterProvider },
    }),
  })
  try {
    await db.schema
      .createTable('note')
      .ifNotExists()
      .addColumn('id', 'integer', (c) => c.autoIncrement().primaryKey())
      .addColumn('body', 'text', (c) => c.notNull())
      .execute()
    await cluster.waitForReplication()
    await load(db, 20)
    // Let a probe round report every replica's lag.
    await new Promise((resolve) => setTimeout(resolve, 600))

    const response = await fetch(`http://127.0.0.1:${PORT}/metrics`)
    const lines = (await response.text()).split('\n').filter((line) => OURS.test(line))
    process.stdout.write(`\nGET http://127.0.0.1:${PORT}/metrics (the library's series):\n\n`)
    for (const line of lines) {
      // Histograms: the count and sum of each series, not every bucket.
      if (!line.includes('_bucket{')) process.stdout.write(`  ${line}\n`)
    }

    if (serveSeconds > 0) {
      process.stdout.write(
        `\nServing http://127.0.0.1:${PORT}/metrics for ${serveSeconds} s under a light load...\n`,
      )
      const until = Date.now() + serveSeconds * 1000
      while (Date.now() < until) {
        await load(db, 5)
        await new Promise((resolve) => setTimeout(resolve, 1000))
      }
    }
  } finally {
    await db.destroy()
    await meterProvider.shutdown()
    await cluster.stop()
    process.stdout.write('\nStopped.\n')
  }
}

/** Rounds of one write and three reads, each round in its own consistency scope. */
async function load(db: Kysely<DB>, rounds: number): Promise<void> {
  for (let i = 0; i < rounds; i++) {
    await consistencyScope(async () => {
      await db
        .insertInto('note')
        .values({ body: `note ${i}` })
        .execute()
      // The scope's first read waits for a replica to apply the write (causal mode).
      await db.selectFrom('note').select('id').orderBy('id', 'desc').limit(1).execute()
    })
    await db
      .selectFrom('note')
      .select(({ fn }) => fn.countAll().as('n'))
      .execute()
    await db.selectFrom('note').select('body').limit(5).execute()
  }
}

main().catch((error) => {
  process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : error}\n`)
  process.exitCode = 1
})
