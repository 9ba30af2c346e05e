import { expect } from 'chai'
import { ConnectionSetupError } from '../../src/core/contracts/errors.js'
import { PostgresEngine } from '../../src/postgres/postgres-engine.js'

/** A `pg` `DatabaseError` as the server sends it (`severity`, `code`). */
function serverError(code: string, severity = 'ERROR', message = `${code} (fake)`): Error {
  return Object.assign(new Error(message), { code, severity })
}

describe('PostgresEngine.isConnectError', () => {
  const engine = new PostgresEngine({ causalUnsupported: () => {} })

  for (const [code, what] of [
    ['28P01', 'a wrong password'],
    ['28000', 'no pg_hba.conf entry or a role that may not log in'],
    ['3D000', 'a database that does not exist'],
  ] as const) {
    it(`is true for ${what} (${code}), which is no connection error`, () => {
      const error = serverError(code, 'FATAL')
      expect(engine.isConnectError(error)).to.equal(true)
      expect(engine.isConnectionError(error)).to.equal(false)
    })
  }

  it('is true for a missing CONNECT privilege (42501 FATAL), not for a missing grant on a table', () => {
    expect(engine.isConnectError(serverError('42501', 'FATAL'))).to.equal(true)
    expect(engine.isConnectError(serverError('42501', 'ERROR'))).to.equal(false)
  })

  it("is true for pg's own errors of a password it cannot send", () => {
    for (const message of [
      'SASL: SCRAM-SERVER-FIRST-MESSAGE: client password must be a string',
      'SASL: SCRAM-SERVER-FIRST-MESSAGE: client password must be a non-empty string',
      'Password must be a string',
      'The server does not support SSL connections',
    ]) {
      const error = new Error(message)
      expect(engine.isConnectError(error), message).to.equal(true)
      expect(engine.isConnectionError(error), message).to.equal(false)
    }
  })

  it('is true for an untrusted server certificate', () => {
    const error = Object.assign(new Error('self-signed certificate'), {
      code: 'DEPTH_ZERO_SELF_SIGNED_CERT',
    })
    expect(engine.isConnectError(error)).to.equal(true)
  })

  it('is true for every connection error (a connect timeout, a refused port, a terminated connection)', () => {
    for (const error of [
      Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }),
      new Error('Connection terminated due to connection timeout'),
      serverError('57P03', 'FATAL'),
    ]) {
      expect(engine.isConnectError(error)).to.equal(true)
      expect(engine.isConnectionError(error)).to.equal(true)
    }
  })

  it('looks through a ConnectionSetupError to the refusal that caused it', () => {
    const error = new ConnectionSetupError('setting up failed', 'replica-1', {
      cause: serverError('3D000', 'FATAL'),
    })
    expect(engine.isConnectError(error)).to.equal(true)
  })

  it('is false for SQL errors and non-errors', () => {
    for (const error of [
      serverError('42601'),
      serverError('23505'),
      serverError('40001'),
      new Error('plain'),
      'text',
      null,
    ]) {
      expect(engine.isConnectError(error)).to.equal(false)
    }
  })
})
