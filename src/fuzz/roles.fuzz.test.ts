/**
 * Role fuzz (docs/security.md, "Evidence: fuzzing"): crafted messages, each one a frame the wire
 * could deliver (it passes `validateMessage`), fed to running core roles in process: three replicas
 * built as `paxos node` builds them, a client, and a router between them. After the crafted input the
 * cluster runs on (elections included: some fields lie dormant until the next leader change). The
 * property: no role ever throws.
 *
 * Part of `npm test` since the validation of issue 9, section 1 (before it, crafted heartbeats and
 * decides made replicas throw); `npm run fuzz` runs it at ten times the inputs. It does not stop at
 * the first failure: it groups every exception by its message and prints one reproducer
 * (seed, input index and the crafted messages) per group, then fails if there was any.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { messageArbitrary } from "../codec/arbitraries.js";
import { validateMessage } from "../codec/index.js";
import {
  Client,
  createQuorumSystem,
  type Destination,
  type Message,
  type NodeId,
  type Output,
  Prng,
  Replica,
} from "../core/index.js";
import { fuzzParameters } from "../test-support/index.js";

/** The timing `paxos node` runs with (`RUNTIME_TIMING` in cli/process-kit.ts). */
const TIMING = { heartbeatTicks: 3, electionTimeoutTicks: 30 };
const MEMBERS: readonly NodeId[] = [1, 2, 3];
const CLIENT_ID = 50;

/** Three replicas and a client, joined by an in-order, lossless router. */
class InProcessCluster {
  readonly replicas = new Map<NodeId, Replica>();
  readonly client: Client;
  private queue: { to: string; message: Message }[] = [];

  constructor(seed: number) {
    const quorum = createQuorumSystem(
      MEMBERS.map((id) => ({ id })),
      { kind: "majority" },
    );
    assert.ok(quorum.ok);
    const prng = new Prng(seed);
    for (const id of MEMBERS) {
      this.replicas.set(id, new Replica({ id, quorum: quorum.value, prng: prng.fork(), timing: TIMING }));
    }
    this.client = new Client({ id: CLIENT_ID, prng: prng.fork() });
  }

  route(output: Output): void {
    for (const { to, message } of [...output.send, ...output.sendAfterPersist]) {
      for (const address of this.recipients(to)) this.queue.push({ to: address, message });
    }
  }

  private recipients(to: Destination): string[] {
    if (to.role === "client") return to.id === undefined || to.id === CLIENT_ID ? ["client"] : [];
    // A replica stopped on purpose (see `failLeader`) receives nothing.
    return MEMBERS.filter((id) => (to.id === undefined || to.id === id) && this.replicas.has(id)).map(String);
  }

  /** Delivers queued messages (at most `limit`, so a storm cannot hang the fuzzer). */
  deliver(limit = 5_000): void {
    for (let i = 0; i < limit && this.queue.length > 0; i++) {
      const { to, message } = this.queue.shift() as { to: string; message: Message };
      if (to === "client") this.route(this.client.step(message));
      else {
        const replica = this.replicas.get(Number(to));
        if (replica !== undefined) this.route(replica.step(message));
      }
    }
    if (this.queue.length > 0) this.queue = [];
  }

  tick(): void {
    for (const replica of this.replicas.values()) this.route(replica.tick());
    this.route(this.client.tick());
    this.deliver();
  }

  /** Injects `message` at replica `id` and routes what it answers. */
  inject(id: NodeId, message: Message): void {
    this.route((this.replicas.get(id) as Replica).step(message));
    this.deliver();
  }

  leader(): Replica | undefined {
    return [...this.replicas.values()].find((replica) => replica.proposer.mode === "leader");
  }
}

/** Values at the edges of what the state of a small running cluster is: near it, and far past it. */
const NEAR = [0, 1, 2, 3, 5, 8];
const FAR = [1000, 1e15, 2 ** 53 - 3, 2 ** 53 - 2, 2 ** 53 - 1];
const numberArbitrary = fc.oneof(fc.constantFrom(...NEAR), fc.constantFrom(...FAR), fc.maxSafeNat());
const senderArbitrary = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom(...MEMBERS) },
  { weight: 1, arbitrary: fc.constantFrom(0, 4, 7, CLIENT_ID, 2 ** 53 - 1) },
);

/** Fields that carry a slot, a round or a position: where a crafted value does harm. */
const STATE_FIELDS = new Set([
  "round",
  "node",
  "slot",
  "firstSlot",
  "decidedThrough",
  "proposedThrough",
  "floorSlot",
  "nextSlot",
  "fromSlot",
  "toSlot",
  "votedThrough",
  "offset",
  "length",
  "seq",
  "client",
]);

/**
 * A message of any type from a member (mostly), its slot, ballot and position fields each set near
 * the cluster's state or far past it, kept only if the wire would deliver it (it validates).
 */
const craftedMessageArbitrary: fc.Arbitrary<Message> = fc
  .tuple(messageArbitrary, senderArbitrary, fc.array(numberArbitrary, { minLength: 24, maxLength: 24 }))
  .map(([message, from, numbers]) => {
    const crafted = JSON.parse(JSON.stringify(message)) as Record<string, unknown>;
    crafted.from = from;
    let next = 0;
    const walk = (node: unknown) => {
      if (node === null || typeof node !== "object") return;
      for (const [key, value] of Object.entries(node as Record<string, unknown>)) {
        if (typeof value === "number" && STATE_FIELDS.has(key) && next < numbers.length)
          (node as Record<string, unknown>)[key] = numbers[next++];
        else walk(value);
      }
    };
    walk(crafted);
    const valid = validateMessage(crafted);
    return valid.ok ? valid.value : message;
  });

const inputArbitrary = fc.record({
  seed: fc.nat({ max: 1_000_000 }),
  target: fc.constantFrom(...MEMBERS),
  messages: fc.array(craftedMessageArbitrary, { minLength: 1, maxLength: 4 }),
  /** Stop the leader after the input, so that an election follows (dormant fields wake up there). */
  failLeader: fc.boolean(),
});

type Input = typeof inputArbitrary extends fc.Arbitrary<infer T> ? T : never;

/** Runs one input; returns the exception a role threw, if any. */
function runInput(input: Input): Error | null {
  try {
    const cluster = new InProcessCluster(input.seed);
    for (let tick = 0; tick < 200 && cluster.leader() === undefined; tick++) cluster.tick();
    for (let i = 0; i < 3; i++) {
      const submitted = cluster.client.submit(`v${i}`);
      if (submitted.ok) cluster.route(submitted.value.output);
    }
    for (let tick = 0; tick < 10; tick++) cluster.tick();
    for (const message of input.messages) cluster.inject(input.target, message);
    if (input.failLeader) {
      const leader = cluster.leader();
      if (leader !== undefined) cluster.replicas.delete(leader.proposer.id);
    }
    for (let tick = 0; tick < 120; tick++) cluster.tick();
    return null;
  } catch (error) {
    return error as Error;
  }
}

/** The input cut to one of its messages, if one alone throws the same kind; else the input. */
function smallestReproducer(input: Input, kind: string): Input {
  for (const message of input.messages) {
    for (const failLeader of [false, true]) {
      const single = { ...input, messages: [message], failLeader };
      const error = runInput(single);
      if (error !== null && kindOf(error) === kind) return single;
    }
  }
  return input;
}

/** An exception's kind: its class and message with the numbers taken out. */
function kindOf(error: Error): string {
  return `${error.name}: ${error.message.replace(/\d+/g, "N")}`.slice(0, 160);
}

test("role fuzz: crafted messages into running replicas never make a role throw", (t) => {
  const parameters = fuzzParameters(500);
  const seed = parameters.seed ?? Date.now() % 2 ** 31;
  const inputs = fc.sample(inputArbitrary, { numRuns: parameters.numRuns, seed });
  const failures = new Map<string, { count: number; index: number; input: Input; error: Error }>();
  inputs.forEach((input, index) => {
    const error = runInput(input);
    if (error === null) return;
    const kind = kindOf(error);
    const known = failures.get(kind);
    if (known !== undefined) known.count++;
    else failures.set(kind, { count: 1, index, input, error });
  });
  t.diagnostic(`${inputs.length} inputs (FUZZ_SEED=${seed}), ${failures.size} kinds of exception`);
  const report = [...failures.entries()].map(([kind, { count, index, input }]) => {
    const smallest = smallestReproducer(input, kind);
    return `${count} x ${kind}\n  reproducer (input ${index} of FUZZ_SEED=${seed}${smallest === input ? "" : ", cut to one message"}): ${JSON.stringify(smallest)}`;
  });
  for (const line of report) t.diagnostic(line);
  assert.equal(failures.size, 0, `roles threw on crafted input:\n${report.join("\n")}`);
});
