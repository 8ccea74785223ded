import { type ParseArgsConfig, parseArgs } from "node:util";
import { UsageError } from "./errors.js";

/** The options of a command, as node:util `parseArgs` takes them. */
export type OptionsConfig = NonNullable<ParseArgsConfig["options"]>;

/** The values `parseArgs` gives for `T`, strict. */
export type ParsedValues<T extends OptionsConfig> = ReturnType<
  typeof parseArgs<{ args: string[]; options: T; allowPositionals: true; strict: true }>
>["values"];

/**
 * The one option parser of the `paxos` commands: node:util `parseArgs`, with the checks and the
 * messages a user needs in front of it, so that Node's own text ("To specify a positional argument
 * starting with a '-'...", "argument is ambiguous") never reaches them:
 *
 * - an unknown option is named, with the nearest known one (by edit distance) and `--help`;
 * - an option that wants a value takes the next argument whatever it looks like (`--nodes -3` is
 *   `--nodes=-3`, which the command's own check then refuses by name), unless that is one of the
 *   command's options (`--data --new`: "--data needs a value");
 * - an option given twice is refused (`--nodes 3 --nodes 4`: which one was meant?);
 * - a flag given a value (`--demo=yes`) is refused;
 * - an argument that starts with "-" but is no option (`-5`) is a positional, where they are allowed.
 *
 * `--debug` is accepted by every command (main.ts reads it: the stack trace of an error is shown only
 * then); a command that declares its own `debug` option also gets its value.
 *
 * Every refusal is a `UsageError` (one line, exit status 2).
 *
 * @example
 * const { values, positionals } = parseCommandArgs("cluster", args, {
 *   nodes: { type: "string" },
 *   help: { type: "boolean", short: "h", default: false },
 * });
 */
export function parseCommandArgs<const T extends OptionsConfig>(
  command: string,
  args: readonly string[],
  options: T,
  allowPositionals = true,
): { values: ParsedValues<T>; positionals: string[] } {
  const all: OptionsConfig = { debug: { type: "boolean" }, ...options };
  const help = `see "paxos ${command} --help"`;
  const byShort = new Map<string, string>();
  for (const [name, option] of Object.entries(all)) if (option.short) byShort.set(option.short, name);
  const named: string[] = [];
  const positionals: string[] = [];
  const seen = new Set<string>();
  const take = (name: string, shown: string) => {
    if (seen.has(name) && all[name]?.multiple !== true)
      throw new UsageError(
        `${shown === `--${name}` ? shown : `${shown} (--${name})`} given twice; give it once`,
      );
    seen.add(name);
  };
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] as string;
    if (arg === "--") {
      positionals.push(...args.slice(i + 1));
      break;
    }
    let name: string | undefined;
    let inlineValue: string | undefined;
    if (arg.startsWith("--")) {
      const equals = arg.indexOf("=");
      name = equals === -1 ? arg.slice(2) : arg.slice(2, equals);
      inlineValue = equals === -1 ? undefined : arg.slice(equals + 1);
      if (all[name] === undefined)
        throw new UsageError(`unknown option --${name}${nearest(name, all)}; ${help}`);
    } else if (/^-[^-\d.]$/.test(arg) && byShort.has(arg.slice(1))) {
      name = byShort.get(arg.slice(1));
    } else if (arg.startsWith("-") && arg !== "-" && !/^-[\d.]/.test(arg)) {
      throw new UsageError(`unknown option ${arg}; ${help}`);
    }
    if (name === undefined) {
      // A plain argument, "-", or what looks like a negative number.
      if (!allowPositionals) throw new UsageError(`unexpected argument "${arg}"; ${help}`);
      positionals.push(arg);
      continue;
    }
    const option = all[name] as OptionsConfig[string];
    take(name, arg.startsWith("--") ? `--${name}` : arg);
    if (option.type === "boolean") {
      if (inlineValue !== undefined) throw new UsageError(`--${name} takes no value (got "${inlineValue}")`);
      named.push(`--${name}`);
      continue;
    }
    let value = inlineValue;
    if (value === undefined) {
      const next = args[i + 1];
      if (next === undefined || isOption(next, all, byShort))
        throw new UsageError(`--${name} needs a value; ${help}`);
      value = next;
      i++;
    }
    named.push(`--${name}=${value}`);
  }
  const parsed = parseArgs({
    args: [...named, "--", ...positionals],
    // `all` is `options` with --debug (which main.ts reads).
    options: all as T,
    allowPositionals: true,
    strict: true,
  });
  return { values: parsed.values, positionals };
}

/** Whether `arg` names one of the options (so it cannot be the value of the one before it). */
function isOption(arg: string, all: OptionsConfig, byShort: ReadonlyMap<string, string>): boolean {
  if (arg === "--") return true;
  if (arg.startsWith("--")) return all[arg.slice(2).split("=")[0] as string] !== undefined;
  return /^-[^-\d.]$/.test(arg) && byShort.has(arg.slice(1));
}

/** " (did you mean --base-port?)" when a known option is near `name`, else "". */
function nearest(name: string, all: OptionsConfig): string {
  let best: string | null = null;
  let bestDistance = Number.POSITIVE_INFINITY;
  for (const known of Object.keys(all)) {
    const distance = editDistance(name, known);
    if (distance < bestDistance) {
      best = known;
      bestDistance = distance;
    }
  }
  // Near enough to be a typo: a third of the longer name, at least 2 edits (--baseport, --node).
  const limit = Math.max(2, Math.floor(Math.max(name.length, best?.length ?? 0) / 3));
  return best !== null && bestDistance <= limit ? ` (did you mean --${best}?)` : "";
}

/** Levenshtein distance: the fewest one-character inserts, deletes and substitutions from a to b. */
export function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      const substitution = (previous[j - 1] as number) + (a[i - 1] === b[j - 1] ? 0 : 1);
      current[j] = Math.min((previous[j] as number) + 1, (current[j - 1] as number) + 1, substitution);
    }
    previous = current;
  }
  return previous[b.length] as number;
}
