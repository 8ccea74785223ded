import {
  type AcceptedMessage,
  type AcceptMessage,
  type Ballot,
  ballotKey,
  type Command,
  commandKey,
  type Decision,
  type Value,
  valuesEqual,
} from "../core/index.js";

/** A broken safety property, with where and when it was seen. */
export interface Violation {
  readonly property:
    | "agreement"
    | "prefix"
    | "validity"
    | "at-most-once"
    | "unique-ballot-value"
    | "fresh-ballot"
    | "assertion"
    | "liveness";
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
 * - fresh-ballot: a proposer never runs phase 1 with a ballot it used before a restart (Paxos needs
 *   each proposal number to be used for one proposal only).
 */
export class SafetyChecker {
  readonly violations: Violation[] = [];
  private readonly decidedBySlot = new Map<number, Value>();
  private readonly nextSlotByLearner = new Map<string, number>();
  /** Per learner: the commands it delivered, and in which slot. */
  private readonly deliveredByLearner = new Map<string, Map<string, number>>();
  private readonly submitted = new Map<string, string>();
  private readonly votes = new Map<string, Value>();
  /** Which incarnation of a process first sent a prepare at each ballot. */
  private readonly prepares = new Map<string, string>();
  decisions = 0;
  deliveredCommands = 0;

  constructor(private readonly stopAtFirst = true) {}

  get failed(): boolean {
    return this.violations.length > 0;
  }

  submittedCount(): number {
    return this.submitted.size;
  }

  /** Records a command a client submitted: the only values that may be decided. */
  submit(command: Command): void {
    this.submitted.set(commandKey(command), command.payload);
  }

  /**
   * A learner restarted. It kept (durably) slots 1 ..= `restoredThrough` and learns again after them;
   * what it delivered after them is forgotten with it.
   */
  learnerRestarted(learner: string, restoredThrough = 0): void {
    this.nextSlotByLearner.set(learner, restoredThrough + 1);
    const delivered = this.deliveredByLearner.get(learner);
    if (delivered === undefined) return;
    for (const [key, slot] of delivered) if (slot > restoredThrough) delivered.delete(key);
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

  /** Every prepare sent, with the sending process and its incarnation number. */
  prepare(ballot: Ballot, process: string, incarnation: number, event: number): void {
    const key = `${process}@${ballotKey(ballot)}`;
    const first = this.prepares.get(key);
    const self = `${process}#${incarnation}`;
    if (first === undefined) this.prepares.set(key, self);
    else if (first !== self) {
      this.fail(
        "fresh-ballot",
        `${process} reused ballot ${ballotKey(ballot)} after a restart (${first} used it)`,
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
      const payload = this.submitted.get(commandKey(command));
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

function describe(value: Value): string {
  if (value.commands.length === 0) return "no-op";
  const keys = value.commands.slice(0, 3).map(commandKey).join(",");
  return `[${keys}${value.commands.length > 3 ? `,... ${value.commands.length} commands` : ""}]`;
}
