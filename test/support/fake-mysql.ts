import { EventEmitter } from 'node:events'
import sinon from 'sinon'

/** One statement a fake node received. */
export interface FakeStatement {
  readonly node: string
  readonly connectionId: number
  readonly sql: string
  readonly parameters: readonly unknown[]
}

export type FakeResponder = (sql: string, parameters: readonly unknown[], node: string) => unknown

export interface FakeMysqlNode {
  readonly name: string
  readonly pool: {
    /** Spied, for `sinon.assert.calledOnce(replica.pool.getConnection)`: one call per checkout. */
    getConnection: sinon.SinonSpy
    /** Spied: `db.destroy()` ends every pool once. */
    end: sinon.SinonSpy
    /** mysql2 pool internals the library reads for statistics. */
    readonly _allConnections: unknown[]
    readonly _freeConnections: unknown[]
    readonly _connectionQueue: unknown[]
    readonly config: { connectionLimit: number; resetOnRelease: boolean }
  }
  /** Statements this node ran, in order (setup statements included). */
  readonly statements: FakeStatement[]
  /** Physical connections created so far. */
  readonly connections: number
  /** Makes the next `getConnection` calls fail with a connection-level error. */
  down: boolean
  /** Overrides responses. */
  respond: FakeResponder | undefined
  /** The GTID the next write on this node reports (`last_gtid`), incremented per write. */
  gtidSeq: number
  /** What `@@gtid_slave_pos` answers on this (replica) node. */
  appliedGtid: string
  /** What `master_gtid_wait` answers: 0 (reached) or -1 (timeout). */
  waitResult: number
  /**
   * Statements matching this never answer until their connection is killed (`KILL <id>` from
   * another connection of the node, or `lose()`): then they fail as MariaDB reports a killed
   * session (`ER_CONNECTION_KILLED`, fatal).
   */
  hang: RegExp | undefined
  /** Kills every hung statement's connection as the server would on a lost session. */
  lose(): void
  /** Every connection made so far, by creation order (`all[0]` has thread id 1). */
  readonly all: readonly FakeMysqlConnection[]
}

/** What a test may read of one fake physical connection. */
export interface FakeMysqlConnection {
  readonly threadId: number
  /** `destroy()` was called (mysql2: the connection left its pool and was closed). */
  readonly destroyed: boolean
  /** The connection's fake socket. */
  readonly stream: FakeSocket
  /** How many times the pool reset the session (`resetOnRelease`). */
  readonly resets: number
}

/**
 * The part of a `net.Socket` the library touches: `destroy(error)` emits `'error'` (with an error)
 * then `'close'`, as Node does; a hung statement of the connection then fails with that error, as
 * mysql2 fails it.
 */
export class FakeSocket extends EventEmitter {
  destroyed = false
  /** The error it was destroyed with, if any. */
  destroyError: Error | undefined

  constructor(private readonly onDestroy: (error: Error | undefined) => void) {
    super()
  }

  destroy(error?: Error): this {
    if (this.destroyed) return this
    this.destroyed = true
    this.destroyError = error
    setImmediate(() => {
      if (error !== undefined && this.listenerCount('error') > 0) this.emit('error', error)
      this.onDestroy(error)
      this.emit('close')
    })
    return this
  }
}

const ROWS_SELECT = /^\s*(\(|select|show|with|explain|describe|desc)\b/i

/**
 * A fake mysql2 callback pool for unit tests of routing decisions: records every statement with
 * the node and connection it ran on, answers like a MariaDB server would (OK packets with
 * `last_gtid` session tracking for writes on the primary), and can be made to fail.
 */
export function fakeMysqlNode(
  name: string,
  options: {
    maxConnections?: number
    /** As mysql2's `resetOnRelease`: every release resets the session (`connection.reset`). */
    resetOnRelease?: boolean
  } = {},
): FakeMysqlNode {
  let nextId = 1
  const free: FakeConnection[] = []
  const all: FakeConnection[] = []
  /** Kill switches of hung statements, by connection id. */
  const hung = new Map<number, (error?: Error) => void>()
  const made: FakeConnection[] = []
  const node: FakeMysqlNode = {
    name,
    all: made,
    statements: [],
    get connections() {
      return nextId - 1
    },
    down: false,
    respond: undefined,
    gtidSeq: 0,
    appliedGtid: '',
    waitResult: 0,
    hang: undefined,
    lose: () => {
      for (const kill of hung.values()) kill()
    },
    pool: {
      getConnection: sinon
        .spy((cb: (err: unknown, conn?: FakeConnection) => void) => {
          setImmediate(() => {
            if (node.down) {
              const err = Object.assign(new Error(`connect ECONNREFUSED (fake ${name})`), {
                code: 'ECONNREFUSED',
                fatal: true,
              })
              cb(err)
              return
            }
            let conn = free.pop()
            if (conn === undefined) {
              conn = new FakeConnection(node, nextId++, free, all, hung, options.resetOnRelease)
              all.push(conn)
              made.push(conn)
            }
            if (options.maxConnections !== undefined && nextId - 1 > options.maxConnections) {
              cb(new Error('fake pool exhausted'))
              return
            }
            cb(null, conn)
          })
        })
        .named(`${name}.pool.getConnection`),
      end: sinon
        .spy((cb: (err: unknown) => void) =>
          setImmediate(() => {
            // COM_QUIT on each connection; the server closes them.
            for (const conn of all) conn.stream.destroy()
            cb(null)
          }),
        )
        .named(`${name}.pool.end`),
      _allConnections: all,
      _freeConnections: free,
      _connectionQueue: [],
      config: {
        connectionLimit: options.maxConnections ?? 10,
        resetOnRelease: options.resetOnRelease ?? false,
      },
    },
  }
  return node
}

class FakeConnection extends EventEmitter implements FakeMysqlConnection {
  readonly threadId: number
  readonly _handshakePacket = { serverVersion: '10.11.6-MariaDB-fake' }
  readonly #node: FakeMysqlNode
  readonly #free: FakeConnection[]
  readonly #all: FakeConnection[]
  readonly #hung: Map<number, (error?: Error) => void>
  readonly #resetOnRelease: boolean
  readonly stream: FakeSocket
  destroyed = false
  resets = 0

  constructor(
    node: FakeMysqlNode,
    id: number,
    free: FakeConnection[],
    all: FakeConnection[],
    hung: Map<number, (error?: Error) => void>,
    resetOnRelease = false,
  ) {
    super()
    this.#node = node
    this.threadId = id
    this.#free = free
    this.#all = all
    this.#hung = hung
    this.#resetOnRelease = resetOnRelease
    // As mysql2: a socket destroyed with an error fails the statement still running.
    this.stream = new FakeSocket((error) => {
      if (error !== undefined) this.#hung.get(this.threadId)?.(error)
    })
  }

  /** A promise that settles when this connection's hung statement is killed (or its socket fails). */
  #hangUntilKilled(): Promise<Error> {
    return new Promise((resolve) => {
      this.#hung.set(this.threadId, (error) => {
        this.#hung.delete(this.threadId)
        resolve(
          error ??
            Object.assign(new Error('Connection was killed'), {
              code: 'ER_CONNECTION_KILLED',
              errno: 1927,
              fatal: true,
            }),
        )
      })
    })
  }

  /** `COM_RESET_CONNECTION`, as mysql2's `connection.reset`. */
  reset(cb: (err: unknown) => void) {
    this.#node.statements.push({
      node: this.#node.name,
      connectionId: this.threadId,
      sql: 'COM_RESET_CONNECTION',
      parameters: [],
    })
    this.resets++
    setImmediate(() => cb(null))
  }

  query(
    sql: string,
    parameters: readonly unknown[],
    cb?: (err: unknown, result?: unknown) => void,
  ) {
    const node = this.#node
    node.statements.push({
      node: node.name,
      connectionId: this.threadId,
      sql,
      parameters: parameters ?? [],
    })
    const answer = () => answerFor(node, sql, parameters ?? [])
    const kill = /^\s*kill\s+(?:connection\s+)?(\d+)/i.exec(sql)
    if (kill) this.#hung.get(Number(kill[1]))?.()
    if (node.hang?.test(sql)) {
      const killed = this.#hangUntilKilled()
      if (cb) void killed.then((error) => cb(error))
      return {
        stream: () => ({
          [Symbol.asyncIterator]: () => ({
            next: async (): Promise<IteratorResult<unknown>> => {
              throw await killed
            },
          }),
        }),
      }
    }
    if (cb) {
      setImmediate(() => {
        try {
          const result = answer()
          if (result instanceof Error) cb(result)
          else cb(null, result)
        } catch (error) {
          cb(error)
        }
      })
    }
    return {
      stream: () => {
        const result = answer()
        return (async function* () {
          if (result instanceof Error) throw result
          for (const row of Array.isArray(result) ? result : []) yield row
        })()
      },
    }
  }

  release() {
    // As mysql2's pool with resetOnRelease: reset through the connection's own `reset`, then free.
    if (this.#resetOnRelease) this.reset(() => this.#free.push(this))
    else this.#free.push(this)
  }

  destroy() {
    this.destroyed = true
    const i = this.#all.indexOf(this)
    if (i >= 0) this.#all.splice(i, 1)
  }
}

function answerFor(node: FakeMysqlNode, sql: string, parameters: readonly unknown[]): unknown {
  const custom = node.respond?.(sql, parameters, node.name)
  if (custom !== undefined) return custom
  const lower = sql.trim().toLowerCase()
  if (lower.startsWith('select master_gtid_wait')) return [{ r: node.waitResult }]
  if (lower.startsWith('select @@gtid_slave_pos')) return [{ pos: node.appliedGtid, ro: 1 }]
  if (lower.startsWith('show slave status'))
    return [{ Seconds_Behind_Master: 0, Slave_SQL_Running: 'Yes' }]
  if (lower.startsWith('select @@server_id') || lower.includes('@@server_id'))
    return [{ id: node.name }]
  if (ROWS_SELECT.test(sql)) return [{ node: node.name }]
  if (
    /^\s*(set|begin|start|savepoint|release|rollback|use|lock|unlock|do|kill|prepare)\b/i.test(sql)
  ) {
    return header(0, 0)
  }
  if (/^\s*commit\b/i.test(sql)) {
    return header(0, 0, nextGtid(node))
  }
  // a write
  return header(1, lower.startsWith('insert') ? 7 : 0, nextGtid(node))
}

function nextGtid(node: FakeMysqlNode): string {
  node.gtidSeq++
  return `0-1-${node.gtidSeq}`
}

function header(affectedRows: number, insertId: number, gtid?: string) {
  return {
    affectedRows,
    insertId,
    changedRows: affectedRows,
    stateChanges: gtid ? { systemVariables: { last_gtid: gtid }, gtids: [] } : null,
  }
}
