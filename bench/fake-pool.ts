/**
 * A minimal, fast in-process stand-in for a mysql2 callback pool, for the micro-benchmarks: it
 * answers every statement at once (on `process.nextTick`), so a benchmark over it measures the
 * client-side cost of a dialect and nothing else.
 *
 * It answers like a MariaDB server would where the dialects look: a `_handshakePacket` with a
 * MariaDB version, OK packets with `stateChanges.systemVariables.last_gtid` for writes on the
 * primary (so causal mode has positions), `[{ r: 0 }]` for `master_gtid_wait`, and the primary's
 * last GTID for `@@gtid_slave_pos` on replicas (always caught up).
 */

/** The shared state of a fake primary and its replicas. */
export interface FakeClusterState {
  /** Sequence number of the last GTID the fake primary handed out (`0-1-seq`). */
  gtidSeq: number
}

/** One row every plain select returns. */
const ROW = Object.freeze({ id: 1, first_name: 'Jennifer', last_name: 'Aniston' })

type Callback = (error: unknown, result?: unknown) => void

/** A fake mysql2 pool. Counts what it ran, for sanity checks of the benchmark itself. */
export class FakeMysqlPool {
  readonly name: string
  readonly role: 'primary' | 'replica'
  readonly #state: FakeClusterState
  readonly #free: FakeMysqlConnection[] = []
  #nextId = 1
  /** Statements run, setup and waits included. */
  queries = 0
  /** Connections checked out. */
  checkouts = 0

  constructor(name: string, role: 'primary' | 'replica', state: FakeClusterState) {
    this.name = name
    this.role = role
    this.#state = state
  }

  get state(): FakeClusterState {
    return this.#state
  }

  getConnection(callback: (error: unknown, connection: FakeMysqlConnection) => void): void {
    this.checkouts++
    const connection = this.#free.pop() ?? new FakeMysqlConnection(this, this.#nextId++)
    process.nextTick(callback, null, connection)
  }

  end(callback: (error: unknown) => void): void {
    process.nextTick(callback, null)
  }

  /** @internal */
  giveBack(connection: FakeMysqlConnection): void {
    this.#free.push(connection)
  }
}

/** A fake mysql2 pool connection. */
export class FakeMysqlConnection {
  readonly threadId: number
  readonly _handshakePacket = { serverVersion: '10.11.6-MariaDB' }
  readonly config = {}
  readonly #pool: FakeMysqlPool

  constructor(pool: FakeMysqlPool, threadId: number) {
    this.#pool = pool
    this.threadId = threadId
  }

  query(sql: string, _parameters: unknown, callback?: Callback) {
    const pool = this.#pool
    pool.queries++
    const result = answer(pool, sql)
    if (callback !== undefined) process.nextTick(callback, null, result)
    // A class, not a closure: tsx wraps every closure it creates in a `__name` call.
    return new FakeQuery(result)
  }

  release(): void {
    this.#pool.giveBack(this)
  }

  destroy(): void {}
}

/** What `query()` returns: mysql2's `Query`, reduced to `stream()`. */
class FakeQuery {
  readonly #result: unknown

  constructor(result: unknown) {
    this.#result = result
  }

  async *stream(): AsyncIterableIterator<unknown> {
    const result = this.#result
    for (const row of Array.isArray(result) ? result : []) yield row
  }
}

function okPacket(affectedRows: number, gtid: string | undefined) {
  return {
    fieldCount: 0,
    affectedRows,
    insertId: 0,
    info: '',
    serverStatus: 2,
    warningStatus: 0,
    changedRows: affectedRows,
    stateChanges:
      gtid === undefined
        ? { systemVariables: {}, schema: null, gtids: [], trackStateChange: null }
        : { systemVariables: { last_gtid: gtid }, schema: null, gtids: [], trackStateChange: null },
  }
}

/** Answers by the first letters of the statement: cheap, and enough for the benchmark's statements. */
function answer(pool: FakeMysqlPool, sql: string): unknown {
  const c = sql.charCodeAt(0) | 0x20
  if (c === 115 /* s */) {
    const d = sql.charCodeAt(1) | 0x20
    if (d === 101 /* e: select / set */ && (sql.charCodeAt(2) | 0x20) === 116 /* t */) {
      return okPacket(0, undefined)
    }
    if (d === 104 /* h: show */) return [{ Seconds_Behind_Master: 0, Slave_SQL_Running: 'Yes' }]
    if (sql.startsWith('select master_gtid_wait')) return [{ r: 0 }]
    if (sql.startsWith('select @@gtid_slave_pos')) {
      return [
        {
          pos: pool.role === 'replica' ? `0-1-${pool.state.gtidSeq}` : '',
          ro: pool.role === 'replica' ? 1 : 0,
        },
      ]
    }
    return [ROW]
  }
  if (c === 98 /* b: begin */ || c === 114 /* r: rollback */) return okPacket(0, undefined)
  // insert, update, delete, replace, commit: a committed write with a GTID
  const state = pool.state
  state.gtidSeq++
  return okPacket(1, `0-1-${state.gtidSeq}`)
}

/** A fake primary and `replicas` fake replicas sharing one GTID sequence. */
export function createFakeCluster(replicas: number): {
  primary: FakeMysqlPool
  replicas: FakeMysqlPool[]
} {
  const state: FakeClusterState = { gtidSeq: 0 }
  return {
    primary: new FakeMysqlPool('primary', 'primary', state),
    replicas: Array.from(
      { length: replicas },
      (_, i) => new FakeMysqlPool(`replica-${i + 1}`, 'replica', state),
    ),
  }
}
