/**
 * The engines the integration suite runs against, behind one interface, so every routing,
 * consistency and health test runs on each dialect (the way Kysely's own suite loops over its
 * dialects). Tests prove where a statement ran from the database itself (`whereAmI`), never from
 * the library's own report alone.
 */
import { type Dialect, Kysely, type RawBuilder, sql } from 'kysely'
import { createPool } from 'mysql2'
import pg from 'pg'
import Cursor from 'pg-cursor'
import {
  ReplicatedMysqlDialect,
  type ReplicatedMysqlDialectConfig,
  ReplicatedPostgresDialect,
  type RouteEvent,
} from '../../src/index.js'
import type {
  ClusterAvailability,
  ClusterNode,
  ConnectionOverrides,
  FaultProxy,
  NodeConnectionOptions,
  ReplicatedTestCluster,
} from './cluster.js'
import {
  mariadbAvailability,
  postgresAvailability,
  startMariadbCluster,
  startPostgresCluster,
} from './cluster.js'

/** Settings a test may override (engine-independent subset of the dialect config). */
export type TestDialectOverrides = Partial<
  Omit<ReplicatedMysqlDialectConfig, 'primary' | 'replicas'>
> & {
  /** Extra pool options (mysql2 / pg). */
  readonly poolOptions?: Record<string, unknown>
  /** Use only these replicas (names). */
  readonly replicaNames?: readonly string[]
  /** Point the primary pool at another node (to prove a misrouted write fails). */
  readonly primaryNode?: string
  /**
   * Per node: reach it through its fault proxy (start it first with `cluster.proxyFor(node)`),
   * or with other credentials or another database.
   */
  readonly reach?: Readonly<Record<string, ConnectionOverrides>>
  /**
   * Per-node lifecycle options. With `fromConnection`, nodes get `{ connection: options }` and the
   * library creates the pools itself (with `poolSize` / `idleTimeoutMs`).
   */
  readonly nodeOptions?: {
    readonly fromConnection?: boolean
    readonly poolSize?: number
    readonly idleTimeoutMs?: number
    readonly maxLifetimeMs?: number
  }
}

export interface TestDialect {
  readonly db: Kysely<any>
  readonly dialect: {
    getReplicaInfo(): ReturnType<ReplicatedMysqlDialect['getReplicaInfo']>
    getRoutingStats(): ReturnType<ReplicatedMysqlDialect['getRoutingStats']>
    getCausalToken(): string | undefined
    probeNow(): Promise<void>
    getPoolStats(): ReturnType<ReplicatedMysqlDialect['getPoolStats']>
  }
  readonly routes: RouteEvent[]
}

export interface TestCluster extends ReplicatedTestCluster {
  /** Delays a replica's apply by at least `ms` (MariaDB rounds up to whole seconds). */
  delayReplica(replica: string, ms: number): Promise<void>
  kill(node: string): Promise<void>
  restart(node: string): Promise<void>
  freeze(node: string): Promise<void>
  thaw(node: string): Promise<void>
  proxyFor(node: string): Promise<FaultProxy>
  connectionOptions(
    node: ClusterNode | string,
    overrides?: ConnectionOverrides,
  ): NodeConnectionOptions
}

export interface DialectFixture {
  /** `'mysql'` (MariaDB) or `'postgres'`. */
  readonly name: 'mysql' | 'postgres'
  available(): ClusterAvailability
  startCluster(): Promise<TestCluster>
  /** A Kysely on the cluster with the replicated dialect, its own pools, and a route log. */
  create(cluster: TestCluster, overrides?: TestDialectOverrides): TestDialect
  /** A read that returns the name of the node it ran on, by asking the server. */
  whereAmI(cluster: TestCluster): RawBuilder<{ node: string }>
  /** Resolves a `whereAmI` row to the node name. */
  nodeOf(cluster: TestCluster, row: Record<string, unknown>): string
  /** The server's error code for a write refused by a read-only replica. */
  readonly readOnlyErrorPattern: RegExp
  /** A read returning the server-side id of the session it ran on (`{ id }`). */
  sessionId(): RawBuilder<{ id: number }>
  /** The server-side ids of the application user's sessions on a node, as the server lists them. */
  serverSessions(cluster: TestCluster, node: string): Promise<number[]>
  /** The text of the statements the application user is running right now on a node. */
  runningStatements(cluster: TestCluster, node: string): Promise<string[]>
  /** A statement that sleeps `seconds` on the server. */
  sleep(seconds: number): RawBuilder<unknown>
}

function nodeByServerId(cluster: ReplicatedTestCluster, id: number): ClusterNode {
  const node = cluster.nodes.find((n) => n.serverId === id)
  if (!node) throw new Error(`no node with server_id ${id}`)
  return node
}

/**
 * What both fixtures' `create` share: the nodes' pools (or connection options), the choice of
 * replicas and primary, and the route log in front of the test's own `onRoute`.
 */
function createTestDialect(
  cluster: TestCluster,
  overrides: TestDialectOverrides,
  newPool: (
    options: NodeConnectionOptions,
    poolOptions: Record<string, unknown> | undefined,
  ) => unknown,
  newDialect: (config: any) => TestDialect['dialect'] & Dialect,
): TestDialect {
  const { poolOptions, replicaNames, primaryNode, nodeOptions, reach, ...config } = overrides
  const { fromConnection, ...lifecycle } = nodeOptions ?? {}
  const node = (n: ClusterNode) => {
    const options = cluster.connectionOptions(n, reach?.[n.name])
    return fromConnection
      ? { connection: options, ...lifecycle }
      : { pool: newPool(options, poolOptions), ...lifecycle }
  }
  const routes: RouteEvent[] = []
  const userOnRoute = config.onRoute
  const dialect = newDialect({
    primary: node(cluster.nodes.find((n) => n.name === (primaryNode ?? 'primary'))!),
    replicas: cluster.replicas
      .filter((r) => replicaNames === undefined || replicaNames.includes(r.name))
      .map((r) => ({ name: r.name, ...node(r) })),
    ...config,
    onRoute: (e: RouteEvent) => {
      routes.push(e)
      userOnRoute?.(e)
    },
  })
  return { db: new Kysely<any>({ dialect }), dialect, routes }
}

export const mysqlFixture: DialectFixture = {
  name: 'mysql',
  available: mariadbAvailability,
  async startCluster() {
    const cluster = await startMariadbCluster()
    return Object.assign(cluster, {
      delayReplica: (replica: string, ms: number) =>
        cluster.setReplicaDelay(replica, Math.ceil(ms / 1000)),
    }) as unknown as TestCluster
  },
  create(cluster, overrides = {}) {
    return createTestDialect(
      cluster,
      overrides,
      (options, poolOptions) => createPool({ ...options, connectionLimit: 20, ...poolOptions }),
      (config) => new ReplicatedMysqlDialect(config),
    )
  },
  whereAmI() {
    return sql<{ node: string }>`select @@server_id as server_id`
  },
  nodeOf(cluster, row) {
    return nodeByServerId(cluster, Number(row.server_id)).name
  },
  readOnlyErrorPattern: /read-only|read_only|READ ONLY/i,
  sessionId: () => sql<{ id: number }>`select connection_id() as id`,
  async serverSessions(cluster, node) {
    const rows = await cluster.admin(
      node,
      "select id from information_schema.processlist where user = 'app'",
    )
    return rows.map((r) => Number(r.id))
  },
  async runningStatements(cluster, node) {
    const rows = await cluster.admin(
      node,
      "select info from information_schema.processlist where user = 'app' and info is not null",
    )
    return rows.map((r) => String(r.info))
  },
  sleep: (seconds) => sql`select sleep(${sql.lit(seconds)}) as s`,
}

/** Every engine the suite runs against. The PostgreSQL fixture registers itself here. */
export const DIALECTS: DialectFixture[] = [mysqlFixture]

/** Runs `fn` inside a `describe` per dialect. */
export function forEachDialect(fn: (fixture: DialectFixture) => void): void {
  for (const fixture of DIALECTS) {
    describe(`[${fixture.name}]`, () => fn(fixture))
  }
}

const announced = new Set<string>()

/**
 * Call at the top of a `describe`: starts the fixture's cluster in `before` and stops it in
 * `after`. Without server binaries the suite is skipped with a message, or fails when `CI` is set.
 */
export function useDialectCluster(fixture: DialectFixture): () => TestCluster {
  let cluster: TestCluster | undefined
  before(async function () {
    this.timeout(90_000)
    const availability = fixture.available()
    if (!availability.ok) {
      if (process.env.CI) throw new Error(availability.message)
      if (!announced.has(availability.message)) {
        announced.add(availability.message)
        process.stderr.write(
          `  (skipping ${fixture.name} cluster tests: ${availability.message})\n`,
        )
      }
      this.skip()
    }
    cluster = await fixture.startCluster()
  })
  after(async function () {
    this.timeout(60_000)
    await cluster?.stop()
    cluster = undefined
  })
  return () => {
    if (!cluster) throw new Error('cluster not started')
    return cluster
  }
}

function nodeByPort(cluster: ReplicatedTestCluster, port: number): ClusterNode {
  const node = cluster.nodes.find((n) => n.port === port)
  if (!node) throw new Error(`no node listens on port ${port}`)
  return node
}

export const postgresFixture: DialectFixture = {
  name: 'postgres',
  available: postgresAvailability,
  async startCluster() {
    const cluster = await startPostgresCluster()
    return Object.assign(cluster, {
      delayReplica: (replica: string, ms: number) => cluster.setReplicaDelay(replica, ms),
    }) as unknown as TestCluster
  },
  create(cluster, overrides = {}) {
    return createTestDialect(
      cluster,
      overrides,
      (options, poolOptions) => {
        const p = new pg.Pool({ ...options, max: 20, ...poolOptions })
        // Idle clients of a killed node emit 'error' on the pool: without a listener the test process dies.
        p.on('error', () => {})
        return p
      },
      (config) => new ReplicatedPostgresDialect({ cursor: Cursor, ...config }),
    )
  },
  whereAmI() {
    return sql<{ node: string }>`select inet_server_port() as port`
  },
  nodeOf(cluster, row) {
    return nodeByPort(cluster, Number(row.port)).name
  },
  readOnlyErrorPattern: /cannot execute .+ in a read-only transaction/i,
  sessionId: () => sql<{ id: number }>`select pg_backend_pid() as id`,
  async serverSessions(cluster, node) {
    const rows = await cluster.admin(node, "select pid from pg_stat_activity where usename = 'app'")
    return rows.map((r) => Number(r.pid))
  },
  async runningStatements(cluster, node) {
    const rows = await cluster.admin(
      node,
      "select query from pg_stat_activity where usename = 'app' and state = 'active'",
    )
    return rows.map((r) => String(r.query))
  },
  sleep: (seconds) => sql`select pg_sleep(${sql.lit(seconds)}) as s`,
}

DIALECTS.push(postgresFixture)
