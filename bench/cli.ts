/**
 * Command-line options of the benchmarks. One table per benchmark gives `parseArgs` its spec, the
 * defaults (and their `--quick` values) and the `--help` text, so the three cannot drift apart.
 *
 * @example
 * ```ts
 * const args = parseCommandLine({
 *   usage: 'npm run bench:cluster -- [options]',
 *   summary: 'Cluster benchmarks.',
 *   options: {
 *     duration: { type: 'string', value: 's', default: '10', quick: '2', help: 'measured seconds' },
 *     quick: { type: 'boolean', help: 'short durations' },
 *   },
 * })
 * args.duration // '10', or '2' with --quick, or what --duration says
 * ```
 */
import { parseArgs } from 'node:util'

export interface StringOption {
  readonly type: 'string'
  /** What it does, for `--help`. */
  readonly help: string
  /** The placeholder of its value in `--help` (`--duration <s>`). */
  readonly value: string
  readonly default: string
  /** The default under `--quick`, when it differs. */
  readonly quick?: string
}

export interface BooleanOption {
  readonly type: 'boolean'
  readonly help: string
}

export type OptionSpec = StringOption | BooleanOption

export type ParsedOptions<S extends Record<string, OptionSpec>> = {
  readonly [K in keyof S]: S[K] extends BooleanOption ? boolean : string
}

export interface CommandLine<S extends Record<string, OptionSpec>> {
  /** The first line of `--help`: how the command is run. */
  readonly usage: string
  /** What the command does, a few lines. */
  readonly summary: string
  readonly options: S
  /** Default: `process.argv.slice(2)`. */
  readonly argv?: readonly string[]
}

/** The `--help` text of a command. */
export function helpText<S extends Record<string, OptionSpec>>(line: CommandLine<S>): string {
  const hasQuick = 'quick' in line.options
  const rows = Object.entries(line.options).map(([name, spec]) => {
    const flag = spec.type === 'string' ? `--${name} <${spec.value}>` : `--${name}`
    let help = spec.help
    if (spec.type === 'string') {
      const quick =
        hasQuick && spec.quick !== undefined && spec.quick !== spec.default
          ? `; --quick: ${spec.quick}`
          : ''
      help += ` (default: ${spec.default === '' ? 'none' : spec.default}${quick})`
    }
    return [flag, help] as const
  })
  rows.push(['-h, --help', 'prints this text and exits'])
  const width = Math.max(...rows.map(([flag]) => flag.length)) + 2
  return [
    `Usage: ${line.usage}`,
    '',
    line.summary,
    '',
    'Options:',
    ...rows.map(([flag, help]) => `  ${flag.padEnd(width)}${help}`),
    '',
  ].join('\n')
}

/**
 * Parses the command line. `--help` (or `-h`) prints the options and exits; an unknown or
 * malformed option prints the error and a hint to stderr and exits with status 2. String options
 * take their `quick` default under `--quick`, unless given.
 */
export function parseCommandLine<const S extends Record<string, OptionSpec>>(
  line: CommandLine<S>,
): ParsedOptions<S> {
  const argv = [...(line.argv ?? process.argv.slice(2))]
  const spec: Record<string, { type: 'string' | 'boolean'; short?: string }> = {
    help: { type: 'boolean', short: 'h' },
  }
  for (const [name, option] of Object.entries(line.options)) spec[name] = { type: option.type }
  let values: Record<string, string | boolean | undefined>
  try {
    values = parseArgs({ args: argv, options: spec, allowPositionals: false, strict: true }).values
  } catch (error) {
    process.stderr.write(`${(error as Error).message}\nSee --help for the options.\n`)
    process.exit(2)
  }
  if (values.help === true) {
    process.stdout.write(helpText(line))
    process.exit(0)
  }
  const quick = values.quick === true
  const out: Record<string, string | boolean> = {}
  for (const [name, option] of Object.entries(line.options)) {
    const given = values[name]
    if (option.type === 'boolean') out[name] = given === true
    else
      out[name] =
        typeof given === 'string'
          ? given
          : quick
            ? (option.quick ?? option.default)
            : option.default
  }
  return out as ParsedOptions<S>
}
