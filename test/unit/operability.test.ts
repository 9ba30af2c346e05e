import { trace } from '@opentelemetry/api'
import { expect } from 'chai'
import { CompiledQuery, Kysely, sql } from 'kysely'
import {
  ConnectionSetupError,
  ReplicatedConfigError,
  ReplicatedMysqlDialect,
  type ReplicatedMysqlDialectConfig,
  withQueryComment,
} from '../../src/index.js'
import { appendSqlComment, formatSqlComment } from '../../src/observability/query-comments.js'
import { type FakeMysqlNode, fakeMysqlNode } from '../support/fake-mysql.js'
import { useInMemoryTracing } from '../support/in-memory-tracing.js'

const SETUP = /^(set session|select @@gtid_slave_pos|show slave status|select @@max_connections)/i

function setup(overrides: Partial<ReplicatedMysqlDialectConfig> = {}) {
  const primary = fakeMysqlNode('primary')
  const replica = fakeMysqlNode('replica-1')
  const dialect = new ReplicatedMysqlDialect({
    primary: { pool: primary.pool },
    replicas: [{ name: 'replica-1', pool: replica.pool }],
    consistency: 'eventual',
    health: { probeIntervalMs: 0 },
    ...overrides,
  })
  return { primary, replica, dialect, db: new Kysely<any>({ dialect }) }
}

const sent = (node: FakeMysqlNode) =>
  node.statements.filter((s) => !SETUP.test(s.sql)).map((s) => s.sql)

describe('operability', () => {
  describe('sqlcommenter comments', () => {
    it('formats tags as the spec says: sorted keys, URL-encoded, quoted', () => {
      expect(
        formatSqlComment({ route: '/users/:id', controller: 'users', action: undefined }),
      ).to.equal("/*controller='users',route='%2Fusers%2F%3Aid'*/")
      expect(formatSqlComment({})).to.equal('')
    })

    it('never lets a value close the comment, leave its quotes or span lines', () => {
      const hostile = 'x*/ drop table person; /*\'"\n--'
      const comment = formatSqlComment({ evil: hostile, "k*/'": 'v' })
      const body = comment.slice(2, -2)
      expect(body).to.not.contain('*/')
      expect(body).to.not.contain('/*')
      expect(body).to.not.match(/[\n\r"]/)
      // Every quote in the body is one of the delimiters around a value.
      expect(body.replace(/='[^']*'/g, '')).to.not.contain("'")
      expect(decodeURIComponent(/evil='([^']*)'/.exec(body)![1]!)).to.equal(hostile)
    })

    it('leaves a statement that already has a comment alone and keeps a trailing semicolon last', () => {
      expect(appendSqlComment('select 1 /* mine */', "/*a='b'*/")).to.equal('select 1 /* mine */')
      expect(appendSqlComment('select 1;', "/*a='b'*/")).to.equal("select 1 /*a='b'*/;")
    })

    it('appends the context and the routing decision after routing, without changing it', async () => {
      const { db, primary, replica } = setup({ queryComments: true })
      await withQueryComment({ route: '/people', request_id: "r-1'*/" }, async () => {
        await db.selectFrom('person').selectAll().execute()
        await withQueryComment({ controller: 'people' }, () =>
          db.insertInto('person').values({ id: 1 }).execute(),
        )
      })
      await db.destroy()
      expect(sent(replica)).to.deep.equal([
        "select * from `person` /*db_node='replica-1',db_route_reason='read',request_id='r-1%27%2A%2F',route='%2Fpeople'*/",
      ])
      expect(sent(primary)).to.deep.equal([
        "insert into `person` (`id`) values (?) /*controller='people',db_node='primary',db_route_reason='write',request_id='r-1%27%2A%2F',route='%2Fpeople'*/",
      ])
    })

    it('is off by default', async () => {
      const { db, replica } = setup()
      await withQueryComment({ route: '/x' }, () => db.selectFrom('person').selectAll().execute())
      await db.destroy()
      expect(sent(replica)).to.deep.equal(['select * from `person`'])
    })
  })

  describe('connection hooks and lifetime', () => {
    it('runs beforeConnect before a new connection and onCreateConnection after its setup', async () => {
      const calls: string[] = []
      const { db } = setup({
        onCreateConnection: async (conn, node) => {
          calls.push(`create ${node.name}`)
          await conn.executeQuery(CompiledQuery.raw('select 1'))
        },
        hooks: {
          beforeConnect: (node) => {
            calls.push(`before ${node.name}`)
          },
        },
      })
      await db.selectFrom('person').selectAll().execute()
      await db.selectFrom('person').selectAll().execute()
      await db.destroy()
      // The second query reuses the idle connection: no new connection, no hooks.
      expect(calls).to.deep.equal(['before replica-1', 'create replica-1'])
    })

    it('closes a connection whose onCreateConnection fails and raises ConnectionSetupError naming the node', async () => {
      let fail = true
      const { db, replica } = setup({
        onCreateConnection: async () => {
          if (fail) throw new Error('tenant lookup failed')
        },
      })
      const err = await db
        .selectFrom('person')
        .selectAll()
        .execute()
        .catch((e) => e)
      expect(err).to.be.instanceOf(ConnectionSetupError)
      expect(err.node).to.equal('replica-1')
      expect(err.message).to.contain('tenant lookup failed')
      fail = false
      await db.selectFrom('person').selectAll().execute()
      await db.destroy()
      // The half-set-up connection was destroyed, never reused: a second one was opened.
      expect(replica.connections).to.equal(2)
    })

    it('reports connection failures to onConnectionFailure', async () => {
      const failures: string[] = []
      const { db, replica } = setup({
        hooks: {
          onConnectionFailure: (e, node) => failures.push(`${node.name}: ${(e as Error).message}`),
        },
      })
      replica.down = true
      await db.selectFrom('person').selectAll().execute() // retried on the primary
      await db.destroy()
      expect(failures).to.have.length(1)
      expect(failures[0]).to.match(/^replica-1: connect ECONNREFUSED/)
    })

    it('closes connections older than maxLifetimeMs on release instead of reusing them', async () => {
      const primary = fakeMysqlNode('primary')
      const dialect = new ReplicatedMysqlDialect({
        primary: { pool: primary.pool, maxLifetimeMs: 400 },
        replicas: [],
        health: { probeIntervalMs: 0 },
      })
      const db = new Kysely<any>({ dialect })
      await db.selectFrom('person').selectAll().execute()
      await db.selectFrom('person').selectAll().execute()
      expect(primary.connections).to.equal(1)
      await new Promise((r) => setTimeout(r, 450))
      await db.selectFrom('person').selectAll().execute() // released after its lifetime: closed
      await db.selectFrom('person').selectAll().execute() // a new connection
      const stats = dialect.getPoolStats()[0]!
      await db.destroy()
      expect(primary.connections).to.equal(2)
      expect(stats).to.include({ node: 'primary', opened: 2, retiredByLifetime: 1, inUse: 0 })
    })

    it('rejects pool-size options on a pool the user built, and a node with both pool and connection', () => {
      const pool = fakeMysqlNode('x').pool
      expect(
        () => new ReplicatedMysqlDialect({ primary: { pool, poolSize: 5 }, replicas: [] }),
      ).to.throw(ReplicatedConfigError, /poolSize` applies to pools the library creates/)
      expect(
        () =>
          new ReplicatedMysqlDialect({
            primary: { pool, connection: { host: 'x' } },
            replicas: [],
          }),
      ).to.throw(ReplicatedConfigError, /either `pool` or `connection`/)
      expect(
        () => new ReplicatedMysqlDialect({ primary: { pool, maxLifetimeMs: -1 }, replicas: [] }),
      ).to.throw(ReplicatedConfigError, /maxLifetimeMs/)
    })
  })

  describe('OpenTelemetry', () => {
    const exporter = useInMemoryTracing()

    it('records a client span per statement with the database and routing attributes', async () => {
      const { db } = setup({ tracing: true, consistency: 'causal' })
      await db.insertInto('person').values({ id: 1 }).execute()
      await db.selectFrom('person').selectAll().execute()
      await db.destroy()
      const spans = exporter.getFinishedSpans()
      expect(spans.map((s) => s.name)).to.deep.equal(['INSERT', 'SELECT'])
      expect(spans[0]!.attributes).to.include({
        'db.system': 'mariadb',
        'db.operation.name': 'INSERT',
        'db.replication.node': 'primary',
        'db.replication.role': 'primary',
        'db.replication.reason': 'write',
      })
      expect(spans[1]!.attributes).to.include({
        'db.replication.node': 'replica-1',
        'db.replication.role': 'replica',
        'db.replication.reason': 'causal-waited',
      })
      expect(spans[1]!.attributes['db.replication.causal_wait_ms']).to.be.a('number')
      expect(spans[1]!.attributes).to.not.have.property('db.query.text')
    })

    it("sets the attributes on the active span in 'attributes' mode", async () => {
      const { db } = setup({ tracing: { mode: 'attributes', includeQueryText: true } })
      const tracer = trace.getTracer('test')
      await tracer.startActiveSpan('request', async (span) => {
        await db.selectFrom('person').selectAll().execute()
        span.end()
      })
      await db.destroy()
      const spans = exporter.getFinishedSpans()
      expect(spans.map((s) => s.name)).to.deep.equal(['request'])
      expect(spans[0]!.attributes).to.include({
        'db.replication.node': 'replica-1',
        'db.query.text': 'select * from `person`',
      })
    })

    it('marks a failed statement as an error span', async () => {
      const { db, replica } = setup({ tracing: true })
      replica.respond = (s) =>
        s.includes('nope')
          ? Object.assign(new Error('no such table'), { code: 'ER_NO_SUCH_TABLE' })
          : undefined
      await sql`select * from nope`.execute(db).catch(() => undefined)
      await db.destroy()
      const [span] = exporter.getFinishedSpans()
      expect(span!.status.code).to.equal(2)
      expect(span!.events.some((e) => e.name === 'exception')).to.equal(true)
    })
  })
})
