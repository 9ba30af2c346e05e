import type { DatabaseConnection } from 'kysely'
import type { NodeConfig } from '../config.js'
import type { NodeInfo, PhysicalConnection } from './engine.js'

/** A node's config as an engine's pool factory gets it. */
export type NodeSource = NodeConfig<unknown, unknown>

/**
 * Per-node settings handed to an engine's node pool: what to do with every new physical
 * connection. The pool calls back into these; it never sees the cluster or the engine object.
 */
export interface NodePoolSetup {
  readonly node: NodeInfo
  /** Make replica sessions read-only when they are created. */
  readonly replicaSessionReadOnly: boolean
  /** The user's hook, run once on every new physical connection after the engine's own set-up. */
  readonly onCreateConnection:
    | ((connection: DatabaseConnection, node: NodeInfo) => Promise<void>)
    | undefined
  /** Called once per pool, on its first new connection, after the hooks (the pool-size check). */
  readonly firstConnection: (connection: PhysicalConnection) => Promise<void>
  /** Whether write positions are used (causal mode): else the engine neither tracks nor parses them. */
  readonly trackPositions: boolean
  /** `true` for errors that mean the node or the connection is gone (the engine's rule). */
  readonly isConnectionError: (error: unknown) => boolean
}
