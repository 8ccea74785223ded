/**
 * What a `paxos node --http` child of `paxos cluster` tells its parent over the IPC channel, and what
 * the parent tells it back (the dashboard's controls). Plain JSON: `process.send` serializes it.
 */

/** The message kinds the lane diagram colours (the protocol's types, grouped). */
export type LaneKind =
  | "prepare"
  | "promise"
  | "accept"
  | "accepted"
  | "decide"
  | "heartbeat"
  | "catch-up"
  | "snapshot"
  | "other";

/** One message a node sent, as drawn: from this node to node `to`, at `tMs` (the sender's clock). */
export interface SampledMessage {
  readonly tMs: number;
  readonly from: number;
  readonly to: number;
  readonly kind: LaneKind;
  /** The protocol's own type (`reject`, `rejoin-query`, ... for kind "other"). */
  readonly type: string;
  /** "round.node", when the message carries a ballot. */
  readonly ballot: string | null;
  /** The slot it is about (the first, for a decide of several), when it names one. */
  readonly slot: number | null;
  /** Dropped on the way out by the sender (cut off, or the loss rate): never sent. */
  lost?: true;
}

/** One applied slot as a node saw it decided: its ballot (when it saw the accept) and its commands. */
export interface DecidedSlot {
  readonly slot: number;
  readonly ballot: string | null;
  /** The commands' payloads (the session layer's JSON), each cut to `PAYLOAD_CHARS_MAX`. */
  readonly payloads: readonly string[];
  /** How many commands the slot holds (more than `payloads` when cut). */
  readonly commands: number;
}

/** A node's state, as its report gives it. */
export interface NodeState {
  readonly mode: string;
  readonly leader: number | null;
  /** The ballot its proposer is at ("round.node"). */
  readonly ballot: string;
  /** Its acceptor's promise ("round.node"; null: rejoining). */
  readonly promised: string | null;
  readonly floorSlot: number;
  readonly appliedThrough: number;
  readonly rejoining: boolean;
  /** Cut off: it drops every frame in and out. */
  readonly cut: boolean;
  /** The share of frames in and out it drops (0 .. 1). */
  readonly lossRate: number;
  /** Frames it dropped, cut off or lost on purpose, since it started. */
  readonly framesDropped: number;
}

/** Node -> cluster, every `REPORT_INTERVAL_MS`. */
export interface NodeReport {
  readonly type: "report";
  readonly id: number;
  readonly tMs: number;
  /** Messages it sent in the interval, sampled: at most `MESSAGES_PER_REPORT_MAX`. */
  readonly messages: readonly SampledMessage[];
  /** Messages it sent in the interval, in all (more than `messages.length`: sampled). */
  readonly sent: number;
  readonly state: NodeState;
  /** Slots it applied in the interval (the newest `DECIDED_PER_REPORT_MAX`). */
  readonly decided: readonly DecidedSlot[];
  /** While it leads: ms from sending each slot's accept to applying its decision, this interval. */
  readonly commitLatenciesMs: readonly number[];
}

/** Node -> cluster, every `APP_REPORT_INTERVAL_MS`: its replica of the key-value store and locks. */
export interface AppReport {
  readonly type: "app";
  readonly id: number;
  readonly revision: number;
  readonly entries: ReadonlyArray<{ key: string; value: string; modRevision: number }>;
  readonly locks: ReadonlyArray<{ name: string; holder: number; token: number; waiters: readonly number[] }>;
}

/**
 * Cluster -> node: start reporting (sent once, when the cluster serves a dashboard: a node whose
 * parent watches nothing pays nothing), and the dashboard's network controls.
 */
export type NodeControl =
  | { readonly type: "report" }
  | { readonly type: "cut"; readonly on: boolean }
  | { readonly type: "loss"; readonly rate: number };

/** How often a node reports: the diagram lags the cluster by at most this much. */
export const REPORT_INTERVAL_MS = 100;
/**
 * Most messages a node forwards per report (so 100 a second): a busy leader sends thousands, which
 * no page could draw. Beyond it the report carries a uniform sample and `sent` says of how many.
 */
export const MESSAGES_PER_REPORT_MAX = 10;
/** Most applied slots a report carries (the log view shows the newest few anyway). */
export const DECIDED_PER_REPORT_MAX = 20;
/** Most commit latencies a report carries (a sample, like the messages). */
export const LATENCIES_PER_REPORT_MAX = 50;
/** Characters of a command's payload a report carries. */
export const PAYLOAD_CHARS_MAX = 160;
/** How often a node reports its key-value store and locks. */
export const APP_REPORT_INTERVAL_MS = 500;
/** Keys and locks an app report carries at most. */
export const APP_ITEMS_MAX = 50;

/** Whether `value` is a `NodeControl` (the channel carries JSON from our own parent, but check). */
export function isNodeControl(value: unknown): value is NodeControl {
  if (typeof value !== "object" || value === null) return false;
  const control = value as Record<string, unknown>;
  if (control.type === "report") return true;
  if (control.type === "cut") return typeof control.on === "boolean";
  if (control.type === "loss")
    return typeof control.rate === "number" && control.rate >= 0 && control.rate <= 1;
  return false;
}
