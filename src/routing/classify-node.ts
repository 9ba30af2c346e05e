import type { OperationNode, OperationNodeKind } from 'kysely'
import { type Classification, type ClassifyOptions, READ } from './classification.js'
import { normalizeFunctionName, SESSION_READING_FUNCTIONS } from './primary-functions.js'
import { classifyRawSql, isInertRawText } from './raw-sql.js'
import type { StatementEffect } from './statement-effect.js'
import { Verdict } from './verdict.js'

/** Data-modifying statement kinds, with their name and effect. */
const DML: Partial<Record<OperationNodeKind, readonly [string, StatementEffect]>> = {
  InsertQueryNode: ['insert', 'insert'],
  UpdateQueryNode: ['update', 'update'],
  DeleteQueryNode: ['delete', 'delete'],
  MergeQueryNode: ['merge', 'merge'],
}

/** Schema statements of Kysely's schema builder; their effect is `'ddl'` unless said otherwise. */
const SCHEMA_KINDS: ReadonlySet<OperationNodeKind> = new Set<OperationNodeKind>([
  'CreateTableNode',
  'DropTableNode',
  'AlterTableNode',
  'CreateIndexNode',
  'DropIndexNode',
  'CreateSchemaNode',
  'DropSchemaNode',
  'CreateViewNode',
  'DropViewNode',
  'RefreshMaterializedViewNode',
  'CreateTypeNode',
  'DropTypeNode',
  'AlterTypeNode',
])

const LOCK_CLAUSES: Readonly<Record<string, string>> = {
  ForUpdate: 'for update',
  ForNoKeyUpdate: 'for no key update',
  ForShare: 'for share',
  ForKeyShare: 'for key share',
}

/**
 * Classifies a compiled Kysely query by its operation node tree, and agrees with
 * `classifyRawSql(sqlText)` on `read`, `reason`, `effect`, `pinsSession` and `readsSession`.
 *
 * A `SelectQueryNode` is a read unless anywhere in its tree there is a lock clause, a
 * data-modifying statement or a call of a primary-only function. Insert, update, delete and merge
 * are writes with their effect; every schema node is a write (`'ddl'`, or `'create-temporary'`).
 * Calls of functions that pin or read the session count wherever they are.
 *
 * Raw SQL is read as text: a root `RawNode` (`sql\`...\``, `CompiledQuery.raw`) and any tree that
 * holds a raw fragment (other than an inert one such as the `desc` of `orderBy('id', 'desc')` or
 * `count(*)`, see `isInertRawText`) are classified from `sqlText`, the compiled SQL as a whole. A
 * fragment's words combine with the text around it (`lock ${sql.raw('in')} share mode`,
 * `.modifyEnd(sql\`for\`)` followed by `update`), so no fragment can be judged alone. So are
 * `explain()` queries and statement kinds this version does not know. The result therefore
 * depends only on the SQL text: parameters compile to placeholders, and every name and keyword
 * consulted here appears in it.
 *
 * @example
 * ```ts
 * const compiled = db.selectFrom('person').selectAll().forUpdate().compile()
 * classifyNode(compiled.query, compiled.sql, { flavor: 'mysql', primaryFunctions })
 * // { read: false, reason: 'locking-read', effect: 'none', pinsSession: false,
 * //   readsSession: false, detail: 'for update' }
 * ```
 */
export function classifyNode(
  node: OperationNode,
  sqlText: string,
  options: ClassifyOptions,
): Classification {
  const kind = node.kind
  found = undefined
  walkOptions = options
  // Empty unless a previous walk threw. (Setting the length of an empty array would drop its
  // storage, and every walk would allocate it again.)
  if (READ_STACK.length !== 0 || DML_STACK.length !== 0) abandon()
  let complete: boolean
  if (kind === 'SelectQueryNode' || DML[kind] !== undefined) {
    complete = walk(node)
  } else if (SCHEMA_KINDS.has(kind)) {
    const verdict = verdictOf()
    if ((node as { temporary?: boolean }).temporary === true) {
      const what = kind === 'CreateViewNode' ? 'view' : 'table'
      verdict.mark('write', `create temporary ${what}`, true, 'create-temporary')
    } else if (kind === 'RefreshMaterializedViewNode') {
      verdict.mark('write', 'refresh materialized view', false, 'write')
    } else {
      verdict.mark('write', 'ddl', false, 'ddl')
    }
    pushChildren(node as unknown as Record<string, unknown>, DML_STACK)
    complete = drain(DML_STACK, undefined)
  } else {
    // A RawNode, or a statement kind this version of the library does not know.
    complete = false
  }
  const verdict = found as Verdict | undefined
  found = undefined
  if (!complete) return classifyRawSql(sqlText, options)
  return verdict === undefined ? READ : verdict.result()
}

// The walk's state, reused across calls (classification is synchronous: no reentrancy).
/** Values to visit outside any data-modifying statement. */
const READ_STACK: unknown[] = []
/** Values to visit inside a data-modifying or schema statement: only function calls count there. */
const DML_STACK: unknown[] = []
/** What the walk found, created at the first signal (most trees have none). */
let found: Verdict | undefined
let walkOptions: ClassifyOptions

function verdictOf(): Verdict {
  if (found === undefined) found = new Verdict()
  return found
}

/**
 * Depth-first walk from `root` (a select, or a data-modifying statement), marking what it finds.
 * Returns `false` when the tree holds raw SQL that could matter, or EXPLAIN: then only the text
 * can tell. Walks every property generically, so node kinds and properties added by future Kysely
 * versions are still searched, but never descends into user values (values, identifiers,
 * Kysely's fixed operators, validated data types).
 *
 * A data-modifying statement is one part of its context; its WITH is walked like its context (it
 * comes first in the text) and the rest of it on `DML_STACK`: a data-modifying statement holds no
 * second one (MERGE's `THEN UPDATE`), and its locks are its own business.
 */
function walk(root: OperationNode): boolean {
  READ_STACK.push(root)
  return drain(READ_STACK, root) && drain(DML_STACK, undefined)
}

/**
 * Visits what is on `stack` (and what it leads to). `root` is given for `READ_STACK`; on
 * `DML_STACK` (inside a data-modifying or schema statement) only function calls count.
 */
function drain(stack: unknown[], root: OperationNode | undefined): boolean {
  const outside = stack === READ_STACK
  while (stack.length > 0) {
    const value = stack.pop()
    if (value === null || typeof value !== 'object') continue
    if (Array.isArray(value)) {
      for (let i = 0; i < value.length; i++) stack.push(value[i])
      continue
    }
    const node = value as Record<string, unknown>
    switch (node.kind as OperationNodeKind) {
      case 'ValueNode':
      case 'PrimitiveValueListNode':
      case 'IdentifierNode':
      case 'ColumnNode':
      case 'TableNode':
      case 'SchemableIdentifierNode':
      case 'ReferenceNode':
      case 'OperatorNode':
      case 'SelectAllNode':
      case 'DataTypeNode':
      case 'DefaultInsertValueNode':
      case 'JSONPathLegNode':
        continue
      case 'SelectModifierNode': {
        const lock = typeof node.modifier === 'string' ? LOCK_CLAUSES[node.modifier] : undefined
        if (lock !== undefined && outside) verdictOf().mark('locking-read', lock, false)
        break
      }
      case 'FunctionNode':
      case 'AggregateFunctionNode':
        if (!call(node)) return abandon()
        break
      case 'RawNode':
        if (!isInertRaw(node)) return abandon()
        break
      case 'ExplainNode':
        return abandon()
      case 'InsertQueryNode':
      case 'UpdateQueryNode':
      case 'DeleteQueryNode':
      case 'MergeQueryNode': {
        if (!outside) break // nested in another: its own business
        const [name, effect] = DML[node.kind as OperationNodeKind]!
        verdictOf().mark(
          'write',
          value === root ? name : `${name} in a subquery`,
          node.kind === 'InsertQueryNode', // sets LAST_INSERT_ID() / lastval() on its session
          effect,
        )
        stack.push(node.with)
        pushChildren(node, DML_STACK, true)
        continue
      }
    }
    pushChildren(node, stack)
  }
  return true
}

/** Every object-valued property of `node` (but its `with`, when `skipWith`), onto `stack`. */
function pushChildren(node: Record<string, unknown>, stack: unknown[], skipWith = false): void {
  for (const key in node) {
    if (key === 'kind' || (skipWith && key === 'with')) continue
    const child = node[key]
    if (child !== null && typeof child === 'object') stack.push(child)
  }
}

function abandon(): false {
  READ_STACK.length = 0
  DML_STACK.length = 0
  return false
}

/**
 * A function call: a primary-only or session function? `false` when the name is not a plain
 * (qualified, quoted) name: Kysely compiles it as written, so it is SQL text.
 */
function call(node: Record<string, unknown>): boolean {
  const func = node.func
  if (typeof func !== 'string' || !isPlainName(func)) return false
  const name = normalizeFunctionName(func)
  if (walkOptions.primaryFunctions.has(name) || SESSION_READING_FUNCTIONS.has(name)) {
    verdictOf().call(name, walkOptions)
  }
  return true
}

/**
 * A raw node that cannot change the classification: its text is inert (`isInertRawText`), and no
 * word of it glues onto a parameter's text: a fragment next to a parameter does not start or end
 * with an identifier character on that side, and one between two parameters is not empty
 * (`${sql.raw('pg_a')}${sql.raw('dvisory_lock')}(1)` is a call of `pg_advisory_lock`). Its
 * parameters are walked as ordinary nodes.
 */
function isInertRaw(node: Record<string, unknown>): boolean {
  const fragments = node.sqlFragments
  const parameters = node.parameters
  if (!Array.isArray(fragments) || !Array.isArray(parameters)) return false
  const last = parameters.length // fragments[i] precedes parameters[i]
  for (let i = 0; i < fragments.length; i++) {
    const text = fragments[i]
    if (typeof text !== 'string') return false
    if (text.length === 0) {
      if (i > 0 && i < last) return false // two parameters side by side
      continue
    }
    if (!isInertRawText(text, walkOptions)) return false
    if (i > 0 && i <= last && isWordChar(text.charCodeAt(0))) return false
    if (i < last && isWordChar(text.charCodeAt(text.length - 1))) return false
  }
  return true
}

/** An identifier character: a fragment that starts or ends with one would glue onto its neighbour. */
function isWordChar(c: number): boolean {
  const lower = c | 0x20
  return (lower >= 97 && lower <= 122) || (c >= 48 && c <= 57) || c === 95 || c === 36 || c >= 128
}

/** Letters, digits, `_`, `$`, `.` and quotes: a function name, maybe qualified or quoted. */
function isPlainName(name: string): boolean {
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i)
    const lower = c | 0x20
    if (
      !(lower >= 97 && lower <= 122) &&
      !(c >= 48 && c <= 57) &&
      c !== 95 /* _ */ &&
      c !== 36 /* $ */ &&
      c !== 46 /* . */ &&
      c !== 34 /* " */ &&
      c !== 96 /* ` */ &&
      c < 128
    ) {
      return false
    }
  }
  return name.length > 0
}
