import { AsyncLocalStorage } from 'node:async_hooks'

/** Values a query comment can carry; `undefined` leaves the key out. */
export type QueryCommentContext = Readonly<Record<string, string | number | boolean | undefined>>

const storage = new AsyncLocalStorage<QueryCommentContext>()

/**
 * Runs `fn` with `context` added to the sqlcommenter comment of every statement it runs (when the
 * dialect has `queryComments` enabled). Contexts nest: inner keys override outer ones.
 *
 * @example
 * ```ts
 * app.use((req, res, next) =>
 *   withQueryComment({ route: req.route?.path, request_id: req.get('x-request-id') }, next),
 * )
 * ```
 */
export function withQueryComment<T>(context: QueryCommentContext, fn: () => T): T {
  const outer = storage.getStore()
  return storage.run(outer === undefined ? { ...context } : { ...outer, ...context }, fn)
}

/** The comment context of the current async scope. */
export function currentQueryComment(): QueryCommentContext | undefined {
  return storage.getStore()
}

/** A high surrogate not followed by a low one, or a low one not preceded by a high one. */
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g

/**
 * Percent-encodes a key or value as the sqlcommenter spec asks (URL encoding), and additionally
 * `*`, `'`, `(`, `)` and `!`, which `encodeURIComponent` leaves alone: then no value can close the
 * comment (`*\/`), break out of the quotes, or span lines.
 */
function encode(text: string): string {
  // A lone UTF-16 surrogate (a string cut in the middle of a character) would make
  // encodeURIComponent throw URIError: it becomes U+FFFD instead.
  return encodeURIComponent(text.replace(LONE_SURROGATE, '\uFFFD')).replace(
    /[*'()!]/g,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
  )
}

/**
 * Formats tags as a sqlcommenter comment: keys sorted, `key='value'` pairs joined by commas, keys
 * and values URL-encoded (see {@link encode}), wrapped in `/*...*\/`. Returns `''` when there is
 * nothing to say.
 *
 * @example
 * ```ts
 * formatSqlComment({ route: '/users/:id', db_node: 'replica-1' })
 * // "/*db_node='replica-1',route='%2Fusers%2F%3Aid'*\/"
 * ```
 */
export function formatSqlComment(tags: QueryCommentContext): string {
  const keys = Object.keys(tags)
    .filter((k) => tags[k] !== undefined)
    .sort()
  if (keys.length === 0) return ''
  const pairs = keys.map((k) => `${encode(k)}='${encode(String(tags[k]))}'`)
  return `/*${pairs.join(',')}*/`
}

/**
 * Appends the comment to a statement, unless the statement already has a block comment (the spec:
 * a statement that carries a comment is not touched). A trailing `;` stays last.
 */
export function appendSqlComment(sqlText: string, comment: string): string {
  if (comment === '' || sqlText.includes('/*')) return sqlText
  const trimmed = sqlText.trimEnd()
  if (trimmed.endsWith(';')) {
    return `${trimmed.slice(0, -1)} ${comment};`
  }
  return `${trimmed} ${comment}`
}
