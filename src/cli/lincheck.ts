import { readFile, stat } from "node:fs/promises";
import {
  type CheckResult,
  checkHistory,
  DEFAULT_BUDGET,
  MODELS,
  modelProblem,
  type Operation,
  parseHistory,
} from "../lincheck/index.js";
import { parseCommandArgs } from "./args.js";
import { UsageError } from "./errors.js";

export const LINCHECK_HELP = `Usage: paxos lincheck --model register|kv FILE

Checks that a history is linearizable. FILE ("-": standard input) holds one JSON event a line, in
the Jepsen style: an invoke, later followed by the same process's ok, fail or info:

  {"process": 3, "type": "invoke", "f": "read", "key": "a", "value": null}
  {"process": 3, "type": "ok", "f": "read", "key": "a", "value": 7}

fail: the operation did not take effect. info (or no completion): its outcome is unknown; it may
take effect at any time after its invoke, or never.

Models:
  register   read, write (value), cas (value [expected, new]); "key" optional (one register per key)
  kv         get, put, append, delete on string values, per "key" (required)

  --steps N      search budget in steps (default ${DEFAULT_BUDGET.stepsMax.toLocaleString("en-US")})
  --time-ms N    search budget in milliseconds (default: none)
  -h, --help     this text

Prints "linearizable" (exit 0), "not linearizable" with the shortest failing part of the history it
found (exit 1), or "unknown" when the budget ran out first (exit 3). A malformed file is exit 2, with
its line number.`;

/** Bytes of a history file read at most (its events are bounded too: see HISTORY_LIMITS). */
const HISTORY_FILE_BYTES_MAX = 512 * 1024 * 1024;

/** Operations of a failing part printed at most (the latest ones: the culprit and what overlaps it). */
const PRINTED_OPERATIONS_MAX = 20;

export async function lincheckCommand(args: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs("lincheck", args, {
    model: { type: "string" },
    steps: { type: "string" },
    "time-ms": { type: "string" },
    help: { type: "boolean", short: "h", default: false },
  });
  if (values.help) {
    process.stdout.write(`${LINCHECK_HELP}\n`);
    return 0;
  }
  const model = values.model === undefined ? undefined : MODELS[values.model];
  if (model === undefined)
    throw new UsageError(`--model wants register or kv (got ${JSON.stringify(values.model ?? "")})`);
  if (positionals.length !== 1) throw new UsageError("wants one history FILE (or - for standard input)");
  const file = positionals[0] as string;
  const stepsMax = positiveInteger("--steps", values.steps) ?? DEFAULT_BUDGET.stepsMax;
  const timeMs = positiveInteger("--time-ms", values["time-ms"]);
  const text = await readHistory(file);
  if (text === null) return 2;
  const parsed = parseHistory(text, { keyed: model.name === "kv" });
  const problem = parsed.ok ? modelProblem(model, parsed.operations) : parsed;
  if (problem !== null) {
    process.stderr.write(`paxos lincheck: ${file} line ${problem.line}: ${problem.error}\n`);
    return 2;
  }
  if (!parsed.ok) return 2; // (reported above)
  const result = checkHistory(model, parsed.operations, {
    stepsMax,
    memoEntriesMax: DEFAULT_BUDGET.memoEntriesMax,
    ...(timeMs === undefined ? {} : { timeMs, now: () => performance.now() }),
  });
  process.stdout.write(report(result, parsed.operations.length));
  return result.verdict === "linearizable" ? 0 : result.verdict === "not-linearizable" ? 1 : 3;
}

function positiveInteger(name: string, text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const value = Number(text);
  if (!Number.isSafeInteger(value) || value <= 0)
    throw new UsageError(`${name} wants a positive integer (got "${text}")`);
  return value;
}

async function readHistory(file: string): Promise<string | null> {
  try {
    if (file === "-") {
      const chunks: Buffer[] = [];
      let bytes = 0;
      for await (const chunk of process.stdin) {
        bytes += (chunk as Buffer).length;
        if (bytes > HISTORY_FILE_BYTES_MAX) throw new Error(`more than ${HISTORY_FILE_BYTES_MAX} bytes`);
        chunks.push(chunk as Buffer);
      }
      return Buffer.concat(chunks).toString("utf8");
    }
    const size = (await stat(file)).size;
    if (size > HISTORY_FILE_BYTES_MAX) throw new Error(`more than ${HISTORY_FILE_BYTES_MAX} bytes`);
    return await readFile(file, "utf8");
  } catch (error) {
    process.stderr.write(`paxos lincheck: cannot read ${file}: ${(error as Error).message}\n`);
    return null;
  }
}

/** Operations whose completion carries a result worth printing. */
const READS = new Set(["read", "get"]);

function describeOperation(operation: Operation): string {
  const key = operation.key === "" ? "" : ` key ${JSON.stringify(operation.key)}`;
  const result =
    operation.outcome !== "ok"
      ? " (outcome unknown)"
      : READS.has(operation.f)
        ? ` -> ${JSON.stringify(operation.output)}`
        : " ok";
  const where = `line ${operation.callLine}${operation.returnLine === null ? "" : `-${operation.returnLine}`}`;
  return `  ${where}: process ${JSON.stringify(operation.process)} ${operation.f}${key} ${JSON.stringify(operation.input)}${result}`;
}

function report(result: CheckResult, operations: number): string {
  const keys = `${operations} operations, ${result.keys.length} ${result.keys.length === 1 ? "key" : "keys"}`;
  if (result.verdict === "linearizable") return `linearizable (${keys})\n`;
  if (result.verdict === "unknown") {
    const open = result.keys.filter((k) => k.verdict === "unknown").map((k) => JSON.stringify(k.key));
    return `unknown: the search budget ran out (${keys}; undecided: ${open.join(", ")})\n`;
  }
  const failure = result.failure;
  if (failure === null)
    return `not linearizable (${keys}; the budget ran out before the shortest failing part was found)\n`;
  const shown = failure.prefix.slice(-PRINTED_OPERATIONS_MAX);
  return [
    `not linearizable (${keys})`,
    `${failure.key === "" ? "the register" : `key ${JSON.stringify(failure.key)}`}: no order explains the history through line ${failure.culprit.returnLine}, ` +
      `where this completed:`,
    describeOperation(failure.culprit),
    `its ${failure.prefix.length} operations through that line${shown.length < failure.prefix.length ? ` (the last ${shown.length})` : ""}:`,
    ...shown.map(describeOperation),
    "",
  ].join("\n");
}
