/**
 * Histories in the Jepsen style: one event per line, JSON, each an `invoke` later followed by the
 * same process's `ok`, `fail` or `info`:
 *
 *   {"process": 3, "type": "invoke", "f": "read", "key": "a", "value": null}
 *   {"process": 3, "type": "ok", "f": "read", "key": "a", "value": 7}
 *
 * `fail` means the operation did not take effect: it is dropped. `info` (and an invoke that never
 * completes) means its outcome is unknown: it may take effect at any time after its invoke, or never.
 */

/** What happened to an operation. */
export type Outcome = "ok" | "info";

/** One operation: its invoke paired with its completion (a `fail` is never an operation). */
export interface Operation {
  /** Index in the history's operations (the order of invokes). */
  readonly id: number;
  readonly process: number | string;
  readonly f: string;
  /** The key (the empty string where the model has none). */
  readonly key: string;
  /** The invoke's value (what was written, a cas's [expected, new], null for reads). */
  readonly input: unknown;
  /** The completion's value (what a read returned); undefined when the outcome is unknown. */
  readonly output: unknown;
  readonly outcome: Outcome;
  /** Position of the invoke and of the completion among all events; completion Infinity if unknown. */
  readonly callAt: number;
  readonly returnAt: number;
  /** 1-based line numbers in the file, for reports (completion null if unknown). */
  readonly callLine: number;
  readonly returnLine: number | null;
}

export type ParseResult =
  | { readonly ok: true; readonly operations: Operation[] }
  | { readonly ok: false; readonly line: number; readonly error: string };

/** The bounds of a history (a file is refused past them, with a clear error, not read into memory). */
export const HISTORY_LIMITS = {
  /** Events in one history. */
  eventsMax: 1_000_000,
  /** Characters in one line. */
  lineCharsMax: 64 * 1024,
} as const;

const EVENT_TYPES = new Set(["invoke", "ok", "fail", "info"]);

interface Open {
  readonly f: string;
  readonly key: string;
  readonly input: unknown;
  readonly callAt: number;
  readonly callLine: number;
}

/**
 * Parses a history, one JSON object per line (blank lines are skipped). `keyed`: every event must
 * name a string `key` (the kv model); otherwise `key` is optional. Errors name the 1-based line.
 *
 * @example
 * const parsed = parseHistory('{"process":1,"type":"invoke","f":"write","value":1}\n' +
 *   '{"process":1,"type":"ok","f":"write","value":1}', { keyed: false });
 * parsed.ok && parsed.operations.length; // 1
 */
export function parseHistory(text: string, options: { readonly keyed: boolean }): ParseResult {
  const lines = text.split("\n");
  const open = new Map<number | string, Open>();
  const done: Omit<Operation, "id">[] = [];
  let events = 0;
  for (let index = 0; index < lines.length; index++) {
    const lineNumber = index + 1;
    const raw = (lines[index] as string).trim();
    if (raw === "") continue;
    const fail = (error: string): ParseResult => ({ ok: false, line: lineNumber, error });
    if (raw.length > HISTORY_LIMITS.lineCharsMax)
      return fail(`line longer than ${HISTORY_LIMITS.lineCharsMax} characters`);
    if (++events > HISTORY_LIMITS.eventsMax) return fail(`more than ${HISTORY_LIMITS.eventsMax} events`);
    let event: unknown;
    try {
      event = JSON.parse(raw);
    } catch (error) {
      return fail(`not JSON: ${(error as Error).message}`);
    }
    if (typeof event !== "object" || event === null || Array.isArray(event)) return fail("not a JSON object");
    const record = event as Record<string, unknown>;
    const { process, type, f } = record;
    if (!(typeof process === "string" || (typeof process === "number" && Number.isSafeInteger(process))))
      return fail(`"process" must be an integer or a string`);
    if (typeof type !== "string" || !EVENT_TYPES.has(type))
      return fail(`"type" must be one of invoke, ok, fail, info (got ${JSON.stringify(type)})`);
    if (typeof f !== "string") return fail(`"f" must be a string`);
    let key = "";
    if (options.keyed || record.key !== undefined) {
      if (typeof record.key !== "string") return fail(`"key" must be a string`);
      key = record.key;
    }
    const value = record.value === undefined ? null : record.value;
    if (type === "invoke") {
      if (open.has(process))
        return fail(`process ${JSON.stringify(process)} invoked again before its last operation completed`);
      open.set(process, { f, key, input: value, callAt: events, callLine: lineNumber });
      continue;
    }
    const call = open.get(process);
    if (call === undefined)
      return fail(`process ${JSON.stringify(process)} completed an operation it did not invoke`);
    if (call.f !== f)
      return fail(`process ${JSON.stringify(process)} invoked "${call.f}" but completed "${f}"`);
    if (call.key !== key)
      return fail(
        `process ${JSON.stringify(process)} invoked on key "${call.key}" but completed on "${key}"`,
      );
    open.delete(process);
    if (type === "fail") continue; // it did not take effect
    done.push({
      process,
      f,
      key,
      input: call.input,
      output: type === "ok" ? value : undefined,
      outcome: type === "ok" ? "ok" : "info",
      callAt: call.callAt,
      returnAt: type === "ok" ? events : Number.POSITIVE_INFINITY,
      callLine: call.callLine,
      returnLine: type === "ok" ? lineNumber : null,
    });
  }
  // Invokes that never completed: unknown outcome.
  for (const [process, call] of open) {
    done.push({
      process,
      f: call.f,
      key: call.key,
      input: call.input,
      output: undefined,
      outcome: "info",
      callAt: call.callAt,
      returnAt: Number.POSITIVE_INFINITY,
      callLine: call.callLine,
      returnLine: null,
    });
  }
  done.sort((a, b) => a.callAt - b.callAt);
  return { ok: true, operations: done.map((operation, id) => ({ ...operation, id })) };
}

/**
 * One call as a client recorded it (in memory, not as JSON lines): `outcome` null or `fail` means
 * it had no effect and is left out; `info`, that its outcome is unknown.
 */
export interface CallRecord {
  readonly process: number | string;
  readonly f: string;
  readonly key: string;
  readonly input: unknown;
  readonly output?: unknown;
  readonly outcome?: "ok" | "info" | "fail" | null;
  readonly callAt: number;
  readonly returnAt: number;
}

/**
 * The operations of recorded calls, in the order given (their positions become the line numbers
 * of reports): what `checkHistory` takes, as `parseHistory` would give it for the same history.
 */
export function operationsOf(records: readonly CallRecord[]): Operation[] {
  const operations: Operation[] = [];
  for (const [id, record] of records.entries()) {
    if (record.outcome === "fail" || record.outcome === null || record.outcome === undefined) continue;
    const known = record.outcome === "ok";
    operations.push({
      id,
      process: record.process,
      f: record.f,
      key: record.key,
      input: record.input,
      output: known ? record.output : undefined,
      outcome: known ? "ok" : "info",
      callAt: record.callAt,
      returnAt: known ? record.returnAt : Number.POSITIVE_INFINITY,
      callLine: id + 1,
      returnLine: known ? id + 1 : null,
    });
  }
  return operations;
}
