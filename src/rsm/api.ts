/**
 * The types of the replicated-state-machine layer, shared by the embeddable node (`node.ts`), the
 * session machine that gives exactly-once results (`session-machine.ts`), the HTTP API (`http.ts`)
 * and the command line. Nothing here does anything: it is the contract between those parts.
 */

/**
 * Why a call failed. Each code says whether the command may have been applied:
 * - `not-leader`: a read reached a node that does not lead (`leader` names the leader if known).
 *   Nothing was done.
 * - `no-leader`: no leader is known yet (an election is under way). Nothing was done; retry.
 * - `timeout`: the outcome is unknown. The command may have been applied, or may still be; retry it
 *   with the same session and sequence number to learn its result without applying it twice.
 * - `too-large`: the command (or a request body) is over a limit. Nothing was done.
 * - `busy`: a bound is full (pending proposals, reads, watches, sessions, results kept). Nothing
 *   was done; retry later.
 * - `session-expired`: the session is gone (expired through the log, or never opened); open a new
 *   one. Nothing was done.
 * - `bad-request`: malformed input. Nothing was done.
 * - `stopped`: the node is stopping or stopped. The outcome of a command in flight is unknown.
 */
export type PaxosErrorCode =
  | "not-leader"
  | "no-leader"
  | "timeout"
  | "too-large"
  | "busy"
  | "session-expired"
  | "bad-request"
  | "stopped";

/** The HTTP status each error code is answered with (docs/applications.md). */
export const HTTP_STATUS_OF: Readonly<Record<PaxosErrorCode, number>> = {
  "not-leader": 503,
  "no-leader": 503,
  timeout: 504,
  "too-large": 413,
  busy: 429,
  "session-expired": 409,
  "bad-request": 400,
  stopped: 503,
};

/** A typed failure of the node API. `leader` (for `not-leader`): the leader's id, if known. */
export class PaxosError extends Error {
  override readonly name = "PaxosError";
  constructor(
    readonly code: PaxosErrorCode,
    message: string,
    readonly leader: number | null = null,
  ) {
    super(message);
  }

  /** Whether the command may have been applied (`timeout`, `stopped`): the outcome is unknown. */
  get outcomeUnknown(): boolean {
    return this.code === "timeout" || this.code === "stopped";
  }
}

/** What an application's `apply` is told besides the command: all of it comes from the log. */
export interface ApplyContext {
  /** The slot the command was decided in. */
  readonly slot: number;
  /**
   * The log's time: the highest time any node stamped a command with, up to this one (every replica
   * sees the same value at the same command; it never goes back).
   */
  readonly timeMs: number;
  /** The client session the command came with (0: none). */
  readonly session: number;
}

/**
 * A deterministic application: every replica applies the same commands in the same order and must
 * reach the same state and the same results. Commands and results are JSON values.
 *
 * @example
 * const counter: Application<{ add: number }, number> = {
 *   total: 0,
 *   apply(command) { this.total += command.add; return this.total; },
 *   snapshot() { return String(this.total); },
 *   restore(state) { this.total = Number(state); },
 * };
 */
export interface Application<C, R> {
  /** Applies one command; returns its result (JSON). Must not throw for any JSON input. */
  apply(command: C, context: ApplyContext): R;
  /** The whole state as text. */
  snapshot(): string;
  /** Replaces the state with a `snapshot()`; throws on text that is not one, changing nothing. */
  restore(state: string): void;
  /** Sessions that expired through the log (before the command applied at `context`). */
  expire?(sessions: readonly number[], context: ApplyContext): void;
}

/** A client session's identity for one command: exactly-once across retries and nodes. */
export interface SessionRef {
  readonly session: number;
  /** 1, 2, 3, ...: one per command, reused by every retry of that command. */
  readonly seq: number;
  /**
   * The client has its results through this seq (they may be dropped); by default `seq - 1`, for a
   * client with one command outstanding at a time.
   */
  readonly ackedThrough?: number;
}

/** Options of one proposal. */
export interface ProposeOptions {
  /** Run the command in a client session (exactly once across retries on any node). */
  readonly session?: SessionRef;
  /** Give up waiting after this long (default: the node's `proposeTimeoutMs`); then `timeout`. */
  readonly timeoutMs?: number;
}

/** Where a node stands (for `/health`, the CLI and the dashboard). */
export interface NodeStatus {
  readonly id: number;
  readonly mode: string;
  /** The leader this node knows of (its own id when it leads; null: none known). */
  readonly leader: number | null;
  readonly ballot: { readonly round: number; readonly node: number };
  /** The last slot applied to the state machine. */
  readonly appliedThrough: number;
  /** Whether the node is rejoining after losing its state (it does not vote yet). */
  readonly rejoining: boolean;
}

/** Events a node emits. */
export interface NodeEvents {
  /** The leader this node knows of changed (null: none known). */
  leader: (leader: number | null) => void;
  /** Slots through `slot` are applied. */
  applied: (slot: number) => void;
}

/**
 * A running node of a replicated state machine (see `startNode`): what the HTTP API and the command
 * line use, and what a Node program embedding `paxos` calls.
 */
export interface PaxosNodeApi<C, R, A extends Application<C, R>> {
  readonly id: number;
  /**
   * Proposes `command` on any node (a follower hands it to the leader) and resolves with its result
   * once this node has applied it. Rejects with a `PaxosError`: `too-large`, `busy`, `timeout`
   * (outcome unknown), `session-expired`, `stopped`.
   */
  propose(command: C, options?: ProposeOptions): Promise<R>;
  /**
   * A linearizable read: the leader confirms with a quorum that it still leads (one confirmation
   * for all the reads waiting), waits until it has applied everything decided before the read
   * began, then runs `query` on the application. On a follower rejects with `not-leader` (naming
   * the leader); nothing is ever answered from a follower's own state.
   */
  read<T>(query: (app: A) => T, options?: { readonly timeoutMs?: number }): Promise<T>;
  /** Opens a client session through the log; resolves with its id. */
  openSession(): Promise<number>;
  /** Keeps a session alive (through the log); rejects with `session-expired` if it is gone. */
  keepAlive(session: number): Promise<void>;
  /** The application (for subscribing to its own events; never mutate it). */
  readonly app: A;
  status(): NodeStatus;
  on<E extends keyof NodeEvents>(event: E, listener: NodeEvents[E]): void;
  off<E extends keyof NodeEvents>(event: E, listener: NodeEvents[E]): void;
  /** Stops the node: pending calls reject with `stopped`; state on disk stays. */
  stop(): Promise<void>;
}
