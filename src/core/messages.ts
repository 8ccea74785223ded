import type { Ballot, NodeId } from "./ballot.js";

/**
 * The messages of Paxos, named after the papers: prepare (1a), promise (1b), accept (2a),
 * accepted (2b), plus what a running system needs around them (client requests and acks, leader
 * heartbeats, refusals, decisions and catch-up). Every message says who sent it (`from`, an id within
 * the sender's role); the role is implied by the message type, except for `catchup`, which carries it.
 *
 * Slots (instances) are numbered from 1. Single-decree Paxos (the Synod) is slot 1 of this machinery.
 */

/** The four roles of a Paxos deployment. A collapsed `Replica` plays proposer, acceptor and learner. */
export type Role = "proposer" | "acceptor" | "learner" | "client";

export const ROLES: readonly Role[] = ["proposer", "acceptor", "learner", "client"];

/**
 * One client value. `client` and `seq` identify it: the same (client, seq) is delivered at most once
 * however often the client resends it. Sequence numbers start at 1 for each client.
 */
export interface Command {
  readonly client: NodeId;
  readonly seq: number;
  readonly payload: string;
}

/**
 * What is chosen for one slot: a batch of client commands. An empty batch is a no-op, used by a new
 * leader to fill holes.
 */
export interface Value {
  readonly commands: readonly Command[];
}

export const NOOP: Value = Object.freeze({ commands: Object.freeze([]) as readonly Command[] });

/** An acceptor's vote: it accepted `value` in `slot` at `ballot`. */
export interface AcceptedEntry {
  readonly slot: number;
  readonly ballot: Ballot;
  readonly value: Value;
}

/** A chosen value for a slot. */
export interface SlotValue {
  readonly slot: number;
  readonly value: Value;
}

/** Client -> proposers: please get these commands decided. */
export interface RequestMessage {
  readonly type: "request";
  readonly from: NodeId;
  readonly commands: readonly Command[];
}

/** Leader -> client: these sequence numbers of yours are decided (and delivered). */
export interface AckMessage {
  readonly type: "ack";
  readonly from: NodeId;
  readonly client: NodeId;
  readonly seqs: readonly number[];
}

/**
 * Why a decided command was refused rather than applied (see `SessionTable`): the cluster's session
 * table holds `clientsMax` clients already and this client is not one of them, or this client's
 * sequence numbers have more gaps than `clientRangesMax` (it must go on under a new client id).
 */
export type RefusalReason = "clients-full" | "client-gaps";

export const REFUSAL_REASONS: readonly RefusalReason[] = ["clients-full", "client-gaps"];

/**
 * Why a leader did not take a command for now: its pending queue is full (`"pending-full"`, the
 * limit `pendingCommandsMax`), or it holds as many of this client's commands as one client may have
 * waiting (`"client-pending-full"`, `clientPendingCommandsMax`). Unlike a {@link RefusalReason} this
 * is not final: the command was not queued here, but another proposer may hold it, so it may still
 * be decided. The client keeps it and sends it again later, with backoff.
 */
export type BusyReason = "pending-full" | "client-pending-full";

export const BUSY_REASONS: readonly BusyReason[] = ["pending-full", "client-pending-full"];

/** Every reason a `refuse` message may carry: final refusals, then refusals for now. */
export type RefuseReason = RefusalReason | BusyReason;

export const REFUSE_REASONS: readonly RefuseReason[] = [...REFUSAL_REASONS, ...BUSY_REASONS];

/** Whether a `refuse` says "not now" (the command may be sent again) rather than "never". */
export function isBusyReason(reason: RefuseReason): reason is BusyReason {
  return reason === "pending-full" || reason === "client-pending-full";
}

/**
 * Leader -> client: these sequence numbers of yours were refused. With a {@link RefusalReason} they
 * will never be applied (the opposite of an ack, and as final): resending them gets the same answer.
 * With a {@link BusyReason} the leader could not take them now: the client sends them again later.
 */
export interface RefuseMessage {
  readonly type: "refuse";
  readonly from: NodeId;
  readonly client: NodeId;
  readonly reason: RefuseReason;
  readonly seqs: readonly number[];
}

/**
 * Phase 1a. Asks for a promise at `ballot` covering every slot from `firstSlot` on, and for the
 * acceptor's votes in those slots. A proposer that already holds the promise sends it again with a
 * later `firstSlot` to page through a long list of votes.
 */
export interface PrepareMessage {
  readonly type: "prepare";
  readonly from: NodeId;
  readonly ballot: Ballot;
  readonly firstSlot: number;
}

/**
 * Phase 1b. The acceptor promises `ballot` and reports its votes in slots `firstSlot ..`. When there
 * are more votes than fit one message, `nextSlot` says where the next page starts; `null` means the
 * report is complete.
 */
export interface PromiseMessage {
  readonly type: "promise";
  readonly from: NodeId;
  readonly ballot: Ballot;
  readonly firstSlot: number;
  readonly accepted: readonly AcceptedEntry[];
  readonly nextSlot: number | null;
  /**
   * The acceptor keeps no votes below this slot (0: it has all its votes). Every slot below it is
   * decided: the proposer must learn those values, never fill them with no-ops.
   */
  readonly floorSlot: number;
}

/** Phase 2a: accept `value` in `slot` at `ballot`. */
export interface AcceptMessage {
  readonly type: "accept";
  readonly from: NodeId;
  readonly ballot: Ballot;
  readonly slot: number;
  readonly value: Value;
}

/**
 * Phase 2b: the acceptor accepted the value proposed in `slot` at `ballot`. `value` is that value,
 * or null when the receiver already has it: the proposer that sent the accept, or a replica whose
 * own acceptor received it. A ballot names one proposal per slot, so (slot, ballot) identifies the
 * value; leaving it out saves decoding every batch once per acceptor.
 */
export interface AcceptedMessage {
  readonly type: "accepted";
  readonly from: NodeId;
  readonly ballot: Ballot;
  readonly slot: number;
  readonly value: Value | null;
}

/**
 * An acceptor refused a prepare or accept at `ballot` because it has promised the higher `promised`,
 * so the proposer can jump past it at once (the course project's PHASE_1C idea). `slot` is set when
 * an accept was refused, 0 for a prepare.
 */
export interface RejectMessage {
  readonly type: "reject";
  readonly from: NodeId;
  readonly ballot: Ballot;
  readonly promised: Ballot;
  readonly slot: number;
}

/** Decided values, sent by anyone who knows them (a learner answering catch-up, a leader). */
export interface DecideMessage {
  readonly type: "decide";
  readonly from: NodeId;
  readonly entries: readonly SlotValue[];
}

/**
 * Leader -> proposers and learners: "I lead at `ballot`; every slot up to `decidedThrough` is decided".
 * Followers hold their election off while these arrive; learners use `decidedThrough` to notice
 * holes, including a missing last value.
 */
export interface HeartbeatMessage {
  readonly type: "heartbeat";
  readonly from: NodeId;
  readonly ballot: Ballot;
  readonly decidedThrough: number;
  /** The highest slot this leader has proposed in (0: none). A rejoining node starts past it. */
  readonly proposedThrough: number;
}

/** A learner (or proposer) that is missing slots `fromSlot ..= toSlot` asks for them. */
export interface CatchupMessage {
  readonly type: "catchup";
  readonly from: NodeId;
  readonly role: Role;
  readonly fromSlot: number;
  readonly toSlot: number;
}

/**
 * A learner that needs slots another learner has compacted into a snapshot asks that learner for its
 * snapshot, from character `offset` on. `slot` names the snapshot the asker is assembling (0: none
 * yet); a learner whose snapshot is another one answers with its own from offset 0.
 */
export interface SnapshotRequestMessage {
  readonly type: "snapshot-request";
  readonly from: NodeId;
  readonly role: Role;
  readonly slot: number;
  readonly offset: number;
}

/**
 * One chunk of a snapshot (see `encodeSnapshot`): characters `offset .. offset + data.length` of a
 * `length`-character text whose checksum is `checksum`, the state as of `slot`. Sent in answer to a
 * catch-up for compacted slots, or to a `snapshot-request`.
 */
export interface SnapshotChunkMessage {
  readonly type: "snapshot-chunk";
  readonly from: NodeId;
  readonly slot: number;
  readonly length: number;
  readonly checksum: number;
  readonly offset: number;
  readonly data: string;
}

/**
 * A replica rejoining after losing its state (see `Replica`) asks every replica what it knows, read
 * only: the answer changes nothing at the receiver. `nonce` is drawn afresh by each incarnation of
 * the asker, so a report that answers an earlier incarnation's query (sent before this incarnation
 * lost its state) is not taken for a fresh one.
 */
export interface RejoinQueryMessage {
  readonly type: "rejoin-query";
  readonly from: NodeId;
  readonly nonce: number;
  /**
   * The highest promise the asker has been told of so far (P*; zero before any report). Its floor
   * must come from a leader at least that high, so a leader below it steps down and campaigns above
   * it: otherwise a stable leader under a promise lost since (a wiped acceptor's) would keep the
   * asker waiting forever (seed 157184).
   */
  readonly promised: Ballot;
}

/**
 * The answer to a `rejoin-query`, as the reporter's state stands when it answers.
 * - `voting`: the reporter is an acceptor that votes (false: not an acceptor, or rejoining itself);
 *   only voting reports count towards the set of acceptors the asker waits for.
 * - `promised`: its acceptor's promised ballot (zero unless voting).
 * - `votedThrough`: the highest slot its acceptor holds a vote in, or has dropped votes below.
 * - `decidedThrough`: the highest slot its learner knows decided.
 * - `leaderBallot`, `proposedThrough`: the ballot it leads at and the highest slot it has proposed
 *   in (the zero ballot and 0 unless it leads).
 */
export interface RejoinReportMessage {
  readonly type: "rejoin-report";
  readonly from: NodeId;
  readonly nonce: number;
  readonly voting: boolean;
  readonly promised: Ballot;
  readonly votedThrough: number;
  readonly decidedThrough: number;
  readonly leaderBallot: Ballot;
  readonly proposedThrough: number;
}

export type Message =
  | RequestMessage
  | AckMessage
  | PrepareMessage
  | PromiseMessage
  | AcceptMessage
  | AcceptedMessage
  | RejectMessage
  | DecideMessage
  | HeartbeatMessage
  | CatchupMessage
  | SnapshotRequestMessage
  | SnapshotChunkMessage
  | RejoinQueryMessage
  | RejoinReportMessage
  | RefuseMessage;

export type MessageType = Message["type"];

export const MESSAGE_TYPES: readonly MessageType[] = [
  "request",
  "ack",
  "prepare",
  "promise",
  "accept",
  "accepted",
  "reject",
  "decide",
  "heartbeat",
  "catchup",
  "snapshot-request",
  "snapshot-chunk",
  "rejoin-query",
  "rejoin-report",
  "refuse",
];

/** The role that sends each message type (`catchup` and `snapshot-request` say their own). */
export function senderRole(message: Message): Role {
  switch (message.type) {
    case "request":
      return "client";
    case "prepare":
    case "accept":
    case "heartbeat":
    case "ack":
    case "refuse":
      return "proposer";
    case "promise":
    case "accepted":
    case "reject":
      return "acceptor";
    case "decide":
    case "snapshot-chunk":
      return "learner";
    // A rejoining acceptor asks; every replica answers, for its acceptor, learner and proposer.
    case "rejoin-query":
      return "acceptor";
    case "rejoin-report":
      return "proposer";
    case "catchup":
    case "snapshot-request":
      return message.role;
  }
}

/** Where a message goes: one member of a role (`id` set), or every member of it. */
export interface Destination {
  readonly role: Role;
  readonly id?: NodeId;
}

export interface Envelope {
  readonly to: Destination;
  readonly message: Message;
}

/** A slot's decided value as a learner delivers it, in slot order with no gaps. */
export interface Decision {
  readonly slot: number;
  /** The value chosen for the slot, exactly as chosen. */
  readonly value: Value;
  /** The commands to apply: `value.commands` less any (client, seq) delivered in an earlier slot. */
  readonly commands: readonly Command[];
  /**
   * Commands of `value` refused by the session table's limits (never applied; their clients are
   * told). Absent when none were.
   */
  readonly refused?: readonly { readonly command: Command; readonly reason: RefusalReason }[];
}

export function commandKey(command: Command): string {
  return `${command.client}:${command.seq}`;
}

export function valuesEqual(a: Value, b: Value): boolean {
  if (a === b) return true;
  if (a.commands.length !== b.commands.length) return false;
  for (let i = 0; i < a.commands.length; i++) {
    const x = a.commands[i] as Command;
    const y = b.commands[i] as Command;
    if (x.client !== y.client || x.seq !== y.seq || x.payload !== y.payload) return false;
  }
  return true;
}

export function isNoop(value: Value): boolean {
  return value.commands.length === 0;
}
