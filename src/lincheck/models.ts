import type { Operation } from "./history.js";

/**
 * A sequential specification, one key at a time (linearizability is local: a history is
 * linearizable exactly when each key's sub-history is, Herlihy and Wing 1990). States are plain
 * JSON values, compared by their JSON text.
 */
export interface Model {
  readonly name: string;
  /** The operations it knows; a history naming another is refused when it is read. */
  readonly operations: readonly string[];
  /** Checks an operation's input before any search (null: fine), so the search never meets nonsense. */
  validate(operation: Operation): string | null;
  readonly initial: unknown;
  /**
   * The states the operation may leave, applied to `state`, given what it returned (`output`, for an
   * `ok` operation). Empty: it cannot have happened in that state. An operation whose outcome is
   * unknown may also have had no effect at all: the checker adds that case itself.
   */
  step(state: unknown, operation: Operation): unknown[];
  /**
   * Operations of unknown outcome that may be left out of the search, because whether they took
   * effect can change no verdict (optional; a model without it keeps them all). Each is one that
   * could equally have had no effect, so leaving it out never makes a legal history illegal; the
   * model must show that it never makes an illegal one legal either.
   */
  unobserved?(operations: readonly Operation[]): ReadonlySet<Operation>;
}

/** JSON equality of two plain values (what a history's values are). */
export function sameValue(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/**
 * A single register (one per key when keys are given): `read` returns the value (null before any
 * write), `write` sets it, `cas` with value `[expected, new]` sets `new` if the value is `expected`
 * (an `ok` cas succeeded; a `fail` one is dropped as not having happened).
 */
export const registerModel: Model = {
  name: "register",
  operations: ["read", "write", "cas"],
  initial: null,
  validate(operation) {
    if (operation.f === "cas" && !(Array.isArray(operation.input) && operation.input.length === 2))
      return `cas wants "value": [expected, new]`;
    return null;
  },
  step(state, operation) {
    switch (operation.f) {
      case "read":
        if (operation.outcome !== "ok") return [state];
        return sameValue(state, operation.output) ? [state] : [];
      case "write":
        return [operation.input];
      case "cas": {
        const [expected, next] = operation.input as [unknown, unknown];
        if (sameValue(state, expected)) return [next];
        // An ok cas succeeded; one of unknown outcome that found another value did nothing.
        return operation.outcome === "ok" ? [] : [state];
      }
      default:
        return [];
    }
  },
};

/**
 * A key-value store of string values, one key at a time: `get` returns the value or null, `put` sets
 * it, `delete` removes it, `append` adds its value to the end of the key's value (a missing key counts
 * as empty).
 */
export const kvModel: Model = {
  name: "kv",
  operations: ["get", "put", "append", "delete"],
  initial: null,
  validate(operation) {
    if ((operation.f === "append" || operation.f === "put") && typeof operation.input !== "string")
      return `${operation.f} wants a string "value"`;
    if (
      operation.f === "get" &&
      operation.outcome === "ok" &&
      operation.output !== null &&
      typeof operation.output !== "string"
    )
      return `get returns a string or null`;
    return null;
  },
  step(state, operation) {
    switch (operation.f) {
      case "get":
        if (operation.outcome !== "ok") return [state];
        return sameValue(state, operation.output) ? [state] : [];
      case "put":
        return [operation.input];
      case "delete":
        return [null];
      case "append":
        return [((state as string | null) ?? "") + (operation.input as string)];
      default:
        return [];
    }
  },
  /**
   * The puts and appends of unknown outcome whose value no `ok` get ever returned, not even as part
   * of its value. Why leaving one out changes no verdict: say it took effect at some point of a legal
   * order. From there the key's value contains the one it wrote (later appends only add to the end)
   * until a put or a delete replaces it, so a get in between would have returned a value containing
   * it, or could not be legal (a null); there is none. Writes never fail a step and return nothing,
   * so the same order without it is legal too. And an operation of unknown outcome may have had no
   * effect, so a legal order without it is one for the history with it. The search grows with each
   * operation of unknown outcome (each may take effect anywhere after its call, or never): writes
   * that a crash or a timeout left unknown and nobody saw, as when a leader is down, are common.
   */
  unobserved(operations) {
    const seen: string[] = [];
    for (const operation of operations)
      if (operation.f === "get" && operation.outcome === "ok" && typeof operation.output === "string")
        seen.push(operation.output);
    const left = new Set<Operation>();
    for (const operation of operations)
      if (
        operation.outcome === "info" &&
        (operation.f === "put" || operation.f === "append") &&
        !seen.some((value) => value.includes(operation.input as string))
      )
        left.add(operation);
    return left;
  },
};

export const MODELS: Readonly<Record<string, Model>> = { register: registerModel, kv: kvModel };

/** The first operation a model cannot take (an unknown `f`, a malformed value), or null. */
export function modelProblem(
  model: Model,
  operations: readonly Operation[],
): { readonly line: number; readonly error: string } | null {
  for (const operation of operations) {
    if (!model.operations.includes(operation.f))
      return {
        line: operation.callLine,
        error: `the ${model.name} model has no "${operation.f}" (it knows ${model.operations.join(", ")})`,
      };
    const problem = model.validate(operation);
    if (problem !== null) return { line: operation.returnLine ?? operation.callLine, error: problem };
  }
  return null;
}
