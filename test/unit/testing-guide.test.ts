/**
 * The code of docs/testing.md ("Testing your routing without a database"), run as tests. The
 * last test below keeps the two identical: every ```ts block of the guide must be in this file,
 * line for line (indentation aside); only the library is imported from src/ here instead of
 * 'kysely-replicated'. Change the guide and this file together.
 */
import assert from 'node:assert/strict'
import * as fs from 'node:fs'
import * as path from 'node:path'
import { expect } from 'chai'
import { Kysely } from 'kysely'
import sinon from 'sinon'
import {
  consistencyScope,
  explainRoute,
  onPrimary,
  ReplicatedMysqlDialect,
  ReplicatedPostgresDialect,
  type RouteEvent,
} from '../../src/index.js'

// ---- docs/testing.md: "The code under test" ----

interface DB {
  invoice: { id: number; month: string; total: number; paid: boolean }
}

/** A report: read-only, so a replica may serve it. */
async function monthlyReport(db: Kysely<DB>, month: string) {
  return db.selectFrom('invoice').select(['id', 'total']).where('month', '=', month).execute()
}

/** A write: the primary. */
async function recordPayment(db: Kysely<DB>, id: number) {
  await db.updateTable('invoice').set({ paid: true }).where('id', '=', id).execute()
}

/** Read right after a payment, which it must see: asks for the primary. */
async function invoiceAfterPayment(db: Kysely<DB>, id: number) {
  return onPrimary(db).selectFrom('invoice').selectAll().where('id', '=', id).executeTakeFirst()
}

// ---- docs/testing.md: "MySQL and MariaDB" ----

type Callback = (error: unknown, result?: unknown) => void

/**
 * A stub mysql2 pool with one connection, which answers a SELECT with `rows` and any other
 * statement with an OK packet.
 */
function stubMysqlPool(rows: object[] = []) {
  const connection = {
    threadId: 1,
    query: sinon.stub().callsFake((sql: string, _values: unknown, done: Callback) => {
      const result = /^\s*select\b/i.test(sql) ? rows : { affectedRows: 1, insertId: 0 }
      setImmediate(done, null, result)
    }),
    release: sinon.stub(),
    destroy: sinon.stub(),
  }
  const pool = {
    getConnection: sinon.stub().yieldsAsync(null, connection),
    end: sinon.stub().yieldsAsync(null),
  }
  return { pool, connection }
}

describe('invoices on MySQL (stubbed pools)', () => {
  let primary: ReturnType<typeof stubMysqlPool>
  let replica: ReturnType<typeof stubMysqlPool>
  let routes: RouteEvent[]
  let db: Kysely<DB>

  beforeEach(() => {
    primary = stubMysqlPool()
    replica = stubMysqlPool([{ id: 1, total: 42 }])
    routes = []
    db = new Kysely<DB>({
      dialect: new ReplicatedMysqlDialect({
        primary: { pool: primary.pool },
        replicas: [{ name: 'replica-1', pool: replica.pool }],
        // No background probes: only the code under test touches the pools.
        health: { probeIntervalMs: 0 },
        consistency: 'eventual',
        onRoute: (event) => routes.push(event),
      }),
    })
  })

  afterEach(() => db.destroy())

  it('runs the monthly report on a replica', async () => {
    const report = await monthlyReport(db, '2025-01')

    assert.deepEqual(report, [{ id: 1, total: 42 }])
    sinon.assert.calledOnce(replica.pool.getConnection)
    sinon.assert.notCalled(primary.pool.getConnection)
    assert.deepEqual(
      routes.map((r) => [r.node, r.reason]),
      [['replica-1', 'read']],
    )
  })

  it('records a payment on the primary', async () => {
    await recordPayment(db, 7)

    sinon.assert.calledOnce(primary.pool.getConnection)
    sinon.assert.notCalled(replica.pool.getConnection)
    sinon.assert.calledWithMatch(primary.connection.query, 'update `invoice` set `paid` = ?', [
      true,
      7,
    ])
    assert.deepEqual(
      routes.map((r) => [r.node, r.reason]),
      [['primary', 'write']],
    )
  })

  it('reads the invoice it just paid on the primary', async () => {
    await recordPayment(db, 7)
    await invoiceAfterPayment(db, 7)

    sinon.assert.notCalled(replica.pool.getConnection)
    assert.deepEqual(
      routes.map((r) => [r.node, r.reason]),
      [
        ['primary', 'write'],
        ['primary', 'hint'],
      ],
    )
  })
})

// ---- docs/testing.md: "PostgreSQL" ----

/**
 * A stub pg pool with one client, which answers a SELECT with `rows` and any other statement
 * with its command tag and one row affected.
 */
function stubPgPool(rows: object[] = []) {
  const client = {
    processID: 1,
    query: sinon.stub().callsFake(async (sql: string) => {
      const command = /^\s*(\w+)/.exec(sql)?.[1]?.toUpperCase() ?? ''
      return command === 'SELECT'
        ? { command, rowCount: rows.length, rows }
        : { command, rowCount: 1, rows: [] }
    }),
    release: sinon.stub(),
  }
  const pool = {
    connect: sinon.stub().resolves(client),
    end: sinon.stub().resolves(),
  }
  return { pool, client }
}

describe('invoices on PostgreSQL (stubbed pools)', () => {
  let primary: ReturnType<typeof stubPgPool>
  let replica: ReturnType<typeof stubPgPool>
  let routes: RouteEvent[]
  let db: Kysely<DB>

  beforeEach(() => {
    primary = stubPgPool()
    replica = stubPgPool([{ id: 1, total: 42 }])
    routes = []
    db = new Kysely<DB>({
      dialect: new ReplicatedPostgresDialect({
        primary: { pool: primary.pool },
        replicas: [{ name: 'replica-1', pool: replica.pool }],
        health: { probeIntervalMs: 0 },
        // Stubs report no WAL positions: 'sticky' is the deterministic read-your-writes.
        consistency: 'sticky',
        onRoute: (event) => routes.push(event),
      }),
    })
  })

  afterEach(() => db.destroy())

  it('runs the monthly report on a replica', async () => {
    const report = await monthlyReport(db, '2025-01')

    assert.deepEqual(report, [{ id: 1, total: 42 }])
    sinon.assert.calledOnce(replica.pool.connect)
    sinon.assert.notCalled(primary.pool.connect)
    sinon.assert.calledWith(
      replica.client.query,
      'select "id", "total" from "invoice" where "month" = $1',
      ['2025-01'],
    )
  })

  it('reads its own payment on the primary within a consistency scope', async () => {
    await consistencyScope(async () => {
      await recordPayment(db, 7)
      await monthlyReport(db, '2025-01')
    })
    await monthlyReport(db, '2025-01')

    sinon.assert.calledOnce(replica.pool.connect)
    assert.deepEqual(
      routes.map((r) => [r.node, r.reason]),
      [
        ['primary', 'write'],
        ['primary', 'sticky'],
        ['replica-1', 'read'],
      ],
    )
  })
})

// ---- docs/testing.md: "`explainRoute`: a route without running the query" ----

/** The invoice queries, built but not run: the application executes them, the tests explain them. */
const invoiceQueries = {
  monthlyReport: (db: Kysely<DB>, month: string) =>
    db.selectFrom('invoice').select(['id', 'total']).where('month', '=', month),
  payment: (db: Kysely<DB>, id: number) =>
    db.updateTable('invoice').set({ paid: true }).where('id', '=', id),
  afterPayment: (db: Kysely<DB>, id: number) =>
    onPrimary(db).selectFrom('invoice').selectAll().where('id', '=', id),
}

describe('where the invoice queries run (explainRoute)', () => {
  let db: Kysely<DB>

  beforeEach(() => {
    db = new Kysely<DB>({
      dialect: new ReplicatedMysqlDialect({
        primary: { pool: stubMysqlPool().pool },
        replicas: [
          { name: 'replica-1', pool: stubMysqlPool().pool },
          { name: 'replica-2', pool: stubMysqlPool().pool },
        ],
        // No background probes: explainRoute then takes no connection at all.
        health: { probeIntervalMs: 0 },
      }),
    })
  })

  afterEach(() => db.destroy())

  it('sends the monthly report to any replica', async () => {
    const route = await explainRoute(db, invoiceQueries.monthlyReport(db, '2025-01'))

    assert.deepEqual(route, {
      role: 'replica',
      node: undefined,
      reason: 'read',
      candidates: ['replica-1', 'replica-2'],
    })
  })

  it('records a payment on the primary', async () => {
    const route = await explainRoute(db, invoiceQueries.payment(db, 7))

    assert.deepEqual(route, { role: 'primary', node: 'primary', reason: 'write' })
  })

  it('reads the invoice after its payment on the primary', async () => {
    const route = await explainRoute(db, invoiceQueries.afterPayment(db, 7))

    assert.deepEqual(route, { role: 'primary', node: 'primary', reason: 'hint' })
  })
})

// ---- the guide and this file stay identical ----

const GUIDE = path.resolve(import.meta.dirname, '../../docs/testing.md')
const THIS_FILE = import.meta.filename

/** `import a, { b, type C } from 'm'` -> ['a from m', 'b from m', 'C from m']. */
function importedNames(source: string): Set<string> {
  const names = new Set<string>()
  for (const m of source.matchAll(/^import\s+([\s\S]*?)\s+from\s+'([^']+)'/gm)) {
    const [, full, module] = m as unknown as [string, string, string]
    const clause = full.replace(/^type\s+/, '')
    const named = /\{([\s\S]*)\}/.exec(clause)?.[1] ?? ''
    const defaults = clause.replace(/\{[\s\S]*\}/, '').replace(/,/g, ' ')
    for (const name of [...named.split(','), ...defaults.split(/\s+/)]) {
      const bare = name.replace(/^\s*type\s+/, '').trim()
      if (bare !== '' && bare !== '*' && bare !== 'as') names.add(`${bare} from ${module}`)
    }
  }
  return names
}

/** The lines of a piece of code without indentation and blank lines. */
const codeLines = (text: string) =>
  text
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '')

/** What the guide shows that this file does not have: imported names and blocks of code. */
function notInThisFile(guide: string): string[] {
  const source = fs.readFileSync(THIS_FILE, 'utf8')
  const imports = importedNames(source)
  const lines = `\n${codeLines(source).join('\n')}\n`
  const missing: string[] = []
  for (const [, block] of guide.matchAll(/^```ts\n([\s\S]*?)^```$/gm)) {
    const code = block!.replaceAll("from 'kysely-replicated'", "from '../../src/index.js'")
    for (const name of importedNames(code)) {
      if (!imports.has(name)) missing.push(`import ${name}`)
    }
    const body = codeLines(code.replace(/^import\s+[\s\S]*?\s+from\s+'[^']+'\n/gm, ''))
    if (body.length > 0 && !lines.includes(`\n${body.join('\n')}\n`)) {
      missing.push(body.slice(0, 3).join('\n'))
    }
  }
  return missing
}

describe('docs/testing.md', () => {
  const guide = fs.readFileSync(GUIDE, 'utf8')

  it('shows only code that this file runs', () => {
    expect(guide.match(/^```ts$/gm)).to.have.length.of.at.least(3)
    expect(notInThisFile(guide)).to.deep.equal([])
  })

  it('notices a guide that differs from this file (the check can fail)', () => {
    expect(
      notInThisFile(guide.replace("'replica-1', 'read'", "'replica-2', 'read'")),
    ).to.have.length(1)
    expect(notInThisFile(guide.replace('import sinon from', 'import sinonTest from'))).to.include(
      'import sinonTest from sinon',
    )
  })
})
