import { EventEmitter } from 'node:events'
import sinon from 'sinon'
import { formatLsn, parseLsn } from '../../src/consistency/pg-lsn.js'

/** One statement a fake node received. */
export interface FakePgStatement {
  readonly node: string
  /** The fake backend pid of the client it ran on. */
  readonly connectionId: number
  readonly sql: string
  readonly parameters: readonly unknown[]
  /** Run through a cursor (`.stream()`). */
  readonly cursor: boolean
}

export interface FakePgResult {
  command: string
  rowCount: number | null
  rows: unknown[]
}

/** Returns an answer (a result, rows, or an Error) to override the default, or `undefined`. */
export type FakePgResponder = (
  sql: string,
  parameters: readonly unknown[],
  node: string,
) => FakePgResult | unknown[] | Error | undefined

export interface FakePgNode {
  readonly name: string
  readonly pool: {
    /** Spied, for `sinon.assert.calledOnce(replica.pool.connect)`: one call per checkout. */
    connect: sinon.SinonSpy
    /** Spied: `db.destroy()` ends every pool once. */
    end: sinon.SinonSpy
  }
  /** Statements this node ran, in order (setup statements included). */
  readonly statements: FakePgStatement[]
  /** Physical clients created so far. */
  readonly connections: number
  /** Clients closed with `release(true)`. */
  readonly destroyed: number[]
  /** Every client created, by creation order (`clients[0]` has pid 1). */
  readonly clients: EventEmitter[]
  /** Makes the next `connect` calls fail with a connection-level error. */
  down: boolean
  /** Overrides responses. */
  respond: FakePgResponder | undefined
  /** Primary: what `pg_current_wal_insert_lsn()` answers; every write or commit advances it. */
  walLsn: bigint
  /** Replica: what `pg_last_wal_replay_lsn()` answers (`null` on a server not in recovery). */
  replayLsn: bigint | null
  /** Called before each replay-LSN poll is answered, with the number of polls so far. */
  onPoll: ((polls: number) => void) | undefined
  /** What `server_version_num` answers (190000+ enables `WAIT FOR LSN`). */
  versionNum: number
  /**
   * Statements matching this never answer (a hung server) until their client is closed
   * (`release(true)`): then they fail with `Connection terminated`, as `pg` fails them.
   */
  hang: RegExp | undefined
  /** Replica: what the probe reports. */
  probe: {
    inRecovery: boolean
    receiveLsn: bigint | null
    receiver: boolean
    paused: boolean
    lagMs: number | null
  }
}

const ROWS = /^\s*(\(|select|show|with|values|table|explain)\b/i

/**
 * A fake `pg` pool for unit tests of routing decisions: records every statement with the node and
 * client it ran on, answers like a PostgreSQL primary / hot standby would (command tags, row
 * counts, WAL positions, replay LSN polls), and can be made to fail.
 */
export function fakePgNode(name: string): FakePgNode {
  let nextPid = 1
  const free: FakePgClient[] = []
  let polls = 0
  const node: FakePgNode = {
    name,
    statements: [],
    get connections() {
      return nextPid - 1
    },
    destroyed: [],
    clients: [],
    down: false,
    respond: undefined,
    walLsn: 0x3000000n,
    replayLsn: 0x3000000n,
    onPoll: undefined,
    versionNum: 150000,
    hang: undefined,
    probe: { inRecovery: true, receiveLsn: 0x3000000n, receiver: true, paused: false, lagMs: 5 },
    pool: {
      connect: sinon
        .spy(
          () =>
            new Promise((resolve, reject) => {
              setImmediate(() => {
                if (node.down) {
                  reject(
                    Object.assign(new Error(`connect ECONNREFUSED 127.0.0.1:1 (fake ${name})`), {
                      code: 'ECONNREFUSED',
                    }),
                  )
                  return
                }
                let client = free.pop()
                if (client === undefined) {
                  client = new FakePgClient(node, nextPid++, free, () => ++polls)
                  node.clients.push(client)
                }
                client.checkedOut = true
                resolve(client)
              })
            }),
        )
        .named(`${name}.pool.connect`),
      end: sinon
        .spy(() => new Promise<void>((resolve) => setImmediate(resolve)))
        .named(`${name}.pool.end`),
    },
  }
  return node
}

/** The `cursor` constructor to pass to the dialect with fake pools. */
export class FakeCursor<T> {
  readonly text: string
  readonly values: unknown[]
  rows: T[] | Error = []
  closed = false
  readonly reads: number[] = []

  constructor(text: string, values: unknown[]) {
    this.text = text
    this.values = values
  }

  async read(rowsCount: number): Promise<T[]> {
    await new Promise((r) => setImmediate(r))
    if (this.rows instanceof Error) throw this.rows
    this.reads.push(rowsCount)
    return this.rows.splice(0, rowsCount)
  }

  async close(): Promise<void> {
    this.closed = true
  }
}

class FakePgClient extends EventEmitter {
  readonly processID: number
  readonly #node: FakePgNode
  readonly #free: FakePgClient[]
  readonly #poll: () => number
  /** Between `connect()` and `release()`. */
  checkedOut = false
  /** Fails the hung statement of this client, if one hangs. */
  #failHung: ((error: Error) => void) | undefined

  constructor(node: FakePgNode, pid: number, free: FakePgClient[], poll: () => number) {
    super()
    this.#node = node
    this.processID = pid
    this.#free = free
    this.#poll = poll
  }

  query(sqlOrCursor: string | FakeCursor<unknown>, parameters?: readonly unknown[]): any {
    const node = this.#node
    if (!this.checkedOut) throw new Error('fake pg: query on a client that is back in the pool')
    if (sqlOrCursor instanceof FakeCursor) {
      const cursor = sqlOrCursor
      node.statements.push({
        node: node.name,
        connectionId: this.processID,
        sql: cursor.text,
        parameters: cursor.values,
        cursor: true,
      })
      const answer = answerFor(node, cursor.text, cursor.values, this.#poll)
      cursor.rows = answer instanceof Error ? answer : [...answer.rows]
      return cursor
    }
    const sql = sqlOrCursor
    node.statements.push({
      node: node.name,
      connectionId: this.processID,
      sql,
      parameters: parameters ?? [],
      cursor: false,
    })
    if (node.hang?.test(sql)) {
      return new Promise((_resolve, reject) => {
        this.#failHung = reject
      })
    }
    return new Promise((resolve, reject) => {
      setImmediate(() => {
        try {
          const answer = answerFor(node, sql, parameters ?? [], this.#poll)
          if (answer instanceof Error) reject(answer)
          else resolve(answer)
        } catch (error) {
          reject(error)
        }
      })
    })
  }

  release(destroy?: boolean) {
    if (!this.checkedOut) {
      throw new Error('Release called on client which has already been released to the pool.')
    }
    this.checkedOut = false
    if (destroy) {
      this.#node.destroyed.push(this.processID)
      const fail = this.#failHung
      this.#failHung = undefined
      if (fail !== undefined) setImmediate(() => fail(new Error('Connection terminated')))
    } else this.#free.push(this)
  }
}

function result(
  command: string,
  rows: unknown[] = [],
  rowCount: number | null = rows.length,
): FakePgResult {
  return { command, rowCount, rows }
}

function answerFor(
  node: FakePgNode,
  sql: string,
  parameters: readonly unknown[],
  poll: () => number,
): FakePgResult | Error {
  const custom = node.respond?.(sql, parameters, node.name)
  if (custom instanceof Error) return custom
  if (Array.isArray(custom)) return result('SELECT', custom)
  if (custom !== undefined) return custom
  const lower = sql.trim().toLowerCase()
  if (lower.startsWith('select pg_current_wal_insert_lsn()')) {
    return result('SELECT', [{ lsn: formatLsn(node.walLsn), block: '8192', segment: '16777216' }])
  }
  if (lower.startsWith('select pg_last_wal_replay_lsn() >=')) {
    node.onPoll?.(poll())
    const reached =
      node.replayLsn === null ? null : node.replayLsn >= parseLsn(String(parameters[0]))
    return result('SELECT', [{ reached }])
  }
  if (lower.startsWith('wait for lsn')) {
    const target = /'([0-9A-F]+\/[0-9A-F]+)'/i.exec(sql)?.[1]
    const status =
      node.replayLsn === null
        ? 'not in recovery'
        : target !== undefined && node.replayLsn >= parseLsn(target)
          ? 'success'
          : 'timeout'
    return result('WAIT', [{ status }])
  }
  if (lower.startsWith("select current_setting('server_version_num')")) {
    return result('SELECT', [{ v: String(node.versionNum) }])
  }
  if (lower.startsWith('select pg_is_in_recovery() as in_recovery')) {
    const p = node.probe
    return result('SELECT', [
      {
        in_recovery: p.inRecovery,
        replay: node.replayLsn === null ? null : formatLsn(node.replayLsn),
        receive: p.receiveLsn === null ? null : formatLsn(p.receiveLsn),
        receiver: p.receiver,
        paused: p.inRecovery ? p.paused : null,
        lag_ms: p.lagMs,
      },
    ])
  }
  if (
    /^(select|with)\b[\s\S]*\breturning\b/.test(lower) ||
    /^(insert|update|delete|merge)\b/.test(lower)
  ) {
    node.walLsn += 0x100n
    const command = (/^(insert|update|delete|merge)/.exec(lower)?.[1] ?? 'select').toUpperCase()
    const rows = /\breturning\b/.test(lower) ? [{ id: 1, node: node.name }] : []
    return result(command, rows, 1)
  }
  if (ROWS.test(sql)) return result('SELECT', [{ node: node.name }])
  if (/^commit\b/.test(lower)) {
    node.walLsn += 0x10n
    return result('COMMIT', [], null)
  }
  const word = /^\s*([a-z]+)/.exec(lower)?.[1] ?? ''
  if (word === 'create' || word === 'drop' || word === 'alter') node.walLsn += 0x100n
  return result(word.toUpperCase() || 'EMPTY', [], null)
}
