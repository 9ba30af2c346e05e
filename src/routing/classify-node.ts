import type { OperationNode, OperationNodeKind } from 'kysely'
import type { Classification, ClassifyOptions } from './classification.js'
import { normalizeFunctionName } from './primary-functions.js'
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

/**
 * Kinds below which nothing can need the primary: values (user data is never searched: it may
 * look like nodes), identifiers, operators (Kysely's fixed list), data types (validated).
 */
const LEAF_KINDS: ReadonlySet<OperationNodeKind> = new Set<OperationNodeKind>([
  'ValueNode',
  'PrimitiveValueListNode',
  'IdentifierNode',
  'ColumnNode',
  'TableNode',
  'SchemableIdentifierNode',
  'ReferenceNode',
  'OperatorNode',
  'SelectAllNode',
  'DataTypeNode',
  'DefaultInsertValueNode',
  'JSONPathLegNode',
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
 * holds a raw fragment (other than an inert one such as the `desc` of `orderBy('id', 'desc')`, see
 * `isInertRawText`) are classified from `sqlText`, the compiled SQL as a whole. A fragment's words
 * combine with the text around it (`lock ${sql.raw('in')} share mode`, `.modifyEnd(sql\`for\`)`
 * followed by `update`), so no fragment can be judged alone. So are `explain()` queries and
 * statement kinds this version does not know. The result therefore depends only on the SQL text:
 * parameters compile to placeholders, and every name and keyword consulted here appears in it.
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
  const verdict = new Verdict()
  let complete: boolean
  if (kind === 'SelectQueryNode') {
    complete = scanTree(verdict, node, false, options)
  } else if (DML[kind] !== undefined) {
    complete = scanTree(verdict, node, false, options)
  } else if (SCHEMA_KINDS.has(kind)) {
    const temporary = (node as { temporary?: boolean }).temporary === true
    if (temporary) {
      const what = kind === 'CreateViewNode' ? 'view' : 'table'
      verdict.mark('write', `create temporary ${what}`, true, 'create-temporary')
    } else if (kind === 'RefreshMaterializedViewNode') {
      verdict.mark('write', 'refresh materialized view', false, 'write')
    } else {
      verdict.mark('write', 'ddl', false, 'ddl')
    }
    complete = scanTree(verdict, node, true, options)
  } else {
    // A RawNode, or a statement kind this version of the library does not know.
    complete = false
  }
  return complete ? verdict.result() : classifyRawSql(sqlText, options)
}

/** The walk's stacks, reused across calls (classification is synchronous: no reentrancy). */
const NODES: unknown[] = []
/** Whether each stacked value is inside a data-modifying statement. */
const IN_DML: boolean[] = []

/**
 * Depth-first walk of a tree, marking what it finds in `verdict`. `dml`: the root is inside a
 * data-modifying or schema statement, where only function calls count (a data-modifying
 * statement holds no second one, its locks are its own business). Returns `false` when the tree
 * holds raw SQL or EXPLAIN: then only the text can tell.
 *
 * Walks every property generically so node kinds added by future Kysely versions are still
 * searched, but never descends into user values (see `LEAF_KINDS`).
 */
function scanTree(
  verdict: Verdict,
  root: OperationNode,
  dml: boolean,
  options: ClassifyOptions,
): boolean {
  const nodes = NODES
  const inDml = IN_DML
  nodes.length = 0
  inDml.length = 0
  nodes.push(root)
  inDml.push(dml)
  let complete = true
  while (nodes.length > 0) {
    const value = nodes.pop()
    const inside = inDml.pop()!
    if (value === null || typeof value !== 'object') continue
    if (Array.isArray(value)) {
      for (let i = 0; i < value.length; i++) {
        nodes.push(value[i])
        inDml.push(inside)
      }
      continue
    }
    const node = value as { readonly kind?: unknown } & Record<string, unknown>
    const kind = node.kind as OperationNodeKind
    let childrenInDml = inside
    if (typeof kind === 'string') {
      if (LEAF_KINDS.has(kind)) continue
      switch (kind) {
        case 'SelectModifierNode': {
          const lock = typeof node.modifier === 'string' ? LOCK_CLAUSES[node.modifier] : undefined
          if (lock !== undefined && !inside) verdict.mark('locking-read', lock, false)
          break
        }
        case 'FunctionNode':
        case 'AggregateFunctionNode': {
          // The name is compiled as written: anything but a (qualified, quoted) name is SQL text.
          if (typeof node.func !== 'string' || !isPlainName(node.func)) {
            complete = false
            break
          }
          verdict.call(normalizeFunctionName(node.func), options)
          break
        }
        case 'RawNode':
          if (!isInertRaw(node, options)) complete = false
          break
        case 'ExplainNode':
          complete = false
          break
        default: {
          const dmlKind = DML[kind]
          if (dmlKind !== undefined) {
            if (!inside) {
              const nested = value !== root
              const [name, effect] = dmlKind
              verdict.mark(
                'write',
                nested ? `${name} in a subquery` : name,
                kind === 'InsertQueryNode', // sets LAST_INSERT_ID() / lastval() on its session
                effect,
              )
              // Its WITH comes first, in the context's mode (as in the text); the rest is its own.
              nodes.push(node.with)
              inDml.push(false)
              childrenInDml = true
            }
          }
        }
      }
      if (!complete) break
    }
    for (const key in node) {
      if (key === 'kind' || (key === 'with' && childrenInDml !== inside)) continue
      const child = node[key]
      if (child !== null && typeof child === 'object') {
        nodes.push(child)
        inDml.push(childrenInDml)
      }
    }
  }
  nodes.length = 0
  inDml.length = 0
  return complete
}

/**
 * A raw node that cannot change the classification: its text is inert (`isInertRawText`), and
 * no fragment glues a word onto a parameter's text (`x${sql.raw('desc')}`). Its parameters are
 * walked as ordinary nodes.
 */
function isInertRaw(node: Record<string, unknown>, options: ClassifyOptions): boolean {
  const fragments = node.sqlFragments
  const parameters = node.parameters
  if (!Array.isArray(fragments) || !Array.isArray(parameters)) return false
  for (let i = 0; i < fragments.length; i++) {
    const text = fragments[i]
    if (typeof text !== 'string') return false
    if (text.length === 0) continue
    if (!isInertRawText(text, options)) return false
    if (i > 0 && isWordChar(text.charCodeAt(0))) return false
    if (i < parameters.length && isWordChar(text.charCodeAt(text.length - 1))) return false
  }
  return true
}

function isWordChar(c: number): boolean {
  return c > 32 && c !== 44
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
