import { expect } from 'chai'
import fc from 'fast-check'
import {
  decodeCausalToken,
  encodeCausalToken,
  MAX_CAUSAL_TOKEN_LENGTH,
} from '../../src/consistency/causal-token.js'
import type { MariadbGtid } from '../../src/consistency/mariadb-gtid.js'
import {
  type MysqlGnoInterval,
  parseMysqlGtidSet,
  unionMysqlGtidSets,
} from '../../src/consistency/mysql-gtid.js'
import {
  parsePosition,
  positionsEqual,
  type ReplicationPosition,
} from '../../src/consistency/position.js'
import { InvalidCausalTokenError } from '../../src/core/contracts/errors.js'

const U1 = '3e11fa47-71ca-11e1-9e33-c80aa9429562'
const U2 = '4e11fa47-71ca-11e1-9e33-c80aa9429562'
const SAFE = /^[A-Za-z0-9._~-]+$/
const MAX_U32 = 0xffff_ffff
const MAX_U64 = 0xffff_ffff_ffff_ffffn
const MAX_GNO = 0x7fff_ffff_ffff_ffffn

// ---------------------------------------------------------------------------------------------
// Arbitraries over the whole valid ranges

const u32 = fc.oneof(fc.integer({ min: 0, max: 9 }), fc.integer({ min: 0, max: MAX_U32 }))
const u64 = fc.oneof(fc.bigInt(0n, 99n), fc.bigInt(0n, MAX_U64), fc.constant(MAX_U64))

const mariadbPosition: fc.Arbitrary<ReplicationPosition> = fc
  .uniqueArray(fc.tuple(u32, u32, u64), { selector: (e) => e[0], maxLength: 12 })
  .map((entries) => {
    const gtids = new Map<number, MariadbGtid>()
    for (const [domain, server, seq] of entries) gtids.set(domain, { server, seq })
    return { kind: 'mariadb', gtids }
  })

const gno = fc.oneof(fc.bigInt(1n, 50n), fc.bigInt(1n, MAX_GNO), fc.constant(MAX_GNO))
const tag = fc.stringMatching(/^[a-z_][a-z0-9_]{0,31}$/)
const mysqlKey = fc.tuple(fc.uuid(), fc.option(tag, { nil: undefined })).map(([uuid, t]) => {
  const lower = uuid.toLowerCase()
  return t === undefined ? lower : `${lower}:${t}`
})

const mysqlPosition: fc.Arbitrary<ReplicationPosition> = fc
  .tuple(
    fc.uniqueArray(mysqlKey, { minLength: 1, maxLength: 3 }),
    fc.array(fc.tuple(fc.nat(), gno, gno), { maxLength: 8 }),
  )
  .map(([keys, ivs]) => {
    const acc = new Map<string, MysqlGnoInterval[]>()
    for (const [k, a, b] of ivs) {
      const key = keys[k % keys.length]!
      const list = acc.get(key) ?? []
      list.push(a <= b ? [a, b] : [b, a])
      acc.set(key, list)
    }
    return { kind: 'mysql', set: unionMysqlGtidSets(acc, new Map()) }
  })

const postgresPosition: fc.Arbitrary<ReplicationPosition> = fc
  .oneof(fc.bigInt(0n, 0xffff_ffffn), fc.bigInt(0n, MAX_U64), fc.constant(MAX_U64))
  .map((lsn) => ({ kind: 'postgres', lsn }))

const anyPosition = fc.oneof(mariadbPosition, mysqlPosition, postgresPosition)

/** Either decodes to a position that re-encodes to the same token, or throws InvalidCausalTokenError. */
function decodesCanonicallyOrRejects(input: unknown): void {
  let position: ReplicationPosition
  try {
    position = decodeCausalToken(input)
  } catch (error) {
    expect(error).to.be.instanceOf(InvalidCausalTokenError)
    const message = (error as Error).message
    if (typeof input === 'string' && input.length > 45) {
      // Quotes at most 40 characters of the input.
      expect(message.length).to.be.below(200)
      expect(message).not.to.include(input.slice(0, 41))
    }
    return
  }
  expect(encodeCausalToken(position)).to.equal(input)
}

function rejects(token: unknown, pattern: RegExp): void {
  expect(() => decodeCausalToken(token)).to.throw(InvalidCausalTokenError, pattern)
}

// ---------------------------------------------------------------------------------------------

describe('causal tokens', () => {
  describe('format', () => {
    it('encodes MariaDB positions as domain-server-seq joined by underscores', () => {
      const p = parsePosition('mariadb', '1-2-7,0-1-42')
      expect(encodeCausalToken(p)).to.equal('kr1.m.0-1-42_1-2-7')
      expect(encodeCausalToken(parsePosition('mariadb', ''))).to.equal('kr1.m.')
    })

    it('encodes MySQL sets with dashless UUIDs, dots for colons and tildes for commas', () => {
      const p = parsePosition('mysql', `${U1}:1-5,\n${U2}:1-3:5-9`)
      expect(encodeCausalToken(p)).to.equal(
        'kr1.y.3e11fa4771ca11e19e33c80aa9429562.1-5~4e11fa4771ca11e19e33c80aa9429562.1-3.5-9',
      )
      const tagged = parsePosition('mysql', `${U1}:7:Batch:1-2`)
      expect(encodeCausalToken(tagged)).to.equal(
        'kr1.y.3e11fa4771ca11e19e33c80aa9429562.7.batch.1-2',
      )
      expect(encodeCausalToken(parsePosition('mysql', ''))).to.equal('kr1.y.')
    })

    it('encodes PostgreSQL LSNs as upper-case HIGH-LOW hex', () => {
      expect(encodeCausalToken(parsePosition('postgres', '16/b374d848'))).to.equal(
        'kr1.p.16-B374D848',
      )
      expect(encodeCausalToken(parsePosition('postgres', '0/3000060'))).to.equal('kr1.p.0-3000060')
      expect(encodeCausalToken(parsePosition('postgres', '0/0'))).to.equal('kr1.p.0-0')
    })

    it('uses only URL-, cookie- and header-safe characters', () => {
      fc.assert(
        fc.property(anyPosition, (p) => {
          const token = encodeCausalToken(p)
          expect(token).to.match(SAFE)
          expect(encodeURIComponent(token)).to.equal(token)
          expect(token.length).to.be.at.most(MAX_CAUSAL_TOKEN_LENGTH)
        }),
      )
    })
  })

  describe('round trip', () => {
    it('decodes every encoded position back to the same position', () => {
      fc.assert(
        fc.property(anyPosition, (p) => {
          const token = encodeCausalToken(p)
          expect(positionsEqual(decodeCausalToken(token), p)).to.equal(true)
        }),
        { numRuns: 500 },
      )
    })

    it('re-encodes every decoded token to the same token', () => {
      fc.assert(
        fc.property(anyPosition, (p) => {
          const token = encodeCausalToken(p)
          expect(encodeCausalToken(decodeCausalToken(token))).to.equal(token)
        }),
      )
    })

    it('round-trips the extreme values', () => {
      const positions: ReplicationPosition[] = [
        parsePosition('mariadb', `0-0-0,${MAX_U32}-${MAX_U32}-${MAX_U64}`),
        parsePosition('mysql', `${U1}:1-${MAX_GNO}`),
        parsePosition('mysql', `${U1}:${MAX_GNO}`),
        parsePosition('postgres', 'FFFFFFFF/FFFFFFFF'),
      ]
      for (const p of positions) {
        expect(positionsEqual(decodeCausalToken(encodeCausalToken(p)), p)).to.equal(true)
      }
    })
  })

  describe('rejection of untrusted input', () => {
    for (const value of [undefined, null, 42, 42n, true, {}, [], ['kr1.p.0-0'], Symbol('x')]) {
      it(`rejects a ${value === null ? 'null' : typeof value}${Array.isArray(value) ? ' (array)' : ''}`, () => {
        rejects(value, /expected a string/)
      })
    }

    it('rejects tokens longer than the cap before parsing them', () => {
      const long = `kr1.m.${'0-0-0_'.repeat(200)}`
      rejects(long, /longer than 1024/)
      try {
        decodeCausalToken(long)
      } catch (error) {
        expect((error as Error).message).not.to.include('0-0-0')
      }
    })

    it('quotes at most 40 characters of the input in the message', () => {
      const token = `kr1.m.${'9'.repeat(900)}`
      expect(() => decodeCausalToken(token)).to.throw(InvalidCausalTokenError)
      try {
        decodeCausalToken(token)
      } catch (error) {
        expect((error as Error).message).not.to.include('9'.repeat(41))
      }
    })

    const invalid: [string, RegExp][] = [
      ['', /empty/],
      ['kr1', /missing payload/],
      ['kr1.m', /missing payload/],
      ['kr2.m.0-1-1', /unsupported version kr2/],
      ['KR1.m.0-1-1', /not a causal token/],
      ['hello', /not a causal token/],
      ['kr1.x.0', /unknown kind/],
      ['kr1.M.0-1-1', /unknown kind/],
      // A cluster-binding header after the kind (`m-xxxxxxxx`) is not part of the grammar.
      ['kr1.m-abcdef01.0-1-1', /unknown kind/],
      ['kr1.p-1a2b3c4d.16-B374D848', /unknown kind/],
      ['kr1.m-ABCDEF01.0-1-1', /unknown kind/],
      ['kr1.m-abcdef0.0-1-1', /unknown kind/],
      ['kr1.m.0-1-1 ', /characters/],
      ['kr1.m.0-1-1,1-1-1', /characters/],
      ['kr1.m.0-1-1;', /characters/],
      ['kr1.m.0-1-1=', /characters/],
      ['kr1.m.0-1', /malformed MariaDB/],
      ['kr1.m.0-1-1_', /malformed MariaDB/],
      ['kr1.m._0-1-1', /malformed MariaDB/],
      ['kr1.m.0-01-1', /malformed MariaDB/],
      ['kr1.m.00-1-1', /malformed MariaDB/],
      ['kr1.m.0-1-007', /malformed MariaDB/],
      ['kr1.m.0-1-1.1', /malformed MariaDB/],
      ['kr1.m.1-1-1_0-1-1', /not strictly ascending/],
      ['kr1.m.0-1-1_0-2-2', /not strictly ascending/],
      ['kr1.m.4294967296-1-1', /out of range/],
      ['kr1.m.0-4294967296-1', /out of range/],
      ['kr1.m.0-1-18446744073709551616', /out of range/],
      ['kr1.m.0-1-999999999999999999999', /malformed MariaDB/],
      [`kr1.m.${Array.from({ length: 65 }, (_, i) => `${i}-1-1`).join('_')}`, /more than 64/],
      ['kr1.p.0', /malformed PostgreSQL/],
      ['kr1.p.', /malformed PostgreSQL/],
      ['kr1.p.16-b374d848', /malformed PostgreSQL/],
      ['kr1.p.016-B374D848', /malformed PostgreSQL/],
      ['kr1.p.16-0B374D848', /malformed PostgreSQL/],
      ['kr1.p.1-123456789', /malformed PostgreSQL/],
      ['kr1.p.00-0', /malformed PostgreSQL/],
      ['kr1.p.0-0-0', /malformed PostgreSQL/],
      ['kr1.y.3e11fa4771ca11e19e33c80aa9429562', /without intervals/],
      ['kr1.y.3E11FA4771CA11E19E33C80AA9429562.1', /malformed MySQL UUID/],
      ['kr1.y.3e11fa47-71ca-11e1-9e33-c80aa9429562.1', /malformed MySQL UUID/],
      ['kr1.y.3e11fa4771ca11e19e33c80aa942956.1', /malformed MySQL UUID/],
      ['kr1.y.3e11fa4771ca11e19e33c80aa9429562.0', /malformed MySQL interval/],
      ['kr1.y.3e11fa4771ca11e19e33c80aa9429562.01', /malformed MySQL interval/],
      ['kr1.y.3e11fa4771ca11e19e33c80aa9429562.5-5', /not canonical/],
      ['kr1.y.3e11fa4771ca11e19e33c80aa9429562.5-3', /not canonical/],
      ['kr1.y.3e11fa4771ca11e19e33c80aa9429562.1-3.4-5', /non-adjacent/],
      ['kr1.y.3e11fa4771ca11e19e33c80aa9429562.4.1', /sorted/],
      ['kr1.y.3e11fa4771ca11e19e33c80aa9429562.1-9223372036854775808', /out of range/],
      ['kr1.y.3e11fa4771ca11e19e33c80aa9429562.1.', /malformed MySQL interval/],
      ['kr1.y.3e11fa4771ca11e19e33c80aa9429562.b.1.a.1', /tags not strictly ascending/],
      ['kr1.y.3e11fa4771ca11e19e33c80aa9429562.a.1.a.2', /tags not strictly ascending/],
      ['kr1.y.3e11fa4771ca11e19e33c80aa9429562.a.1.b', /tag without intervals/],
      ['kr1.y.3e11fa4771ca11e19e33c80aa9429562.a.b.1', /tag without intervals/],
      ['kr1.y.3e11fa4771ca11e19e33c80aa9429562.A.1', /malformed MySQL interval or tag/],
      [`kr1.y.3e11fa4771ca11e19e33c80aa9429562.${'a'.repeat(33)}.1`, /malformed MySQL/],
      [
        'kr1.y.4e11fa4771ca11e19e33c80aa9429562.1~3e11fa4771ca11e19e33c80aa9429562.1',
        /not strictly ascending/,
      ],
      [
        'kr1.y.3e11fa4771ca11e19e33c80aa9429562.1~3e11fa4771ca11e19e33c80aa9429562.3',
        /not strictly ascending/,
      ],
      ['kr1.y.3e11fa4771ca11e19e33c80aa9429562.1~', /malformed MySQL UUID/],
      [
        `kr1.y.3e11fa4771ca11e19e33c80aa9429562.${Array.from({ length: 65 }, (_, i) => 2 * i + 1).join('.')}`,
        /more than 64 intervals/,
      ],
    ]
    for (const [token, pattern] of invalid) {
      it(`rejects ${JSON.stringify(token.length > 60 ? `${token.slice(0, 60)}…` : token)}`, () => {
        rejects(token, pattern)
      })
    }

    it('rejects every token with a cluster-binding header after the kind as malformed', () => {
      fc.assert(
        fc.property(anyPosition, fc.stringMatching(/^[0-9a-f]{8}$/), (p, hash) => {
          const token = encodeCausalToken(p)
          rejects(`${token.slice(0, 5)}-${hash}${token.slice(5)}`, /unknown kind/)
        }),
      )
    })

    it('rejects more than 64 UUID/tag pairs', () => {
      const tags = Array.from({ length: 64 }, (_, i) => `t${String(i).padStart(2, '0')}.1`)
      rejects(`kr1.y.3e11fa4771ca11e19e33c80aa9429562.1.${tags.join('.')}`, /more than 64/)
    })

    it('decodes arbitrary strings canonically or throws InvalidCausalTokenError', () => {
      fc.assert(
        fc.property(fc.string({ maxLength: 80 }), (s) => decodesCanonicallyOrRejects(s)),
        { numRuns: 2000 },
      )
      fc.assert(
        fc.property(fc.string({ unit: 'binary', maxLength: 80 }), (s) =>
          decodesCanonicallyOrRejects(s),
        ),
        { numRuns: 2000 },
      )
      fc.assert(
        fc.property(fc.string({ unit: 'grapheme', maxLength: 1100 }), (s) =>
          decodesCanonicallyOrRejects(s),
        ),
        { numRuns: 200 },
      )
    })

    it('decodes token-like strings canonically or throws InvalidCausalTokenError', () => {
      const alphabet = fc.constantFrom(...'0123456789abcdefABCDEF-_.~yz'.split(''))
      const tokenLike = fc
        .tuple(
          fc.constantFrom('kr1.m.', 'kr1.y.', 'kr1.p.', 'kr1.y.3e11fa4771ca11e19e33c80aa9429562.'),
          fc.string({ unit: alphabet, maxLength: 60 }),
        )
        .map(([prefix, rest]) => prefix + rest)
      fc.assert(
        fc.property(tokenLike, (s) => decodesCanonicallyOrRejects(s)),
        { numRuns: 5000 },
      )
    })

    it('decodes grammar-shaped near-misses canonically or throws InvalidCausalTokenError', () => {
      const small = fc.nat(6).map(String)
      const mariadbLike = fc
        .array(fc.tuple(small, small, small), { maxLength: 4 })
        .map((es) => `kr1.m.${es.map((e) => e.join('-')).join('_')}`)
      const item = fc.oneof(
        small,
        fc.tuple(small, small).map(([a, b]) => `${a}-${b}`),
        fc.constantFrom('a', 'b', '_'),
      )
      const group = fc
        .tuple(
          fc.constantFrom('3e11fa4771ca11e19e33c80aa9429562', '4e11fa4771ca11e19e33c80aa9429562'),
          fc.array(item, { maxLength: 6 }),
        )
        .map(([hex, items]) => [hex, ...items].join('.'))
      const mysqlLike = fc
        .array(group, { minLength: 1, maxLength: 3 })
        .map((gs) => `kr1.y.${gs.join('~')}`)
      const hex = fc.string({ unit: fc.constantFrom(...'0F'.split('')), maxLength: 9 })
      const postgresLike = fc.tuple(hex, hex).map(([a, b]) => `kr1.p.${a}-${b}`)
      fc.assert(
        fc.property(fc.oneof(mariadbLike, mysqlLike, postgresLike), (s) =>
          decodesCanonicallyOrRejects(s),
        ),
        { numRuns: 5000 },
      )
    })

    it('decodes mutated valid tokens canonically or throws InvalidCausalTokenError', () => {
      const chars = 'kr1.mpy-_~0123456789abcdefABCDEF =,;é\u0000'.split('')
      const mutation = fc.tuple(
        fc.constantFrom('insert', 'delete', 'replace', 'duplicate', 'truncate'),
        fc.nat(),
        fc.constantFrom(...chars),
      )
      fc.assert(
        fc.property(
          anyPosition,
          fc.array(mutation, { minLength: 1, maxLength: 4 }),
          (p, mutations) => {
            let s = encodeCausalToken(p)
            for (const [op, at, ch] of mutations) {
              const i = s.length === 0 ? 0 : at % s.length
              if (op === 'insert') s = s.slice(0, i) + ch + s.slice(i)
              else if (op === 'delete') s = s.slice(0, i) + s.slice(i + 1)
              else if (op === 'replace') s = s.slice(0, i) + ch + s.slice(i + 1)
              else if (op === 'duplicate') s = s.slice(0, i) + s.slice(i, i + 6) + s.slice(i)
              else s = s.slice(0, i)
            }
            decodesCanonicallyOrRejects(s)
          },
        ),
        { numRuns: 3000 },
      )
    })

    it('accepts only the canonical spelling of a position', () => {
      fc.assert(
        fc.property(anyPosition, (p) => {
          const token = encodeCausalToken(p)
          for (const variant of [
            token.toUpperCase(),
            token.toLowerCase(),
            `${token}_`,
            `${token}.`,
          ]) {
            decodesCanonicallyOrRejects(variant)
          }
        }),
      )
    })

    it('decodes adversarial inputs at the size cap quickly', () => {
      const inputs = [
        `kr1.m.${'1'.repeat(MAX_CAUSAL_TOKEN_LENGTH - 6)}`,
        `kr1.m.${'0-0-0_'.repeat(169)}`.slice(0, MAX_CAUSAL_TOKEN_LENGTH),
        `kr1.y.${'3e11fa4771ca11e19e33c80aa9429562.1~'.repeat(40)}`.slice(
          0,
          MAX_CAUSAL_TOKEN_LENGTH,
        ),
        `kr1.y.3e11fa4771ca11e19e33c80aa9429562${'.a'.repeat(400)}`,
        `kr1.y.3e11fa4771ca11e19e33c80aa9429562${'.1'.repeat(400)}`,
        `kr1.p.${'F'.repeat(MAX_CAUSAL_TOKEN_LENGTH - 6)}`,
        'kr1.'.repeat(256),
      ]
      const started = performance.now()
      for (let i = 0; i < 100; i++) {
        for (const input of inputs) decodesCanonicallyOrRejects(input)
      }
      expect(performance.now() - started).to.be.below(1000)
    })
  })

  describe('encoding limits', () => {
    it('refuses positions that exceed the token limits with a RangeError', () => {
      const gtids = new Map<number, MariadbGtid>()
      for (let d = 0; d < 65; d++) gtids.set(d, { server: 1, seq: 1n })
      expect(() => encodeCausalToken({ kind: 'mariadb', gtids })).to.throw(RangeError, /65 > 64/)

      const ivs = Array.from({ length: 65 }, (_, i) => `${2 * i + 1}`).join(':')
      const set = parseMysqlGtidSet(`${U1}:${ivs}`)
      expect(() => encodeCausalToken({ kind: 'mysql', set })).to.throw(RangeError, /intervals/)

      const big = parseMysqlGtidSet(
        Array.from(
          { length: 40 },
          (_, i) => `${U1.slice(0, -2)}${String(i).padStart(2, '0')}:1`,
        ).join(','),
      )
      expect(() => encodeCausalToken({ kind: 'mysql', set: big })).to.throw(RangeError, /1024/)
    })

    it('refuses malformed positions with a TypeError', () => {
      const bad: ReplicationPosition[] = [
        { kind: 'mariadb', gtids: new Map([[0, { server: 1, seq: -1n }]]) },
        { kind: 'mariadb', gtids: new Map([[0, { server: 1, seq: MAX_U64 + 1n }]]) },
        { kind: 'mariadb', gtids: new Map([[-1, { server: 1, seq: 1n }]]) },
        { kind: 'mariadb', gtids: new Map([[0, { server: 1.5, seq: 1n }]]) },
        { kind: 'mysql', set: new Map([[U1.toUpperCase(), [[1n, 2n]]]]) },
        { kind: 'mysql', set: new Map([[U1, [[0n, 2n]]]]) },
        { kind: 'mysql', set: new Map([[U1, [[3n, 2n]]]]) },
        { kind: 'mysql', set: new Map([[U1, [[1n, MAX_GNO + 1n]]]]) },
        { kind: 'postgres', lsn: -1n },
        { kind: 'postgres', lsn: MAX_U64 + 1n },
      ]
      for (const p of bad) expect(() => encodeCausalToken(p)).to.throw(TypeError)
    })

    it('normalises hand-built MySQL sets before encoding', () => {
      const set = new Map<string, MysqlGnoInterval[]>([
        [
          U1,
          [
            [4n, 6n],
            [1n, 3n],
          ],
        ],
      ])
      expect(encodeCausalToken({ kind: 'mysql', set })).to.equal(
        'kr1.y.3e11fa4771ca11e19e33c80aa9429562.1-6',
      )
    })
  })
})
