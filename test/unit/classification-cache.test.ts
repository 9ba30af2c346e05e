import { expect } from 'chai'
import fc from 'fast-check'
import { CompiledQuery, type Kysely, sql } from 'kysely'
import type { ClassifyOptions, SqlFlavor } from '../../src/routing/classification.js'
import { ClassificationCache, classifyCached } from '../../src/routing/classification-cache.js'
import { classifyNode } from '../../src/routing/classify-node.js'
import { primaryFunctionSet } from '../../src/routing/primary-functions.js'
import { classifyRawSql } from '../../src/routing/raw-sql.js'
import { offlineKysely } from './offline-kysely.js'

interface DB {
  t: { id: number; v: string }
}

function options(flavor: SqlFlavor, extra: string[] = []): ClassifyOptions {
  return Object.freeze({ flavor, primaryFunctions: primaryFunctionSet(flavor, extra) })
}

function offline(flavor: SqlFlavor): Kysely<DB> {
  return offlineKysely<DB>(flavor)
}

describe('ClassificationCache', () => {
  const db = offline('mysql')
  const mysql = options('mysql')

  it('answers a statement seen before without classifying it again, whatever its parameters', () => {
    const cache = new ClassificationCache(mysql)
    const first = cache.classify(db.selectFrom('t').selectAll().where('id', '=', 1).compile())
    const again = cache.classify(db.selectFrom('t').selectAll().where('id', '=', 2).compile())
    expect(again).to.equal(first) // the same object: a lookup
    expect(cache.size).to.equal(1)
  })

  it('returns frozen classifications', () => {
    const cache = new ClassificationCache(mysql)
    const result = cache.classify(db.selectFrom('t').selectAll().forUpdate().compile())
    expect(Object.isFrozen(result)).to.equal(true)
  })

  it('keeps built queries and root raw SQL apart', () => {
    const cache = new ClassificationCache(mysql)
    const built = db.selectFrom('t').selectAll().compile()
    cache.classify(built)
    cache.classify(CompiledQuery.raw(built.sql))
    expect(cache.size).to.equal(2)
  })

  it('stays within its capacity, keeping what is used', () => {
    const cache = new ClassificationCache(mysql, { capacity: 10 })
    const hot = CompiledQuery.raw('select * from t for update')
    const hotResult = cache.classify(hot)
    for (let i = 0; i < 100; i++) {
      cache.classify(CompiledQuery.raw(`select ${i}`))
      expect(cache.classify(hot)).to.equal(hotResult)
      expect(cache.size).to.be.at.most(10)
    }
  })

  it('does not keep texts longer than maxSqlLength, and still classifies them', () => {
    const cache = new ClassificationCache(mysql, { maxSqlLength: 20 })
    const long = CompiledQuery.raw(`select * from t where v = '${'x'.repeat(30)}' for update`)
    expect(cache.classify(long)).to.include({ reason: 'locking-read' })
    expect(cache.size).to.equal(0)
  })

  it('refuses a capacity that cannot hold anything', () => {
    expect(() => new ClassificationCache(mysql, { capacity: 1 })).to.throw(RangeError)
    expect(() => new ClassificationCache(mysql, { capacity: 2.5 })).to.throw(RangeError)
  })

  it('keeps one cache per options object (the functions differ per dialect)', () => {
    const plain = options('mysql')
    const withBump = options('mysql', ['app_bump'])
    const compiled = db.selectNoFrom(sql<number>`app_bump(1)`.as('x')).compile()
    expect(classifyCached(compiled, plain).read).to.equal(true)
    expect(classifyCached(compiled, withBump).read).to.equal(false)
    expect(classifyCached(compiled, plain).read).to.equal(true)
  })
})

describe('ClassificationCache with texts that differ in a few characters', () => {
  it('tells apart texts of one length that differ anywhere, and bounds their chains', () => {
    // A long locking read; `--` written over two of its spaces hides the lock clause.
    const base = `select 1${' '.repeat(300)}from t for update`
    const opts = options('mysql')
    const cache = new ClassificationCache(opts, { capacity: 1000 })
    fc.assert(
      fc.property(fc.array(fc.nat(base.length - 30), { minLength: 1, maxLength: 40 }), (spots) => {
        for (const spot of spots) {
          const at = 8 + (spot % 290)
          const text = `${base.slice(0, at)}--${base.slice(at + 2)}`
          for (const sqlText of [base, text]) {
            expect(cache.classify(CompiledQuery.raw(sqlText)), sqlText).to.deep.equal(
              classifyRawSql(sqlText, opts),
            )
          }
        }
      }),
      { numRuns: 200, seed: 99 },
    )
    // Texts sharing a fingerprint keep at most four entries each, so the cache holds far fewer
    // than the 290 distinct texts generated if most fingerprints collide, and never more.
    expect(cache.size).to.be.at.most(291)
  })
})

describe('ClassificationCache properties', () => {
  for (const flavor of ['mysql', 'postgres'] as const) {
    it(`[${flavor}] classifies exactly as the classifiers do, before and after evictions`, () => {
      const db = offline(flavor)
      const opts = options(flavor, ['app_bump'])
      // A small cache, so that runs evict and classify again.
      const cache = new ClassificationCache(opts, { capacity: 8 })
      const fn = fc.constantFrom('coalesce', 'app_bump', 'lower', 'connection_id', 'nextval')
      const lock = fc.constantFrom('none', 'forUpdate', 'rawShare', 'rawSplit')
      const builtArb = fc.record({ fn, lock, id: fc.integer({ min: 0, max: 5 }) }).map((b) => {
        let q = db
          .selectFrom('t')
          .select((eb) => eb.fn(b.fn, [eb.ref('id')]).as('f'))
          .where('id', '=', b.id)
        if (b.lock === 'forUpdate') q = q.forUpdate()
        if (b.lock === 'rawShare') q = q.modifyEnd(sql`for share`)
        if (b.lock === 'rawSplit') q = q.modifyEnd(sql`for ${sql.raw('update')}`)
        // A few distinct texts (the id is a parameter, the column list is not).
        return (b.id % 2 === 0 ? q : q.select('v')).compile()
      })
      const rawArb = fc
        .record({
          head: fc.constantFrom(
            'select',
            'update t set v = 1 where',
            'delete from t where',
            'set @x =',
          ),
          fn,
          tail: fc.constantFrom('', ' for update', ' limit 1', "; select 'x'", ' -- c'),
        })
        .map((r) => CompiledQuery.raw(`${r.head} ${r.fn}(1)${r.tail}`))
      fc.assert(
        fc.property(
          fc.array(fc.oneof(builtArb, rawArb), { minLength: 1, maxLength: 30 }),
          (queries) => {
            for (const q of queries) {
              const expected =
                q.query.kind === 'RawNode'
                  ? classifyRawSql(q.sql, opts)
                  : classifyNode(q.query, q.sql, opts)
              expect(cache.classify(q), q.sql).to.deep.equal(expected)
              expect(cache.size).to.be.at.most(8)
            }
          },
        ),
        { numRuns: 300, seed: 424242 },
      )
    })
  }
})
