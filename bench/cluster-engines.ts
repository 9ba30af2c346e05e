/**
 * What the cluster benchmarks need from a database engine, behind one interface, so a second
 * engine plugs in without touching the scenarios: starting a cluster, the schema, pools and
 * dialects (ours and the plain one `kysely-replication` wraps), and the SQL that tells which
 * server answered a read.
 */
import {
  type Dialect,
  type Kysely,
  MysqlDialect,
  PostgresDialect,
  type RawBuilder,
  sql,
} from 'kysely'
import { createConnection, createPool } from 'mysql2'
import type { ReplicatedDialectConfig } from '../src/index.js'
import type {
  ClusterAvailability,
  NodeConnectionOptions,
  ReplicatedTestCluster,
} from '../test/support/cluster.js'
import {
  mariadbAvailability,
  postgresAvailability,
  startMariadbCluster,
  startPostgresCluster,
} from '../test/support/cluster.js'
import type { Library } from './library.js'

/** The tables the benchmarks read and write. */
export interface BenchDatabase {
  bench_item: { id: number; name: string; v: number }
  bench_kv: { id: number; v: number }
  bench_extra: { id: number; v: number }
}

export type BenchDb = Kysely<BenchDatabase>

/**
 * Rows of `bench_item` (read load), `bench_kv` (write → read-back pairs) and `bench_extra` (what
 * the extra writers of the consistency scenario update).
 */
export const ITEM_ROWS = 10_000
export const KV_ROWS = 2_000
export const EXTRA_ROWS = 1_000

export interface ClusterBenchEngine {
  readonly name: 'mysql' | 'postgres'
  /** The server product, for the report. */
  readonly server: string
  /** The driver package, for the report. */
  readonly driver: 'mysql2' | 'pg'
  available(): ClusterAvailability
  startCluster(log: (line: string) => void): Promise<ReplicatedTestCluster>
  serverVersion(cluster: ReplicatedTestCluster): Promise<string>
  /** Creates and fills the tables on the primary, then waits for the replicas. */
  prepareSchema(cluster: ReplicatedTestCluster): Promise<void>
  /** A driver pool for a node reachable at `options` (a node, or a proxy in front of one). */
  createPool(options: NodeConnectionOptions, size: number): unknown
  /** Our replicated dialect. */
  replicatedDialect(config: ReplicatedDialectConfig<any>): Dialect
  /** Kysely's own dialect on one pool (what `kysely-replication` wraps). */
  plainDialect(pool: unknown): Dialect
  /** An expression that tells which server ran the statement. */
  nodeId(): RawBuilder<number | string>
  /** The node name for a value of {@link nodeId}. */
  nodeName(cluster: ReplicatedTestCluster, value: unknown): string
  /** Makes a replica apply changes at least `ms` late (0 removes the delay). */
  setReplicaDelay(cluster: ReplicatedTestCluster, replica: string, ms: number): Promise<void>
  /** Round trips of a trivial statement on one fresh connection (ms each), for calibration. */
  pingTimes(options: NodeConnectionOptions, count: number): Promise<number[]>
}

function seedStatements(): string[] {
  const statements = [
    'drop table if exists bench_item',
    'drop table if exists bench_kv',
    'drop table if exists bench_extra',
    'create table bench_item (id int primary key, name varchar(64) not null, v int not null)',
    'create table bench_kv (id int primary key, v int not null)',
    'create table bench_extra (id int primary key, v int not null)',
  ]
  for (let start = 1; start <= ITEM_ROWS; start += 1000) {
    const values: string[] = []
    for (let id = start; id < start + 1000 && id <= ITEM_ROWS; id++) {
      values.push(`(${id}, 'item-${id}', ${id % 97})`)
    }
    statements.push(`insert into bench_item (id, name, v) values ${values.join(', ')}`)
  }
  for (let start = 1; start <= KV_ROWS; start += 1000) {
    const values: string[] = []
    for (let id = start; id < start + 1000 && id <= KV_ROWS; id++) values.push(`(${id}, 0)`)
    statements.push(`insert into bench_kv (id, v) values ${values.join(', ')}`)
  }
  const extra = Array.from({ length: EXTRA_ROWS }, (_, i) => `(${i + 1}, 0)`)
  statements.push(`insert into bench_extra (id, v) values ${extra.join(', ')}`)
  return statements
}

export const mysqlEngine: ClusterBenchEngine = {
  name: 'mysql',
  server: 'MariaDB',
  driver: 'mysql2',
  available: mariadbAvailability,
  startCluster: (log) => startMariadbCluster({ replicas: 2, log }),
  async serverVersion(cluster) {
    const [row] = await cluster.admin(cluster.primary, 'select version() as v')
    return String(row?.v ?? '?')
  },
  async prepareSchema(cluster) {
    for (const statement of seedStatements()) {
      await cluster.admin(cluster.primary, statement)
    }
    await cluster.waitForReplication(30_000)
  },
  createPool(options, size) {
    return createPool({
      ...options,
      connectionLimit: size,
      maxIdle: size,
      connectTimeout: 2000,
    })
  },
  replicatedDialect(config) {
    return new (library().index.ReplicatedMysqlDialect)(config)
  },
  plainDialect(pool) {
    return new MysqlDialect({ pool: pool as never })
  },
  nodeId() {
    return sql<number>`@@server_id`
  },
  nodeName(cluster, value) {
    const node = cluster.nodes.find((n) => n.serverId === Number(value))
    return node?.name ?? `server_id ${String(value)}`
  },
  async setReplicaDelay(cluster, replica, ms) {
    await cluster.setReplicaDelay(replica, Math.ceil(ms / 1000))
  },
  async pingTimes(options, count) {
    const connection = createConnection({ ...options, connectTimeout: 2000 }).promise()
    try {
      const times: number[] = []
      for (let i = 0; i < count; i++) {
        const started = performance.now()
        await connection.query('select 1')
        times.push(performance.now() - started)
      }
      return times
    } finally {
      connection.destroy()
    }
  },
}

export const postgresEngine: ClusterBenchEngine = {
  name: 'postgres',
  server: 'PostgreSQL',
  driver: 'pg',
  available: postgresAvailability,
  startCluster: (log) => startPostgresCluster({ replicas: 2, log }),
  async serverVersion(cluster) {
    const [row] = await cluster.admin(cluster.primary, 'show server_version')
    return `PostgreSQL ${String(row?.server_version ?? '?')}`
  },
  async prepareSchema(cluster) {
    for (const statement of seedStatements()) await cluster.admin(cluster.primary, statement)
    await cluster.admin(
      cluster.primary,
      `grant select, insert, update, delete on bench_item, bench_kv, bench_extra to ${cluster.user}`,
    )
    await cluster.waitForReplication(30_000)
  },
  createPool(options, size) {
    // pg is an optional peer: loaded only when this engine runs.
    const { Pool } = requirePg()
    const pool = new Pool({ ...options, max: size, connectionTimeoutMillis: 2000 })
    // A server that dies makes pg emit 'error' on its idle clients (through the pool) and on the
    // clients checked out, which Kysely's PostgresDialect does not listen to: unheard, the event
    // would end the benchmark. Every contender's pools get these listeners alike; the failure
    // still reaches the query that was running.
    pool.on('error', () => {})
    pool.on('connect', (client) => client.on('error', () => {}))
    return pool
  },
  replicatedDialect(config) {
    return new (library().index.ReplicatedPostgresDialect)(config)
  },
  plainDialect(pool) {
    return new PostgresDialect({ pool: pool as never })
  },
  nodeId() {
    return sql<number>`inet_server_port()`
  },
  nodeName(cluster, value) {
    const node = cluster.nodes.find((n) => n.port === Number(value))
    return node?.name ?? `port ${String(value)}`
  },
  async setReplicaDelay(cluster, replica, ms) {
    await cluster.setReplicaDelay(replica, ms)
  },
  async pingTimes(options, count) {
    const { Client } = requirePg()
    const client = new Client({ ...options, connectionTimeoutMillis: 2000 })
    await client.connect()
    try {
      const times: number[] = []
      for (let i = 0; i < count; i++) {
        const started = performance.now()
        await client.query('select 1')
        times.push(performance.now() - started)
      }
      return times
    } finally {
      await client.end()
    }
  },
}

let pgModule: typeof import('pg') | undefined
function requirePg(): typeof import('pg') {
  if (pgModule === undefined) throw new Error('pg is not loaded: call loadEngine() first')
  return pgModule
}

let loadedLibrary: Library | undefined
function library(): Library {
  if (loadedLibrary === undefined) throw new Error('no library: call loadEngine() first')
  return loadedLibrary
}

/** The engine for `--dialect`, with its optional driver loaded, using `lib` for our dialects. */
export async function loadEngine(name: string, lib: Library): Promise<ClusterBenchEngine> {
  loadedLibrary = lib
  if (name === 'mysql') return mysqlEngine
  if (name === 'postgres') {
    pgModule = (await import('pg')).default as unknown as typeof import('pg')
    return postgresEngine
  }
  throw new Error(`unknown --dialect ${JSON.stringify(name)}: use mysql or postgres`)
}
