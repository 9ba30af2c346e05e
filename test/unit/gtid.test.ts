import { expect } from 'chai'
import fc from 'fast-check'
import {
  formatMariadbGtidList,
  type MariadbGtid,
  type MariadbGtidList,
  mariadbCovers,
  mariadbGtidListsEqual,
  mergeMariadbGtidLists,
  parseMariadbGtidList,
} from '../../src/consistency/mariadb-gtid.js'
import {
  formatMysqlGtidSet,
  type MysqlGnoInterval,
  type MysqlGtidSet,
  mysqlGtidSetsEqual,
  mysqlGtidSubset,
  parseMysqlGtidSet,
  unionMysqlGtidSets,
} from '../../src/consistency/mysql-gtid.js'
import {
  formatPosition,
  mergePositions,
  parsePosition,
  positionCovers,
  positionsEqual,
  type ReplicationPosition,
} from '../../src/consistency/position.js'

const U1 = '3e11fa47-71ca-11e1-9e33-c80aa9429562'
const U2 = '4e11fa47-71ca-11e1-9e33-c80aa9429562'
const U3 = 'ffffffff-0000-4000-8000-000000000001'

// ---------------------------------------------------------------------------------------------
// Arbitraries and models

function mariadbList(entries: readonly (readonly [number, number, bigint])[]): MariadbGtidList {
  const map = new Map<number, MariadbGtid>()
  for (const [domain, server, seq] of [...entries].sort((a, b) => a[0] - b[0])) {
    map.set(domain, { server, seq })
  }
  return map
}

/** Small lists: few domains, server ids and seqs, so covers/merge relations actually occur. */
const smallMariadb = fc
  .uniqueArray(
    fc.tuple(fc.integer({ min: 0, max: 3 }), fc.integer({ min: 1, max: 3 }), fc.bigInt(0n, 12n)),
    { selector: (e) => e[0], maxLength: 4 },
  )
  .map(mariadbList)

/** Lists over the whole number ranges. */
const wideMariadb = fc
  .uniqueArray(
    fc.tuple(
      fc.oneof(fc.integer({ min: 0, max: 5 }), fc.integer({ min: 0, max: 0xffff_ffff })),
      fc.oneof(fc.integer({ min: 0, max: 5 }), fc.integer({ min: 0, max: 0xffff_ffff })),
      fc.oneof(fc.bigInt(0n, 100n), fc.bigInt(0n, 0xffff_ffff_ffff_ffffn)),
    ),
    { selector: (e) => e[0], maxLength: 8 },
  )
  .map(mariadbList)

/** Same domains with the same seqs (server ids may differ). */
function mariadbEquivalent(a: MariadbGtidList, b: MariadbGtidList): boolean {
  return mariadbCovers(a, b) && mariadbCovers(b, a)
}

const MYSQL_KEYS = [U1, `${U1}:a`, `${U1}:b_2`, U2, `${U2}:a`, U3] as const

function mysqlSet(entries: readonly (readonly [string, bigint, bigint])[]): MysqlGtidSet {
  const acc = new Map<string, MysqlGnoInterval[]>()
  for (const [key, start, len] of entries) {
    const list = acc.get(key) ?? []
    list.push([start, start + len])
    acc.set(key, list)
  }
  return unionMysqlGtidSets(acc, new Map())
}

/** Small sets over three UUIDs (two with tags) and transaction numbers 1..30. */
const smallMysql = fc
  .array(fc.tuple(fc.constantFrom(...MYSQL_KEYS), fc.bigInt(1n, 25n), fc.bigInt(0n, 5n)), {
    maxLength: 8,
  })
  .map(mysqlSet)

/** The brute-force model of a small set: the set of its `key#gno` members. */
function members(set: MysqlGtidSet): Set<string> {
  const out = new Set<string>()
  for (const [key, ivs] of set) {
    for (const [s, e] of ivs) for (let n = s; n <= e; n++) out.add(`${key}#${n}`)
  }
  return out
}

function isCanonical(set: MysqlGtidSet): boolean {
  const keys = [...set.keys()]
  if (keys.some((k, i) => i > 0 && keys[i - 1]! >= k)) return false
  for (const ivs of set.values()) {
    if (ivs.length === 0) return false
    for (let i = 0; i < ivs.length; i++) {
      const [s, e] = ivs[i]!
      if (s < 1n || s > e) return false
      if (i > 0 && s <= ivs[i - 1]![1] + 1n) return false
    }
  }
  return true
}

// ---------------------------------------------------------------------------------------------

describe('MariaDB GTID lists', () => {
  describe('parseMariadbGtidList', () => {
    it('parses the empty position printed by a fresh server', () => {
      expect(parseMariadbGtidList('').size).to.equal(0)
      expect(parseMariadbGtidList('  \n').size).to.equal(0)
    })

    it('parses a single GTID as the session tracker reports it', () => {
      const list = parseMariadbGtidList('0-1-7')
      expect([...list]).to.deep.equal([[0, { server: 1, seq: 7n }]])
    })

    it('parses one GTID per domain, as @@gtid_slave_pos prints them', () => {
      const list = parseMariadbGtidList('0-1-7,1-3-100')
      expect([...list]).to.deep.equal([
        [0, { server: 1, seq: 7n }],
        [1, { server: 3, seq: 100n }],
      ])
    })

    it('orders domains ascending whatever the input order', () => {
      expect([...parseMariadbGtidList('5-1-1,2-1-9').keys()]).to.deep.equal([2, 5])
    })

    it('ignores whitespace around entries', () => {
      expect(formatMariadbGtidList(parseMariadbGtidList(' 0-1-7 ,\n1-3-100 '))).to.equal(
        '0-1-7,1-3-100',
      )
    })

    it('accepts the largest ids and sequence numbers', () => {
      const list = parseMariadbGtidList('4294967295-4294967295-18446744073709551615')
      expect(list.get(4294967295)).to.deep.equal({
        server: 4294967295,
        seq: 18446744073709551615n,
      })
    })

    for (const bad of [
      '0-1',
      '0-1-',
      '0--7',
      'a-b-c',
      '0-1-7,',
      ',0-1-7',
      '0-1-7,,1-2-3',
      '-1-1-1',
      '0-1-7 1-2-3',
      '0-1-7;',
      '0-1-0x10',
      '0-1-1.5',
      '4294967296-1-1',
      '0-4294967296-1',
      '0-1-18446744073709551616',
      '0-1-7,0-2-8',
      '０-1-7',
    ]) {
      it(`rejects malformed input ${JSON.stringify(bad)} with a TypeError`, () => {
        expect(() => parseMariadbGtidList(bad)).to.throw(TypeError, /MariaDB GTID list/)
      })
    }

    it('round-trips through formatMariadbGtidList', () => {
      fc.assert(
        fc.property(wideMariadb, (list) => {
          const again = parseMariadbGtidList(formatMariadbGtidList(list))
          expect(mariadbGtidListsEqual(again, list)).to.equal(true)
          expect(formatMariadbGtidList(again)).to.equal(formatMariadbGtidList(list))
        }),
      )
    })
  })

  describe('mariadbCovers', () => {
    it('compares sequence numbers per domain, not server ids', () => {
      const applied = parseMariadbGtidList('0-1-10,1-2-5')
      expect(mariadbCovers(applied, parseMariadbGtidList('0-9-10'))).to.equal(true)
      expect(mariadbCovers(applied, parseMariadbGtidList('0-1-11'))).to.equal(false)
      expect(mariadbCovers(applied, parseMariadbGtidList('0-1-3,1-2-5'))).to.equal(true)
      expect(mariadbCovers(applied, parseMariadbGtidList('1-2-6'))).to.equal(false)
    })

    it('treats a domain missing on the replica as not applied', () => {
      expect(mariadbCovers(parseMariadbGtidList('0-1-10'), parseMariadbGtidList('1-1-0'))).to.equal(
        false,
      )
      expect(mariadbCovers(parseMariadbGtidList(''), parseMariadbGtidList('0-1-1'))).to.equal(false)
    })

    it('covers the empty requirement from any position', () => {
      fc.assert(fc.property(wideMariadb, (a) => mariadbCovers(a, new Map())))
    })

    it('is reflexive', () => {
      fc.assert(fc.property(wideMariadb, (a) => mariadbCovers(a, a)))
    })

    it('is transitive', () => {
      fc.assert(
        fc.property(smallMariadb, smallMariadb, smallMariadb, (a, b, c) => {
          if (mariadbCovers(a, b) && mariadbCovers(b, c)) expect(mariadbCovers(a, c)).to.equal(true)
        }),
      )
      fc.assert(
        fc.property(smallMariadb, smallMariadb, smallMariadb, (c, x, y) => {
          const b = mergeMariadbGtidLists(c, x)
          const a = mergeMariadbGtidLists(b, y)
          expect(mariadbCovers(a, b) && mariadbCovers(b, c) && mariadbCovers(a, c)).to.equal(true)
        }),
      )
    })
  })

  describe('mergeMariadbGtidLists', () => {
    it('keeps the larger sequence number per domain with its server id', () => {
      const merged = mergeMariadbGtidLists(
        parseMariadbGtidList('0-1-10,1-2-5'),
        parseMariadbGtidList('0-3-12,1-4-2,7-1-1'),
      )
      expect(formatMariadbGtidList(merged)).to.equal('0-3-12,1-2-5,7-1-1')
    })

    it('covers both inputs', () => {
      fc.assert(
        fc.property(wideMariadb, wideMariadb, (a, b) => {
          const m = mergeMariadbGtidLists(a, b)
          return mariadbCovers(m, a) && mariadbCovers(m, b)
        }),
      )
    })

    it('is the least position covering both inputs', () => {
      fc.assert(
        fc.property(smallMariadb, smallMariadb, smallMariadb, (a, b, c) => {
          if (mariadbCovers(c, a) && mariadbCovers(c, b)) {
            expect(mariadbCovers(c, mergeMariadbGtidLists(a, b))).to.equal(true)
          }
        }),
      )
    })

    it('is commutative, associative and idempotent', () => {
      fc.assert(
        fc.property(smallMariadb, smallMariadb, smallMariadb, (a, b, c) => {
          const eq = mariadbGtidListsEqual
          expect(eq(mergeMariadbGtidLists(a, b), mergeMariadbGtidLists(b, a))).to.equal(true)
          expect(
            eq(
              mergeMariadbGtidLists(mergeMariadbGtidLists(a, b), c),
              mergeMariadbGtidLists(a, mergeMariadbGtidLists(b, c)),
            ),
          ).to.equal(true)
          expect(eq(mergeMariadbGtidLists(a, a), a)).to.equal(true)
        }),
      )
    })

    it('x covers y iff merge(x, y) is x (per domain and seq)', () => {
      fc.assert(
        fc.property(smallMariadb, smallMariadb, (x, y) => {
          expect(mariadbCovers(x, y)).to.equal(mariadbEquivalent(mergeMariadbGtidLists(x, y), x))
        }),
      )
    })

    it('yields lists in ascending domain order', () => {
      fc.assert(
        fc.property(wideMariadb, wideMariadb, (a, b) => {
          const keys = [...mergeMariadbGtidLists(a, b).keys()]
          expect(keys).to.deep.equal([...keys].sort((p, q) => p - q))
        }),
      )
    })
  })
})

describe('MySQL GTID sets', () => {
  describe('parseMysqlGtidSet', () => {
    it('parses the empty set', () => {
      expect(parseMysqlGtidSet('').size).to.equal(0)
      expect(parseMysqlGtidSet(' \n ').size).to.equal(0)
    })

    it('parses @@gtid_executed with a newline after the comma', () => {
      const set = parseMysqlGtidSet(`${U1}:1-5,\n${U2}:1-3:5-9`)
      expect([...set]).to.deep.equal([
        [U1, [[1n, 5n]]],
        [
          U2,
          [
            [1n, 3n],
            [5n, 9n],
          ],
        ],
      ])
    })

    it('parses a single OWN_GTID from the session tracker', () => {
      expect([...parseMysqlGtidSet(`${U1}:42`)]).to.deep.equal([[U1, [[42n, 42n]]]])
    })

    it('lower-cases UUIDs and tags', () => {
      const set = parseMysqlGtidSet(`${U1.toUpperCase()}:1-2:Domain_1:7`)
      expect([...set.keys()]).to.deep.equal([U1, `${U1}:domain_1`])
    })

    it('parses the MySQL 8.4 tagged form, grouped or repeated per UUID', () => {
      const grouped = parseMysqlGtidSet(`${U1}:domain_1:1-3:15-21:domain_2:8-52`)
      const repeated = parseMysqlGtidSet(
        `${U1}:Domain_1:1-3:15-21, ${U1}:Domain_2:8-52`.toUpperCase(),
      )
      expect(mysqlGtidSetsEqual(grouped, repeated)).to.equal(true)
      expect(grouped.get(`${U1}:domain_2`)).to.deep.equal([[8n, 52n]])
      expect(formatMysqlGtidSet(grouped)).to.equal(`${U1}:domain_1:1-3:15-21:domain_2:8-52`)
    })

    it('merges overlapping and adjacent intervals and repeated UUIDs', () => {
      const set = parseMysqlGtidSet(`${U2}:7:1-3,${U1}:4-6:2-4, ${U2}:4-5:9`)
      expect(formatMysqlGtidSet(set)).to.equal(`${U1}:2-6,${U2}:1-5:7:9`)
    })

    it('accepts the largest transaction number', () => {
      expect(parseMysqlGtidSet(`${U1}:9223372036854775807`).get(U1)).to.deep.equal([
        [9223372036854775807n, 9223372036854775807n],
      ])
    })

    for (const bad of [
      U1,
      `${U1}:`,
      `${U1}:0`,
      `${U1}:0-3`,
      `${U1}:5-3`,
      `${U1}:1-5:`,
      `${U1}:1-5,`,
      `,${U1}:1`,
      `${U1}:tag`,
      `${U1}:1-5:tag1:tag2:1`,
      `${U1}:1-5-7`,
      `${U1}:-1`,
      `${U1}:1:9tag:3`,
      `${U1}:1-9223372036854775808`,
      `${U1}:a${'b'.repeat(32)}:1`,
      '3e11fa4771ca11e19e33c80aa9429562:1',
      '3e11fa47-71ca-11e1-9e33-c80aa942956:1',
      'not-a-uuid:1',
      `${U1}:1 2`,
      `${U1};1`,
    ]) {
      it(`rejects malformed input ${JSON.stringify(bad.slice(30))} with a TypeError`, () => {
        expect(() => parseMysqlGtidSet(bad)).to.throw(TypeError, /MySQL GTID set/)
      })
    }

    it('round-trips through formatMysqlGtidSet, in canonical form', () => {
      fc.assert(
        fc.property(smallMysql, (set) => {
          expect(isCanonical(set)).to.equal(true)
          const text = formatMysqlGtidSet(set)
          const again = parseMysqlGtidSet(text)
          expect(mysqlGtidSetsEqual(again, set)).to.equal(true)
          expect(formatMysqlGtidSet(again)).to.equal(text)
          // As @@gtid_executed prints it: newlines after commas, either case.
          const printed = text.replaceAll(',', ',\n').toUpperCase()
          expect(mysqlGtidSetsEqual(parseMysqlGtidSet(printed), set)).to.equal(true)
        }),
      )
    })
  })

  describe('mysqlGtidSubset', () => {
    it('checks that every required interval is applied', () => {
      const applied = parseMysqlGtidSet(`${U1}:1-5:7-9,${U2}:1-3`)
      expect(mysqlGtidSubset(parseMysqlGtidSet(`${U1}:3`), applied)).to.equal(true)
      expect(mysqlGtidSubset(parseMysqlGtidSet(`${U1}:2-5:8`), applied)).to.equal(true)
      expect(mysqlGtidSubset(parseMysqlGtidSet(`${U1}:6`), applied)).to.equal(false)
      expect(mysqlGtidSubset(parseMysqlGtidSet(`${U1}:5-7`), applied)).to.equal(false)
      expect(mysqlGtidSubset(parseMysqlGtidSet(`${U3}:1`), applied)).to.equal(false)
      expect(mysqlGtidSubset(parseMysqlGtidSet(`${U1}:a:1`), applied)).to.equal(false)
      expect(mysqlGtidSubset(new Map(), applied)).to.equal(true)
    })

    it('compares UUIDs case-insensitively', () => {
      expect(
        mysqlGtidSubset(
          parseMysqlGtidSet(`${U1.toUpperCase()}:4`),
          parseMysqlGtidSet(`${U1}:1-10`),
        ),
      ).to.equal(true)
    })

    it('agrees with a brute-force set-of-integers model', () => {
      fc.assert(
        fc.property(smallMysql, smallMysql, (required, applied) => {
          const have = members(applied)
          const model = [...members(required)].every((m) => have.has(m))
          expect(mysqlGtidSubset(required, applied)).to.equal(model)
        }),
        { numRuns: 500 },
      )
    })

    it('is reflexive and transitive', () => {
      fc.assert(fc.property(smallMysql, (a) => mysqlGtidSubset(a, a)))
      fc.assert(
        fc.property(smallMysql, smallMysql, smallMysql, (a, b, c) => {
          if (mysqlGtidSubset(a, b) && mysqlGtidSubset(b, c)) {
            expect(mysqlGtidSubset(a, c)).to.equal(true)
          }
          const bc = unionMysqlGtidSets(a, b)
          const abc = unionMysqlGtidSets(bc, c)
          expect(mysqlGtidSubset(a, bc) && mysqlGtidSubset(bc, abc)).to.equal(true)
          expect(mysqlGtidSubset(a, abc)).to.equal(true)
        }),
      )
    })
  })

  describe('unionMysqlGtidSets', () => {
    it('merges intervals across sets', () => {
      const u = unionMysqlGtidSets(
        parseMysqlGtidSet(`${U1}:1-3:10`),
        parseMysqlGtidSet(`${U1}:4-6:12,${U2}:1`),
      )
      expect(formatMysqlGtidSet(u)).to.equal(`${U1}:1-6:10:12,${U2}:1`)
    })

    it('agrees with the brute-force model and stays canonical', () => {
      fc.assert(
        fc.property(smallMysql, smallMysql, (a, b) => {
          const u = unionMysqlGtidSets(a, b)
          expect(isCanonical(u)).to.equal(true)
          expect([...members(u)].sort()).to.deep.equal(
            [...members(a), ...members(b)].filter((m, i, all) => all.indexOf(m) === i).sort(),
          )
        }),
      )
    })

    it('is commutative, associative and idempotent', () => {
      fc.assert(
        fc.property(smallMysql, smallMysql, smallMysql, (a, b, c) => {
          const eq = mysqlGtidSetsEqual
          expect(eq(unionMysqlGtidSets(a, b), unionMysqlGtidSets(b, a))).to.equal(true)
          expect(
            eq(
              unionMysqlGtidSets(unionMysqlGtidSets(a, b), c),
              unionMysqlGtidSets(a, unionMysqlGtidSets(b, c)),
            ),
          ).to.equal(true)
          expect(eq(unionMysqlGtidSets(a, a), a)).to.equal(true)
        }),
      )
    })

    it('x contains y iff union(x, y) is x', () => {
      fc.assert(
        fc.property(smallMysql, smallMysql, (x, y) => {
          expect(mysqlGtidSubset(y, x)).to.equal(mysqlGtidSetsEqual(unionMysqlGtidSets(x, y), x))
        }),
      )
    })
  })
})

describe('ReplicationPosition', () => {
  const anyPosition: fc.Arbitrary<ReplicationPosition> = fc.oneof(
    smallMariadb.map((gtids) => ({ kind: 'mariadb' as const, gtids })),
    smallMysql.map((set) => ({ kind: 'mysql' as const, set })),
    fc.bigInt(0n, 20n).map((lsn) => ({ kind: 'postgres' as const, lsn })),
  )

  it('parses and formats each engine’s own text', () => {
    expect(formatPosition(parsePosition('mariadb', '1-3-100,0-1-7'))).to.equal('0-1-7,1-3-100')
    expect(formatPosition(parsePosition('mysql', `${U2}:1-3:5-9,\n${U1}:1-5`))).to.equal(
      `${U1}:1-5,${U2}:1-3:5-9`,
    )
    expect(formatPosition(parsePosition('postgres', '16/b374d848'))).to.equal('16/B374D848')
    expect(() => parsePosition('postgres', '0-1-7')).to.throw(TypeError)
    expect(() => parsePosition('oracle' as 'mysql', '')).to.throw(TypeError, /kind/)
  })

  it('never covers a position of another kind', () => {
    const m = parsePosition('mariadb', '')
    const y = parsePosition('mysql', '')
    const p = parsePosition('postgres', '0/0')
    expect(positionCovers(m, y) || positionCovers(y, p) || positionCovers(p, m)).to.equal(false)
  })

  it('merges into the other position when the first is undefined or of another kind', () => {
    const m = parsePosition('mariadb', '0-1-1')
    const p = parsePosition('postgres', '0/10')
    expect(mergePositions(undefined, m)).to.equal(m)
    expect(mergePositions(m, p)).to.equal(p)
  })

  it('merges PostgreSQL positions to the larger LSN', () => {
    const a = parsePosition('postgres', '0/3000060')
    const b = parsePosition('postgres', '1/0')
    expect(formatPosition(mergePositions(a, b))).to.equal('1/0')
    expect(formatPosition(mergePositions(b, a))).to.equal('1/0')
  })

  it('covers is reflexive and transitive, merge covers both and is commutative', () => {
    fc.assert(
      fc.property(anyPosition, anyPosition, anyPosition, (a, b, c) => {
        expect(positionCovers(a, a)).to.equal(true)
        if (positionCovers(a, b) && positionCovers(b, c)) {
          expect(positionCovers(a, c)).to.equal(true)
        }
        if (a.kind === b.kind) {
          const m = mergePositions(a, b)
          expect(positionCovers(m, a) && positionCovers(m, b)).to.equal(true)
          expect(positionsEqual(m, mergePositions(b, a))).to.equal(true)
          expect(positionsEqual(mergePositions(a, a), a)).to.equal(true)
          if (a.kind !== 'mariadb') {
            expect(positionCovers(a, b)).to.equal(positionsEqual(m, a))
          }
        }
      }),
    )
  })

  it('round-trips through formatPosition and parsePosition', () => {
    fc.assert(
      fc.property(anyPosition, (p) => {
        expect(positionsEqual(parsePosition(p.kind, formatPosition(p)), p)).to.equal(true)
      }),
    )
  })
})
