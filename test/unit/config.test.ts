import { expect } from 'chai'
import { createPool } from 'mysql2'
import sinon from 'sinon'
import {
  CONFIG_WARNING_CODE,
  describeValue,
  MAX_TIMER_MS,
  type ReplicatedDialectConfig,
  type ResolvedConfig,
  resolveConfig,
} from '../../src/core/config.js'
import { ReplicatedConfigError } from '../../src/core/contracts/errors.js'
import {
  type ReplicaSelector,
  ReplicatedMysqlDialect,
  type ReplicatedMysqlDialectConfig,
  ReplicatedPostgresDialect,
  type ReplicatedPostgresDialectConfig,
} from '../../src/index.js'
import { isMysqlPool, unwrapMysqlPool } from '../../src/mysql/mysql-pool-types.js'
import { BUILT_IN_SELECTOR_NAMES, createSelector } from '../../src/selection/create-selector.js'
import { LeastLatencySelector } from '../../src/selection/least-latency.js'
import { P2cEwmaSelector } from '../../src/selection/p2c-ewma.js'
import { fakeMysqlNode } from '../support/fake-mysql.js'
import { fakePgNode } from '../support/fake-pg.js'

const isPool = (value: unknown) => isMysqlPool(value) || unwrapMysqlPool(value) !== undefined
const pool = () => fakeMysqlNode('x').pool

/** Resolves a minimal valid config (a primary, no replicas) with `overrides` on top. */
function resolve(overrides: Record<string, unknown> = {}): ResolvedConfig {
  const config = { primary: { pool: pool() }, replicas: [], ...overrides }
  return resolveConfig({
    config: config as ReplicatedDialectConfig<unknown>,
    isPool,
    dialectName: 'TestDialect',
  })
}

/** The error `resolve(overrides)` throws (it must throw a ReplicatedConfigError). */
function errorOf(overrides: Record<string, unknown>): ReplicatedConfigError {
  try {
    resolve(overrides)
  } catch (error) {
    expect(error).to.be.instanceOf(ReplicatedConfigError)
    return error as ReplicatedConfigError
  }
  throw new Error(`no error for ${JSON.stringify(overrides)}`)
}

/** Every setting in milliseconds, as an override that sets it to `ms`. */
const MS_SETTINGS: ReadonlyArray<readonly [string, (ms: unknown) => Record<string, unknown>]> = [
  ['health.probeIntervalMs', (ms) => ({ health: { probeIntervalMs: ms } })],
  ['health.probeTimeoutMs', (ms) => ({ health: { probeTimeoutMs: ms } })],
  ['health.cooldownMs', (ms) => ({ health: { cooldownMs: ms, maxCooldownMs: MAX_TIMER_MS } })],
  ['health.maxCooldownMs', (ms) => ({ health: { cooldownMs: 0, maxCooldownMs: ms } })],
  ['causalWaitTimeoutMs', (ms) => ({ causalWaitTimeoutMs: ms })],
  ['stickyWindowMs', (ms) => ({ consistency: 'sticky', stickyWindowMs: ms })],
  ['maxReplicationLagMs', (ms) => ({ maxReplicationLagMs: ms })],
  ['latency.ttlMs', (ms) => ({ selector: 'least-latency', latency: { ttlMs: ms } })],
  ['latency.decayMs', (ms) => ({ latency: { decayMs: ms } })],
  ['primary.maxLifetimeMs', (ms) => ({ primary: { pool: pool(), maxLifetimeMs: ms } })],
  [
    'primary.idleTimeoutMs',
    (ms) => ({ primary: { connection: { host: 'h' }, idleTimeoutMs: ms } }),
  ],
  [
    'replicas[0].maxLifetimeMs',
    (ms) => ({ replicas: [{ name: 'r1', pool: pool(), maxLifetimeMs: ms }] }),
  ],
  [
    'replicas[0].idleTimeoutMs',
    (ms) => ({ replicas: [{ name: 'r1', connection: { host: 'h' }, idleTimeoutMs: ms }] }),
  ],
]

describe('resolveConfig', () => {
  let emitWarning: sinon.SinonStub
  beforeEach(() => {
    emitWarning = sinon.stub(process, 'emitWarning')
  })
  afterEach(() => sinon.restore())

  it('returns every setting with its default, frozen', () => {
    const resolved = resolve()
    expect(resolved).to.deep.equal({
      consistency: 'causal',
      stickyWindowMs: undefined,
      causalWaitTimeoutMs: 50,
      replicaSessionReadOnly: true,
      primaryFunctions: [],
      selector: 'p2c-ewma',
      latency: { ttlMs: 1000, sampleSize: undefined, decayMs: 10_000 },
      probeIntervalMs: 1000,
      probeTimeoutMs: 1000,
      probeConcurrency: 4,
      cooldownMs: 1000,
      maxCooldownMs: 30_000,
      maxReplicationLagMs: undefined,
      readTimeoutMs: undefined,
      defaultRoute: 'replicas',
      topology: { mode: 'dynamic', writeWaitMs: 5000 },
      retryReads: true,
      hedge: undefined,
      fallback: 'primary',
      maxPrimaryReads: undefined,
      queryComments: { enabled: false, route: true },
      tracing: undefined,
      metrics: undefined,
    })
    expect(Object.isFrozen(resolved)).to.equal(true)
    expect(Object.isFrozen(resolved.latency)).to.equal(true)
    expect(emitWarning.called).to.equal(false)
  })

  it('starts every message with the dialect name, once', () => {
    const error = errorOf({ health: { probeIntervalMs: -1 } })
    expect(error.message).to.match(/^TestDialect: `health\.probeIntervalMs` must be/)
    expect(error.message.split('TestDialect').length).to.equal(2)
  })

  describe('selector', () => {
    it('is checked, not built, and createSelector then builds it without failing', () => {
      for (const name of BUILT_IN_SELECTOR_NAMES) {
        const resolved = resolve({ selector: name, latency: { ttlMs: 5, sampleSize: 2 } })
        expect(resolved.selector).to.equal(name)
        expect(createSelector(resolved.selector, { latency: resolved.latency })).to.be.an('object')
      }
      const custom: ReplicaSelector = { select: (list) => list[0] }
      const resolved = resolve({ selector: custom })
      expect(resolved.selector).to.equal(custom)
      expect(createSelector(resolved.selector, { latency: resolved.latency })).to.equal(custom)
    })

    it('hands the latency options to least-latency', () => {
      const resolved = resolve({ selector: 'least-latency', latency: { ttlMs: 5 } })
      expect(resolved.latency).to.deep.equal({ ttlMs: 5, sampleSize: undefined, decayMs: 10_000 })
      expect(createSelector(resolved.selector, resolved)).to.be.instanceOf(LeastLatencySelector)
      expect(createSelector(resolve().selector)).to.be.instanceOf(P2cEwmaSelector)
    })

    it('rejects an unknown name with the list of valid names', () => {
      const error = errorOf({ selector: 'fastest' })
      expect(error.message).to.contain('unknown `selector` "fastest" (a string)')
      for (const name of BUILT_IN_SELECTOR_NAMES) expect(error.message).to.contain(`'${name}'`)
      expect(errorOf({ selector: 42 }).message).to.contain('42 (a number)')
      expect(errorOf({ selector: null }).message).to.contain('unknown `selector` null:')
    })

    it('rejects an object without a select function, or with an onResult that is not one', () => {
      expect(errorOf({ selector: { pick: () => undefined } }).message).to.match(
        /`selector` must have a select\(candidates, context\) method, got undefined/,
      )
      expect(errorOf({ selector: { select: () => undefined, onResult: 1 } }).message).to.contain(
        '`selector.onResult` must be a function, got 1 (a number)',
      )
    })

    it('rejects bad latency options whichever selector is chosen', () => {
      const bad: ReadonlyArray<readonly [string, Record<string, unknown>]> = [
        ['latency.ttlMs', { ttlMs: 0 }],
        ['latency.ttlMs', { ttlMs: -1 }],
        ['latency.ttlMs', { ttlMs: Number.NaN }],
        ['latency.ttlMs', { ttlMs: Number.POSITIVE_INFINITY }],
        ['latency.sampleSize', { sampleSize: 0 }],
        ['latency.sampleSize', { sampleSize: 1.5 }],
        ['latency.sampleSize', { sampleSize: -3 }],
        ['latency.decayMs', { decayMs: 0 }],
        ['latency.decayMs', { decayMs: Number.NaN }],
      ]
      for (const [setting, latency] of bad) {
        for (const selector of [undefined, ...BUILT_IN_SELECTOR_NAMES]) {
          expect(errorOf({ selector, latency }).message, JSON.stringify(latency)).to.contain(
            `\`${setting}\``,
          )
        }
      }
    })
  })

  describe('durations', () => {
    it('shows why: Node.js runs a delay above 2^31 - 1 ms after 1 ms', async () => {
      const started = performance.now()
      await new Promise((resolve) => setTimeout(resolve, MAX_TIMER_MS + 1))
      expect(performance.now() - started).to.be.below(1000)
      expect(emitWarning.firstCall.args[0]).to.match(/does not fit into a 32-bit signed integer/)
    })

    for (const [setting, set] of MS_SETTINGS) {
      it(`${setting}: accepts 0..2147483647 (or above 0) and rejects more, naming the setting`, () => {
        resolve(set(MAX_TIMER_MS))
        const message = errorOf(set(3e9)).message
        expect(message).to.contain(`\`${setting}\` must be a number of milliseconds`)
        expect(message).to.contain('got 3000000000 (a number)')
        expect(message).to.contain('longest delay Node.js timers run')
        for (const bad of [-1, Number.NaN, Number.POSITIVE_INFINITY, '3', null, true]) {
          expect(errorOf(set(bad)).message, String(bad)).to.contain(`\`${setting}\``)
        }
      })
    }

    it('shows a number given as a string with its quotes and type', () => {
      expect(errorOf({ health: { probeIntervalMs: '3' } }).message).to.contain(
        '`health.probeIntervalMs` must be a number of milliseconds from 0 to 2147483647, got "3" (a string)',
      )
      expect(errorOf({ health: { probeConcurrency: '4' } }).message).to.contain(
        '`health.probeConcurrency` must be a positive integer, got "4" (a string)',
      )
    })

    it('keeps maxCooldownMs at least cooldownMs', () => {
      expect(errorOf({ health: { cooldownMs: 5000, maxCooldownMs: 10 } }).message).to.contain(
        '`health.maxCooldownMs` (10) must be at least `health.cooldownMs` (5000)',
      )
    })
  })

  describe('booleans and sections', () => {
    it('wants replicaSessionReadOnly as a boolean', () => {
      expect(errorOf({ replicaSessionReadOnly: 0 }).message).to.contain(
        '`replicaSessionReadOnly` must be true or false, got 0 (a number)',
      )
      expect(resolve({ replicaSessionReadOnly: false }).replicaSessionReadOnly).to.equal(false)
    })

    it('rejects retry: false and says what to write instead', () => {
      const message = errorOf({ retry: false }).message
      expect(message).to.contain('`retry` must be an object { reads }, got false (a boolean)')
      expect(message).to.contain('retry: { reads: false }')
      expect(resolve({ retry: { reads: false } }).retryReads).to.equal(false)
      expect(errorOf({ retry: { reads: 'no' } }).message).to.contain('`retry.reads`')
    })

    it('rejects health: false and says what to write instead', () => {
      const message = errorOf({ health: false }).message
      expect(message).to.contain('`health` must be an object {')
      expect(message).to.contain('got false (a boolean)')
      expect(message).to.contain('health: { probeIntervalMs: 0 }')
      expect(resolve({ health: { probeIntervalMs: 0 } }).probeIntervalMs).to.equal(0)
    })

    it('checks the keys and the values of every object setting', () => {
      const misspelt: ReadonlyArray<readonly [Record<string, unknown>, string]> = [
        [{ latency: { ttl: 5 } }, 'unknown option "ttl" in `latency`'],
        [{ retry: { read: false } }, 'unknown option "read" in `retry`'],
        [{ hooks: { afterConect: async () => {} } }, 'unknown option "afterConect" in `hooks`'],
        [
          { fallback: { mode: 'primary', maxPrimaryRead: 3 } },
          'unknown option "maxPrimaryRead" in `fallback`',
        ],
        [{ queryComments: { routes: false } }, 'unknown option "routes" in `queryComments`'],
        [{ tracing: { name: 'x' } }, 'unknown option "name" in `tracing`'],
        [{ queryComments: { route: 'no' } }, '`queryComments.route` must be true or false'],
        [{ queryComments: 'yes' }, '`queryComments` must be an object { route }, true or false'],
        [{ tracing: { mode: 'logs' } }, 'unknown `tracing.mode` "logs" (a string)'],
        [{ tracing: { includeQueryText: 1 } }, '`tracing.includeQueryText` must be true or false'],
        [{ tracing: { tracerName: '' } }, '`tracing.tracerName` must be a non-empty string'],
        [{ metrics: { provider: {} } }, 'unknown option "provider" in `metrics`'],
        [{ metrics: 'on' }, '`metrics` must be an object { meterProvider }, true or false'],
        [
          { metrics: { meterProvider: {} } },
          '`metrics.meterProvider` must be an OpenTelemetry MeterProvider (an object with getMeter), got an object',
        ],
        [{ hooks: { beforeConnect: 'log' } }, '`hooks.beforeConnect` must be a function'],
        [{ onRoute: {} }, '`onRoute` must be a function, got an object'],
        [{ latency: 5 }, '`latency` must be an object { ttlMs, sampleSize, decayMs }, got 5'],
        [{ consistency: 'strong' }, 'unknown consistency mode "strong" (a string)'],
        [{ consistency: null }, 'unknown consistency mode null'],
        [{ primary: { pool: pool(), name: null } }, '`primary.name` must be a non-empty string'],
        [{ primaryFunctions: null }, '`primaryFunctions` must be an array of function names'],
        [{ primaryFunctions: 'now' }, '`primaryFunctions` must be an array of function names'],
        [{ primaryFunctions: ['a', 1] }, '`primaryFunctions[1]` must be a non-empty string'],
        [{ primaryFunctions: new Array(1) }, '`primaryFunctions[0]` must be a non-empty string'],
        [
          { primaryFunctions: ['audit_log()'] },
          '`primaryFunctions[0]` must be a function name such as',
        ],
        [{ primaryFunctions: [' '] }, '`primaryFunctions[0]` must be a function name such as'],
      ]
      for (const [overrides, expected] of misspelt) {
        expect(errorOf(overrides).message, JSON.stringify(overrides)).to.contain(expected)
      }
    })

    it('accepts each fallback form and explains the wrong ones', () => {
      expect(resolve({ fallback: 'error' }).fallback).to.equal('error')
      expect(resolve({ fallback: { mode: 'primary', maxPrimaryReads: 3 } })).to.include({
        fallback: 'primary',
        maxPrimaryReads: 3,
      })
      expect(errorOf({ fallback: { mode: 'error' } }).message).to.contain(
        "`fallback.mode` must be 'primary', got \"error\" (a string); for errors write fallback: 'error'",
      )
      expect(errorOf({ fallback: { mode: 'primary' } }).message).to.contain(
        '`fallback.maxPrimaryReads` is missing',
      )
      expect(errorOf({ fallback: 'replica' }).message).to.contain(
        'unknown `fallback` "replica" (a string)',
      )
    })
  })

  describe('hedge', () => {
    it('is off when absent, and takes its defaults when given', () => {
      expect(resolve().hedge).to.equal(undefined)
      expect(resolve({ hedge: {} }).hedge).to.deep.equal({ after: 'p90', budget: 0.1 })
      const hedge = resolve({ hedge: { after: 20, budget: 1 } }).hedge
      expect(hedge).to.deep.equal({ after: 20, budget: 1 })
      expect(Object.isFrozen(hedge)).to.equal(true)
      expect(resolve({ hedge: { after: 'p90', budget: 0.05 } }).hedge).to.deep.equal({
        after: 'p90',
        budget: 0.05,
      })
    })

    it('rejects unknown keys and other forms, naming the setting', () => {
      expect(errorOf({ hedge: { after: 20, delay: 5 } }).message).to.match(
        /unknown option "delay" in `hedge`/,
      )
      expect(errorOf({ hedge: true }).message).to.match(
        /`hedge` must be an object \{ after, budget \}/,
      )
      expect(errorOf({ hedge: null }).message).to.match(/`hedge` must be an object/)
    })

    it('rejects an `after` that is not p90 or milliseconds above 0 and within a timer', () => {
      for (const after of ['p99', 'P90', '', '20']) {
        expect(errorOf({ hedge: { after } }).message, String(after)).to.match(
          /unknown `hedge\.after` .*: use 'p90' or a number of milliseconds/,
        )
      }
      for (const after of [
        0,
        -1,
        Number.NaN,
        Number.POSITIVE_INFINITY,
        MAX_TIMER_MS + 1,
        null,
        true,
      ]) {
        expect(errorOf({ hedge: { after } }).message, String(after)).to.match(
          /`hedge\.after` must be a number of milliseconds above 0 and at most 2147483647/,
        )
      }
      expect(resolve({ hedge: { after: MAX_TIMER_MS } }).hedge?.after).to.equal(MAX_TIMER_MS)
      expect(resolve({ hedge: { after: 0.5 } }).hedge?.after).to.equal(0.5)
    })

    it('rejects a budget outside (0, 1]', () => {
      for (const budget of [0, -0.1, 1.01, 2, Number.NaN, Number.POSITIVE_INFINITY, '0.1', null]) {
        expect(errorOf({ hedge: { budget } }).message, String(budget)).to.match(
          /`hedge\.budget` must be a number above 0 and at most 1/,
        )
      }
      expect(resolve({ hedge: { budget: 1 } }).hedge?.budget).to.equal(1)
      expect(resolve({ hedge: { budget: 1e-6 } }).hedge?.budget).to.equal(1e-6)
    })
  })

  describe('nodes', () => {
    it('names replicas[0] for a sparse array or an entry that is not an object', () => {
      expect(errorOf({ replicas: new Array(2) }).message).to.contain(
        '`replicas[0]` is an empty slot of a sparse array',
      )
      const second = [{ name: 'r1', pool: pool() }, undefined]
      expect(errorOf({ replicas: second }).message).to.contain(
        '`replicas[1]` must be an object { name, pool } or { name, connection }, got undefined',
      )
      expect(errorOf({ replicas: [{ pool: pool() }] }).message).to.contain(
        '`replicas[0].name` must be a non-empty string, got undefined',
      )
    })

    it('recognises a pool given in place of a node', async () => {
      const real = createPool({ host: 'localhost' })
      try {
        expect(errorOf({ primary: real }).message).to.contain(
          '`primary` is a pool itself: give it as { pool }',
        )
        expect(errorOf({ replicas: [real] }).message).to.contain('`replicas[0]` is a pool itself')
        // A node config with a misspelt key is still reported as such.
        expect(errorOf({ primary: { pool: real, poolsize: 3 } }).message).to.contain(
          'unknown option "poolsize" in `primary`',
        )
      } finally {
        await new Promise((done) => real.end(() => done(undefined)))
      }
    })

    it('says to pass the factory, not its promise', () => {
      const promise = Promise.resolve(pool())
      expect(errorOf({ primary: { pool: promise } }).message).to.contain(
        'got an instance of Promise: pass the async function itself, not its promise',
      )
    })

    it('checks weight, poolSize and the engine-specific keys', () => {
      expect(errorOf({ replicas: [{ name: 'r', pool: pool(), weight: '2' }] }).message).to.contain(
        'replica "r": `weight` must be a positive finite number, got "2" (a string)',
      )
      expect(errorOf({ primary: { connection: { host: 'h' }, poolSize: 2.5 } }).message).to.contain(
        '`primary.poolSize` must be a positive integer, got 2.5 (a number)',
      )
      const base = { primary: { pool: pool() }, replicas: [], cursor: class {} }
      expect(() =>
        resolveConfig({ config: base, isPool, dialectName: 'X', extraKeys: ['cursor'] }),
      ).not.to.throw()
      expect(() => resolveConfig({ config: base, isPool, dialectName: 'X' })).to.throw(
        ReplicatedConfigError,
        /unknown option "cursor" in the config/,
      )
    })
  })

  describe('passwords', () => {
    it('never shows what a connection object holds, and masks credentials in strings', () => {
      const connection = { host: 'db', user: 'app', password: 'hunter2' }
      const messages = [
        errorOf({ primary: { connection, poolSize: '3' } }).message,
        errorOf({ primary: { connection, idleTimeoutMs: -1 } }).message,
        errorOf({ primary: { connection, pool: pool() } }).message,
        errorOf({ primary: { connection: 'postgres://app:hunter2@db/app' } }).message,
        errorOf({ primary: { connection: 'host=db user=app password=hunter2' } }).message,
        errorOf({ primary: { pool: 'mysql://app:hun@ter2@db' } }).message,
        errorOf({ primary: { connection }, replicas: [connection] }).message,
        errorOf({ fallback: connection }).message,
      ]
      for (const message of messages) expect(message).not.to.contain('hunter2')
      expect(messages[3]).to.contain('got "postgres://***@db/app" (a string)')
      expect(messages[4]).to.contain('password=***')
    })
  })

  describe('settings without effect', () => {
    const warnings = () => emitWarning.getCalls().map((call) => call.args)

    it('warns once, with its code, when weights are given to a selector that ignores them', () => {
      const replicas = [
        { name: 'big', pool: pool(), weight: 3 },
        { name: 'small', pool: pool(), weight: 1 },
      ]
      resolve({ replicas })
      expect(warnings()).to.have.length(1)
      const [message, options] = warnings()[0]!
      expect(options).to.deep.equal({ code: CONFIG_WARNING_CODE })
      expect(CONFIG_WARNING_CODE).to.equal('KYSELY_REPLICATED_CONFIG')
      expect(message).to.equal(
        `TestDialect: settings without effect: \`weight\` (on "big", "small") is read only by selector 'weighted', not 'p2c-ewma'`,
      )
    })

    it('does not warn when the selector reads weights (weighted, or your own)', () => {
      const replicas = [{ name: 'big', pool: pool(), weight: 3 }]
      resolve({ replicas, selector: 'weighted' })
      resolve({ replicas, selector: { select: (list: readonly unknown[]) => list[0] } })
      expect(warnings()).to.deep.equal([])
    })

    it('lists every ignored setting in the one warning', () => {
      resolve({
        selector: 'round-robin',
        latency: { ttlMs: 5, sampleSize: 2, decayMs: 100 },
        consistency: 'eventual',
        stickyWindowMs: 100,
        causalWaitTimeoutMs: 20,
      })
      expect(warnings()).to.have.length(1)
      const message = warnings()[0]![0] as string
      for (const setting of [
        'latency.ttlMs',
        'latency.sampleSize',
        'stickyWindowMs',
        'causalWaitTimeoutMs',
      ]) {
        expect(message).to.contain(`\`${setting}\``)
      }
      // The latency estimate is kept (and reported) whatever the selector.
      expect(message).not.to.contain('decayMs')
      resolve({ consistency: 'sticky', stickyWindowMs: 100 })
      expect(warnings()).to.have.length(1)
    })
  })
})

describe('describeValue', () => {
  it('quotes strings and names every type, never an object contents', () => {
    expect(describeValue('3')).to.equal('"3" (a string)')
    expect(describeValue('')).to.equal('"" (a string)')
    expect(describeValue(3e9)).to.equal('3000000000 (a number)')
    expect(describeValue(-0)).to.equal('-0 (a number)')
    expect(describeValue(Number.NaN)).to.equal('NaN (a number)')
    expect(describeValue(3n)).to.equal('3n (a bigint)')
    expect(describeValue(false)).to.equal('false (a boolean)')
    expect(describeValue(undefined)).to.equal('undefined')
    expect(describeValue(null)).to.equal('null')
    expect(describeValue(Symbol('s'))).to.equal('a symbol')
    expect(describeValue(() => 1)).to.equal('a function')
    expect(describeValue([1, 2])).to.equal('an array of 2')
    expect(describeValue({ password: 'x' })).to.equal('an object')
    expect(describeValue(Object.create(null))).to.equal('an object')
    expect(describeValue(new Map())).to.equal('an instance of Map')
    expect(describeValue('x'.repeat(200))).to.have.length.below(100)
  })
})

describe('dialect config errors', () => {
  it('are thrown once by the dialect, not wrapped again', () => {
    const mysql = () =>
      new ReplicatedMysqlDialect({
        primary: { pool: pool() },
        replicas: [],
        selector: 'fastest',
      } as never as ReplicatedMysqlDialectConfig)
    expect(mysql).to.throw(ReplicatedConfigError, /^ReplicatedMysqlDialect: unknown `selector`/)
    try {
      mysql()
    } catch (error) {
      expect((error as Error).message.match(/ReplicatedMysqlDialect/g)).to.have.length(1)
    }
  })

  it('know the engine-specific keys: cursor is a PostgreSQL setting only', () => {
    const pg = fakePgNode('primary').pool
    expect(
      () =>
        new ReplicatedPostgresDialect({
          primary: { pool: pg },
          replicas: [],
          cursor: class {},
        } as never),
    ).not.to.throw()
    expect(
      () =>
        new ReplicatedMysqlDialect({
          primary: { pool: pool() },
          replicas: [],
          cursor: class {},
        } as never as ReplicatedMysqlDialectConfig),
    ).to.throw(ReplicatedConfigError, /unknown option "cursor" in the config/)
    expect(
      () =>
        new ReplicatedPostgresDialect({
          primary: { pool: pg },
          replicas: [],
          cursor: 'pg-cursor',
        } as never as ReplicatedPostgresDialectConfig),
    ).to.throw(
      ReplicatedConfigError,
      /`cursor` must be the pg-cursor constructor .*, got "pg-cursor" \(a string\)/,
    )
  })

  it('reject pool options in connection that poolSize or idleTimeoutMs would override', () => {
    const connection = { host: 'db', password: 'hunter2' }
    const mysql = (node: object) => () =>
      new ReplicatedMysqlDialect({ primary: node, replicas: [] } as ReplicatedMysqlDialectConfig)
    expect(mysql({ connection: { ...connection, connectionLimit: 50 } })).to.throw(
      ReplicatedConfigError,
      /^ReplicatedMysqlDialect: `primary\.connection\.connectionLimit` is set by the library from the node's `poolSize`/,
    )
    expect(mysql({ connection: { ...connection, idleTimeout: 5 } })).to.throw(
      /`primary\.connection\.idleTimeout` .*`idleTimeoutMs`/,
    )
    // The library creates the pool with these: giving them on the node is the way.
    expect(mysql({ connection, poolSize: 50, idleTimeoutMs: 5 })).not.to.throw()
    const pg = () =>
      new ReplicatedPostgresDialect({
        primary: { pool: fakePgNode('primary').pool },
        replicas: [{ name: 'r1', connection: { ...connection, max: 50 } as never }],
      })
    expect(pg).to.throw(ReplicatedConfigError, /`replicas\[0\]\.connection\.max`/)
    try {
      pg()
    } catch (error) {
      expect((error as Error).message).not.to.contain('hunter2')
    }
  })

  it('a sparse replicas array is a config error, not a TypeError', () => {
    expect(
      () =>
        new ReplicatedMysqlDialect({
          primary: { pool: pool() },
          replicas: new Array(2),
        }),
    ).to.throw(ReplicatedConfigError, /`replicas\[0\]`/)
  })
})
