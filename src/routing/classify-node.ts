import type { OperationNode } from 'kysely'
import { type Classification, type ClassifyOptions, READ } from './classification.js'
import { normalizeFunctionName, SESSION_PINNING_FUNCTIONS } from './primary-functions.js'
import { classifyRawFragment, classifyRawSql } from './raw-sql.js'

/** Data-modifying statement kinds (at the root or nested in a select). */
const WRITE_KINDS: ReadonlySet<string> = new Set([
  'InsertQueryNode',
  'UpdateQueryNode',
  'DeleteQueryNode',
  'MergeQueryNode',
])

const LOCK_MODIFIERS: ReadonlySet<string> = new Set([
  'ForUpdate',
  'ForNoKeyUpdate',
  'ForShare',
  'ForKeyShare',
])

/**
 * Classifies a compiled Kysely query by its operation node tree.
 *
 * A `SelectQueryNode` is a read unless anywhere in its tree there is a lock clause, a
 * data-modifying statement, a call of a primary-only function or a raw fragment that holds one
 * of those. Insert, update, delete, merge and every DDL node are writes. A root `RawNode`
 * (`sql\`...\``, `CompiledQuery.raw`) is classified from its compiled text.
 *
 * @example
 * ```ts
 * const compiled = db.selectFrom('person').selectAll().forUpdate().compile()
 * classifyNode(compiled.query, compiled.sql, { flavor: 'mysql', primaryFunctions })
 * // { read: false, reason: 'locking-read', pinsSession: false, detail: 'for update' }
 * ```
 */
export function classifyNode(
  node: OperationNode,
  sqlText: string,
  options: ClassifyOptions,
): Classification {
  switch (node.kind) {
    case 'SelectQueryNode': {
      const found = scanTree(node, options)
      return found ?? READ
    }
    case 'RawNode':
      return classifyRawSql(sqlText, options)
    case 'InsertQueryNode':
      // A replace or insert sets LAST_INSERT_ID() / lastval() on its session.
      return { read: false, reason: 'write', pinsSession: true, detail: 'insert' }
    case 'UpdateQueryNode':
    case 'DeleteQueryNode':
    case 'MergeQueryNode':
      return { read: false, reason: 'write', pinsSession: false, detail: kindDetail(node.kind) }
    case 'CreateTableNode': {
      const temporary = (node as { temporary?: boolean }).temporary === true
      return {
        read: false,
        reason: 'write',
        pinsSession: temporary,
        detail: temporary ? 'create temporary table' : 'ddl',
      }
    }
    default:
      // Every DDL node and anything this version of the library does not know: the primary.
      return { read: false, reason: 'write', pinsSession: false, detail: 'ddl' }
  }
}

function kindDetail(kind: string): string {
  return kind.slice(0, -'QueryNode'.length).toLowerCase()
}

/**
 * Depth-first walk of a select tree; returns the first reason it must run on the primary, or
 * `undefined` for a read. Walks every property generically so node kinds added by future Kysely
 * versions are still searched, but never descends into user values (`ValueNode.value`,
 * `PrimitiveValueListNode.values`): user data may look like nodes.
 */
/** The walk's stack, reused across calls (classification is synchronous: no reentrancy). */
const STACK: unknown[] = []

function scanTree(root: OperationNode, options: ClassifyOptions): Classification | undefined {
  const stack = STACK
  stack.length = 0
  stack.push(root)
  let pinning: Classification | undefined
  let first: Classification | undefined
  while (stack.length > 0) {
    const value = stack.pop()
    if (value === null || typeof value !== 'object') {
      continue
    }
    if (Array.isArray(value)) {
      for (let i = 0; i < value.length; i++) {
        stack.push(value[i])
      }
      continue
    }
    const node = value as { readonly kind?: unknown } & Record<string, unknown>
    const kind = node.kind
    if (typeof kind === 'string') {
      let hit: Classification | undefined
      switch (kind) {
        // Leaves, and nodes whose children are only identifiers: nothing below can need the primary.
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
          continue
        case 'SelectModifierNode': {
          const modifier = node.modifier
          if (typeof modifier === 'string' && LOCK_MODIFIERS.has(modifier)) {
            hit = {
              read: false,
              reason: 'locking-read',
              pinsSession: false,
              detail: lockDetail(modifier),
            }
          }
          break
        }
        case 'FunctionNode': {
          const name = typeof node.func === 'string' ? normalizeFunctionName(node.func) : undefined
          if (name !== undefined && options.primaryFunctions.has(name)) {
            hit = {
              read: false,
              reason: 'primary-function',
              pinsSession: SESSION_PINNING_FUNCTIONS.has(name),
              detail: name,
            }
          }
          break
        }
        case 'RawNode': {
          const fragments = node.sqlFragments
          if (Array.isArray(fragments)) {
            const result = classifyRawFragment(fragments.join(' ? '), options)
            if (!result.read) {
              hit = result
            }
          }
          break
        }
        default:
          if (WRITE_KINDS.has(kind)) {
            hit = {
              read: false,
              reason: 'write',
              pinsSession: kind === 'InsertQueryNode',
              detail: `${kindDetail(kind)} in a subquery`,
            }
          }
      }
      if (hit !== undefined) {
        if (hit.pinsSession) {
          pinning ??= hit
        }
        first ??= hit
        if (pinning !== undefined) {
          break
        }
      }
    }
    for (const key in node) {
      if (key !== 'kind') {
        const child = node[key]
        if (child !== null && typeof child === 'object') {
          stack.push(child)
        }
      }
    }
  }
  stack.length = 0
  // A statement that both writes and leaves session state must report the session state.
  if (first !== undefined && pinning !== undefined && first !== pinning) {
    return { ...first, pinsSession: true }
  }
  return first
}

function lockDetail(modifier: string): string {
  switch (modifier) {
    case 'ForUpdate':
      return 'for update'
    case 'ForNoKeyUpdate':
      return 'for no key update'
    case 'ForShare':
      return 'for share'
    default:
      return 'for key share'
  }
}
