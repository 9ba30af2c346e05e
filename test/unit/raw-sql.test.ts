import { expect } from 'chai'
import fc from 'fast-check'
import {
  type Classification,
  type ClassificationReason,
  type ClassifyOptions,
  READ,
  type SqlFlavor,
} from '../../src/routing/classification.js'
import {
  MYSQL_PRIMARY_FUNCTIONS,
  POSTGRES_PRIMARY_FUNCTIONS,
  primaryFunctionSet,
} from '../../src/routing/primary-functions.js'
import { classifyRawFragment, classifyRawSql, isInertRawText } from '../../src/routing/raw-sql.js'

const OPTIONS: Record<SqlFlavor, ClassifyOptions> = {
  mysql: { flavor: 'mysql', primaryFunctions: primaryFunctionSet('mysql') },
  postgres: { flavor: 'postgres', primaryFunctions: primaryFunctionSet('postgres') },
}
const FLAVORS: readonly SqlFlavor[] = ['mysql', 'postgres']

function classify(sql: string, flavor: SqlFlavor): Classification {
  return classifyRawSql(sql, OPTIONS[flavor])
}

function fragment(sql: string, flavor: SqlFlavor): Classification {
  return classifyRawFragment(sql, OPTIONS[flavor])
}

function expectRead(
  sql: string,
  flavor: SqlFlavor,
  { readsSession = false }: { readsSession?: boolean } = {},
): void {
  expect(classify(sql, flavor), `${flavor}: ${sql}`).to.deep.equal({ ...READ, readsSession })
}

function expectPrimary(
  sql: string,
  flavor: SqlFlavor,
  expected: Partial<Classification> & { reason: ClassificationReason },
): void {
  const result = classify(sql, flavor)
  expect(result.read, `${flavor}: ${sql} should not be a read`).to.equal(false)
  expect(result, `${flavor}: ${sql}`).to.include(expected)
}

describe('classifyRawSql', () => {
  for (const flavor of FLAVORS) {
    describe(`${flavor}`, () => {
      describe('reads', () => {
        it('routes a plain SELECT to a replica', () => {
          expectRead('select * from t where id = ?', flavor)
          expectRead(
            'SELECT a, b FROM t JOIN u ON u.id = t.u_id WHERE a > 1 ORDER BY b LIMIT 10',
            flavor,
          )
        })

        it('routes SHOW to a replica', () => {
          expectRead(flavor === 'mysql' ? 'SHOW TABLES' : 'SHOW search_path', flavor, {
            readsSession: flavor === 'postgres', // the session's setting
          })
        })

        it('routes DESCRIBE / DESC / EXPLAIN without ANALYZE to a replica', () => {
          expectRead('DESCRIBE t', flavor)
          expectRead('desc t', flavor)
          expectRead('EXPLAIN SELECT * FROM t', flavor)
          expectRead(
            flavor === 'mysql' ? 'EXPLAIN FORMAT=JSON SELECT 1' : 'EXPLAIN (COSTS off) SELECT 1',
            flavor,
          )
        })

        if (flavor === 'postgres') {
          it('routes EXPLAIN of a data-modifying statement without ANALYZE to a replica (a hot standby plans it)', () => {
            expectRead('EXPLAIN INSERT INTO t VALUES (1)', flavor)
            expectRead('EXPLAIN DELETE FROM t WHERE id = 1', flavor)
            expectRead('explain update t set a = 1', flavor)
            expectRead(
              'EXPLAIN (COSTS off) MERGE INTO t USING u ON t.id = u.id WHEN MATCHED THEN DELETE',
              flavor,
            )
          })
        } else {
          it('routes EXPLAIN of a data-modifying statement to the primary, changing nothing (read_only refuses it)', () => {
            for (const [sql, detail] of [
              ['EXPLAIN INSERT INTO t VALUES (1)', 'explain insert'],
              ['EXPLAIN DELETE FROM t WHERE id = 1', 'explain delete'],
              ['explain update t set a = 1', 'explain update'],
              ['EXPLAIN REPLACE INTO t VALUES (1)', 'explain replace'],
              ['DESCRIBE DELETE FROM t', 'explain delete'],
              ['EXPLAIN FORMAT=JSON UPDATE t SET a = 1', 'explain update'],
            ] as const) {
              expectPrimary(sql, flavor, {
                reason: 'write',
                effect: 'none',
                detail,
                pinsSession: false,
              })
            }
          })
        }

        it('routes WITH ... SELECT to a replica', () => {
          expectRead('WITH c AS (SELECT 1 AS a) SELECT * FROM c', flavor)
          expectRead(
            'with recursive r(n) as (select 1 union all select n + 1 from r where n < 5) select * from r',
            flavor,
          )
        })

        it('routes VALUES and TABLE statements to a replica', () => {
          expectRead(
            flavor === 'mysql' ? 'VALUES ROW(1, 2), ROW(3, 4)' : 'VALUES (1, 2), (3, 4)',
            flavor,
          )
          expectRead('TABLE t', flavor)
        })

        it('routes parenthesised selects and unions to a replica', () => {
          expectRead('(SELECT 1) UNION (SELECT 2)', flavor)
          expectRead('((select a from t)) union all (select a from u) order by 1', flavor)
        })

        it('accepts a trailing semicolon and several reads', () => {
          expectRead('select 1;', flavor)
          expectRead('select 1; select 2;;', flavor)
        })

        it('keeps function calls that are not primary-only on a replica', () => {
          expectRead('select count(*), coalesce(max(a), 0), lower(b) from t', flavor)
          expectRead("select replace(a, 'x', 'y') from t", flavor)
        })

        it('keeps a column or table named like a keyword or function on a replica', () => {
          expectRead('select t.update, t.delete, x.insert from t', flavor)
          expectRead('select nextval from t', flavor)
          expectRead('select * from t where t.lock in (1, 2)', flavor)
        })
      })

      describe('locking reads', () => {
        it('routes SELECT ... FOR UPDATE to the primary', () => {
          expectPrimary('select * from t where id = 1 for update', flavor, {
            reason: 'locking-read',
            detail: 'for update',
            pinsSession: false,
          })
        })

        it('routes SELECT ... FOR SHARE to the primary', () => {
          expectPrimary('select * from t for share', flavor, {
            reason: 'locking-read',
            detail: 'for share',
          })
        })

        it('routes FOR UPDATE SKIP LOCKED / NOWAIT to the primary', () => {
          expectPrimary('select * from jobs for update skip locked limit 1', flavor, {
            reason: 'locking-read',
          })
          expectPrimary('select * from jobs for share nowait', flavor, { reason: 'locking-read' })
        })

        it('routes a lock clause inside a subquery or CTE to the primary', () => {
          expectPrimary('select * from (select * from t for update) d', flavor, {
            reason: 'locking-read',
          })
          expectPrimary('with c as (select * from t for update) select * from c', flavor, {
            reason: 'locking-read',
          })
        })

        it('routes EXPLAIN SELECT ... FOR UPDATE to the primary (kept on the safe side)', () => {
          expectPrimary('explain select * from t for update', flavor, { reason: 'locking-read' })
        })
      })

      describe('transaction control', () => {
        it('marks BEGIN and START TRANSACTION as a pinned begin', () => {
          for (const sql of ['BEGIN', 'begin work', 'START TRANSACTION', 'start transaction;']) {
            expectPrimary(sql, flavor, {
              reason: 'transaction-control',
              transactionControl: 'begin',
              pinsSession: true,
            })
          }
        })

        it('marks START TRANSACTION READ ONLY as a read-only begin', () => {
          expectPrimary('START TRANSACTION READ ONLY', flavor, {
            reason: 'transaction-control',
            transactionControl: 'begin-read-only',
            pinsSession: true,
          })
          expectPrimary('start transaction read write', flavor, {
            transactionControl: 'begin',
            reason: 'transaction-control',
          })
        })

        it('marks COMMIT and ROLLBACK as an end', () => {
          for (const sql of ['COMMIT', 'commit work', 'ROLLBACK', 'rollback work;']) {
            expectPrimary(sql, flavor, {
              reason: 'transaction-control',
              transactionControl: 'end',
              pinsSession: false,
            })
          }
        })

        it('marks SAVEPOINT, RELEASE SAVEPOINT and ROLLBACK TO as savepoints', () => {
          for (const sql of [
            'SAVEPOINT a',
            'RELEASE SAVEPOINT a',
            'ROLLBACK TO SAVEPOINT a',
            'rollback to a',
          ]) {
            expectPrimary(sql, flavor, {
              reason: 'transaction-control',
              transactionControl: 'savepoint',
              pinsSession: false,
            })
          }
        })

        it('marks COMMIT AND CHAIN as a begin (a new transaction starts at once)', () => {
          expectPrimary('COMMIT AND CHAIN', flavor, {
            transactionControl: 'begin',
            pinsSession: true,
            reason: 'transaction-control',
          })
          expectPrimary('COMMIT AND NO CHAIN', flavor, {
            transactionControl: 'end',
            reason: 'transaction-control',
          })
        })

        it('routes SET TRANSACTION as transaction control without pinning', () => {
          expectPrimary('SET TRANSACTION ISOLATION LEVEL SERIALIZABLE', flavor, {
            reason: 'transaction-control',
            pinsSession: false,
          })
          expect(classify('SET TRANSACTION READ ONLY', flavor).transactionControl).to.equal(
            undefined,
          )
        })

        it('reports the last begin or end of several statements', () => {
          expectPrimary('BEGIN; INSERT INTO t VALUES (1); COMMIT', flavor, {
            reason: 'write', // the weightier reason
            effect: 'insert',
            transactionControl: 'end',
            pinsSession: true,
          })
          expectPrimary('COMMIT; BEGIN', flavor, {
            transactionControl: 'begin',
            reason: 'transaction-control',
          })
        })
      })

      describe('writes', () => {
        it('routes INSERT and REPLACE to the primary and pins the session', () => {
          expectPrimary('INSERT INTO t (a) VALUES (1)', flavor, {
            reason: 'write',
            detail: 'insert',
            pinsSession: true,
          })
          if (flavor === 'mysql') {
            expectPrimary('REPLACE INTO t VALUES (1)', flavor, {
              reason: 'write',
              pinsSession: true,
            })
          }
        })

        it('routes UPDATE, DELETE and MERGE to the primary without pinning', () => {
          for (const [sql, detail] of [
            ['UPDATE t SET a = 1', 'update'],
            ['delete from t where id = 1', 'delete'],
            ['MERGE INTO t USING u ON t.id = u.id WHEN MATCHED THEN DELETE', 'merge'],
          ] as const) {
            expectPrimary(sql, flavor, { reason: 'write', detail, pinsSession: false })
          }
        })

        it('routes DDL to the primary', () => {
          for (const sql of [
            'CREATE TABLE t (a int)',
            'ALTER TABLE t ADD COLUMN b int',
            'DROP TABLE t',
            'TRUNCATE t',
            'CREATE INDEX i ON t (a)',
            'GRANT SELECT ON t TO u',
            'RENAME TABLE a TO b',
          ]) {
            expectPrimary(sql, flavor, { reason: 'write', pinsSession: false })
          }
        })

        it('pins the session for temporary tables', () => {
          expectPrimary('CREATE TEMPORARY TABLE tmp (a int)', flavor, {
            reason: 'write',
            detail: 'create temporary',
            pinsSession: true,
          })
          if (flavor === 'postgres') {
            expectPrimary('create temp table tmp as select 1', flavor, {
              pinsSession: true,
              reason: 'write',
            })
            expectPrimary('CREATE LOCAL TEMP TABLE tmp (a int)', flavor, {
              pinsSession: true,
              reason: 'write',
            })
          } else {
            expectPrimary('DROP TEMPORARY TABLE tmp', flavor, {
              pinsSession: true,
              reason: 'write',
            })
          }
          expectPrimary('CREATE TABLE temp (a int)', flavor, {
            pinsSession: false,
            reason: 'write',
          })
        })

        it('routes maintenance statements to the primary', () => {
          const statements =
            flavor === 'mysql'
              ? [
                  'ANALYZE TABLE t',
                  'OPTIMIZE TABLE t',
                  'FLUSH TABLES',
                  'KILL 42',
                  "LOAD DATA INFILE 'f' INTO TABLE t",
                ]
              : [
                  'VACUUM t',
                  'ANALYZE t',
                  'CLUSTER t',
                  'REINDEX TABLE t',
                  'REFRESH MATERIALIZED VIEW v',
                  "COMMENT ON TABLE t IS 'x'",
                ]
          for (const sql of statements) expectPrimary(sql, flavor, { reason: 'write' })
        })

        it('routes DO and CALL to the primary and pins the session', () => {
          expectPrimary('CALL p(1)', flavor, { reason: 'write', pinsSession: true })
          expectPrimary(
            flavor === 'mysql' ? "DO GET_LOCK('a', 1)" : 'DO $$ BEGIN PERFORM 1; END $$',
            flavor,
            {
              reason: 'write',
              pinsSession: true,
            },
          )
        })
      })

      describe('session state', () => {
        it('routes SET to the primary and pins the session', () => {
          expectPrimary(flavor === 'mysql' ? 'SET @x = 1' : "SET search_path = 'app'", flavor, {
            reason: 'session-state',
            detail: 'set',
            pinsSession: true,
          })
          expectPrimary('SET SESSION statement_timeout = 5', flavor, {
            reason: 'session-state',
            pinsSession: true,
          })
        })

        it('pins the session for prepared statements, cursors, locks and the like', () => {
          const statements =
            flavor === 'mysql'
              ? [
                  'USE app',
                  "PREPARE s FROM 'select 1'",
                  'EXECUTE s USING @a',
                  'DEALLOCATE PREPARE s',
                  'DROP PREPARE s',
                  'LOCK TABLES t WRITE',
                  'UNLOCK TABLES',
                  'HANDLER t OPEN',
                  'RESET QUERY CACHE',
                ]
              : [
                  'PREPARE p AS SELECT 1',
                  'EXECUTE p(1)',
                  'DEALLOCATE p',
                  'LOCK TABLE t IN ACCESS EXCLUSIVE MODE',
                  'LISTEN ch',
                  'UNLISTEN *',
                  'DECLARE c CURSOR FOR SELECT * FROM t',
                  'FETCH 10 FROM c',
                  'CLOSE c',
                  'RESET ALL',
                  'DISCARD ALL',
                ]
          for (const sql of statements) {
            expectPrimary(sql, flavor, { reason: 'session-state', pinsSession: true })
          }
        })
      })

      describe('primary-only functions', () => {
        it('routes a call to a lock function to the primary and pins the session', () => {
          const sql =
            flavor === 'mysql' ? "SELECT GET_LOCK('job', 10)" : 'select pg_advisory_lock(42)'
          expectPrimary(sql, flavor, {
            reason: 'primary-function',
            detail: flavor === 'mysql' ? 'get_lock' : 'pg_advisory_lock',
            pinsSession: true,
          })
        })

        it('matches function names case-insensitively, schema-qualified and with space before (', () => {
          const name = flavor === 'mysql' ? 'Release_Lock' : 'pg_catalog.set_config'
          expectPrimary(`select ${name} ('a', 'b', false)`, flavor, { reason: 'primary-function' })
          expectPrimary(`select ${name}/* c */('a')`, flavor, { reason: 'primary-function' })
        })

        it('matches quoted function names', () => {
          const sql =
            flavor === 'mysql' ? 'select `get_lock`(1, 2)' : `select "pg_catalog"."nextval"('s')`
          expectPrimary(sql, flavor, { reason: 'primary-function' })
        })

        it('routes a primary-only function in a WHERE clause or subquery to the primary', () => {
          const fn = flavor === 'mysql' ? 'last_insert_id()' : "currval('s')"
          expectPrimary(`select * from t where id = ${fn}`, flavor, {
            reason: 'primary-function',
            pinsSession: true,
          })
          expectPrimary(`select * from t where id in (select ${fn})`, flavor, {
            reason: 'primary-function',
          })
        })

        it('pins the session for a primary-only function inside a write', () => {
          const sql =
            flavor === 'mysql'
              ? 'UPDATE t SET id = LAST_INSERT_ID(id + 1)'
              : "UPDATE t SET v = set_config('a.b', '1', false)"
          expectPrimary(sql, flavor, { reason: 'write', pinsSession: true })
        })

        it('uses user-added functions without pinning', () => {
          const options = { flavor, primaryFunctions: primaryFunctionSet(flavor, ['Audit.Touch']) }
          expect(classifyRawSql('select touch(1)', options)).to.deep.equal({
            read: false,
            reason: 'primary-function',
            effect: 'write',
            pinsSession: false,
            readsSession: false,
            detail: 'touch',
          })
          expect(classifyRawSql('select touch(1)', OPTIONS[flavor]).read).to.equal(true)
        })
      })

      describe('data-modifying statements inside reads', () => {
        it('routes a data-modifying CTE to the primary', () => {
          expectPrimary(
            'WITH x AS (INSERT INTO t VALUES (1) RETURNING *) SELECT * FROM x',
            flavor,
            {
              reason: 'write',
              effect: 'insert',
              detail: 'insert in a subquery',
              pinsSession: true,
            },
          )
          expectPrimary('with d as (delete from t returning id) select count(*) from d', flavor, {
            reason: 'write',
            effect: 'delete',
            detail: 'delete in a subquery',
          })
        })

        it('routes WITH ... followed by a data-modifying statement to the primary', () => {
          expectPrimary(
            'WITH c AS (SELECT 1 AS id) DELETE FROM t WHERE id IN (SELECT id FROM c)',
            flavor,
            {
              reason: 'write',
              effect: 'delete',
              detail: 'delete',
            },
          )
          expectPrimary('with c as (select 1) update t set a = 1', flavor, {
            reason: 'write',
            effect: 'update',
            detail: 'update',
          })
        })

        it('routes a data-modifying statement in parentheses to the primary', () => {
          expectPrimary('select * from (delete from t returning *) d', flavor, { reason: 'write' })
          expectPrimary('(UPDATE t SET a = 1)', flavor, { reason: 'write' })
        })
      })

      describe('multiple statements', () => {
        it('routes select-looking multi statements with a write to the primary', () => {
          expectPrimary('select 1; delete from t', flavor, { reason: 'write', detail: 'delete' })
          expectPrimary('select 1;\nselect 2;\ninsert into t values (1);', flavor, {
            reason: 'write',
            pinsSession: true,
          })
        })

        it('keeps the weightiest reason and adds up session pinning', () => {
          const set = flavor === 'mysql' ? 'set @a = 1' : 'set search_path = x'
          for (const sql of [`delete from t; ${set}`, `${set}; delete from t`]) {
            expectPrimary(sql, flavor, {
              reason: 'write',
              effect: 'delete',
              detail: 'delete',
              pinsSession: true,
            })
          }
        })
      })

      describe('comments, strings and quoted identifiers', () => {
        it('ignores keywords inside string literals', () => {
          expectRead("select 'for update'", flavor)
          expectRead(
            "select 'x' from t where a = 'insert into t; delete from t' and b = 'it''s'",
            flavor,
          )
          expectRead("select 'nextval(1)', 'lock in share mode', 'x := 1', 'into @v'", flavor)
        })

        it('ignores keywords inside block and line comments', () => {
          expectRead('select /* delete */ 1', flavor)
          expectRead('-- for update\nselect 1', flavor)
          expectRead('select 1 -- for update', flavor)
          expectRead('/* insert */ select /* nextval( */ 1 /* for update */', flavor)
        })

        it('ignores keywords inside quoted identifiers', () => {
          const q = flavor === 'mysql' ? '`' : '"'
          expectRead(`select ${q}for update${q}, ${q}insert${q} from ${q}delete${q}`, flavor)
        })

        it('treats a /*+ hint */ as a comment', () => {
          expectRead('select /*+ MAX_EXECUTION_TIME(1000) for update */ * from t', flavor)
        })

        it('leaves unterminated strings, comments and quoted identifiers unclassified', () => {
          const unclassified = {
            read: false,
            reason: 'unclassified',
            effect: 'unknown',
            pinsSession: true,
            readsSession: true,
          }
          for (const sql of ["select 'abc", 'select /* x', 'select "abc', "select 'it''s"]) {
            expect(classify(sql, flavor), sql).to.deep.equal(unclassified)
          }
        })
      })

      describe('unclassified text', () => {
        it('routes empty and comment-only text to the primary, unclassified and pinning', () => {
          for (const sql of ['', '   ', '\n\t', '-- nothing', '/* nothing */', ';', ' ; ; ']) {
            expect(classify(sql, flavor), JSON.stringify(sql)).to.deep.equal({
              read: false,
              reason: 'unclassified',
              effect: 'unknown',
              pinsSession: true,
              readsSession: true,
            })
          }
        })

        it('routes an unknown statement to the primary, unclassified and pinning', () => {
          expectPrimary('FROBNICATE t', flavor, {
            reason: 'unclassified',
            pinsSession: true,
            detail: 'frobnicate',
          })
          expectPrimary("'select'", flavor, { reason: 'unclassified', pinsSession: true })
        })
      })
    })
  }

  describe('mysql specifics', () => {
    it('routes SELECT ... LOCK IN SHARE MODE to the primary', () => {
      expectPrimary('select * from t where id = 1 lock in share mode', 'mysql', {
        reason: 'locking-read',
        detail: 'lock in share mode',
      })
    })

    it('routes SELECT LAST_INSERT_ID() and @@identity to the primary and pins the session', () => {
      for (const sql of [
        'SELECT LAST_INSERT_ID()',
        'select last_insert_id ()',
        'select @@identity',
        'select @@session.last_insert_id',
      ]) {
        expectPrimary(sql, 'mysql', {
          reason: 'primary-function',
          detail: 'last_insert_id',
          pinsSession: true,
        })
      }
    })

    it('routes ROW_COUNT(), FOUND_ROWS() and SQL_CALC_FOUND_ROWS to the primary', () => {
      expectPrimary('select row_count()', 'mysql', {
        reason: 'primary-function',
        pinsSession: true,
      })
      expectPrimary('select found_rows()', 'mysql', {
        reason: 'primary-function',
        pinsSession: true,
      })
      expectPrimary('select sql_calc_found_rows * from t limit 10', 'mysql', {
        reason: 'session-state',
        pinsSession: true,
      })
    })

    it('routes IS_FREE_LOCK() to the primary without pinning', () => {
      expectPrimary("select is_free_lock('a')", 'mysql', {
        reason: 'primary-function',
        pinsSession: false,
      })
    })

    it('routes MariaDB NEXT VALUE FOR / PREVIOUS VALUE FOR to the primary', () => {
      expectPrimary('select next value for s', 'mysql', {
        reason: 'primary-function',
        detail: 'nextval',
      })
      expectPrimary('SELECT PREVIOUS VALUE FOR s', 'mysql', {
        reason: 'primary-function',
        detail: 'lastval',
      })
    })

    it('keeps MASTER_GTID_WAIT() on a replica', () => {
      expectRead("select master_gtid_wait('0-1-100', 1)", 'mysql')
    })

    it('keeps the INSERT() and REPLACE() string functions on a replica', () => {
      expectRead("select insert('abcd', 2, 1, 'x'), replace(a, 'b', 'c') from t", 'mysql')
    })

    it('routes SELECT ... INTO @var / OUTFILE / DUMPFILE to the primary', () => {
      expectPrimary('select a into @v from t', 'mysql', {
        reason: 'write',
        detail: 'into @var',
        pinsSession: true,
      })
      expectPrimary('select a from t into @v', 'mysql', { reason: 'write', detail: 'into @var' })
      expectPrimary("select * from t into outfile '/tmp/x'", 'mysql', {
        reason: 'write',
        detail: 'into outfile',
      })
      expectPrimary("select 1 into dumpfile '/tmp/x'", 'mysql', {
        reason: 'write',
        detail: 'into dumpfile',
      })
    })

    it('routes a user-variable assignment := to the primary and pins the session', () => {
      expectPrimary('select @x := max(id) from t', 'mysql', {
        reason: 'session-state',
        detail: ':=',
        pinsSession: true,
      })
      expectPrimary('select @x:=1', 'mysql', { reason: 'session-state', pinsSession: true })
    })

    it('treats /*! ... */ executable comment content as SQL', () => {
      expectPrimary('select * from t /*! for update */', 'mysql', { reason: 'locking-read' })
      expectPrimary('select * from t /*!50001 for update */', 'mysql', { reason: 'locking-read' })
      expectPrimary('select * from t /*M!100100 lock in share mode */', 'mysql', {
        reason: 'locking-read',
      })
      expectPrimary('/*!40101 SET NAMES utf8mb4 */', 'mysql', {
        reason: 'session-state',
        pinsSession: true,
      })
      expectRead('/*!40000 select 1 */', 'mysql')
    })

    it('leaves an unterminated /*! comment unclassified', () => {
      expectPrimary('select 1 /*! for update', 'mysql', { reason: 'unclassified' })
    })

    it('reads # as a line comment and -- only when followed by a space', () => {
      expectRead('select 1 # for update', 'mysql')
      expectRead('# for update\nselect 1', 'mysql')
      expectPrimary('select 1--1 for update', 'mysql', { reason: 'locking-read' })
    })

    it('does not nest block comments', () => {
      expectPrimary('select 1 /* a /* b */ for update */', 'mysql', { reason: 'locking-read' })
    })

    it('reads backslash escapes and double-quoted strings', () => {
      expectRead('select \'it\\\'s\', "say \\"for update\\"" from t', 'mysql')
      expectRead("select * from t where name = 'O\\'Brien' and note = 'a\\\\'", 'mysql')
    })

    it('routes text whose string would end differently under NO_BACKSLASH_ESCAPES to the primary', () => {
      // With NO_BACKSLASH_ESCAPES the string is 'a\' and FOR UPDATE is live.
      expectPrimary("select 'a\\' for update -- '", 'mysql', { reason: 'locking-read' })
      expectPrimary("select 'a\\'; delete from t; -- '", 'mysql', { reason: 'write' })
    })

    it('routes EXPLAIN ANALYZE of a write to the primary and keeps it of a read on a replica', () => {
      expectRead('EXPLAIN ANALYZE SELECT * FROM t', 'mysql')
      expectRead('explain format=tree analyze select 1', 'mysql')
      expectPrimary('EXPLAIN ANALYZE UPDATE t SET a = 1', 'mysql', {
        reason: 'write',
        detail: 'update',
      })
    })

    it('routes MariaDB ANALYZE <statement> like EXPLAIN ANALYZE', () => {
      expectRead('ANALYZE SELECT * FROM t', 'mysql')
      expectPrimary('ANALYZE DELETE FROM t', 'mysql', { reason: 'write', detail: 'delete' })
    })

    it('routes EXPLAIN FOR CONNECTION and SHOW WARNINGS / MASTER STATUS to the primary', () => {
      expectPrimary('EXPLAIN FOR CONNECTION 12', 'mysql', { reason: 'unclassified' })
      expectPrimary('SHOW WARNINGS', 'mysql', { reason: 'session-state', pinsSession: false })
      expectPrimary('SHOW COUNT(*) ERRORS', 'mysql', { reason: 'session-state' })
      expectPrimary('SHOW MASTER STATUS', 'mysql', { reason: 'primary-function' })
      expectPrimary('SHOW BINARY LOG STATUS', 'mysql', { reason: 'primary-function' })
      expectRead('SHOW REPLICA STATUS', 'mysql')
    })

    it('routes XA transactions as transaction control', () => {
      expectPrimary("XA START 'x'", 'mysql', {
        transactionControl: 'begin',
        pinsSession: true,
        reason: 'transaction-control',
      })
      expectPrimary("XA COMMIT 'x'", 'mysql', {
        transactionControl: 'end',
        reason: 'transaction-control',
      })
    })

    it('keeps a routine body with semicolons in one CREATE statement', () => {
      const result = classify(
        'CREATE PROCEDURE p() BEGIN START TRANSACTION; SELECT 1; COMMIT; END',
        'mysql',
      )
      expect(result).to.deep.equal({
        read: false,
        reason: 'write',
        effect: 'ddl',
        pinsSession: true,
        readsSession: false,
        detail: 'create',
      })
    })

    it('does not treat BEGIN READ ONLY as read-only (not MySQL syntax)', () => {
      expectPrimary('BEGIN', 'mysql', {
        transactionControl: 'begin',
        reason: 'transaction-control',
      })
      expect(classify('BEGIN READ ONLY', 'mysql').transactionControl).to.equal('begin')
    })

    it('does not treat END as transaction control', () => {
      expectPrimary('END', 'mysql', { reason: 'unclassified' })
    })
  })

  describe('postgres specifics', () => {
    it('routes FOR NO KEY UPDATE and FOR KEY SHARE to the primary', () => {
      expectPrimary('select * from t for no key update', 'postgres', {
        reason: 'locking-read',
        detail: 'for no key update',
      })
      expectPrimary('select * from t for key share of t', 'postgres', {
        reason: 'locking-read',
        detail: 'for key share',
      })
    })

    it("routes select nextval('s') and the sequence functions to the primary and pins", () => {
      for (const fn of ["nextval('s')", "setval('s', 1)", "currval('s')", 'lastval()']) {
        expectPrimary(`select ${fn}`, 'postgres', { reason: 'primary-function', pinsSession: true })
      }
    })

    it('routes the advisory-lock family to the primary and pins', () => {
      for (const fn of [
        'pg_try_advisory_lock(1)',
        'pg_advisory_xact_lock_shared(1)',
        'pg_advisory_unlock_all()',
      ]) {
        expectPrimary(`select ${fn}`, 'postgres', { reason: 'primary-function', pinsSession: true })
      }
    })

    it('routes txid_current(), pg_notify() and lo_* writes to the primary without pinning', () => {
      for (const fn of [
        'txid_current()',
        'pg_current_xact_id()',
        "pg_notify('c', 'x')",
        "lo_import('/tmp/f')",
        'lo_unlink(1)',
      ]) {
        expectPrimary(`select ${fn}`, 'postgres', {
          reason: 'primary-function',
          pinsSession: false,
        })
      }
    })

    it('routes SELECT ... INTO new_table to the primary', () => {
      expectPrimary('select * into new_t from t', 'postgres', {
        reason: 'write',
        detail: 'into',
        pinsSession: false,
      })
      expectPrimary('SELECT a INTO TEMP tmp FROM t', 'postgres', {
        reason: 'write',
        pinsSession: true,
      })
    })

    it('reads := as a named argument, not an assignment', () => {
      expectRead('select f(a := 1)', 'postgres')
    })

    it('routes COPY ... TO STDOUT to a replica and COPY ... FROM to the primary', () => {
      expectRead('COPY (SELECT a FROM t WHERE b FROM x) TO STDOUT', 'postgres')
      expectRead('copy t (a, b) to stdout with (format csv)', 'postgres')
      expectPrimary('COPY t FROM STDIN', 'postgres', { reason: 'write', detail: 'copy from' })
      expectPrimary("COPY t TO '/tmp/file'", 'postgres', { reason: 'write', detail: 'copy to' })
      expectPrimary("COPY t TO PROGRAM 'gzip'", 'postgres', { reason: 'write' })
      expectPrimary('COPY (DELETE FROM t RETURNING *) TO STDOUT', 'postgres', { reason: 'write' })
    })

    it('routes EXPLAIN ANALYZE of a write to the primary', () => {
      expectPrimary('EXPLAIN ANALYZE INSERT INTO t VALUES (1)', 'postgres', {
        reason: 'write',
        detail: 'insert',
        pinsSession: true,
      })
      expectPrimary('EXPLAIN (ANALYZE, BUFFERS) DELETE FROM t', 'postgres', { reason: 'write' })
      expectPrimary('explain (analyze true, format json) update t set a = 1', 'postgres', {
        reason: 'write',
      })
      expectPrimary(
        'EXPLAIN ANALYSE VERBOSE MERGE INTO t USING u ON true WHEN MATCHED THEN DELETE',
        'postgres',
        {
          reason: 'write',
        },
      )
    })

    it('keeps EXPLAIN ANALYZE of a read on a replica', () => {
      expectRead('EXPLAIN ANALYZE SELECT * FROM t', 'postgres')
      expectRead('explain (analyze, buffers) select 1', 'postgres')
    })

    it('routes EXPLAIN EXECUTE to the session that prepared the statement', () => {
      expectPrimary('EXPLAIN EXECUTE p(1)', 'postgres', {
        reason: 'session-state',
        pinsSession: true,
      })
    })

    it('marks BEGIN READ ONLY and BEGIN TRANSACTION READ ONLY as read-only begins', () => {
      for (const sql of [
        'BEGIN READ ONLY',
        'BEGIN TRANSACTION READ ONLY',
        'begin isolation level repeatable read, read only',
      ]) {
        expectPrimary(sql, 'postgres', {
          reason: 'transaction-control',
          transactionControl: 'begin-read-only',
          pinsSession: true,
        })
      }
      expectPrimary('BEGIN ISOLATION LEVEL READ COMMITTED', 'postgres', {
        transactionControl: 'begin',
        reason: 'transaction-control',
      })
    })

    it('marks END and ABORT as an end', () => {
      expectPrimary('END', 'postgres', { transactionControl: 'end', reason: 'transaction-control' })
      expectPrimary('abort', 'postgres', {
        transactionControl: 'end',
        reason: 'transaction-control',
      })
    })

    it('marks PREPARE TRANSACTION as an end and COMMIT PREPARED as neither', () => {
      expectPrimary("PREPARE TRANSACTION 'x'", 'postgres', {
        transactionControl: 'end',
        reason: 'transaction-control',
      })
      const result = classify("COMMIT PREPARED 'x'", 'postgres')
      expect(result).to.include({ read: false, reason: 'transaction-control' })
      expect(result.transactionControl).to.equal(undefined)
    })

    it('routes NOTIFY to the primary without pinning', () => {
      expectPrimary("NOTIFY ch, 'x'", 'postgres', { reason: 'write', pinsSession: false })
    })

    it('ignores keywords inside dollar-quoted bodies', () => {
      expectRead('select $$ for update $$', 'postgres')
      expectRead("select $body$ insert into t; select nextval('s') $$ $body$ as x", 'postgres')
      expectRead('select $a$x$a$, $b$ for update $b$', 'postgres')
    })

    it('reads $1 as a parameter and $ inside identifiers as part of them', () => {
      expectRead('select * from t where a = $1 and b = $2', 'postgres')
      expectRead('select a$b$c from t', 'postgres')
    })

    it('leaves an unterminated dollar quote unclassified', () => {
      expectPrimary('select $x$ abc', 'postgres', { reason: 'unclassified' })
    })

    it('reads E-strings with backslash escapes', () => {
      expectRead("select E'it\\'s for update'", 'postgres')
      expectRead("select e'\\\\' from t", 'postgres')
    })

    it('ignores keywords inside double-quoted identifiers (select "insert" from t)', () => {
      expectRead('select "insert" from t', 'postgres')
      expectRead('select "a""for update" from t', 'postgres')
    })

    it('nests block comments', () => {
      expectRead('select 1 /* a /* b */ for update */', 'postgres')
      expectPrimary('select 1 /* a /* b */ c', 'postgres', { reason: 'unclassified' })
    })

    it('treats /*! ... */ and # as ordinary SQL (comment, operator)', () => {
      expectRead('select * from t /*! for update */', 'postgres')
      expectRead('select 5 # 3', 'postgres')
    })

    it('reads -- as a line comment even without a following space', () => {
      expectRead('select 1--1 for update', 'postgres')
      expectPrimary('select 1 -- x\rfor update', 'postgres', { reason: 'locking-read' })
    })

    it('routes text whose string would end differently with standard_conforming_strings off to the primary', () => {
      // With backslash escapes the string is 'a\'' ... and FOR UPDATE is live.
      expectPrimary("select 'a\\'' for update --'", 'postgres', { reason: 'locking-read' })
      expectRead("select 'C:\\path\\' from t", 'postgres')
    })

    it('keeps a SQL-standard function body with semicolons in one CREATE statement', () => {
      const result = classify(
        'CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; COMMIT; END',
        'postgres',
      )
      expect(result).to.deep.equal({
        read: false,
        reason: 'write',
        effect: 'ddl',
        pinsSession: true,
        readsSession: false,
        detail: 'create',
      })
    })
  })
})

describe('classifyRawSql: reads of the session (readsSession)', () => {
  const reads = (sql: string, flavor: SqlFlavor) => classify(sql, flavor).readsSession

  it('marks user variables and session variables, not global ones (mysql)', () => {
    for (const sql of [
      'select @x',
      "select @'quoted x'",
      'select @x + 1 from t',
      'select @@warning_count',
      'select @@error_count',
      'select @@last_gtid',
      'select @@session.sql_mode',
      'select @@local.time_zone',
      'select @@insert_id',
    ]) {
      expect(reads(sql, 'mysql'), sql).to.equal(true)
      expect(classify(sql, 'mysql').read, sql).to.equal(true)
    }
    for (const sql of [
      'select @@global.max_connections',
      'select @@version',
      'select * from t where a @ b',
      "select 'a@b' from t",
      'select `@x` from t',
    ]) {
      expect(reads(sql, 'mysql'), sql).to.equal(false)
    }
  })

  it('keeps @@identity and @@session.last_insert_id as LAST_INSERT_ID(), reading the session', () => {
    for (const sql of ['select @@identity', 'select @@session.last_insert_id']) {
      expectPrimary(sql, 'mysql', {
        reason: 'primary-function',
        detail: 'last_insert_id',
        pinsSession: true,
        readsSession: true,
      })
    }
    // A column after a dot is only a name.
    expectRead('select t.identity, t.last_insert_id from t', 'mysql')
  })

  it('marks the functions of the previous statement, the sequence values and the session identity', () => {
    for (const [sql, read] of [
      ['select row_count()', false],
      ['select found_rows()', false],
      ['select last_insert_id()', false],
      ['select connection_id()', true],
    ] as const) {
      expect(classify(sql, 'mysql'), sql).to.include({ read, readsSession: true })
    }
    for (const [sql, read] of [
      ["select currval('s')", false],
      ['select lastval()', false],
      ["select current_setting('search_path')", true],
      ['select pg_backend_pid()', true],
      ['show search_path', true],
    ] as const) {
      expect(classify(sql, 'postgres'), sql).to.include({ read, readsSession: true })
    }
    expect(reads("select nextval('s')", 'postgres')).to.equal(false)
  })

  it('marks SHOW WARNINGS / ERRORS / COUNT(*) WARNINGS and the session status (mysql)', () => {
    for (const sql of [
      'SHOW WARNINGS',
      'show errors',
      'SHOW COUNT(*) WARNINGS',
      'show count(*) errors',
    ]) {
      expect(classify(sql, 'mysql'), sql).to.include({
        read: false,
        reason: 'session-state',
        readsSession: true,
        pinsSession: false,
      })
    }
    for (const sql of ['SHOW STATUS', 'show session variables', 'SHOW LOCAL STATUS']) {
      expect(classify(sql, 'mysql'), sql).to.include({ read: true, readsSession: true })
    }
    for (const sql of ['SHOW GLOBAL STATUS', 'SHOW TABLES']) {
      expect(classify(sql, 'mysql'), sql).to.include({ read: true, readsSession: false })
    }
  })

  it('finds session reads in writes too, and leaves them out of comments and strings', () => {
    expect(reads('update t set a = @x', 'mysql')).to.equal(true)
    expect(reads("select '@x', 'row_count()' from t -- @x", 'mysql')).to.equal(false)
  })
})

describe('classifyRawSql: one rule for the reason', () => {
  it('reports the weightiest reason wherever it stands in the text', () => {
    for (const flavor of FLAVORS) {
      expectPrimary('select * from (delete from t returning *) d for update', flavor, {
        reason: 'write',
      })
      expectPrimary('select * from t for update; delete from t', flavor, { reason: 'write' })
      const lock = flavor === 'mysql' ? 'get_lock' : 'pg_advisory_lock'
      expectPrimary(`select ${lock}(1) from t for update`, flavor, {
        reason: 'primary-function',
        detail: lock,
      })
      expectPrimary(`select * from t for update, ${lock}(1)`, flavor, {
        reason: 'primary-function',
      })
    }
  })
})

describe('isInertRawText', () => {
  it('accepts fragments that cannot change a classification', () => {
    for (const text of [
      'desc',
      'asc',
      'nulls first',
      'btree',
      'true',
      'count(*)',
      'a.b + 1 > 2',
      '',
    ]) {
      expect(isInertRawText(text, OPTIONS.mysql), text).to.equal(true)
    }
  })

  it('refuses keywords of the rules, function names that matter, and punctuation that hides text', () => {
    for (const text of [
      'in',
      'for',
      'Update',
      'share',
      'lock',
      'into',
      'delete',
      'get_lock(1)',
      'row_count',
      'connection_id()',
      "'x'",
      '-- c',
      '/* c */',
      '@x',
      ':=',
      'a; b',
      '$1',
      'x\u00e9',
    ]) {
      expect(isInertRawText(text, OPTIONS.mysql), text).to.equal(false)
    }
    const withBump = {
      flavor: 'mysql' as const,
      primaryFunctions: primaryFunctionSet('mysql', ['app_bump']),
    }
    expect(isInertRawText('app_bump', withBump)).to.equal(false)
    expect(isInertRawText('app_bump', OPTIONS.mysql)).to.equal(true)
  })
})

describe('classifyRawSql on pathological input', () => {
  it('scans in linear time (no rescans of comments, strings or lines)', () => {
    const n = 500_000
    const texts: [string, SqlFlavor][] = [
      [`select ${'/*'.repeat(n)}${'*/'.repeat(n)}`, 'postgres'],
      [`select '${'\\a'.repeat(n)}'`, 'mysql'],
      [`select '${'\\a'.repeat(n)}'`, 'postgres'],
      [`${'-- x\r'.repeat(n)}select 1`, 'postgres'],
      [`${'explain analyze '.repeat(n / 10)}select 1`, 'postgres'],
      [`select ${'('.repeat(n)}${')'.repeat(n)}`, 'mysql'],
    ]
    for (const [sql, flavor] of texts) {
      const started = Date.now()
      expectWellFormed(classify(sql, flavor))
      // Rescanning makes each of these take minutes; one pass takes milliseconds.
      expect(Date.now() - started, sql.slice(0, 20)).to.be.below(3_000)
    }
  })
})

describe('classifyRawFragment', () => {
  for (const flavor of FLAVORS) {
    describe(`${flavor}`, () => {
      it('reads a plain expression, condition or empty fragment', () => {
        for (const sql of [
          'count(*)',
          'a = ? and b in (1, 2)',
          "lower(name) like 'x%'",
          '',
          '/* c */',
        ]) {
          expect(fragment(sql, flavor), sql).to.deep.equal(READ)
        }
      })

      it('routes a lock-clause modifier to the primary', () => {
        expect(fragment('for update', flavor)).to.include({ read: false, reason: 'locking-read' })
        expect(fragment('FOR SHARE SKIP LOCKED', flavor)).to.include({
          read: false,
          reason: 'locking-read',
        })
      })

      it('routes a primary-only function call to the primary', () => {
        const fn = flavor === 'mysql' ? 'last_insert_id()' : "nextval('s')"
        expect(fragment(fn, flavor)).to.include({
          read: false,
          reason: 'primary-function',
          pinsSession: true,
        })
      })

      it('routes a data-modifying statement in parentheses to the primary', () => {
        expect(fragment('(delete from t returning id)', flavor)).to.include({
          read: false,
          reason: 'write',
        })
        expect(fragment('exists (insert into t values (1) returning 1)', flavor)).to.include({
          read: false,
          reason: 'write',
        })
      })

      it('routes text after a semicolon as whole statements', () => {
        expect(fragment('1; delete from t', flavor)).to.include({ read: false, reason: 'write' })
        expect(fragment('1; select 2', flavor).read).to.equal(true)
      })

      it('leaves an unterminated string or comment unclassified', () => {
        expect(fragment("'abc", flavor)).to.include({
          read: false,
          reason: 'unclassified',
          pinsSession: true,
        })
        expect(fragment('/* abc', flavor)).to.include({ read: false, reason: 'unclassified' })
      })

      it('ignores keywords in strings and comments', () => {
        expect(fragment("'for update' /* delete */", flavor).read).to.equal(true)
      })
    })
  }

  it('routes lock in share mode, INTO and := on mysql to the primary', () => {
    expect(fragment('lock in share mode', 'mysql')).to.include({
      read: false,
      reason: 'locking-read',
    })
    expect(fragment('into @x', 'mysql')).to.include({
      read: false,
      reason: 'write',
      pinsSession: true,
    })
    expect(fragment("into outfile '/tmp/x'", 'mysql')).to.include({ read: false, reason: 'write' })
    expect(fragment('@x := 1', 'mysql')).to.include({
      read: false,
      reason: 'session-state',
      pinsSession: true,
    })
    expect(fragment("replace(a, 'b', 'c')", 'mysql').read).to.equal(true)
  })
})

describe('primary function sets', () => {
  it('lists the documented MySQL defaults and leaves the replica-side waits out', () => {
    for (const name of [
      'get_lock',
      'release_lock',
      'release_all_locks',
      'is_used_lock',
      'is_free_lock',
      'last_insert_id',
      'nextval',
      'setval',
      'lastval',
      'row_count',
      'found_rows',
    ]) {
      expect(MYSQL_PRIMARY_FUNCTIONS.has(name), name).to.equal(true)
    }
    for (const name of ['master_gtid_wait', 'master_pos_wait', 'sleep', 'uuid_short']) {
      expect(MYSQL_PRIMARY_FUNCTIONS.has(name), name).to.equal(false)
    }
  })

  it('lists the documented PostgreSQL defaults', () => {
    for (const name of [
      'nextval',
      'setval',
      'currval',
      'lastval',
      'pg_advisory_lock',
      'pg_advisory_lock_shared',
      'pg_try_advisory_lock',
      'pg_try_advisory_lock_shared',
      'pg_advisory_xact_lock',
      'pg_advisory_xact_lock_shared',
      'pg_try_advisory_xact_lock',
      'pg_try_advisory_xact_lock_shared',
      'pg_advisory_unlock',
      'pg_advisory_unlock_shared',
      'pg_advisory_unlock_all',
      'txid_current',
      'pg_current_xact_id',
      'set_config',
      'pg_notify',
      'lo_create',
      'lo_import',
      'lo_unlink',
      'pg_create_restore_point',
    ]) {
      expect(POSTGRES_PRIMARY_FUNCTIONS.has(name), name).to.equal(true)
    }
    expect(POSTGRES_PRIMARY_FUNCTIONS.has('pg_last_wal_replay_lsn')).to.equal(false)
  })

  it('adds user functions lower-cased, without schema or quotes', () => {
    const set = primaryFunctionSet('postgres', ['My_Func', 'audit.Write_Log', '"Quoted"', '  '])
    for (const name of ['my_func', 'write_log', 'quoted', 'nextval'])
      expect(set.has(name), name).to.equal(true)
    expect(set.size).to.equal(POSTGRES_PRIMARY_FUNCTIONS.size + 3)
    expect(primaryFunctionSet('mysql')).to.equal(MYSQL_PRIMARY_FUNCTIONS)
  })
})

// ------------------------------------------------------------------------------------------------
// Properties

const LOCK_CLAUSES: Record<SqlFlavor, readonly string[]> = {
  mysql: [
    'for update',
    'for share',
    'lock in share mode',
    'for update nowait',
    'for update skip locked',
    'for share of t',
  ],
  postgres: [
    'for update',
    'for share',
    'for no key update',
    'for key share',
    'for update of t nowait',
    'for share skip locked',
  ],
}

const DML: Record<SqlFlavor, readonly string[]> = {
  mysql: [
    'insert into t values (1)',
    'delete from t',
    'update t set a = 1',
    'replace into t values (1)',
  ],
  postgres: [
    'insert into t values (1) returning *',
    'delete from t returning id',
    'update t set a = 1 returning a',
    'merge into t using u on t.id = u.id when matched then delete',
  ],
}

/** Read statements with a slot `X` for an expression. */
const READ_TEMPLATES: readonly ((x: string) => string)[] = [
  (x) => `select ${x} from t`,
  (x) => `select a, ${x} from t where id = 1`,
  (x) => `select * from t where a in (select ${x} from u)`,
  (x) => `with c as (select ${x} from t) select * from c`,
  (x) => `(select ${x} from t) union (select 1)`,
  (x) => `select * from (select ${x} from t) as d order by 1`,
]

const SEPARATORS = [' ', '  ', '\n', '\t', ' /* c */ ', ' -- c\n']

/** Replaces each space of `text` by random whitespace or a comment. */
function spaced(text: string): fc.Arbitrary<string> {
  const parts = text.split(' ')
  return fc
    .array(fc.constantFrom(...SEPARATORS), {
      minLength: parts.length - 1,
      maxLength: parts.length - 1,
    })
    .map((seps) => parts.reduce((acc, part, i) => acc + (i === 0 ? '' : seps[i - 1]) + part, ''))
}

interface Injected {
  readonly sql: string
  readonly reason: ClassificationReason
}

function injected(flavor: SqlFlavor): fc.Arbitrary<Injected> {
  const template = fc.constantFrom(...READ_TEMPLATES)
  const functions = [...(flavor === 'mysql' ? MYSQL_PRIMARY_FUNCTIONS : POSTGRES_PRIMARY_FUNCTIONS)]
  const q = flavor === 'mysql' ? '`' : '"'
  const call = fc
    .tuple(fc.constantFrom(...functions), fc.constantFrom('', 'app.', 'pg_catalog.'), fc.boolean())
    .map(([name, schema, quoted]) => `${schema}${quoted ? q + name + q : name}(1)`)

  const withFunction = fc
    .tuple(template, call)
    .map(([t, fn]): Injected => ({ sql: t(fn), reason: 'primary-function' }))
  const withLock = fc
    .tuple(template, fc.constantFrom(...LOCK_CLAUSES[flavor]))
    .map(([t, lock]): Injected => ({ sql: `${t('1')} ${lock}`, reason: 'locking-read' }))
  const withDml = fc
    .tuple(template, fc.constantFrom(...DML[flavor]), fc.boolean())
    .map(([t, dml, asCte]): Injected => {
      const base = t('a')
      return {
        sql: asCte && !base.startsWith('with') ? `with w as (${dml}) ${base}` : t(`(${dml})`),
        reason: 'write',
      }
    })
  const variants = [withFunction, withLock, withDml]
  if (flavor === 'mysql') {
    variants.push(
      template.map((t): Injected => ({ sql: t('@v := 1'), reason: 'session-state' })),
      fc
        .tuple(
          template,
          fc.constantFrom('into @v', "into outfile '/tmp/f'", "into dumpfile '/tmp/f'"),
        )
        .map(([t, into]): Injected => ({ sql: `${t('1')} ${into}`, reason: 'write' })),
    )
  }
  return fc
    .oneof(...variants)
    .chain((inj) =>
      spaced(inj.sql).chain((s) =>
        fc.mixedCase(fc.constant(s)).map((sql) => ({ sql, reason: inj.reason })),
      ),
    )
}

/** Text full of the characters and words the scanner reacts to. */
const SQL_SOUP = fc
  .array(
    fc.constantFrom(
      'select',
      'SELECT',
      'with',
      'values',
      'table',
      'show',
      'explain',
      'analyze',
      'copy',
      'to',
      'stdout',
      'insert',
      'update',
      'delete',
      'merge',
      'into',
      'for',
      'share',
      'no',
      'key',
      'lock',
      'in',
      'begin',
      'commit',
      'set',
      'transaction',
      'read',
      'only',
      'create',
      'temp',
      'next',
      'value',
      'identity',
      'nextval',
      'get_lock',
      'x',
      't',
      '1',
      '.',
      ',',
      '*',
      '=',
      '@',
      '@@',
      ':=',
      ':',
      ' ',
      ' ',
      '\n',
      '\r',
      '\t',
      '(',
      ')',
      ';',
      "'",
      "''",
      '"',
      '`',
      '\\',
      '$',
      '$$',
      '$a$',
      '$1',
      'E',
      "E'",
      '-',
      '--',
      '-- ',
      '#',
      '/',
      '/*',
      '*/',
      '/*!',
      '/*!50000',
      '/*M!',
      '/*+',
      'é',
      '\u2028',
      '\u0000',
    ),
    { maxLength: 40 },
  )
  .map((parts) => parts.join(''))

/** Soup behind a read keyword, to reach the statement and body rules more often. */
const READ_SOUP = fc
  .tuple(
    fc.constantFrom(
      'select ',
      'with ',
      '(select ',
      '/* c */ select ',
      'explain ',
      'show ',
      'copy ',
      'values ',
    ),
    SQL_SOUP,
  )
  .map(([head, tail]) => head + tail)

const ANY_TEXT = fc.oneof(
  SQL_SOUP,
  READ_SOUP,
  fc.string({ unit: 'binary', maxLength: 60 }),
  fc.string({ maxLength: 60 }),
)

const REASONS: readonly ClassificationReason[] = [
  'read',
  'write',
  'locking-read',
  'primary-function',
  'session-state',
  'transaction-control',
  'unclassified',
]

const READ_KEYWORDS: Record<SqlFlavor, readonly string[]> = {
  mysql: [
    'select',
    'with',
    'values',
    'table',
    'show',
    'describe',
    'desc',
    'explain',
    'analyze',
    'analyse',
  ],
  postgres: ['select', 'with', 'values', 'table', 'show', 'describe', 'desc', 'explain', 'copy'],
}

/** The first word of `sql` after whitespace, comments, `(` and `;` (a reference, not fast). */
function leadingWord(sql: string, flavor: SqlFlavor): string | undefined {
  let s = sql
  for (;;) {
    const before = s
    s = s.replace(/^[\u0000-\u0020(;]+/, '')
    if (flavor === 'mysql') {
      if (/^--([\u0000-\u0020]|$)/.test(s) || s.startsWith('#')) {
        const nl = s.indexOf('\n')
        s = nl < 0 ? '' : s.slice(nl)
      } else if (/^\/\*(M?!)/.test(s)) {
        s = s.replace(/^\/\*M?!\d*/, '')
      } else if (s.startsWith('*/')) {
        s = s.slice(2)
      } else if (s.startsWith('/*')) {
        const end = s.indexOf('*/', 2)
        s = end < 0 ? '' : s.slice(end + 2)
      }
    } else if (s.startsWith('--')) {
      const m = /[\n\r]/.exec(s)
      s = m === null ? '' : s.slice(m.index)
    } else if (s.startsWith('/*')) {
      let depth = 0
      let i = 0
      while (i < s.length) {
        if (s.startsWith('/*', i)) {
          depth++
          i += 2
        } else if (s.startsWith('*/', i)) {
          depth--
          i += 2
          if (depth === 0) break
        } else i++
      }
      s = s.slice(i)
    }
    if (s === before) break
  }
  return /^[A-Za-z_]+/.exec(s)?.[0]?.toLowerCase()
}

function expectWellFormed(result: Classification): void {
  expect(REASONS).to.include(result.reason)
  expect(result.read).to.equal(result.reason === 'read')
  if (result.read) expect(result.pinsSession).to.equal(false)
  if (result.reason === 'unclassified') expect(result.pinsSession).to.equal(true)
}

describe('raw SQL classifier properties', () => {
  for (const flavor of FLAVORS) {
    describe(`${flavor}`, () => {
      it('never classifies a read with an injected lock clause, primary function or data-modifying statement as a read', () => {
        fc.assert(
          fc.property(injected(flavor), ({ sql, reason }) => {
            const result = classify(sql, flavor)
            expect(result.read, sql).to.equal(false)
            expect(result.reason, sql).to.equal(reason)
          }),
          { numRuns: 500 },
        )
      })

      it('never turns a plain select into a write when any text is wrapped in a string literal or comment', () => {
        const wrappers: ((text: string) => string | undefined)[] =
          flavor === 'mysql'
            ? [
                (t) => `'${t.replace(/\\/g, '\\\\').replace(/'/g, "''")}'`,
                (t) => `"${t.replace(/\\/g, '\\\\').replace(/"/g, '""')}"`,
                (t) => `\`${t.replace(/`/g, '``')}\``,
                (t) => (t.includes('*/') ? undefined : `/* ${t} */`),
                (t) => (t.includes('\n') ? undefined : `-- ${t}\n`),
                (t) => (t.includes('\n') ? undefined : `# ${t}\n`),
              ]
            : [
                (t) => (t.includes('\\') ? undefined : `'${t.replace(/'/g, "''")}'`),
                (t) => `E'${t.replace(/\\/g, '\\\\').replace(/'/g, "''")}'`,
                (t) => `"${t.replace(/"/g, '""')}"`,
                (t) => (t.includes('$q$') ? undefined : `$q$${t}$q$`),
                (t) => (t.includes('*/') || t.includes('/*') ? undefined : `/* ${t} */`),
                (t) => (/[\n\r]/.test(t) ? undefined : `-- ${t}\n`),
              ]
        fc.assert(
          fc.property(ANY_TEXT, fc.nat(wrappers.length - 1), fc.boolean(), (text, w, inList) => {
            const wrapped = wrappers[w]!(text)
            fc.pre(wrapped !== undefined)
            const sql = inList ? `select 1, ${wrapped} from t` : `select 1 from t ${wrapped}`
            expect(classify(sql, flavor), sql).to.deep.equal(READ)
            expect(fragment(`${wrapped}`, flavor).read, wrapped).to.equal(true)
          }),
          { numRuns: 1000 },
        )
      })

      it('never throws, and only returns read for text that starts with a read keyword', () => {
        fc.assert(
          fc.property(ANY_TEXT, (sql) => {
            const result = classify(sql, flavor)
            expectWellFormed(result)
            expectWellFormed(fragment(sql, flavor))
            if (result.read) expect(READ_KEYWORDS[flavor], sql).to.include(leadingWord(sql, flavor))
          }),
          { numRuns: 3000 },
        )
      })
    })
  }
})
