import { type Dialect, Kysely } from 'kysely'
import type sinon from 'sinon'
import type { ReplicatedDialectBase } from '../../src/core/replicated-dialect-base.js'
import {
  type ReplicatedDialectConfig,
  ReplicatedMysqlDialect,
  type ReplicatedMysqlDialectConfig,
  ReplicatedPostgresDialect,
  type ReplicatedPostgresDialectConfig,
  type ReplicationEvent,
  type RouteEvent,
} from '../../src/index.js'
import { type FakeMysqlNode, type FakeStatement, fakeMysqlNode } from './fake-mysql.js'
import { FakeCursor, type FakePgNode, fakePgNode } from './fake-pg.js'

/** The tables the routing unit tests query. */
export interface DB {
  person: { id: number; name: string }
  pet: { id: number; owner_id: number }
}

/** What the fake nodes of every engine have in common. */
export interface FakeNode {
  readonly name: string
  /** The pool handed to the dialect. */
  readonly pool: object
  /** Statements this node ran, in order (setup statements included). */
  readonly statements: readonly FakeStatement[]
  /** Physical connections created so far. */
  readonly connections: number
  /** Makes the next checkouts fail with a connection-level error. */
  down: boolean
  /** Overrides responses: an `Error` fails the statement, `undefined` keeps the default answer. */
  respond: ((sql: string, parameters: readonly unknown[], node: string) => unknown) | undefined
}

/** A replicated dialect of any engine, with its inspection methods. */
export type ReplicatedDialect = Dialect & ReplicatedDialectBase

type AnyConfig = ReplicatedDialectConfig<any, any>

/**
 * One engine as the routing unit tests see it: its fake node, its dialect, and how to tell the
 * library's own connection set-up from the statements a test ran. Methods rather than function
 * properties, so that every engine is a `RoutingEngine` (the default parameters) in a shared table.
 */
export interface RoutingEngine<
  N extends FakeNode = FakeNode,
  C extends AnyConfig = AnyConfig,
  D extends ReplicatedDialect = ReplicatedDialect,
> {
  /** `'mysql'` or `'postgres'`, for test titles. */
  readonly name: string
  /** A fake node whose pool records what runs on it. */
  fakeNode(name: string): N
  /** The engine's replicated dialect over the given config (fake pools). */
  createDialect(config: C): D
  /** Statements the library runs to set a connection up (read-only sessions, tracking, probes). */
  readonly setup: RegExp
  /** The pool method that checks a connection out (`getConnection`, `connect`), spied. */
  checkout(node: N): sinon.SinonSpy
  /** The pool method that closes the pool (`end`), spied. */
  end(node: N): sinon.SinonSpy
}

/** MariaDB/MySQL over fake mysql2 callback pools. */
export const mysqlRouting: RoutingEngine<
  FakeMysqlNode,
  ReplicatedMysqlDialectConfig,
  ReplicatedMysqlDialect
> = {
  name: 'mysql',
  fakeNode: (name) => fakeMysqlNode(name),
  createDialect: (config) => new ReplicatedMysqlDialect(config),
  setup:
    /^(set session session_track|set session transaction read only|select @@gtid_slave_pos|show slave status|select @@max_connections)/i,
  checkout: (node) => node.pool.getConnection,
  end: (node) => node.pool.end,
}

/** PostgreSQL over fake pg pools, with the fake cursor unless the config says otherwise. */
export const postgresRouting: RoutingEngine<
  FakePgNode,
  ReplicatedPostgresDialectConfig,
  ReplicatedPostgresDialect
> = {
  name: 'postgres',
  fakeNode: (name) => fakePgNode(name),
  createDialect: (config) => new ReplicatedPostgresDialect({ cursor: FakeCursor, ...config }),
  setup: /^SET default_transaction_read_only = on$/,
  checkout: (node) => node.pool.connect,
  end: (node) => node.pool.end,
}

/** A dialect over a fake primary and fake replicas, with what it routed. */
export interface RoutingHarness<
  N extends FakeNode = FakeNode,
  D extends ReplicatedDialect = ReplicatedDialect,
> {
  readonly db: Kysely<DB>
  readonly dialect: D
  readonly primary: N
  /** `replica-1`, `replica-2`, ... */
  readonly replicas: N[]
  /** Every `onRoute` event, in order. */
  readonly routes: RouteEvent[]
  /** Every `onEvent` event, in order (unless the test gave its own `onEvent`). */
  readonly events: ReplicationEvent[]
  /** The node's statements without the library's connection set-up. */
  userStatements(node: N): N['statements'][number][]
  /** Every node's statements without set-up, as `node: sql`, primary first. */
  ran(): string[]
  /** The pool method that checks a connection out of this node, spied: `sinon.assert.calledOnce(h.checkout(h.primary))`. */
  checkout(node: N): sinon.SinonSpy
}

/**
 * A Kysely instance on the engine's replicated dialect over a fake primary and `replicaCount`
 * fake replicas: round-robin, eventual consistency and no background prober unless `overrides`
 * say otherwise.
 *
 * @example
 * ```ts
 * const h = routingHarness(mysqlRouting)
 * await h.db.selectFrom('person').selectAll().execute()
 * expect(lastRoute(h)).to.include({ role: 'replica', reason: 'read' })
 * sinon.assert.notCalled(h.primary.pool.getConnection)
 * ```
 */
export function routingHarness<
  N extends FakeNode,
  C extends AnyConfig,
  D extends ReplicatedDialect,
>(
  engine: RoutingEngine<N, C, D>,
  overrides: Partial<C> = {},
  replicaCount = 2,
): RoutingHarness<N, D> {
  const primary = engine.fakeNode('primary')
  const replicas = Array.from({ length: replicaCount }, (_, i) =>
    engine.fakeNode(`replica-${i + 1}`),
  )
  const routes: RouteEvent[] = []
  const events: ReplicationEvent[] = []
  const config: AnyConfig = {
    primary: { pool: primary.pool },
    replicas: replicas.map((r) => ({ name: r.name, pool: r.pool })),
    selector: 'round-robin',
    consistency: 'eventual',
    health: { probeIntervalMs: 0 },
    onRoute: (e) => routes.push(e),
    onEvent: (e) => events.push(e),
    ...overrides,
  }
  const dialect = engine.createDialect(config as C)
  const isSetup = (sql: string) => engine.setup.test(sql.trim())
  const userStatements = (node: N) => node.statements.filter((s) => !isSetup(s.sql))
  return {
    db: new Kysely<DB>({ dialect }),
    dialect,
    primary,
    replicas,
    routes,
    events,
    userStatements,
    ran: () => [primary, ...replicas].flatMap(userStatements).map((s) => `${s.node}: ${s.sql}`),
    checkout: (node) => engine.checkout(node),
  }
}

/** The last routing decision; fails when there was none. */
export function lastRoute(h: { readonly routes: readonly RouteEvent[] }): RouteEvent {
  const e = h.routes.at(-1)
  if (!e) throw new Error('no route event')
  return e
}
