import type { Operation } from "./history.js";
import type { Model } from "./models.js";

/**
 * The linearizability checker: Wing and Gong's search (1993) with Lowe's memoisation (2017), as in
 * Porcupine. Operations are call and return entries on a doubly linked list in time order; the search
 * linearizes one whose call comes before every pending return, steps the model, and lifts both entries
 * out; at a return it cannot pass it backtracks. A (set of linearized operations, model state) pair
 * seen before is never explored again. It runs per key (linearizability is local), within a budget.
 */

export interface Budget {
  /** Search steps over the whole check (a step: one operation tried at one point). */
  readonly stepsMax: number;
  /** Memoised (linearized set, state) pairs kept for one key. */
  readonly memoEntriesMax: number;
  /** Milliseconds, measured by `now` (none: no time limit; the steps still bound the work). */
  readonly timeMs?: number;
  readonly now?: () => number;
}

export const DEFAULT_BUDGET: Budget = { stepsMax: 50_000_000, memoEntriesMax: 2_000_000 };

export type Verdict = "linearizable" | "not-linearizable" | "unknown";

export interface KeyResult {
  readonly key: string;
  readonly verdict: Verdict;
  /** How many operations the key has. */
  readonly operations: number;
}

export interface Failure {
  readonly key: string;
  /**
   * The shortest prefix of the key's history that already cannot be linearized: its operations
   * (those still running at its end count as of unknown outcome), in call order. The last completion
   * in it (`culprit`) is the first that no order explains.
   */
  readonly prefix: readonly Operation[];
  readonly culprit: Operation;
}

export interface CheckResult {
  readonly verdict: Verdict;
  readonly keys: readonly KeyResult[];
  /** For `not-linearizable`: the smallest failing part found (null if the budget ran out finding it). */
  readonly failure: Failure | null;
  readonly steps: number;
}

class Steps {
  count = 0;
  private readonly started: number;
  constructor(private readonly budget: Budget) {
    this.started = budget.now?.() ?? 0;
  }
  /** False once the budget is spent. */
  take(): boolean {
    this.count++;
    if (this.count > this.budget.stepsMax) return false;
    if (this.budget.timeMs !== undefined && this.budget.now !== undefined && (this.count & 0xfff) === 0) {
      if (this.budget.now() - this.started > this.budget.timeMs) return false;
    }
    return true;
  }
}

interface Entry {
  readonly operation: Operation | null;
  /** A call's return entry; null for a return entry (and the head). */
  readonly match: Entry | null;
  prev: Entry | null;
  next: Entry | null;
}

/** Builds the time-ordered entry list of one key's operations, behind a head sentinel. */
function entryList(operations: readonly Operation[]): Entry {
  const items: { at: number; order: number; entry: Entry }[] = [];
  for (const operation of operations) {
    const ret: Entry = { operation, match: null, prev: null, next: null };
    const call: Entry = { operation, match: ret, prev: null, next: null };
    items.push({ at: operation.callAt, order: 0, entry: call });
    // Unknown outcomes return after everything (Infinity), in call order.
    items.push({ at: operation.returnAt, order: operation.callAt, entry: ret });
  }
  items.sort((a, b) => a.at - b.at || a.order - b.order);
  const head: Entry = { operation: null, match: null, prev: null, next: null };
  let last = head;
  for (const { entry } of items) {
    last.next = entry;
    entry.prev = last;
    last = entry;
  }
  return head;
}

function lift(call: Entry): void {
  const ret = call.match as Entry;
  (call.prev as Entry).next = call.next;
  (call.next as Entry).prev = call.prev;
  (ret.prev as Entry).next = ret.next;
  if (ret.next !== null) ret.next.prev = ret.prev;
}

function unlift(call: Entry): void {
  const ret = call.match as Entry;
  (ret.prev as Entry).next = ret;
  if (ret.next !== null) ret.next.prev = ret;
  (call.prev as Entry).next = call;
  (call.next as Entry).prev = call;
}

/** The states an operation may leave: the model's, and for an unknown outcome also "no effect". */
function outcomes(model: Model, state: unknown, operation: Operation): unknown[] {
  const next = model.step(state, operation);
  if (operation.outcome === "ok") return next;
  const text = JSON.stringify(state);
  return next.some((s) => JSON.stringify(s) === text) ? next : [...next, state];
}

/** Checks one key's operations. "unknown" when the budget ran out. */
function checkKey(model: Model, all: readonly Operation[], steps: Steps, budget: Budget): Verdict {
  const unobserved = model.unobserved?.(all);
  const operations =
    unobserved === undefined || unobserved.size === 0 ? all : all.filter((o) => !unobserved.has(o));
  if (operations.length === 0) return "linearizable";
  const head = entryList(operations);
  // Dense ids for the bitset.
  const bit = new Map<number, number>(operations.map((operation, index) => [operation.id, index]));
  const words = new Uint32Array(Math.ceil(operations.length / 32));
  const memo = new Set<string>();
  const stack: { call: Entry; state: unknown; nextOutcome: number }[] = [];
  let state: unknown = model.initial;
  let entry = head.next as Entry;
  let firstOutcome = 0;
  const keyOf = (s: unknown) => `${words.join(",")}|${JSON.stringify(s)}`;
  while (head.next !== null) {
    if (!steps.take()) return "unknown";
    if (entry.match !== null) {
      const operation = entry.operation as Operation;
      const index = bit.get(operation.id) as number;
      const choices = outcomes(model, state, operation);
      let moved = false;
      for (let k = firstOutcome; k < choices.length; k++) {
        const next = choices[k];
        words[index >>> 5] = (words[index >>> 5] as number) | (1 << (index & 31));
        const key = keyOf(next);
        if (memo.has(key)) {
          words[index >>> 5] = (words[index >>> 5] as number) & ~(1 << (index & 31));
          continue;
        }
        if (memo.size >= budget.memoEntriesMax) return "unknown";
        memo.add(key);
        stack.push({ call: entry, state, nextOutcome: k + 1 });
        state = next;
        lift(entry);
        entry = head.next as Entry;
        moved = true;
        break;
      }
      firstOutcome = 0;
      if (!moved) entry = entry.next as Entry;
    } else {
      // A return we cannot pass: undo the last linearization and try what comes after it.
      const top = stack.pop();
      if (top === undefined) return "not-linearizable";
      const index = bit.get((top.call.operation as Operation).id) as number;
      words[index >>> 5] = (words[index >>> 5] as number) & ~(1 << (index & 31));
      state = top.state;
      unlift(top.call);
      entry = top.call;
      firstOutcome = top.nextOutcome;
    }
  }
  return "linearizable";
}

/** The operations as they stood after event `at`: those still running then have unknown outcome. */
function prefixAt(operations: readonly Operation[], at: number): Operation[] {
  return operations
    .filter((operation) => operation.callAt <= at)
    .map((operation) =>
      operation.returnAt <= at
        ? operation
        : {
            ...operation,
            outcome: "info" as const,
            output: undefined,
            returnAt: Number.POSITIVE_INFINITY,
            returnLine: null,
          },
    );
}

/**
 * The shortest failing prefix of a non-linearizable key history: a history's prefixes fail from
 * some completion on (a prefix of a linearizable history is linearizable, with the operations still
 * running counted as unknown), so a binary search over the completions finds it.
 */
function shortestFailingPrefix(
  model: Model,
  operations: readonly Operation[],
  steps: Steps,
  budget: Budget,
): Failure | null {
  const completions = operations
    .filter((operation) => operation.outcome === "ok")
    .map((operation) => operation.returnAt)
    .sort((a, b) => a - b);
  let low = 0;
  let high = completions.length - 1; // the whole history fails: so does its last completion's prefix
  while (low < high) {
    const middle = (low + high) >>> 1;
    const verdict = checkKey(model, prefixAt(operations, completions[middle] as number), steps, budget);
    if (verdict === "unknown") return null;
    if (verdict === "not-linearizable") high = middle;
    else low = middle + 1;
  }
  const at = completions[low];
  if (at === undefined) return null;
  const prefix = prefixAt(operations, at);
  const culprit = prefix.find((operation) => operation.returnAt === at) as Operation;
  return { key: culprit.key, prefix, culprit };
}

/**
 * Checks a history against a model. Operations are split by key and each key is checked on its own.
 *
 * @example
 * const parsed = parseHistory(text, { keyed: false });
 * if (parsed.ok) checkHistory(registerModel, parsed.operations).verdict; // "linearizable" | ...
 */
export function checkHistory(
  model: Model,
  operations: readonly Operation[],
  budget: Budget = DEFAULT_BUDGET,
): CheckResult {
  const steps = new Steps(budget);
  const byKey = new Map<string, Operation[]>();
  for (const operation of operations) {
    const list = byKey.get(operation.key);
    if (list === undefined) byKey.set(operation.key, [operation]);
    else list.push(operation);
  }
  const keys: KeyResult[] = [];
  let failure: Failure | null = null;
  let failed = false;
  let unknown = false;
  for (const [key, list] of [...byKey].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))) {
    const verdict = checkKey(model, list, steps, budget);
    keys.push({ key, verdict, operations: list.length });
    if (verdict === "unknown") unknown = true;
    if (verdict === "not-linearizable" && !failed) {
      failed = true;
      failure = shortestFailingPrefix(model, list, steps, budget);
    }
  }
  const verdict: Verdict = failed ? "not-linearizable" : unknown ? "unknown" : "linearizable";
  return { verdict, keys, failure, steps: steps.count };
}
