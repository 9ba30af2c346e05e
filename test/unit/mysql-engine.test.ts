import { expect } from 'chai'
import { ConnectionSetupError } from '../../src/core/contracts/errors.js'
import { MysqlEngine } from '../../src/mysql/mysql-engine.js'

/** mysql2's error of a statement or a login the server refused (`Packet.asError`). */
function serverError(errno: number, code: string, sqlState: string): Error {
  return Object.assign(new Error(`${code} (fake)`), { errno, code, sqlState, sqlMessage: code })
}

describe('MysqlEngine.isConnectError', () => {
  const engine = new MysqlEngine({ causalUnsupported: () => {} })
  const refusals: Array<[number, string, string]> = [
    [1045, 'ER_ACCESS_DENIED_ERROR', '28000'],
    [1044, 'ER_DBACCESS_DENIED_ERROR', '42000'],
    [1049, 'ER_BAD_DB_ERROR', '42000'],
    [1698, 'ER_ACCESS_DENIED_NO_PASSWORD_ERROR', '28000'],
    [1862, 'ER_MUST_CHANGE_PASSWORD_LOGIN', 'HY000'],
    [3118, 'ER_ACCOUNT_HAS_BEEN_LOCKED', 'HY000'],
    [1524, 'ER_PLUGIN_IS_NOT_LOADED', 'HY000'],
  ]
  for (const [errno, code, sqlState] of refusals) {
    it(`is true for a login refused with ${errno} ${code}, which is no connection error`, () => {
      const error = serverError(errno, code, sqlState)
      expect(engine.isConnectError(error)).to.equal(true)
      expect(engine.isConnectionError(error)).to.equal(false)
    })
  }

  it('is true for a refusal that carries only a code', () => {
    expect(engine.isConnectError({ code: 'ER_BAD_DB_ERROR' })).to.equal(true)
  })

  it("is true for MariaDB's locked account (4151)", () => {
    expect(
      engine.isConnectError({ errno: 4151, code: 'ER_BULK_PARSER_INCOMPLETE_ESCAPE_SEQUENCE' }),
    ).to.equal(true)
  })

  it('is true for every connection error (a connect timeout, a refused port, a fatal error)', () => {
    const timeout = Object.assign(new Error('connect ETIMEDOUT'), {
      code: 'ETIMEDOUT',
      fatal: true,
    })
    const refused = Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' })
    const auth = Object.assign(new Error('auth plugin'), {
      code: 'AUTH_SWITCH_PLUGIN_ERROR',
      fatal: true,
    })
    for (const error of [timeout, refused, auth]) {
      expect(engine.isConnectError(error)).to.equal(true)
      expect(engine.isConnectionError(error)).to.equal(true)
    }
  })

  it('looks through a ConnectionSetupError to the refusal that caused it', () => {
    const error = new ConnectionSetupError('setting up failed', 'replica-1', {
      cause: serverError(1820, 'ER_MUST_CHANGE_PASSWORD', 'HY000'),
    })
    expect(engine.isConnectError(error)).to.equal(true)
    expect(engine.isConnectionError(error)).to.equal(false)
  })

  it('is false for SQL errors and non-errors', () => {
    for (const error of [
      serverError(1064, 'ER_PARSE_ERROR', '42000'),
      serverError(1062, 'ER_DUP_ENTRY', '23000'),
      serverError(1146, 'ER_NO_SUCH_TABLE', '42S02'),
      new Error('plain'),
      'text',
      null,
      undefined,
    ]) {
      expect(engine.isConnectError(error)).to.equal(false)
    }
  })
})
