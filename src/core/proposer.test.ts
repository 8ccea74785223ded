/**
 * The proposer, driven by hand against real acceptors and learners through a tiny deterministic
 * router (below). Single-decree Paxos (the Synod) is slot 1; Multi-Paxos is everything after.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { Acceptor, type AcceptorState } from "./acceptor.js";
import { type Ballot, ballot, ballotGreater, ballotKey, type NodeId } from "./ballot.js";
import { Learner } from "./learner.js";
import { commandBytesEstimate, type Limits } from "./limits.js";
import type {
  AcceptedMessage,
  AcceptMessage,
  AckMessage,
  Command,
  Decision,
  Destination,
  Envelope,
  Message,
  MessageType,
  PrepareMessage,
  RequestMessage,
  Role,
  Value,
} from "./messages.js";
import { isNoop, valuesEqual } from "./messages.js";
import type { DurableDelta, Output } from "./output.js";
import { Prng } from "./prng.js";
import { Proposer, type ProposerBugs, type ProposerTiming } from "./proposer.js";
import { createQuorumSystem, type QuorumSystem } from "./quorum.js";

// --- a tiny deterministic router ------------------------------------------------------------------

type Key = string; // "role:id"
const key = (role: Role, id: NodeId): Key => `${role}:${id}`;

interface InFlightMessage {
  readonly from: Key;
  readonly to: Key;
  readonly message: Message;
}

interface NetworkOptions {
  readonly proposers?: readonly NodeId[];
  readonly acceptors?: readonly NodeId[];
  readonly learners?: readonly NodeId[];
  readonly restoreAcceptors?: ReadonlyMap<NodeId, AcceptorState>;
  readonly limits?: Partial<Limits>;
  readonly timing?: Partial<ProposerTiming>;
  readonly seed?: number;
  readonly proposerBugs?: ProposerBugs;
}

function majority(ids: readonly NodeId[]): QuorumSystem {
  const result = createQuorumSystem(
    ids.map((id) => ({ id })),
    { kind: "majority" },
  );
  assert.ok(result.ok);
  return result.value;
}

/**
 * Delivers envelopes to real role objects, one at a time, first in first out unless a test picks.
 * Persisting is synchronous, so "persist before sendAfterPersist" holds trivially; the router still
 * checks the one rule it can see: a prepare never leaves with a round the proposer has not persisted.
 */
class Network {
  readonly quorum: QuorumSystem;
  readonly proposers = new Map<NodeId, Proposer>();
  readonly acceptors = new Map<NodeId, Acceptor>();
  readonly learners = new Map<NodeId, Learner>();
  queue: InFlightMessage[] = [];
  /** Every message handed to the network, per recipient, in order. */
  readonly sent: InFlightMessage[] = [];
  /** Every delta persisted, in order. */
  readonly persisted: { from: Key; delta: DurableDelta }[] = [];
  /** What each learner (and each proposer's embedded learner) delivered, in order. */
  readonly decided = new Map<Key, Decision[]>();
  /** Nodes that are crashed or cut off: nothing reaches them, nothing leaves them, they do not tick. */
  readonly down = new Set<Key>();
  private readonly durableRound = new Map<NodeId, number>();
  private readonly limits: Partial<Limits>;
  private readonly timing: Partial<ProposerTiming>;
  private readonly prng: Prng;
  private readonly proposerBugs: ProposerBugs | undefined;

  constructor(options: NetworkOptions = {}) {
    const acceptorIds = options.acceptors ?? [1, 2, 3];
    this.quorum = majority(acceptorIds);
    this.limits = options.limits ?? {};
    this.timing = options.timing ?? {};
    this.prng = new Prng(options.seed ?? 1);
    this.proposerBugs = options.proposerBugs;
    for (const id of acceptorIds) {
      const restore = options.restoreAcceptors?.get(id);
      this.acceptors.set(id, new Acceptor({ id, limits: this.limits, ...(restore ? { restore } : {}) }));
    }
    for (const id of options.proposers ?? [1]) this.addProposer(id);
    for (const id of options.learners ?? [1, 2]) {
      this.learners.set(id, new Learner({ id, quorum: this.quorum, limits: this.limits, catchupTicks: 5 }));
    }
  }

  addProposer(id: NodeId, restore?: { round: number }): Proposer {
    const proposer = new Proposer({
      id,
      quorum: this.quorum,
      prng: this.prng.fork(),
      limits: this.limits,
      timing: this.timing,
      catchupTicks: 5,
      ...(restore ? { restore } : {}),
      ...(this.proposerBugs ? { bugs: this.proposerBugs } : {}),
    });
    this.proposers.set(id, proposer);
    this.durableRound.set(id, restore?.round ?? 0);
    return proposer;
  }

  proposer(id: NodeId): Proposer {
    const proposer = this.proposers.get(id);
    assert.ok(proposer, `no proposer ${id}`);
    return proposer;
  }

  private recipients(to: Destination): Key[] {
    // Clients are not simulated here, but what is sent to them is recorded (and then lost).
    const ids: NodeId[] =
      to.role === "proposer"
        ? [...this.proposers.keys()]
        : to.role === "acceptor"
          ? [...this.acceptors.keys()]
          : to.role === "learner"
            ? [...this.learners.keys()]
            : to.id !== undefined
              ? [to.id]
              : [];
    return ids.filter((id) => to.id === undefined || to.id === id).map((id) => key(to.role, id));
  }

  /** Takes a role's output: persist (synchronously), then queue its messages. */
  handle(from: Key, output: Output): Output {
    const [role, idText] = from.split(":") as [Role, string];
    if (role === "proposer") {
      const id = Number(idText);
      const durable = this.durableRound.get(id) ?? 0;
      for (const e of output.send) {
        if (e.message.type === "prepare") {
          assert.ok(
            e.message.ballot.round <= durable,
            `prepare at round ${e.message.ballot.round} sent before persisting it`,
          );
        }
      }
      if (output.persist?.proposerRound !== undefined)
        this.durableRound.set(id, output.persist.proposerRound);
      const after = this.durableRound.get(id) ?? 0;
      for (const e of output.sendAfterPersist) {
        if (e.message.type === "prepare") {
          assert.ok(
            e.message.ballot.round <= after,
            `prepare at round ${e.message.ballot.round} not persisted`,
          );
        }
      }
    }
    if (output.persist !== null) this.persisted.push({ from, delta: output.persist });
    for (const envelope of [...output.send, ...output.sendAfterPersist]) this.inject(from, envelope);
    if (output.decided.length > 0) {
      const list = this.decided.get(from) ?? [];
      list.push(...output.decided);
      this.decided.set(from, list);
    }
    return output;
  }

  inject(from: Key, envelope: Envelope): void {
    if (this.down.has(from)) return;
    for (const to of this.recipients(envelope.to)) {
      const item = { from, to, message: envelope.message };
      this.sent.push(item);
      this.queue.push(item);
    }
  }

  private stepNode(to: Key, message: Message): void {
    if (this.down.has(to)) return;
    const [role, idText] = to.split(":") as [Role, string];
    const id = Number(idText);
    switch (role) {
      case "proposer":
        this.handle(to, this.proposer(id).step(message));
        break;
      case "acceptor":
        this.handle(to, (this.acceptors.get(id) as Acceptor).step(message));
        break;
      case "learner":
        this.handle(to, (this.learners.get(id) as Learner).step(message));
        break;
      case "client":
        break;
    }
  }

  /** Delivers queued messages matching `filter`, oldest first, until none match; returns how many. */
  deliver(filter: (m: InFlightMessage) => boolean = () => true, limit = 100_000): number {
    let count = 0;
    for (;;) {
      const index = this.queue.findIndex(filter);
      if (index === -1 || count >= limit) return count;
      const [item] = this.queue.splice(index, 1) as [InFlightMessage];
      this.stepNode(item.to, item.message);
      count++;
    }
  }

  deliverAt(index: number): void {
    const [item] = this.queue.splice(index, 1);
    if (item) this.stepNode(item.to, item.message);
  }

  /** Removes queued messages matching `filter` (they are lost). */
  drop(filter: (m: InFlightMessage) => boolean = () => true): number {
    const before = this.queue.length;
    this.queue = this.queue.filter((m) => !filter(m));
    return before - this.queue.length;
  }

  tickProposer(id: NodeId): Output {
    if (this.down.has(key("proposer", id))) return this.handle(key("proposer", id), emptyOut());
    return this.handle(key("proposer", id), this.proposer(id).tick());
  }

  /** One tick everywhere (that is up). */
  tickAll(): void {
    for (const id of this.proposers.keys()) this.tickProposer(id);
    for (const [id, learner] of this.learners) {
      if (!this.down.has(key("learner", id))) this.handle(key("learner", id), learner.tick());
    }
  }

  /** Ticks, delivering everything after each tick, until `done` or the budget runs out. */
  runUntil(done: () => boolean, ticksMax = 2000): number {
    for (let tick = 0; tick < ticksMax; tick++) {
      this.deliver();
      if (done()) return tick;
      this.tickAll();
    }
    this.deliver();
    assert.ok(done(), `condition not reached in ${ticksMax} ticks`);
    return ticksMax;
  }

  /** Ticks one proposer until it starts phase 1, returning that output (nothing delivered). */
  tickUntilCandidate(id: NodeId, ticksMax = 500): Output {
    for (let tick = 0; tick < ticksMax; tick++) {
      const out = this.tickProposer(id);
      if (this.proposer(id).mode === "candidate") return out;
    }
    assert.fail(`proposer ${id} never started phase 1`);
  }

  /** Makes `id` the leader: its election timeout fires and every message is delivered. */
  elect(id: NodeId): void {
    this.tickUntilCandidate(id);
    this.deliver();
    assert.equal(this.proposer(id).mode, "leader");
  }

  decidedBy(k: Key): Decision[] {
    return this.decided.get(k) ?? [];
  }

  /** Slot -> value, from one learner's deliveries. */
  logOf(k: Key): Value[] {
    return this.decidedBy(k).map((d) => d.value);
  }

  countSent(type: MessageType, since = 0): number {
    return this.sent.slice(since).filter((m) => m.message.type === type).length;
  }

  /**
   * Values chosen per slot, by the definition: a phase-2 quorum of acceptors voted at one ballot.
   * A vote may leave its value out; (slot, ballot) names one proposal, so the value is the accept's.
   */
  chosenBySlot(): Map<number, Value[]> {
    const proposals = new Map<string, Value>();
    for (const { message } of this.sent) {
      if (message.type !== "accept") continue;
      const id = `${message.slot}/${ballotKey(message.ballot)}`;
      const earlier = proposals.get(id);
      assert.ok(earlier === undefined || valuesEqual(earlier, message.value), `two proposals at ${id}`);
      proposals.set(id, message.value);
    }
    const voters = new Map<string, { slot: number; value: Value; acceptors: Set<NodeId> }>();
    for (const { from, message } of this.sent) {
      if (message.type !== "accepted" || !from.startsWith("acceptor:")) continue;
      const id = `${message.slot}/${ballotKey(message.ballot)}`;
      const proposed = proposals.get(id);
      assert.ok(proposed !== undefined, `a vote at ${id} for nothing proposed`);
      if (message.value !== null)
        assert.ok(valuesEqual(proposed, message.value), `a vote at ${id} misnames the value`);
      const entry = voters.get(id) ?? { slot: message.slot, value: proposed, acceptors: new Set() };
      entry.acceptors.add(message.from);
      voters.set(id, entry);
    }
    const chosen = new Map<number, Value[]>();
    for (const { slot, value, acceptors } of voters.values()) {
      if (!this.quorum.isPhase2Quorum(acceptors)) continue;
      const list = chosen.get(slot) ?? [];
      if (!list.some((v) => valuesEqual(v, value))) list.push(value);
      chosen.set(slot, list);
    }
    return chosen;
  }
}

function emptyOut(): Output {
  return { persist: null, send: [], sendAfterPersist: [], decided: [], snapshot: null };
}

const cmd = (seq: number, payload = `v${seq}`, client = 7): Command => ({ client, seq, payload });
const val = (...commands: Command[]): Value => ({ commands });
const toAcceptor = (id: NodeId) => (m: InFlightMessage) => m.to === key("acceptor", id);
const ofType =
  (type: MessageType) =>
  (m: InFlightMessage): boolean =>
    m.message.type === type;
const both =
  (...filters: ((m: InFlightMessage) => boolean)[]) =>
  (m: InFlightMessage): boolean =>
    filters.every((f) => f(m));
const payloads = (values: readonly Value[]): string[][] =>
  values.map((v) => v.commands.map((c) => c.payload));

// --- Synod ----------------------------------------------------------------------------------------

describe("Synod: single-decree Paxos in slot 1 (Paxos Made Simple 2.2)", () => {
  it("phase 1: the new round is persisted, and the prepare leaves only after that persist", () => {
    const net = new Network();
    const out = net.tickUntilCandidate(1);
    assert.deepEqual(out.persist, { proposerRound: 1 });
    assert.deepEqual(
      out.send.filter((e) => e.message.type === "prepare"),
      [],
      "a prepare with a new round is never in `send`",
    );
    assert.deepEqual(out.sendAfterPersist, [
      {
        to: { role: "acceptor" },
        message: { type: "prepare", from: 1, ballot: ballot(1, 1), firstSlot: 1 } satisfies PrepareMessage,
      },
    ]);
    assert.deepEqual(net.proposer(1).state(), { round: 1 });
  });

  it("phase 1: a resent prepare also leaves only after persist, so a round whose sync is slow never goes out undurable (seed 1019476)", () => {
    const net = new Network();
    net.tickUntilCandidate(1);
    const proposer = net.proposer(1);
    // Nothing answers (the first sync of the round may still be under way): the prepare is resent.
    let resent: Output | null = null;
    for (let tick = 0; tick < 500 && resent === null; tick++) {
      const out = proposer.tick();
      if ([...out.send, ...out.sendAfterPersist].some((e) => e.message.type === "prepare")) resent = out;
    }
    assert.ok(resent !== null, "the prepare was resent");
    assert.deepEqual(
      resent.send.filter((e) => e.message.type === "prepare"),
      [],
      "a resent prepare is never in `send`",
    );
    assert.ok(resent.sendAfterPersist.some((e) => e.message.type === "prepare"));
  });

  it("with a quorum of promises the proposer proposes its client's value, and learners learn it", () => {
    const net = new Network();
    net.handle("proposer:1", net.proposer(1).submit([cmd(1, "x=1")]));
    assert.equal(net.queue.length, 0, "a follower only queues the command");
    net.tickUntilCandidate(1);
    net.deliver(ofType("prepare"));
    // Promises from acceptors 1 and 2 make a quorum; acceptor 3's is not needed.
    net.deliver(both(ofType("promise"), (m) => m.from !== "acceptor:3"));
    assert.equal(net.proposer(1).mode, "leader");
    const accepts = net.queue
      .filter((m) => m.message.type === "accept" && m.to.startsWith("acceptor:"))
      .map((m) => m.message as AcceptMessage);
    assert.equal(accepts.length, 3, "one accept per acceptor");
    for (const accept of accepts) {
      assert.deepEqual(accept, {
        type: "accept",
        from: 1,
        ballot: ballot(1, 1),
        slot: 1,
        value: val(cmd(1, "x=1")),
      });
    }
    net.deliver();
    for (const learner of ["learner:1", "learner:2", "proposer:1"]) {
      assert.deepEqual(payloads(net.logOf(learner)), [["x=1"]], learner);
    }
  });

  it("P2c: when promises report accepted values, the one at the highest ballot is proposed, not the client's", () => {
    const X = val(cmd(1, "X", 20));
    const Z = val(cmd(1, "Z", 21));
    const net = new Network({
      restoreAcceptors: new Map([
        [1, { promised: ballot(1, 9), accepted: [{ slot: 1, ballot: ballot(1, 9), value: X }] }],
        [2, { promised: ballot(2, 8), accepted: [{ slot: 1, ballot: ballot(2, 8), value: Z }] }],
      ]),
    });
    net.down.add("acceptor:3"); // the quorum must be {1, 2}, so both votes are seen
    net.handle("proposer:1", net.proposer(1).submit([cmd(1, "Y")]));
    net.runUntil(() => net.decidedBy("learner:1").length >= 2);
    assert.ok(net.countSent("reject") >= 2, "the first prepare, at 1.1, is refused by both acceptors");
    assert.deepEqual(
      net.proposer(1).ballot,
      ballot(3, 1),
      "it then jumps past the highest ballot it was told of",
    );
    assert.deepEqual(
      net.logOf("learner:1")[0],
      Z,
      "slot 1: the vote at 2.8 beats the vote at 1.9 and the client's Y",
    );
    assert.deepEqual(
      payloads(net.logOf("learner:1")),
      [["Z"], ["Y"]],
      "the client's command moves to slot 2",
    );
  });

  it("(control) a proposer that ignores reported votes replaces a chosen value in the same scenario", () => {
    const X = val(cmd(1, "X", 20));
    const net = new Network({
      // X is chosen: acceptors 1 and 2, a quorum, voted for it at 1.9.
      restoreAcceptors: new Map([
        [1, { promised: ballot(1, 9), accepted: [{ slot: 1, ballot: ballot(1, 9), value: X }] }],
        [2, { promised: ballot(1, 9), accepted: [{ slot: 1, ballot: ballot(1, 9), value: X }] }],
      ]),
      proposerBugs: { ignorePromisedValues: true },
    });
    net.down.add("acceptor:3");
    net.handle("proposer:1", net.proposer(1).submit([cmd(1, "Y")]));
    net.runUntil(() => net.decidedBy("learner:1").length >= 1);
    assert.deepEqual(
      payloads(net.logOf("learner:1").slice(0, 1)),
      [["Y"]],
      "the bug decides Y over the chosen X",
    );
  });

  it("two competing proposers: the later ballot adopts the earlier one's accepted value, and one value is decided", () => {
    const net = new Network({ proposers: [1, 2] });
    net.handle("proposer:1", net.proposer(1).submit([cmd(1, "X", 1)]));
    net.handle("proposer:2", net.proposer(2).submit([cmd(1, "Y", 2)]));
    // Proposer 1 wins phase 1 with acceptors 1 and 2; acceptor 3 hears nothing from it yet.
    net.tickUntilCandidate(1);
    net.deliver(both(ofType("prepare"), (m) => m.to !== "acceptor:3"));
    net.deliver(ofType("promise"));
    assert.equal(net.proposer(1).mode, "leader");
    // Its accept reaches acceptor 2 only.
    net.deliver(both(ofType("accept"), toAcceptor(2)));
    net.deliver(ofType("accepted"));
    // Proposer 2 runs phase 1 at a higher ballot with acceptors 2 and 3, and learns of X from 2.
    net.tickUntilCandidate(2);
    assert.ok(ballotGreater(net.proposer(2).ballot, ballot(1, 1)));
    net.deliver(both(ofType("prepare"), (m) => m.from === "proposer:2" && m.to !== "acceptor:1"));
    net.deliver(both(ofType("promise"), (m) => m.to === "proposer:2"));
    assert.equal(net.proposer(2).mode, "leader");
    const proposal = net.queue.find(both(ofType("accept"), (m) => m.from === "proposer:2"))
      ?.message as AcceptMessage;
    assert.deepEqual(proposal.value, val(cmd(1, "X", 1)), "proposer 2 proposes X, not its own Y");
    // Everything else now arrives, in order: proposer 1's stale accepts are refused by 3, it steps down.
    net.deliver();
    assert.equal(net.proposer(1).mode, "follower");
    assert.deepEqual(
      [...net.chosenBySlot().entries()].map(([slot, values]) => [slot, payloads(values)]),
      [
        [1, [["X"]]],
        [2, [["Y"]]],
      ],
    );
    assert.deepEqual(payloads(net.logOf("learner:1")), [["X"], ["Y"]]);
    assert.deepEqual(net.logOf("learner:2"), net.logOf("learner:1"));
  });

  it("property: two proposers under any interleaving, loss and duplication never choose two values in slot 1", () => {
    const action = fc.oneof(
      fc.record({ kind: fc.constant("deliver" as const), pick: fc.nat() }),
      fc.record({ kind: fc.constant("drop" as const), pick: fc.nat() }),
      fc.record({ kind: fc.constant("duplicate" as const), pick: fc.nat() }),
      fc.record({ kind: fc.constant("tick" as const), pick: fc.integer({ min: 1, max: 2 }) }),
    );
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 1_000_000 }),
        fc.array(action, { minLength: 10, maxLength: 200, size: "max" }),
        (seed, actions) => {
          const net = new Network({ proposers: [1, 2], seed, timing: { electionTimeoutTicks: 4 } });
          net.handle("proposer:1", net.proposer(1).submit([cmd(1, "X", 1)]));
          net.handle("proposer:2", net.proposer(2).submit([cmd(1, "Y", 2)]));
          for (const { kind, pick } of actions) {
            if (kind === "tick") {
              net.tickProposer(pick);
              continue;
            }
            if (net.queue.length === 0) continue;
            const index = pick % net.queue.length;
            if (kind === "deliver") net.deliverAt(index);
            else if (kind === "drop") net.queue.splice(index, 1);
            else net.queue.push(net.queue[index] as InFlightMessage);
          }
          // Safety, whatever happened so far.
          for (const [slot, values] of net.chosenBySlot())
            assert.equal(values.length, 1, `slot ${slot}: ${payloads(values)}`);
          // Then the network heals: every learner learns slot 1, and all agree.
          net.runUntil(() => [...net.learners.values()].every((l) => l.deliveredThrough >= 1), 3000);
          const chosen = net.chosenBySlot().get(1) ?? [];
          assert.equal(chosen.length, 1);
          for (const k of ["learner:1", "learner:2"]) assert.deepEqual(net.logOf(k)[0], chosen[0]);
          assert.ok(
            ["X", "Y"].includes(chosen[0]?.commands[0]?.payload ?? ""),
            "the chosen value was proposed",
          );
        },
      ),
      { numRuns: 60 },
    );
  });
});

// --- Multi-Paxos ----------------------------------------------------------------------------------

describe("Multi-Paxos: a stable leader", () => {
  it("runs phase 1 once; then many commands are decided with accept/accepted messages only", () => {
    const net = new Network({ limits: { batchCommandsMax: 1 } });
    net.elect(1);
    const preparesAtElection = net.countSent("prepare");
    assert.equal(preparesAtElection, 3, "one prepare to each acceptor");
    const mark = net.sent.length;
    for (let seq = 1; seq <= 30; seq++) {
      net.handle("proposer:1", net.proposer(1).submit([cmd(seq)]));
      net.deliver();
    }
    assert.equal(net.countSent("prepare"), preparesAtElection, "no further phase 1");
    assert.deepEqual(
      [...new Set(net.sent.slice(mark).map((m) => m.message.type))].sort(),
      ["accept", "accepted", "ack"],
      "proposals and votes, and the acks to the client",
    );
    const acceptsToAcceptors = net.sent
      .slice(mark)
      .filter((m) => m.message.type === "accept" && m.to.startsWith("acceptor:")).length;
    assert.equal(acceptsToAcceptors, 30 * 3, "one accept per slot per acceptor, no retries");
    const log = net.decidedBy("learner:1");
    assert.deepEqual(
      log.map((d) => d.slot),
      Array.from({ length: 30 }, (_, i) => i + 1),
    );
    assert.deepEqual(
      log.map((d) => d.commands[0]?.seq),
      Array.from({ length: 30 }, (_, i) => i + 1),
    );
  });

  it("a new leader re-proposes the highest-ballot vote of each undecided slot and fills holes with no-ops", () => {
    const X = val(cmd(1, "X", 30));
    const Y = val(cmd(1, "Y", 31));
    const W = val(cmd(1, "W", 32));
    const net = new Network({
      proposers: [3],
      restoreAcceptors: new Map([
        [
          1,
          {
            promised: ballot(2, 2),
            accepted: [
              { slot: 1, ballot: ballot(1, 1), value: X },
              { slot: 3, ballot: ballot(1, 1), value: W },
            ],
          },
        ],
        [2, { promised: ballot(2, 2), accepted: [{ slot: 1, ballot: ballot(2, 2), value: Y }] }],
      ]),
    });
    net.down.add("acceptor:3"); // a quorum of {1, 2}: both reports are needed
    const leader = net.proposer(3);
    net.handle("proposer:3", leader.submit([cmd(1, "fresh")]));
    net.runUntil(() => net.decidedBy("learner:1").length >= 4);
    const log = net.logOf("learner:1");
    assert.deepEqual(log[0], Y, "slot 1: Y at 2.2 beats X at 1.1");
    assert.ok(log[1] && isNoop(log[1]), "slot 2: nobody voted, a no-op fills the hole");
    assert.deepEqual(log[2], W, "slot 3: the only vote, W, is re-proposed");
    assert.deepEqual(payloads(log.slice(3)), [["fresh"]], "new commands go after the recovered slots");
    assert.equal(leader.mode, "leader");
  });

  it("a leader keeps asking for the slots below an acceptor's floor, and recovers them from a late report when nobody can teach them (seed 68113)", () => {
    // Slot 1 was chosen at 2.2 by acceptors 1 and 2. Acceptor 1 learned so, took a snapshot and
    // dropped its vote (floor 2); then every node that knew slot 1 decided lost that knowledge (in
    // seed 68113, acceptor 1's disk was wiped). Only acceptor 2's vote still holds the value.
    const X = val(cmd(1, "X", 40));
    const net = new Network({
      proposers: [3],
      restoreAcceptors: new Map([
        [1, { promised: ballot(2, 2), accepted: [], floorSlot: 2 }],
        [2, { promised: ballot(2, 2), accepted: [{ slot: 1, ballot: ballot(2, 2), value: X }] }],
      ]),
    });
    net.down.add("acceptor:2"); // unreachable during the election: the quorum is {1, 3}
    const leader = net.proposer(3);
    net.handle("proposer:3", leader.submit([cmd(1, "fresh")]));
    net.runUntil(() => leader.mode === "leader");
    assert.equal(net.decidedBy("learner:1").length, 0, "slot 1 is left to the learners, who cannot learn it");
    net.down.delete("acceptor:2");
    net.runUntil(() => net.decidedBy("learner:1").length >= 2);
    assert.deepEqual(
      payloads(net.logOf("learner:1")),
      [["X"], ["fresh"]],
      "slot 1 recovers the chosen X from acceptor 2's late report; the new command follows",
    );
    for (const [slot, values] of net.chosenBySlot())
      assert.equal(values.length, 1, `one value in slot ${slot}`);
    assert.equal(leader.mode, "leader", "recovered at the same ballot, without a new election");
  });

  it("a leader whose learner lags proposes no further than that learner's horizon, and goes on once it delivers (seed 726829)", () => {
    // As in seed 68113, slot 1 cannot be learned while acceptor 2 is away: the leader's own learner
    // delivers nothing. It still decides later slots, and its learner keeps each value until it can
    // deliver it; without a bound a lagging leader held every slot it decided (1,600 and rising).
    const X = val(cmd(1, "X", 40));
    const limits = { windowSlots: 2, learnerMarginSlots: 3, batchCommandsMax: 1 };
    const net = new Network({
      proposers: [3],
      limits,
      restoreAcceptors: new Map([
        [1, { promised: ballot(2, 2), accepted: [], floorSlot: 2 }],
        [2, { promised: ballot(2, 2), accepted: [{ slot: 1, ballot: ballot(2, 2), value: X }] }],
      ]),
    });
    net.down.add("acceptor:2");
    const leader = net.proposer(3);
    net.handle("proposer:3", leader.submit(Array.from({ length: 12 }, (_, i) => cmd(i + 1))));
    net.runUntil(() => leader.mode === "leader");
    net.runUntil(() => net.queue.length === 0 && leader.inFlightCount === 0, 200);
    const horizon = leader.learner.horizonSlot;
    assert.equal(horizon, 0 + 2 + 3);
    const accepts = net.sent.filter(ofType("accept")).map((m) => (m.message as AcceptMessage).slot);
    assert.equal(Math.max(...accepts), horizon, "nothing proposed past the horizon");
    assert.equal(leader.learner.deliveredThrough, 0);
    assert.ok(leader.pendingCount > 0, "the rest waits");
    net.down.delete("acceptor:2");
    net.runUntil(() => net.decidedBy("learner:1").length >= 13);
    assert.deepEqual(payloads(net.logOf("learner:1"))[0], ["X"]);
    for (const [slot, values] of net.chosenBySlot())
      assert.equal(values.length, 1, `one value in slot ${slot}`);
  });

  it("the window bounds the slots in flight", () => {
    const net = new Network({ limits: { windowSlots: 3, batchCommandsMax: 1 } });
    net.elect(1);
    const leader = net.proposer(1);
    net.handle("proposer:1", leader.submit(Array.from({ length: 10 }, (_, i) => cmd(i + 1))));
    const slotsProposed = () =>
      new Set(net.queue.filter(ofType("accept")).map((m) => (m.message as AcceptMessage).slot));
    assert.deepEqual([...slotsProposed()], [1, 2, 3]);
    assert.equal(leader.inFlightCount, 3);
    assert.equal(leader.pendingCount, 7);
    // Deciding slot 1 frees one place in the window: slot 4 is proposed, no more.
    net.deliver(
      (m) =>
        (m.message.type === "accept" || m.message.type === "accepted") &&
        (m.message as AcceptMessage).slot === 1,
    );
    assert.deepEqual([...slotsProposed()].sort(), [2, 3, 4]);
    let inFlightMax = 0;
    while (net.queue.length > 0) {
      net.deliverAt(0);
      inFlightMax = Math.max(inFlightMax, leader.inFlightCount);
    }
    assert.ok(inFlightMax <= 3, `in flight reached ${inFlightMax}`);
    assert.equal(net.decidedBy("learner:1").length, 10);
  });

  it("batching puts many commands in one slot, bounded by batchCommandsMax and batchBytesMax", () => {
    const net = new Network({ limits: { batchCommandsMax: 20 } });
    net.elect(1);
    net.handle("proposer:1", net.proposer(1).submit(Array.from({ length: 50 }, (_, i) => cmd(i + 1))));
    net.deliver();
    assert.deepEqual(
      net.decidedBy("learner:1").map((d) => d.commands.length),
      [20, 20, 10],
    );
    // Room for two 100-character commands, by the same estimate the proposer uses.
    const byBytes = new Network({ limits: { batchBytesMax: 16 + 2 * commandBytesEstimate(100) } });
    byBytes.elect(1);
    byBytes.handle(
      "proposer:1",
      byBytes.proposer(1).submit(Array.from({ length: 5 }, (_, i) => cmd(i + 1, "p".repeat(100)))),
    );
    byBytes.deliver();
    assert.deepEqual(
      byBytes.decidedBy("learner:1").map((d) => d.commands.length),
      [2, 2, 1],
    );
  });

  it("commands that arrive while the leader is not yet elected are batched into its first free slot", () => {
    const net = new Network();
    net.handle("proposer:1", net.proposer(1).submit(Array.from({ length: 12 }, (_, i) => cmd(i + 1))));
    net.elect(1);
    net.deliver();
    assert.deepEqual(
      net.decidedBy("learner:1").map((d) => d.commands.length),
      [12],
    );
  });

  it("an accept retry after acceptRetryTicks resends the same value in the same slot (never replaced)", () => {
    const acceptRetryTicks = 6;
    // A long election timeout: check-quorum would otherwise make a leader that hears nobody step down.
    const net = new Network({
      timing: { acceptRetryTicks, heartbeatTicks: 1000, electionTimeoutTicks: 200 },
    });
    net.elect(1);
    const leader = net.proposer(1);
    const X = val(cmd(1, "X"));
    net.handle("proposer:1", leader.submit(X.commands));
    net.drop(); // every accept for X is lost
    net.handle("proposer:1", leader.submit([cmd(2, "Y")])); // a newer command must not take X's slot
    net.drop();
    const resends: { tick: number; message: AcceptMessage }[] = [];
    for (let tick = 1; tick <= 30; tick++) {
      const out = net.tickProposer(1);
      for (const e of out.send) {
        if (e.message.type === "accept" && e.to.role === "acceptor")
          resends.push({ tick, message: e.message });
      }
      net.drop();
    }
    assert.ok(resends.length >= 4, "both slots are retried, more than once");
    const firstRetryTick = resends[0]?.tick ?? 0;
    assert.ok(
      firstRetryTick >= acceptRetryTicks && firstRetryTick < acceptRetryTicks * 1.5,
      `first retry on tick ${firstRetryTick}`,
    );
    for (const { message } of resends) {
      assert.deepEqual(message.ballot, ballot(1, 1));
      assert.deepEqual(message.value, message.slot === 1 ? X : val(cmd(2, "Y")), `slot ${message.slot}`);
    }
    const slot1Ticks = resends.filter((r) => r.message.slot === 1).map((r) => r.tick);
    assert.ok((slot1Ticks[1] ?? 0) - (slot1Ticks[0] ?? 0) >= acceptRetryTicks * 2, "the wait doubles");
    // Once the network delivers, the retried values are decided where they were first proposed.
    net.runUntil(() => net.decidedBy("learner:1").length >= 2);
    assert.deepEqual(payloads(net.logOf("learner:1")), [["X"], ["Y"]]);
  });

  /**
   * Proposer 1 leads and has just proposed `commands` in slot 1; proposer 2 then wins every
   * acceptor's promise at a higher ballot, so proposer 1's accepts are refused and it steps down.
   * Proposer 2's promises are still queued: it becomes leader on the next delivery.
   */
  function preemptLeader(net: Network, propose: () => void): Proposer {
    net.elect(1);
    net.deliver();
    propose();
    assert.equal(net.proposer(1).inFlightCount, 1, "the leader proposed the batch");
    net.tickUntilCandidate(2);
    net.deliver(both(ofType("prepare"), (m) => m.from === "proposer:2"));
    net.deliver(both(ofType("accept"), (m) => m.from === "proposer:1"));
    assert.equal(net.countSent("accepted"), 0, "every acceptor refused the old ballot");
    net.deliver(both(ofType("reject"), (m) => m.to === "proposer:1"));
    const old = net.proposer(1);
    assert.equal(old.mode, "follower");
    assert.equal(old.inFlightCount, 0);
    return old;
  }

  const appliedPayloads = (net: Network, k: Key) =>
    net
      .decidedBy(k)
      .flatMap((d) => d.commands)
      .map((c) => c.payload);

  it("a reject with a higher ballot makes the leader step down; its undecided commands stay pending and are decided under the new leader", () => {
    const net = new Network({ proposers: [1, 2] });
    const commands = [cmd(1, "a"), cmd(2, "b"), cmd(3, "c")];
    const request: Envelope = { to: { role: "proposer" }, message: { type: "request", from: 7, commands } };
    const old = preemptLeader(net, () => {
      net.inject("client:7", request);
      net.deliver(ofType("request"));
    });
    assert.equal(old.pendingCount, 3, "nothing is lost: the commands are pending again");
    // The client has no ack, so it sends its request again (to every proposer, as Client does).
    net.inject("client:7", request);
    net.runUntil(() => appliedPayloads(net, "learner:1").length >= 3);
    assert.equal(net.proposer(2).mode, "leader");
    assert.deepEqual(appliedPayloads(net, "learner:1"), ["a", "b", "c"]);
    // The old leader hears the new one's heartbeats, catches up, and lets go of its pending copies.
    net.runUntil(() => old.pendingCount === 0 && old.learner.deliveredThrough >= 1);
    assert.equal(old.mode, "follower");
  });

  it("commands submitted locally (Proposer.submit, no client to resend) to a leader that is then preempted are decided under the new leader", () => {
    const net = new Network({ proposers: [1, 2] });
    const old = preemptLeader(net, () => {
      net.handle("proposer:1", net.proposer(1).submit([cmd(1, "a"), cmd(2, "b"), cmd(3, "c")]));
    });
    assert.equal(old.pendingCount, 3, "the commands are pending again at the old leader");
    net.runUntil(() => appliedPayloads(net, "learner:1").length >= 3, 1500);
    assert.deepEqual(appliedPayloads(net, "learner:1"), ["a", "b", "c"]);
  });

  it("a follower hands each local submit's new commands to the leader at once, and resends all pending only on its timer", () => {
    const net = new Network({ proposers: [1, 2] });
    net.elect(1);
    const follower = net.proposer(2);
    net.runUntil(() => follower.leader === 1);
    const requests = () =>
      net.queue
        .filter((m) => m.message.type === "request" && m.from === "proposer:2")
        .map((m) => (m.message as RequestMessage).commands.map((c) => c.payload));
    net.queue = [];
    for (const payload of ["a", "b", "c"])
      net.handle("proposer:2", follower.submit([cmd(payload.charCodeAt(0), payload)]));
    // Before, every submit resent every pending command: [a], [a, b], [a, b, c] (O(pending) each).
    assert.deepEqual(requests(), [["a"], ["b"], ["c"]]);
    assert.equal(follower.pendingCount, 3);
    net.queue = []; // lost on the way: the forward timer resends them all
    const fromFollower = (m: InFlightMessage) => m.message.type === "request" && m.from === "proposer:2";
    for (let tick = 0; tick < 200 && requests().length === 0; tick++) {
      net.tickAll();
      net.deliver((m) => !fromFollower(m)); // the leader's heartbeats keep the follower following
    }
    assert.deepEqual(requests(), [["a", "b", "c"]]);
    net.runUntil(() => appliedPayloads(net, "learner:1").length >= 3, 1500);
    assert.deepEqual(appliedPayloads(net, "learner:1"), ["a", "b", "c"]);
  });

  it("a command submitted locally to a leader that has just been preempted is not lost", () => {
    const net = new Network({ proposers: [1, 2] });
    const old = preemptLeader(net, () => {
      net.handle("proposer:1", net.proposer(1).submit([cmd(1, "a")]));
    });
    // It has stepped down but not yet heard from the new leader.
    net.handle("proposer:1", old.submit([cmd(2, "late")]));
    net.runUntil(() => appliedPayloads(net, "learner:1").includes("late"), 1500);
  });

  it("a restarted proposer (restore: {round}) never reuses a ballot", () => {
    const net = new Network({ proposers: [1, 2] });
    const used: Ballot[] = [];
    const recordPrepares = () => {
      for (const m of net.sent)
        if (m.message.type === "prepare" && m.from === "proposer:1") used.push(m.message.ballot);
    };
    // Proposer 1 leads, is preempted by 2, leads again: two rounds used.
    net.elect(1);
    net.elect(2);
    net.runUntil(() => net.proposer(1).mode === "follower");
    net.down.add("proposer:2");
    net.runUntil(() => net.proposer(1).mode === "leader");
    recordPrepares();
    const durable = net.proposer(1).state();
    const lastPersisted = net.persisted.filter((p) => p.from === "proposer:1").at(-1)?.delta.proposerRound;
    assert.equal(durable.round, lastPersisted, "state() is what was persisted");
    // Crash and restart from durable state, with nothing else remembered.
    for (let restart = 0; restart < 3; restart++) {
      const mark = net.sent.length;
      const restarted = net.addProposer(1, net.proposer(1).state());
      net.tickUntilCandidate(1);
      const prepare = net.sent.slice(mark).find((m) => m.message.type === "prepare")
        ?.message as PrepareMessage;
      for (const old of used)
        assert.ok(ballotGreater(prepare.ballot, old), `reused or went below ${ballotKey(old)}`);
      used.push(prepare.ballot);
      net.deliver();
      assert.equal(restarted.mode, "leader");
    }
  });

  it("(control) with reuseBallotAfterRestart a prepare leaves unpersisted and a restart reuses the ballot", () => {
    const net = new Network({ proposerBugs: { reuseBallotAfterRestart: true } });
    assert.throws(() => net.tickUntilCandidate(1), /not persisted/, "the router's persist check sees it");
    const quorum = majority([1, 2, 3]);
    const ballotAfterStart = (restore: { round: number }) => {
      const proposer = new Proposer({
        id: 1,
        quorum,
        prng: new Prng(1),
        restore,
        bugs: { reuseBallotAfterRestart: true },
      });
      while (proposer.mode !== "candidate") proposer.tick();
      return proposer.ballot;
    };
    assert.deepEqual(ballotAfterStart({ round: 0 }), ballotAfterStart({ round: 5 }));
  });

  it("a follower that hears a higher ballot in an accept or accepted jumps past it when it runs phase 1", () => {
    const net = new Network({ proposers: [1] });
    net.handle(
      "proposer:1",
      net.proposer(1).step({ type: "accept", from: 4, ballot: ballot(9, 4), slot: 1, value: val() }),
    );
    const vote: AcceptedMessage = { type: "accepted", from: 1, ballot: ballot(11, 5), slot: 2, value: val() };
    net.handle("proposer:1", net.proposer(1).step(vote));
    net.tickUntilCandidate(1);
    assert.deepEqual(net.proposer(1).ballot, ballot(12, 1));
  });

  it("a follower that hears no leader runs phase 1 after electionTimeoutTicks plus jitter of up to as much again", () => {
    // ProposerTiming.electionTimeoutTicks: "A follower that hears no leader for this long (plus jitter
    // up to as much again) runs phase 1."
    const base = 12;
    const waits: number[] = [];
    for (let seed = 0; seed < 200; seed++) {
      const proposer = new Proposer({
        id: 1,
        quorum: majority([1, 2, 3]),
        prng: new Prng(seed),
        timing: { electionTimeoutTicks: base },
      });
      let ticks = 0;
      while (proposer.mode === "follower" && ticks < 10 * base) {
        proposer.tick();
        ticks++;
      }
      waits.push(ticks);
    }
    assert.ok(Math.min(...waits) >= base, `earliest phase 1 after ${Math.min(...waits)} ticks`);
    const late = waits.filter((w) => w > 2 * base);
    assert.deepEqual(
      late,
      [],
      `${late.length} of 200 seeds waited more than ${2 * base} ticks (up to ${Math.max(...waits)})`,
    );
  });

  it("the leader acks a command only once it is delivered (AckMessage: 'decided (and delivered)')", () => {
    const net = new Network();
    net.elect(1);
    const leader = net.proposer(1);
    net.handle("proposer:1", leader.submit([cmd(1, "held")]));
    const held = net.queue.splice(0); // slot 1's accepts are held back
    net.handle("proposer:1", leader.submit([cmd(2, "quick")]));
    net.deliver();
    assert.ok(leader.learner.chosenValue(2) !== undefined, "slot 2 is chosen");
    assert.equal(leader.learner.deliveredThrough, 0, "but nothing is delivered: slot 1 is still open");
    const ackedSeqs = () => net.sent.filter(ofType("ack")).flatMap((m) => (m.message as AckMessage).seqs);
    assert.deepEqual(ackedSeqs(), [], "seq 2 is decided but not delivered, so it must not be acked yet");
    net.queue.push(...held);
    net.deliver();
    assert.deepEqual(ackedSeqs().sort(), [1, 2], "both are acked once delivered");
  });

  it("drops commands with a bad id or seq, a lone surrogate, or over payloadBytesMax UTF-8 bytes, and counts them", () => {
    const net = new Network({ limits: { payloadBytesMax: 4 } });
    net.elect(1);
    const leader = net.proposer(1);
    net.handle(
      "proposer:1",
      leader.submit([
        cmd(1, "€€"), // 2 characters, 6 UTF-8 bytes
        cmd(2, "ok"),
        { client: 0, seq: 1, payload: "x" },
        { client: 7, seq: 0, payload: "x" },
        cmd(3, "a\ud800"),
      ]),
    );
    assert.equal(leader.droppedCommands, 4);
    net.deliver();
    assert.deepEqual(payloads(net.logOf("learner:1")), [["ok"]]);
  });

  it("a follower that has seen a higher ballot ignores heartbeats from the preempted leader and runs phase 1", () => {
    const quorum = majority([1, 2, 3]);
    const heartbeat = (b: Ballot): Message => ({
      type: "heartbeat",
      from: 1,
      ballot: b,
      decidedThrough: 0,
      proposedThrough: 0,
    });
    const ticksToPhase1 = (leaderBallot: Ballot) => {
      const follower = new Proposer({ id: 2, quorum, prng: new Prng(2) });
      follower.step({ type: "accept", from: 3, ballot: ballot(5, 3), slot: 1, value: val() });
      for (let tick = 1; tick <= 300; tick++) {
        follower.step(heartbeat(leaderBallot));
        follower.tick();
        if (follower.mode !== "follower") return tick;
      }
      return null;
    };
    assert.notEqual(ticksToPhase1(ballot(1, 1)), null, "a leader at 1.1 is stale once 5.3 has been seen");
    assert.equal(ticksToPhase1(ballot(6, 1)), null, "a leader at 6.1 is followed");
  });

  it("a candidate refused by a disruption guard follows the leader it names, though its own ballot is higher", () => {
    const quorum = majority([1, 2, 3]);
    const leaderBallot = ballot(1, 1);
    const candidate = new Proposer({ id: 2, quorum, prng: new Prng(2) });
    let campaign: PrepareMessage | undefined;
    for (let tick = 1; tick <= 300 && campaign === undefined; tick++) {
      const out = candidate.tick();
      campaign = [...out.send, ...out.sendAfterPersist].find((e) => e.message.type === "prepare")
        ?.message as PrepareMessage;
    }
    assert.ok(campaign !== undefined, "with no leader heard, it campaigns");
    // Acceptors 2 and 3 still hear their leader at 1.1 and refuse the higher ballot, naming 1.1:
    // no phase-1 quorum is left (one refusal alone leaves {1, 2}, and the candidate carries on).
    candidate.step({ type: "reject", from: 3, ballot: campaign.ballot, promised: leaderBallot, slot: 0 });
    assert.equal(candidate.mode, "candidate");
    candidate.step({ type: "reject", from: 2, ballot: campaign.ballot, promised: leaderBallot, slot: 0 });
    assert.equal(candidate.mode, "follower");
    const heartbeat: Message = {
      type: "heartbeat",
      from: 1,
      ballot: leaderBallot,
      decidedThrough: 0,
      proposedThrough: 0,
    };
    let campaignsAfter = 0;
    for (let tick = 1; tick <= 2000; tick++) {
      if (tick % 5 === 0) candidate.step(heartbeat);
      const out = candidate.tick();
      campaignsAfter += [...out.send, ...out.sendAfterPersist].filter(
        (e) => e.message.type === "prepare" && ballotGreater(e.message.ballot, campaign.ballot),
      ).length;
    }
    assert.equal(candidate.mode, "follower");
    assert.equal(candidate.leader, 1, "it follows the leader the guard named");
    assert.equal(campaignsAfter, 0, "no new campaign against a live leader");
  });

  it("a follower holding its election (rejoining) forgets a leader that fell silent", () => {
    const quorum = majority([1, 2, 3]);
    const follower = new Proposer({ id: 2, quorum, prng: new Prng(2), holdElection: true });
    follower.step({
      type: "heartbeat",
      from: 1,
      ballot: ballot(1, 1),
      decidedThrough: 0,
      proposedThrough: 4,
    });
    assert.equal(follower.leader, 1);
    const nudge = follower.requestNoop(3);
    assert.deepEqual(
      nudge.send.map((e) => e.to),
      [{ role: "proposer", id: 1 }],
      "a no-op request goes to the live leader",
    );
    for (let tick = 1; tick <= 1000; tick++) {
      const out = follower.tick();
      assert.equal(
        [...out.send, ...out.sendAfterPersist].filter((e) => e.message.type === "prepare").length,
        0,
      );
    }
    assert.equal(follower.leader, 0, "no leader heard for an election timeout: it follows nobody");
    assert.deepEqual(
      follower.requestNoop(3).send.map((e) => e.to),
      [{ role: "proposer", id: 3 }],
      "then the no-op request goes to the leader the caller names",
    );
  });

  it("the leader sends heartbeats that keep a follower from running phase 1", () => {
    const net = new Network({ proposers: [1, 2], timing: { heartbeatTicks: 3, electionTimeoutTicks: 12 } });
    net.elect(1);
    const campaigns = () =>
      net.sent.filter((m) => m.message.type === "prepare" && m.from === "proposer:2").length;
    for (let tick = 0; tick < 300; tick++) {
      net.tickAll();
      net.deliver();
    }
    // (The leader's own check-quorum probes are prepares at its ballot: not an election.)
    assert.equal(campaigns(), 0, "no election while the leader is heard");
    assert.equal(net.proposer(2).mode, "follower");
    assert.equal(net.proposer(2).leader, 1);
    net.down.add("proposer:1");
    net.runUntil(() => net.proposer(2).mode === "leader", 200);
  });
});
