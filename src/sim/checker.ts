import {
  type AcceptedMessage,
  type AcceptMessage,
  type Ballot,
  ballotKey,
  type Command,
  commandKey,
  type Decision,
  type NodeId,
  type Snapshot,
  sessionListBody,
  type Value,
  valuesEqual,
} from "../core/index.js";
import { AppDigest } from "./app.js";

/**
 * The application the checker builds along the agreed decided sequence, to compare every replica's
 * state and snapshots with: the digest application (`AppDigest`) by default; the key-value and lock
 * application behind sessions in key-value runs (`sim/kv-workload.ts`).
 */
export interface ReferenceApp {
  /** Applies slot `slot`'s commands (each (client, seq) of the sequence once, in slot order). */
  applySlot(slot: number, commands: readonly Command[]): void;
  /** The state as the checker keeps it per slot (the digest's text; a hash of a larger state). */
  encode(): string;
  /** What a replica's state text (a snapshot's `app`) is kept as: the same form as `encode`. */
  fingerprint(app: string): string;
}

/** The digest application as a reference (its state text is small: kept as it is). */
class DigestReference implements ReferenceApp {
  private readonly app = new AppDigest();
  applySlot(_slot: number, commands: readonly Command[]): void {
    for (const command of commands) this.app.apply(command);
  }
  encode(): string {
    return this.app.encode();
  }
  fingerprint(app: string): string {
    return app;
  }
}

/** A broken safety property, with where and when it was seen. */
export interface Violation {
  readonly property:
    | "agreement"
    | "prefix"
    | "validity"
    | "at-most-once"
    | "unique-ballot-value"
    | "fresh-ballot"
    | "snapshot"
    | "app-state"
    | "assertion"
    | "crash"
    | "durability"
    | "liveness"
    | "linearizability"
    | "lock";
  readonly detail: string;
  readonly event: number;
}

/**
 * Safety checkers, run on every event of a simulated run:
 * - agreement: at most one value is decided per slot, across all learners;
 * - prefix: each learner delivers slots 1, 2, 3, ... with no gap, so with agreement every learner's
 *   log is a prefix of every other's;
 * - validity: only values that clients submitted are decided;
 * - at-most-once: each (client, seq) is delivered at most once by each learner;
 * - unique-ballot-value: no two different values are ever voted for in one (slot, ballot), the
 *   invariant that makes "a quorum at one ballot" meaningful (a reused ballot breaks it first);
 * - fresh-ballot: a proposer never runs phase 1 with a ballot it used before a restart that kept its
 *   state (its rounds are durable before a prepare leaves), and no two incarnations of it ever send
 *   accepts at one ballot (Paxos needs each proposal number to be used for one proposal only). After
 *   a restart that lost its state (it rejoined), it may prepare again at a ballot an earlier
 *   incarnation only prepared with: that ballot carries no value, and docs/durability.md ("Rejoin:
 *   why the floor is safe", (a)) shows every ballot it sent accepts at is below its new campaigns;
 *   the check holds it to exactly that;
 * - snapshot: every snapshot taken, installed or restored holds, through its slot, the application
 *   state (`AppDigest`) and the sessions that the agreed decided sequence gives; it is taken as of
 *   the slot its learner delivered through, installed only forward, and a replica restarted from it
 *   resumes from its slot;
 * - app-state: a replica's application, after each turn, is the agreed sequence's state through the
 *   slot it has applied.
 * A learner that installs a snapshot jumps over the slots in it: the prefix check expects the slot
 * after it next, and the commands in it count as delivered (at-most-once, liveness).
 */
export class SafetyChecker {
  readonly violations: Violation[] = [];
  private readonly decidedBySlot = new Map<number, Value>();
  private readonly nextSlotByLearner = new Map<string, number>();
  /** Per learner: the commands it delivered, and in which slot. */
  private readonly deliveredByLearner = new Map<string, Map<string, number>>();
  private readonly submitted = new Map<string, string>();
  /**
   * Commands the stray peer sent as made-up clients (`sim/stray.ts`): proposed, so they may be
   * decided (validity), but nobody waits for them (liveness).
   */
  private readonly strayCommands = new Map<string, string>();
  private readonly votes = new Map<string, Value>();
  /** Which incarnation of a process first sent a prepare at each ballot, and in which life of its state. */
  private readonly prepares = new Map<string, { incarnation: number; stateLife: number }>();
  /** Which incarnation of a process first sent an accept at each ballot. */
  private readonly proposals = new Map<string, number>();
  /** How many times each process lost its durable state (and so rejoined). */
  private readonly stateLosses = new Map<string, number>();
  /** The reference application, built along the agreed decided sequence (see `referenceState`). */
  private readonly referenceApp: ReferenceApp;
  private referenceThrough = 0;
  /** The reference application's state after each slot (index = slot; 0: empty). */
  private readonly referenceStates: string[];
  /** The commands of the agreed sequence, each with the slot that first holds it, in slot order. */
  private readonly referenceCommands: { client: NodeId; seq: number; key: string; slot: number }[] = [];
  private readonly referenceSeen = new Set<string>();
  decisions = 0;
  deliveredCommands = 0;

  constructor(
    private readonly stopAtFirst = true,
    reference: ReferenceApp = new DigestReference(),
  ) {
    this.referenceApp = reference;
    this.referenceStates = [reference.encode()];
  }

  get failed(): boolean {
    return this.violations.length > 0;
  }

  submittedCount(): number {
    return this.submitted.size;
  }

  /** Records a command the stray peer sent as a made-up client: it may be decided, need not be. */
  submitStray(command: Command): void {
    this.strayCommands.set(commandKey(command), command.payload);
  }

  /**
   * Records a command a key-value node proposed for its callers (`PaxosNode`): it may be decided,
   * need not be (a node that crashes before handing it to the leader loses it; its caller was told
   * the outcome is unknown).
   */
  submitOptional(command: Command): void {
    this.strayCommands.set(commandKey(command), command.payload);
  }

  /** Records a command a client submitted: the only values that may be decided. */
  submit(command: Command): void {
    this.submitted.set(commandKey(command), command.payload);
  }

  /**
   * A learner restarted. It kept (durably) slots 1 ..= `restoredThrough`, the first ones in `snapshot`
   * if it had one, and learns again after them; what it delivered after them is forgotten with it.
   */
  learnerRestarted(learner: string, restoredThrough = 0, snapshot: Snapshot | null = null, event = 0): void {
    this.nextSlotByLearner.set(learner, restoredThrough + 1);
    if (snapshot !== null) {
      this.checkSnapshot(learner, "restored", snapshot, event);
      if (restoredThrough < snapshot.slot) {
        this.fail(
          "snapshot",
          `${learner} restarted from a snapshot through slot ${snapshot.slot} but resumes after slot ${restoredThrough}`,
          event,
        );
      }
    }
    const delivered = this.deliveredByLearner.get(learner);
    if (delivered !== undefined)
      for (const [key, slot] of delivered) if (slot > restoredThrough) delivered.delete(key);
    // The snapshot holds every command decided through its slot, delivered or not in this life.
    if (snapshot !== null) this.markDeliveredThrough(learner, snapshot.slot);
  }

  /** A learner took a snapshot (as of the last slot it delivered). */
  snapshotTaken(learner: string, snapshot: Snapshot, event: number): void {
    const delivered = (this.nextSlotByLearner.get(learner) ?? 1) - 1;
    if (snapshot.slot !== delivered) {
      this.fail(
        "snapshot",
        `${learner} took a snapshot through slot ${snapshot.slot} having delivered through slot ${delivered}`,
        event,
      );
    }
    this.checkSnapshot(learner, "took", snapshot, event);
  }

  /**
   * A learner installed a snapshot from a peer (`Output.snapshot`): it skips the slots in it, and only
   * forward (a snapshot at or below what it delivered would undo deliveries).
   */
  snapshotInstalled(learner: string, snapshot: Snapshot, event: number): void {
    const next = this.nextSlotByLearner.get(learner) ?? 1;
    if (snapshot.slot < next) {
      this.fail(
        "prefix",
        `${learner} installed a snapshot through slot ${snapshot.slot} after delivering slot ${next - 1}`,
        event,
      );
    }
    this.checkSnapshot(learner, "installed", snapshot, event);
    this.nextSlotByLearner.set(learner, Math.max(next, snapshot.slot + 1));
    this.markDeliveredThrough(learner, snapshot.slot);
  }

  /** A replica's application state after it applied every slot through `slot`. */
  appState(learner: string, slot: number, app: string, event: number): void {
    const reference = this.referenceState(slot);
    if (reference === undefined) {
      this.fail("app-state", `${learner} applied through slot ${slot}, past the agreed sequence`, event);
    } else if (this.referenceApp.fingerprint(app) !== reference) {
      this.fail(
        "app-state",
        `${learner}'s application through slot ${slot} is ${app}, the agreed sequence gives ${reference}`,
        event,
      );
    }
  }

  /** Marks every command of the agreed sequence through `slot` delivered by `learner`. */
  private markDeliveredThrough(learner: string, slot: number): void {
    let delivered = this.deliveredByLearner.get(learner);
    if (delivered === undefined) {
      delivered = new Map();
      this.deliveredByLearner.set(learner, delivered);
    }
    if (this.referenceState(slot) === undefined) return; // reported by checkSnapshot
    for (const command of this.referenceCommands) {
      if (command.slot > slot) break;
      if (!delivered.has(command.key)) delivered.set(command.key, command.slot);
    }
  }

  private checkSnapshot(learner: string, verb: string, snapshot: Snapshot, event: number): void {
    const what = `${learner} ${verb} a snapshot through slot ${snapshot.slot}`;
    const reference = this.referenceState(snapshot.slot);
    if (reference === undefined) {
      this.fail("snapshot", `${what}, but not every slot through it is decided`, event);
      return;
    }
    if (this.referenceApp.fingerprint(snapshot.app) !== reference) {
      this.fail(
        "snapshot",
        `${what} whose application state is ${snapshot.app}; the agreed sequence gives ${reference}`,
        event,
      );
      return;
    }
    const sessions = describeSessions(sessionListBody(snapshot.sessions));
    const expected = this.referenceSessions(snapshot.slot);
    if (sessions !== expected) {
      // A command decided through the slot but missing from the sessions would be delivered again.
      this.fail(
        "snapshot",
        `${what} whose sessions are ${sessions}; the agreed sequence gives ${expected}`,
        event,
      );
    }
  }

  /**
   * The reference application's state after `slot`: every command of the agreed decided sequence
   * through it, each (client, seq) once, in slot order. Undefined while a slot through it is not
   * decided.
   */
  private referenceState(slot: number): string | undefined {
    while (this.referenceThrough < slot) {
      const value = this.decidedBySlot.get(this.referenceThrough + 1);
      if (value === undefined) return undefined;
      const at = ++this.referenceThrough;
      const fresh: Command[] = [];
      for (const command of value.commands) {
        const key = commandKey(command);
        if (this.referenceSeen.has(key)) continue;
        this.referenceSeen.add(key);
        this.referenceCommands.push({ client: command.client, seq: command.seq, key, slot: at });
        fresh.push(command);
      }
      this.referenceApp.applySlot(at, fresh);
      this.referenceStates.push(this.referenceApp.encode());
    }
    return this.referenceStates[slot];
  }

  /** The (client, seq) pairs of the agreed sequence through `slot`, as `describeSessions` gives them. */
  private referenceSessions(slot: number): string {
    const seqs = new Map<NodeId, number[]>();
    for (const command of this.referenceCommands) {
      if (command.slot > slot) break;
      const list = seqs.get(command.client) ?? [];
      list.push(command.seq);
      seqs.set(command.client, list);
    }
    const flat: number[] = [];
    for (const [client, list] of seqs) {
      list.sort((a, b) => a - b);
      const ranges: number[] = [];
      for (const seq of list) {
        if (ranges.length > 0 && ranges[ranges.length - 1] === seq - 1) ranges[ranges.length - 1] = seq;
        else ranges.push(seq, seq);
      }
      flat.push(client, ranges.length / 2, ...ranges);
    }
    return describeSessions(flat);
  }

  /** Every proposal (accept) and vote (accepted) sent; a vote without a value names its accept's. */
  vote(message: AcceptedMessage | AcceptMessage, event: number): void {
    if (message.value === null) return;
    const key = `${message.slot}@${ballotKey(message.ballot)}`;
    const known = this.votes.get(key);
    if (known === undefined) this.votes.set(key, message.value);
    else if (!valuesEqual(known, message.value)) {
      this.fail(
        "unique-ballot-value",
        `two values voted in slot ${message.slot} at ballot ${ballotKey(message.ballot)}`,
        event,
      );
    }
  }

  /**
   * A process came up without its durable state (wiped, damaged or lost, so it rejoins): its
   * earlier incarnations' rounds are gone with it (see `prepare`).
   */
  stateLost(process: string): void {
    this.stateLosses.set(process, (this.stateLosses.get(process) ?? 0) + 1);
  }

  /** Every prepare sent, with the sending process and its incarnation number. */
  prepare(ballot: Ballot, process: string, incarnation: number, event: number): void {
    const key = `${process}@${ballotKey(ballot)}`;
    const first = this.prepares.get(key);
    const stateLife = this.stateLosses.get(process) ?? 0;
    if (first === undefined) {
      this.prepares.set(key, { incarnation, stateLife });
      return;
    }
    if (first.incarnation === incarnation) return;
    const proposer = this.proposals.get(key);
    if (first.stateLife === stateLife) {
      this.fail(
        "fresh-ballot",
        `${process} reused ballot ${ballotKey(ballot)} after a restart that kept its state (${process}#${first.incarnation} used it)`,
        event,
      );
    } else if (proposer !== undefined && proposer !== incarnation) {
      this.fail(
        "fresh-ballot",
        `${process} reused ballot ${ballotKey(ballot)} after losing its state, and ${process}#${proposer} sent accepts at it`,
        event,
      );
    }
  }

  /** Every accept a proposer sent, with its incarnation number: one incarnation per ballot. */
  proposal(ballot: Ballot, process: string, incarnation: number, event: number): void {
    const key = `${process}@${ballotKey(ballot)}`;
    const first = this.proposals.get(key);
    if (first === undefined) this.proposals.set(key, incarnation);
    else if (first !== incarnation) {
      this.fail(
        "fresh-ballot",
        `${process} sent accepts at ballot ${ballotKey(ballot)} in two incarnations (#${first} and #${incarnation})`,
        event,
      );
    }
  }

  decision(learner: string, decision: Decision, event: number): void {
    this.decisions++;
    const expected = this.nextSlotByLearner.get(learner) ?? 1;
    if (decision.slot !== expected) {
      this.fail("prefix", `${learner} delivered slot ${decision.slot} when slot ${expected} was next`, event);
    }
    this.nextSlotByLearner.set(learner, decision.slot + 1);
    const known = this.decidedBySlot.get(decision.slot);
    if (known === undefined) this.decidedBySlot.set(decision.slot, decision.value);
    else if (!valuesEqual(known, decision.value)) {
      this.fail(
        "agreement",
        `slot ${decision.slot}: ${learner} decided ${describe(decision.value)} but ${describe(known)} was decided before`,
        event,
      );
    }
    for (const command of decision.value.commands) {
      const key = commandKey(command);
      const payload = this.submitted.get(key) ?? this.strayCommands.get(key);
      if (payload !== command.payload) {
        this.fail(
          "validity",
          `slot ${decision.slot} holds ${commandKey(command)}, which no client submitted`,
          event,
        );
      }
    }
    let delivered = this.deliveredByLearner.get(learner);
    if (delivered === undefined) {
      delivered = new Map();
      this.deliveredByLearner.set(learner, delivered);
    }
    for (const command of decision.commands) {
      const key = commandKey(command);
      if (delivered.has(key)) this.fail("at-most-once", `${learner} delivered ${key} twice`, event);
      delivered.set(key, decision.slot);
      this.deliveredCommands++;
    }
  }

  /** The decided values of slots 1, 2, ... as far as they are contiguous. */
  decidedLog(): Value[] {
    const log: Value[] = [];
    for (let slot = 1; ; slot++) {
      const value = this.decidedBySlot.get(slot);
      if (value === undefined) return log;
      log.push(value);
    }
  }

  /** Whether `learner` has delivered every submitted command. */
  deliveredAll(learner: string): boolean {
    const delivered = this.deliveredByLearner.get(learner);
    if (delivered === undefined) return this.submitted.size === 0;
    for (const key of this.submitted.keys()) if (!delivered.has(key)) return false;
    return true;
  }

  missingFor(learner: string): string[] {
    const delivered = this.deliveredByLearner.get(learner) ?? new Map<string, number>();
    return [...this.submitted.keys()].filter((key) => !delivered.has(key));
  }

  fail(property: Violation["property"], detail: string, event: number): void {
    if (this.stopAtFirst && this.violations.length > 0) return;
    this.violations.push({ property, detail, event });
  }
}

/**
 * A session table (`SessionTable.export()`: per client `client, rangeCount, lo1, hi1, ...`) as a
 * text that does not depend on the order of the clients: `1:1-5,7-9 2:1-3`.
 */
function describeSessions(flat: readonly number[]): string {
  const clients: string[] = [];
  for (let at = 0; at < flat.length; ) {
    const client = flat[at] as number;
    const count = flat[at + 1] ?? 0;
    if (count < 1 || at + 2 + count * 2 > flat.length) {
      clients.push(`${client}:malformed`);
      break;
    }
    const ranges: string[] = [];
    for (let i = 0; i < count; i++) ranges.push(`${flat[at + 2 + i * 2]}-${flat[at + 3 + i * 2]}`);
    clients.push(`${client}:${ranges.join(",")}`);
    at += 2 + count * 2;
  }
  return clients.sort().join(" ") || "(none)";
}

function describe(value: Value): string {
  if (value.commands.length === 0) return "no-op";
  const keys = value.commands.slice(0, 3).map(commandKey).join(",");
  return `[${keys}${value.commands.length > 3 ? `,... ${value.commands.length} commands` : ""}]`;
}
