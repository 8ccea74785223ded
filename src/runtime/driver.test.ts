import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { binaryCodec, EnvelopeGuard, parseEnvelope } from "../codec/index.js";
import {
  Acceptor,
  type Ballot,
  type Command,
  createQuorumSystem,
  type Decision,
  type Destination,
  type DurableDelta,
  emptyOutput,
  InvariantViolation,
  type Message,
  type Output,
  Prng,
  type ProposerTiming,
  Replica,
  type Role,
} from "../core/index.js";
import {
  DurableModel,
  type DurableState,
  MemoryStorage,
  type Storage,
  type StorageStats,
} from "../storage/index.js";
import { waitFor as waitUntil } from "../test-support/index.js";
import {
  type Endpoint,
  type FrameHandler,
  MemoryNetwork,
  type MemoryTransport,
  type Transport,
} from "../transport/index.js";
import { type AddressBook, ClusterAddressBook } from "./address-book.js";
import { type ClusterConfig, parseClusterConfig } from "./config.js";
import { Driver, type DriverStats, type RoleLike, type Scheduler } from "./driver.js";
import { clusterEnvelope, NO_KEYS } from "./identity.js";
import { DigestMachine, type StateMachine } from "./state-machine.js";

/** Real milliseconds per tick: small, so elections and retries take a few tens of milliseconds. */
const TICK_MS = 2;

/** The shared `waitFor`, as these tests use it: polls every turn, then every millisecond, for 5 s. */
const waitFor = (condition: () => boolean, what: string) =>
  waitUntil(condition, what, { timeoutMs: 5000, pollMs: 1 });

/**
 * Lets the event loop run until `driver` has taken `turns` more turns, and the memory network has had
 * time to deliver what those turns sent (each delivery is one more `setImmediate`). Used to show that
 * something did NOT happen, without sleeping for a fixed time: the driver has demonstrably run.
 */
async function turnsPass(driver: { readonly stats: DriverStats }, turns: number): Promise<void> {
  const target = driver.stats.turns + turns;
  await waitFor(() => driver.stats.turns >= target, `${turns} more turns`);
  for (let i = 0; i < 5; i++) await new Promise<void>((resolve) => setImmediate(resolve));
}

/**
 * Waits for `count` firings of a `setInterval(TICK_MS)` timer: a running driver's tick timer (same
 * period, started earlier) would have fired at least as often. Shows that a stopped driver did not tick.
 */
async function intervalsPass(count: number): Promise<void> {
  let fired = 0;
  const timer = setInterval(() => fired++, TICK_MS);
  try {
    await waitFor(() => fired >= count, `${count} tick intervals`);
  } finally {
    clearInterval(timer);
  }
}

/** One line of what happened, in order, across storage and network: the ordering tests read it. */
type Event =
  | { kind: "append"; delta: DurableDelta }
  | { kind: "sync-start" }
  | { kind: "sync-done" }
  | { kind: "out"; message: Message; to: Endpoint };

/**
 * Storage whose `sync()` resolves only when the test says so (`release()`), or at once in `auto`
 * mode. It keeps the durable model like `MemoryStorage` and logs every call to `events`.
 */
class GatedStorage implements Storage {
  auto = false;
  appendCalls = 0;
  syncCalls = 0;
  failNextSync: Error | null = null;
  private readonly model = new DurableModel();
  private pending: DurableDelta[] = [];
  private readonly waiting: Array<() => void> = [];

  constructor(private readonly events: Event[] = []) {}

  async open() {
    return { ok: true as const, value: this.model.snapshot() as DurableState };
  }

  append(delta: DurableDelta): void {
    this.appendCalls++;
    this.pending.push(structuredClone(delta));
    this.events.push({ kind: "append", delta: structuredClone(delta) });
  }

  sync(): Promise<void> {
    this.syncCalls++;
    this.events.push({ kind: "sync-start" });
    const batch = this.pending;
    this.pending = [];
    if (this.failNextSync !== null) {
      const error = this.failNextSync;
      this.failNextSync = null;
      return Promise.reject(error);
    }
    const finish = () => {
      for (const delta of batch) this.model.apply(delta);
      this.events.push({ kind: "sync-done" });
    };
    if (this.auto) {
      finish();
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      this.waiting.push(() => {
        finish();
        resolve();
      });
    });
  }

  /** Syncs started and not yet released. */
  get held(): number {
    return this.waiting.length;
  }

  /** Lets every sync started so far complete. */
  release(): void {
    for (const done of this.waiting.splice(0)) done();
  }

  /** Releases every sync from now on, including those already waiting. */
  unblock(): void {
    this.auto = true;
    this.release();
  }

  async compact(): Promise<void> {}

  async close(): Promise<void> {
    this.release();
  }

  state(): DurableState {
    return this.model.snapshot();
  }

  get stats(): StorageStats {
    return {
      records: this.appendCalls,
      bytes: 0,
      syncs: this.syncCalls,
      directorySyncs: 0,
      lastSyncMs: 0,
      pendingRecords: this.pending.length,
      pendingBytes: 0,
      tornTailBytes: 0,
      segments: 0,
      diskBytes: 0,
      compactions: 0,
      bytesSinceCheckpoint: 0,
      checkpointBytes: 0,
    };
  }
}

/** A transport that logs every frame it sends (decoded) to `events`, then passes it on. */
class RecordingTransport implements Transport {
  constructor(
    private readonly inner: MemoryTransport,
    private readonly events: Event[],
  ) {}
  get stats() {
    return this.inner.stats;
  }
  get localEndpoint() {
    return this.inner.localEndpoint;
  }
  get listening() {
    return this.inner.listening;
  }
  start() {
    return this.inner.start();
  }
  close() {
    return this.inner.close();
  }
  onFrame(handler: FrameHandler) {
    this.inner.onFrame(handler);
  }
  send(to: Endpoint, frame: Uint8Array) {
    const opened = parseEnvelope(frame);
    assert.ok(opened !== null, "the driver sent a frame without an envelope");
    const decoded = binaryCodec.decode(opened.body);
    assert.ok(decoded.ok, "the driver sent a frame its own codec cannot read");
    this.events.push({ kind: "out", message: decoded.value, to });
    this.inner.send(to, frame);
  }
}

/** An address book by role, for a single role driven against endpoints the test controls. */
function roleBook(byRole: Partial<Record<Role, Endpoint>>): AddressBook {
  return {
    resolve: (to: Destination) => {
      const endpoint = byRole[to.role];
      return endpoint === undefined ? [] : [endpoint];
    },
    observe: () => {},
  };
}

/** The cluster id of the test cluster of `clusterConfig`. */
const TEST_CLUSTER_ID = 4242;

/** An unauthenticated envelope for a driver under test that takes frames for every role. */
function testEnvelope(id = 1): EnvelopeGuard {
  return new EnvelopeGuard({
    clusterId: TEST_CLUSTER_ID,
    self: { kind: "node", id },
    roles: ["proposer", "acceptor", "learner", "client"],
    incarnation: 1,
  });
}

/** `body` in an envelope from node `from` to every acceptor of the test cluster (no key). */
function sealed(body: Uint8Array, from: number): Uint8Array {
  return new EnvelopeGuard({
    clusterId: TEST_CLUSTER_ID,
    self: { kind: "node", id: from },
    roles: [],
    incarnation: 1,
  }).seal(body, { role: "acceptor" });
}

/** A test peer on the memory network that records (decoded) what it receives. */
async function peer(network: MemoryNetwork, port: number) {
  const transport = network.createTransport({ host: "127.0.0.1", port });
  const received: Message[] = [];
  transport.onFrame((frame) => {
    const opened = parseEnvelope(frame);
    assert.ok(opened !== null, "a peer received a frame without an envelope");
    const decoded = binaryCodec.decode(opened.body);
    assert.ok(decoded.ok, "a peer received a frame that does not decode");
    received.push(decoded.value);
  });
  await transport.start();
  return {
    transport,
    received,
    of: <T extends Message["type"]>(type: T) =>
      received.filter((message): message is Extract<Message, { type: T }> => message.type === type),
    send: (to: Endpoint, message: Message) =>
      transport.send(to, sealed(binaryCodec.encode(message), message.from)),
  };
}

function clusterConfig(count: number): ClusterConfig {
  const nodes = Array.from({ length: count }, (_, i) => ({ id: i + 1, host: "127.0.0.1", port: i + 1 }));
  const parsed = parseClusterConfig(JSON.stringify({ nodes, clusterId: TEST_CLUSTER_ID }));
  assert.ok(parsed.ok, parsed.ok ? "" : parsed.error);
  return parsed.value;
}

interface NodeSetup {
  readonly storage?: Storage;
  readonly timing?: Partial<ProposerTiming>;
  readonly events?: Event[];
  readonly snapshotLogBytes?: number;
  readonly logRetainSlots?: number;
  readonly stateMachine?: StateMachine;
  /** Not started with the others: `cluster.start(id)` starts it. */
  readonly startLater?: boolean;
}

/** Three (or `count`) replicas over one memory network, each with its own driver. */
async function startCluster(count: number, setups: Record<number, NodeSetup> = {}) {
  const network = new MemoryNetwork();
  const config = clusterConfig(count);
  const quorum = createQuorumSystem(config.acceptors, config.quorum);
  assert.ok(quorum.ok);
  const fatal: Error[] = [];
  const logs = new Map<number, Decision[]>();
  const drivers: Array<Driver<Replica>> = [];
  for (const node of config.nodes) {
    const setup = setups[node.id] ?? {};
    const storage = setup.storage ?? new MemoryStorage();
    const opened = await storage.open();
    assert.ok(opened.ok);
    const memory = network.createTransport({ host: node.host, port: node.port });
    const transport = setup.events ? new RecordingTransport(memory, setup.events) : memory;
    const log: Decision[] = [];
    logs.set(node.id, log);
    const replica = new Replica({
      id: node.id,
      quorum: quorum.value,
      prng: new Prng(1000 + node.id),
      ...(setup.timing ? { timing: setup.timing } : {}),
      ...(setup.snapshotLogBytes !== undefined ? { snapshotLogBytes: setup.snapshotLogBytes } : {}),
      ...(setup.logRetainSlots !== undefined ? { logRetainSlots: setup.logRetainSlots } : {}),
    });
    drivers.push(
      new Driver({
        name: `node ${node.id}`,
        role: replica,
        envelope: clusterEnvelope(config, { kind: "node", id: node.id }, { keys: NO_KEYS, incarnation: 1 }),
        transport,
        codec: binaryCodec,
        addressBook: new ClusterAddressBook(config),
        storage,
        tickMs: TICK_MS,
        onDecision: (decision) => log.push(decision),
        onFatal: (error) => fatal.push(error),
        ...(setup.stateMachine ? { stateMachine: setup.stateMachine } : {}),
      }),
    );
  }
  for (const [index, driver] of drivers.entries()) if (!setups[index + 1]?.startLater) await driver.start();
  const payloads = (id: number) => (logs.get(id) ?? []).flatMap((d) => d.commands.map((c) => c.payload));
  return {
    network,
    config,
    drivers,
    logs,
    fatal,
    payloads,
    node: (id: number) => drivers[id - 1] as Driver<Replica>,
    start: (id: number) => (drivers[id - 1] as Driver<Replica>).start(),
    stop: () => Promise.all(drivers.map((driver) => driver.stop())),
  };
}

/** Three replicas that have all delivered a first 5 values (client 7, seqs 1..5): a leader is settled. */
async function startClusterWithFirstValues() {
  const cluster = await startCluster(3);
  try {
    cluster.node(1).run((replica) => replica.submit(commands(7, 1, 5)));
    await waitFor(() => [1, 2, 3].every((id) => cluster.payloads(id).length === 5), "the first 5 values");
  } catch (error) {
    await cluster.stop();
    throw error;
  }
  return cluster;
}

function commands(client: number, from: number, count: number, prefix = "v"): Command[] {
  return Array.from({ length: count }, (_, i) => ({
    client,
    seq: from + i,
    payload: `${prefix}${from + i}`,
  }));
}

/** Slot numbers of every decision, for a gap check. */
function slotsOf(log: readonly Decision[]): number[] {
  return log.map((decision) => decision.slot);
}

describe("Driver over the memory network", () => {
  test("three replicas decide the values submitted through driver.run, in one order everywhere", async () => {
    const cluster = await startCluster(3);
    try {
      const submitted: string[] = [];
      // Submit at every node, some before any leader exists: followers forward to the leader.
      for (let round = 0; round < 4; round++) {
        for (const id of [1, 2, 3]) {
          const batch = commands(10 + id, 1 + round * 5, 5, `n${id}-`);
          submitted.push(...batch.map((c) => c.payload));
          cluster.node(id).run((replica) => replica.submit(batch));
        }
        if (round === 1) await waitFor(() => cluster.payloads(1).length > 0, "a first decision");
      }
      await waitFor(
        () => [1, 2, 3].every((id) => cluster.payloads(id).length >= submitted.length),
        "every node to deliver every value",
      );
      const first = cluster.payloads(1);
      assert.deepEqual([...first].sort(), [...submitted].sort(), "exactly the submitted values, once each");
      assert.deepEqual(cluster.payloads(2), first);
      assert.deepEqual(cluster.payloads(3), first);
      for (const id of [1, 2, 3]) {
        const slots = slotsOf(cluster.logs.get(id) ?? []);
        assert.deepEqual(
          slots,
          slots.map((_, i) => i + 1),
          `node ${id} delivers slots gap-free from 1`,
        );
        const stats = cluster.node(id).stats;
        assert.equal(stats.decodeErrors, 0);
        assert.ok(stats.turns > 0 && stats.framesIn > 0 && stats.framesOut > 0);
        assert.equal(stats.decisions, cluster.logs.get(id)?.length);
      }
      assert.deepEqual(cluster.fatal, []);
    } finally {
      await cluster.stop();
    }
  });

  test("a node whose intake is paused drops frames, falls behind, and catches up once resumed", async () => {
    const cluster = await startClusterWithFirstValues();
    try {
      // A follower: a paused leader would still send heartbeats, and the cluster would wait for it.
      const slowId = [1, 2, 3].find((id) => cluster.node(id).role.mode !== "leader") as number;
      const fastId = [1, 2, 3].find((id) => id !== slowId) as number;
      const slow = cluster.node(slowId);
      slow.pauseIntake();
      slow.pauseIntake(); // twice: still one pause
      cluster.node(fastId).run((replica) => replica.submit(commands(7, 6, 20)));
      await waitFor(() => cluster.payloads(fastId).length === 25, "the others decide without it");
      await waitFor(() => slow.stats.framesPaused > 0, "it drops what it receives");
      assert.equal(cluster.payloads(slowId).length, 5, "it delivers nothing while paused");
      assert.equal(slow.stats.intakePauses, 1);
      slow.resumeIntake();
      await waitFor(() => cluster.payloads(slowId).length === 25, "it catches up");
      assert.deepEqual(cluster.payloads(slowId), cluster.payloads(fastId));
      assert.deepEqual(cluster.fatal, []);
    } finally {
      await cluster.stop();
    }
  });

  test("a paused leader falls silent: the others elect a new leader and decide, and it catches up", async () => {
    const cluster = await startClusterWithFirstValues();
    try {
      const leaderId = [1, 2, 3].find((id) => cluster.node(id).role.mode === "leader") as number;
      const others = [1, 2, 3].filter((id) => id !== leaderId);
      cluster.node(leaderId).pauseIntake();
      cluster.node(others[0] as number).run((replica) => replica.submit(commands(7, 6, 20)));
      await waitFor(
        () => others.some((id) => cluster.node(id).role.mode === "leader"),
        "another node to take the lead",
      );
      await waitFor(() => cluster.payloads(others[0] as number).length === 25, "the others decide");
      assert.equal(cluster.payloads(leaderId).length, 5, "the paused node delivers nothing");
      cluster.node(leaderId).resumeIntake();
      await waitFor(() => cluster.payloads(leaderId).length === 25, "the old leader catches up");
      assert.deepEqual(cluster.payloads(leaderId), cluster.payloads(others[0] as number));
      assert.deepEqual(cluster.payloads(others[1] as number), cluster.payloads(others[0] as number));
      assert.deepEqual(cluster.fatal, []);
    } finally {
      await cluster.stop();
    }
  });

  test("malformed frames are counted in stats.decodeErrors and change nothing", async () => {
    const cluster = await startClusterWithFirstValues();
    try {
      const target = cluster.node(2);
      const votesBefore = (target.role.acceptor?.state().accepted ?? []).map(({ slot, value }) => ({
        slot,
        value,
      }));
      const logBefore = structuredClone(cluster.logs.get(2));
      const decodeErrorsBefore = target.stats.decodeErrors;
      const framesInBefore = target.stats.framesIn;

      // Random bytes (seeded), plus the edge cases: empty, one byte, the right magic byte and a bad tag,
      // a good frame cut short, and a good frame with a byte too many.
      const prng = new Prng(42);
      const garbage: Uint8Array[] = [];
      for (let i = 0; i < 40; i++) {
        garbage.push(Uint8Array.from({ length: 1 + prng.int(200) }, () => prng.int(256)));
      }
      const good = binaryCodec.encode({
        type: "accept",
        from: 1,
        ballot: { round: 99, node: 1 },
        slot: 1,
        value: { commands: [{ client: 66, seq: 1, payload: "evil" }] },
      });
      garbage.push(new Uint8Array(0), Uint8Array.of(0xa1), Uint8Array.of(0xa1, 0xff, 1, 2, 3));
      garbage.push(good.slice(0, good.length - 3), Uint8Array.from([...good, 0]));
      for (const frame of garbage)
        assert.equal(binaryCodec.decode(frame).ok, false, "test frames must be bad");

      // In a well-formed envelope, so that the decoder is what refuses them.
      const attacker = await peer(cluster.network, 666);
      for (const frame of garbage) attacker.transport.send({ host: "127.0.0.1", port: 2 }, sealed(frame, 3));
      await waitFor(
        () => target.stats.decodeErrors === decodeErrorsBefore + garbage.length,
        "every bad frame counted",
      );
      assert.ok(target.stats.framesIn >= framesInBefore + garbage.length);
      assert.deepEqual(attacker.received, [], "nothing answers a bad frame");
      const votesAfter = (target.role.acceptor?.state().accepted ?? []).map(({ slot, value }) => ({
        slot,
        value,
      }));
      assert.deepEqual(votesAfter, votesBefore, "no vote changed");
      assert.deepEqual(cluster.logs.get(2), logBefore, "no decision appeared");

      // The node still works, and still agrees with the others.
      cluster.node(2).run((replica) => replica.submit(commands(7, 6, 5)));
      await waitFor(() => [1, 2, 3].every((id) => cluster.payloads(id).length === 10), "5 more values");
      assert.deepEqual(cluster.payloads(2), cluster.payloads(1));
      assert.deepEqual(cluster.payloads(3), cluster.payloads(1));
      assert.deepEqual(
        [...cluster.payloads(2)].sort(),
        commands(7, 1, 10)
          .map((c) => c.payload)
          .sort(),
      );
      assert.ok(!cluster.payloads(2).includes("evil"));
      assert.deepEqual(cluster.fatal, []);
    } finally {
      await cluster.stop();
    }
  });
});

describe("Driver on virtual time (an injected Scheduler)", () => {
  /** A scheduler whose clock moves only when the test says: `advance(ms)` fires the due ticks. */
  function virtualScheduler() {
    const immediates: Array<() => void> = [];
    const timers: Array<{ ms: number; fn: () => void; dueMs: number; cancelled: boolean }> = [];
    let nowMs = 0;
    const scheduler: Scheduler = {
      immediate: (fn) => {
        immediates.push(fn);
      },
      every: (ms, fn) => {
        const timer = { ms, fn, dueMs: nowMs + ms, cancelled: false };
        timers.push(timer);
        return () => {
          timer.cancelled = true;
        };
      },
    };
    /** Runs the turns asked for, and lets I/O (the memory network, storage promises) settle between. */
    const runTurns = async () => {
      for (let round = 0; round < 1000; round++) {
        await new Promise<void>((resolve) => setImmediate(resolve));
        if (immediates.length === 0) return;
        for (const fn of immediates.splice(0)) fn();
      }
      assert.fail("turns never stopped asking for more turns");
    };
    const advance = async (ms: number) => {
      for (const end = nowMs + ms; nowMs < end; ) {
        nowMs++;
        for (const timer of timers) {
          if (timer.cancelled || timer.dueMs > nowMs) continue;
          timer.dueMs += timer.ms;
          timer.fn();
        }
        await runTurns();
      }
    };
    return {
      scheduler,
      timers,
      advance,
      runTurns,
      get pendingTurns() {
        return immediates.length;
      },
    };
  }

  test("ticks come only from the scheduler: a lone replica elects itself and decides as virtual time advances", async () => {
    const clock = virtualScheduler();
    const network = new MemoryNetwork();
    const config = clusterConfig(1);
    const quorum = createQuorumSystem(config.acceptors, config.quorum);
    assert.ok(quorum.ok);
    const storage = new MemoryStorage();
    assert.ok((await storage.open()).ok);
    const replica = new Replica({ id: 1, quorum: quorum.value, prng: new Prng(7) });
    const decided: Decision[] = [];
    const fatal: Error[] = [];
    const driver = new Driver({
      name: "node 1",
      role: replica,
      envelope: clusterEnvelope(config, { kind: "node", id: 1 }, { keys: NO_KEYS, incarnation: 1 }),
      transport: network.createTransport({ host: "127.0.0.1", port: 1 }),
      codec: binaryCodec,
      addressBook: new ClusterAddressBook(config),
      storage,
      tickMs: 10,
      scheduler: clock.scheduler,
      onDecision: (decision) => decided.push(decision),
      onFatal: (error) => fatal.push(error),
    });
    try {
      await driver.start();
      assert.deepEqual(
        clock.timers.map((timer) => timer.ms),
        [10],
        "the tick timer is the scheduler's, every tickMs",
      );
      driver.run((role) => role.submit(commands(3, 1, 2)));
      await clock.runTurns();
      assert.equal(replica.mode, "follower", "no virtual time has passed: no election");
      assert.equal(decided.length, 0, "nothing decided");
      for (let ms = 0; ms < 10_000 && decided.length === 0; ms += 10) await clock.advance(10);
      assert.equal(replica.mode, "leader");
      assert.deepEqual(
        decided.flatMap((d) => d.commands.map((c) => c.payload)),
        ["v1", "v2"],
      );
      assert.deepEqual(fatal, []);
    } finally {
      await driver.stop();
    }
    assert.ok(
      clock.timers.every((timer) => timer.cancelled),
      "stop() cancels the tick timer",
    );
  });
});

describe("Driver: snapshots", () => {
  test("replicas snapshot and compact; a node started late installs a peer's snapshot and agrees", async () => {
    const machines = [1, 2, 3].map(() => new DigestMachine());
    const snapshots = { snapshotLogBytes: 2000, logRetainSlots: 2 };
    const cluster = await startCluster(3, {
      1: { ...snapshots, stateMachine: machines[0] as DigestMachine },
      2: { ...snapshots, stateMachine: machines[1] as DigestMachine },
      3: { ...snapshots, stateMachine: machines[2] as DigestMachine, startLater: true },
    });
    try {
      // One command a slot (one at a time), so there are many slots and several snapshots.
      for (let seq = 1; seq <= 120; seq++) {
        cluster.node(1).run((replica) => replica.submit(commands(7, seq, 1)));
        await waitFor(() => (machines[0] as DigestMachine).commands >= seq, `value ${seq}`);
      }
      const leader = cluster.node(1);
      assert.ok(leader.stats.snapshotsTaken >= 3, `snapshots taken: ${leader.stats.snapshotsTaken}`);
      assert.ok(leader.role.learner.firstHeldSlot > 100, "the log below the snapshot is gone");
      assert.ok((leader.role.acceptor?.floorSlot ?? 0) > 100, "and so are the votes below it");
      await cluster.start(3);
      const late = cluster.node(3);
      await waitFor(() => (machines[2] as DigestMachine).commands === 120, "node 3 to catch up");
      assert.ok(late.stats.snapshotsInstalled >= 1, "node 3 caught up from a snapshot");
      assert.ok(cluster.payloads(3).length < 120, "not by replaying the whole log");
      for (const machine of machines) assert.equal(machine.digest, (machines[0] as DigestMachine).digest);
      // And it keeps up from there.
      cluster.node(2).run((replica) => replica.submit(commands(7, 121, 5)));
      await waitFor(() => machines.every((m) => m.commands === 125), "5 more values everywhere");
      for (const machine of machines) assert.equal(machine.digest, (machines[0] as DigestMachine).digest);
      assert.deepEqual(cluster.fatal, []);
    } finally {
      await cluster.stop();
    }
  });
});

/** A state machine whose snapshots no `DigestMachine` can restore (its `restore` throws on them). */
class UnreadableSnapshots extends DigestMachine {
  override snapshot(): string {
    return "this is not a digest machine's state";
  }
}

describe("Driver: a snapshot the state machine cannot restore (issue 9)", () => {
  test("is refused and counted by the learner, not fatal; the machine keeps its state", async () => {
    const writers = [new UnreadableSnapshots(), new UnreadableSnapshots()];
    const late = new DigestMachine();
    const snapshots = { snapshotLogBytes: 500, logRetainSlots: 1 };
    const cluster = await startCluster(3, {
      1: { ...snapshots, stateMachine: writers[0] as DigestMachine },
      2: { ...snapshots, stateMachine: writers[1] as DigestMachine },
      3: { stateMachine: late, startLater: true },
    });
    try {
      for (let seq = 1; seq <= 40; seq++) {
        cluster.node(1).run((replica) => replica.submit(commands(7, seq, 1)));
        await waitFor(() => (writers[0] as DigestMachine).commands >= seq, `value ${seq}`);
      }
      assert.ok(cluster.node(1).stats.snapshotsTaken >= 1);
      await cluster.start(3);
      const learner = cluster.node(3).role.learner;
      await waitFor(() => learner.refusals.of("snapshot-restore-failed") >= 1, "node 3 to refuse a snapshot");
      assert.match(learner.snapshotRefusal ?? "", /the state machine cannot restore it: .*is not valid JSON/);
      assert.deepEqual(cluster.fatal, [], "not fatal");
      assert.equal(late.commands, 0, "the machine's state is untouched");
      assert.equal(cluster.node(3).stats.snapshotsInstalled, 0);
      assert.equal(learner.currentSnapshot, null);
    } finally {
      await cluster.stop();
    }
  });
});

describe("Driver: persist before send", () => {
  async function gatedAcceptor() {
    const network = new MemoryNetwork();
    const events: Event[] = [];
    const storage = new GatedStorage(events);
    await storage.open();
    const proposer = await peer(network, 100);
    const learner = await peer(network, 200);
    const transport = new RecordingTransport(network.createTransport({ host: "127.0.0.1", port: 1 }), events);
    const fatal: Error[] = [];
    const driver = new Driver<RoleLike>({
      name: "acceptor 1",
      role: new Acceptor({ id: 1 }),
      envelope: testEnvelope(),
      transport,
      codec: binaryCodec,
      addressBook: roleBook({
        proposer: proposer.transport.localEndpoint,
        learner: learner.transport.localEndpoint,
      }),
      storage,
      tickMs: TICK_MS,
      onFatal: (error) => fatal.push(error),
    });
    await driver.start();
    const acceptorAt = transport.localEndpoint;
    return { network, events, storage, proposer, learner, transport, driver, fatal, acceptorAt };
  }

  const ballot = (round: number): Ballot => ({ round, node: 1 });

  /**
   * Sends accepts for slots 1 ..= `slots` in one synchronous burst (the memory network delivers it
   * in one batch), and waits for every vote.
   */
  async function acceptBurst(a: Awaited<ReturnType<typeof gatedAcceptor>>, slots: number): Promise<void> {
    for (let slot = 1; slot <= slots; slot++) {
      a.proposer.send(a.acceptorAt, {
        type: "accept",
        from: 1,
        ballot: ballot(1),
        slot,
        value: { commands: [{ client: 9, seq: slot, payload: `v${slot}` }] },
      });
    }
    await waitFor(() => a.proposer.of("accepted").length === slots, "every vote");
  }

  test("a promise leaves only after the sync of the promised ballot resolves", async () => {
    const a = await gatedAcceptor();
    try {
      a.proposer.send(a.acceptorAt, { type: "prepare", from: 1, ballot: ballot(5), firstSlot: 1 });
      await waitFor(() => a.storage.held === 1, "the sync of the promise to start");
      assert.deepEqual(a.storage.state().promised, { round: 0, node: 0 }, "not durable yet");
      await turnsPass(a.driver, 10);
      assert.deepEqual(a.proposer.of("promise"), [], "the promise left before its sync resolved");
      assert.equal(a.transport.stats.framesSent, 0);

      a.storage.release();
      await waitFor(() => a.proposer.of("promise").length === 1, "the promise after the sync");
      assert.deepEqual(a.proposer.of("promise")[0]?.ballot, ballot(5));
      assert.deepEqual(a.storage.state().promised, ballot(5));
      assert.deepEqual(a.fatal, []);
    } finally {
      await a.driver.stop();
    }
  });

  test("votes (accepted) leave only after their sync, in order, and a later prepare waits behind them", async () => {
    const a = await gatedAcceptor();
    try {
      a.proposer.send(a.acceptorAt, {
        type: "accept",
        from: 1,
        ballot: ballot(2),
        slot: 1,
        value: { commands: [{ client: 9, seq: 1, payload: "x" }] },
      });
      await waitFor(() => a.storage.held === 1, "the vote's sync");
      // While that sync is out, a duplicate of the accept arrives (nothing new to persist) and then a
      // higher prepare: neither answer may overtake the unsynced vote.
      a.proposer.send(a.acceptorAt, {
        type: "accept",
        from: 1,
        ballot: ballot(2),
        slot: 1,
        value: { commands: [{ client: 9, seq: 1, payload: "x" }] },
      });
      a.proposer.send(a.acceptorAt, { type: "prepare", from: 1, ballot: ballot(3), firstSlot: 1 });
      await waitFor(() => a.storage.appendCalls === 2, "the promise to be appended");
      await turnsPass(a.driver, 10);
      assert.equal(a.storage.syncCalls, 1, "one sync at a time");
      assert.equal(a.proposer.received.length, 0, "an answer left before the vote was synced");
      assert.equal(a.learner.received.length, 0, "a vote left before it was synced");

      a.storage.release();
      await waitFor(() => a.storage.held === 1, "the second sync (the promise) to start");
      await waitFor(() => a.proposer.of("accepted").length === 1, "the first vote to the proposer");
      await waitFor(() => a.learner.of("accepted").length === 1, "the first vote to the learner");
      await turnsPass(a.driver, 5);
      // The duplicate's answer was queued behind the promise's write: it rides the second sync too.
      assert.deepEqual(
        a.proposer.received.map((m) => m.type),
        ["accepted"],
        "nothing queued after the unsynced promise may leave",
      );

      a.storage.release();
      await waitFor(() => a.proposer.of("promise").length === 1, "the promise");
      assert.deepEqual(
        a.proposer.received.map((m) => m.type),
        ["accepted", "accepted", "promise"],
      );
      const promise = a.proposer.of("promise")[0];
      assert.deepEqual(
        promise?.accepted.map((entry) => entry.slot),
        [1],
        "the promise reports the vote",
      );
      assertPersistBeforeSend(a.events);
      assert.deepEqual(a.fatal, []);
    } finally {
      a.storage.unblock();
      await a.driver.stop();
    }
  });

  test("group commit: many messages in one turn are appended separately and synced once", async () => {
    const a = await gatedAcceptor();
    a.storage.auto = true;
    try {
      const slots = 60;
      // One burst of fewer messages than a turn takes: one driver turn sees them all.
      await acceptBurst(a, slots);
      assert.equal(a.storage.appendCalls, slots);
      assert.equal(a.storage.syncCalls, 1, `${slots} votes in one turn must share one sync`);
      assert.equal(a.driver.stats.persists, 1);
      assert.equal(a.storage.state().accepted.length, slots);
      assertPersistBeforeSend(a.events);
    } finally {
      await a.driver.stop();
    }
  });

  test("group commit under a burst larger than one turn takes: a few syncs, not one per message", async () => {
    const a = await gatedAcceptor();
    a.storage.auto = true;
    try {
      const slots = 500;
      await acceptBurst(a, slots);
      assert.equal(a.storage.appendCalls, slots);
      assert.ok(a.storage.syncCalls <= slots / 10, `${a.storage.syncCalls} syncs for ${slots} votes`);
      assert.deepEqual(
        a.proposer.of("accepted").map((m) => m.slot),
        Array.from({ length: slots }, (_, i) => i + 1),
        "votes leave in the order the accepts came",
      );
      assertPersistBeforeSend(a.events);
    } finally {
      await a.driver.stop();
    }
  });

  test("group commit across turns: writes made while a sync is out share the next one", async () => {
    const a = await gatedAcceptor();
    try {
      const accept = (slot: number): Message => ({
        type: "accept",
        from: 1,
        ballot: ballot(1),
        slot,
        value: { commands: [{ client: 9, seq: slot, payload: `v${slot}` }] },
      });
      a.proposer.send(a.acceptorAt, accept(1));
      await waitFor(() => a.storage.held === 1, "the first sync");
      // Ten more votes, each in its own turn, while the first sync is held.
      for (let slot = 2; slot <= 11; slot++) {
        const before = a.storage.appendCalls;
        a.proposer.send(a.acceptorAt, accept(slot));
        await waitFor(() => a.storage.appendCalls === before + 1, `vote ${slot} appended`);
      }
      assert.ok(a.driver.stats.turns >= 11);
      assert.equal(a.storage.syncCalls, 1);
      assert.deepEqual(a.proposer.received, []);
      a.storage.release();
      await waitFor(() => a.storage.held === 1, "the second sync");
      assert.equal(a.storage.syncCalls, 2, "the ten later votes ride one sync");
      await waitFor(() => a.proposer.of("accepted").length === 1, "the first vote");
      await turnsPass(a.driver, 5);
      assert.equal(a.proposer.of("accepted").length, 1, "later votes wait for the second sync");
      a.storage.release();
      await waitFor(() => a.proposer.of("accepted").length === 11, "every vote");
      assert.deepEqual(
        a.proposer.of("accepted").map((m) => m.slot),
        Array.from({ length: 11 }, (_, i) => i + 1),
      );
      assert.equal(a.storage.syncCalls, 2);
      assertPersistBeforeSend(a.events);
    } finally {
      a.storage.unblock();
      await a.driver.stop();
    }
  });

  test("messages in `send` leave at once while a sync is held; the leader's own vote waits for it", async () => {
    const events: Event[] = [];
    const storage = new GatedStorage(events);
    storage.auto = true;
    // Node 1 leads: the others wait a long time before standing for election.
    const patient = { electionTimeoutTicks: 100_000 };
    const cluster = await startCluster(3, {
      1: { storage, events },
      2: { timing: patient },
      3: { timing: patient },
    });
    try {
      cluster.node(1).run((replica) => replica.submit(commands(5, 1, 1)));
      await waitFor(() => [1, 2, 3].every((id) => cluster.payloads(id).length === 1), "the first value");
      assert.equal(cluster.node(1).role.mode, "leader");

      storage.auto = false;
      const mark = events.length;
      const syncsBefore = storage.syncCalls;
      cluster.node(1).run((replica) => replica.submit(commands(5, 2, 1)));
      await waitFor(() => storage.held === 1, "node 1's sync of its own vote");
      // Nodes 2 and 3 vote and, with node 1's accept already out, the value is decided everywhere.
      await waitFor(() => [1, 2, 3].every((id) => cluster.payloads(id).length === 2), "the second value");
      // More work while the sync is still held: accepts and heartbeats keep leaving node 1.
      const outBefore = events.slice(mark).filter((e) => e.kind === "out").length;
      cluster.node(1).run((replica) => replica.submit(commands(5, 3, 1)));
      await waitFor(
        () => [2, 3].every((id) => cluster.payloads(id).length === 3),
        "the third value at 2 and 3",
      );
      const sent = events.slice(mark).filter((e): e is Extract<Event, { kind: "out" }> => e.kind === "out");
      assert.ok(sent.length > outBefore);
      assert.ok(
        sent.some((e) => e.message.type === "accept"),
        "accepts went out while node 1's sync was held",
      );
      assert.deepEqual(
        sent.filter((e) => e.message.type === "accepted"),
        [],
        "node 1 sent a vote before the sync of that vote resolved",
      );
      assert.equal(storage.syncCalls, syncsBefore + 1, "one sync at a time");

      storage.unblock();
      await waitFor(
        () => events.slice(mark).some((e) => e.kind === "out" && e.message.type === "accepted"),
        "node 1's votes after the sync",
      );
      await waitFor(() => cluster.payloads(1).length === 3, "node 1 delivers the third value");
      assertPersistBeforeSend(events);
      assert.deepEqual(cluster.payloads(2), cluster.payloads(1));
      assert.deepEqual(cluster.payloads(3), cluster.payloads(1));
      assert.deepEqual(cluster.fatal, []);
    } finally {
      storage.unblock();
      await cluster.stop();
    }
  });
});

/**
 * Checks the rule on a whole event log: every promise or vote that depends on an appended write was
 * sent after a sync that started after that write, and finished.
 */
function assertPersistBeforeSend(events: readonly Event[]): void {
  let durableUpTo = -1; // events before this index are durable
  const appendedAt: Array<{ index: number; delta: DurableDelta }> = [];
  const durableThrough: number[] = []; // for each sync-done, the last append index it covers
  for (let i = 0; i < events.length; i++) {
    const event = events[i] as Event;
    if (event.kind === "append") appendedAt.push({ index: i, delta: event.delta });
    else if (event.kind === "sync-start") {
      durableThrough.push(i);
    } else if (event.kind === "sync-done") {
      durableUpTo = Math.max(durableUpTo, durableThrough.shift() ?? -1);
    } else if (event.message.type === "accepted") {
      const { slot, ballot } = event.message;
      const write = appendedAt.find(({ delta }) =>
        (delta.accepted ?? []).some(
          (entry) =>
            entry.slot === slot && entry.ballot.round === ballot.round && entry.ballot.node === ballot.node,
        ),
      );
      assert.ok(write !== undefined, `vote for slot ${slot} sent with no write of it`);
      assert.ok(
        write.index < durableUpTo,
        `vote for slot ${slot} (event ${i}) sent before its write was synced`,
      );
    } else if (event.message.type === "promise") {
      const { ballot } = event.message;
      const write = appendedAt.find(
        ({ delta }) => delta.promised?.round === ballot.round && delta.promised.node === ballot.node,
      );
      if (write !== undefined) {
        assert.ok(
          write.index < durableUpTo,
          `promise ${ballot.round}.${ballot.node} sent before it was synced`,
        );
      }
    }
  }
}

describe("Driver: fatal trouble", () => {
  /** A role that follows a script: it throws on the message or call the test says. */
  class ScriptedRole implements RoleLike {
    ticks = 0;
    steps = 0;
    throwOnStep: Error | null = null;
    nextTick: Output | null = null;
    step(): Output {
      this.steps++;
      if (this.throwOnStep !== null) throw this.throwOnStep;
      return emptyOutput();
    }
    tick(): Output {
      this.ticks++;
      const output = this.nextTick ?? emptyOutput();
      this.nextTick = null;
      return output;
    }
  }

  async function single<R extends RoleLike>(role: R, storage: Storage = new MemoryStorage()) {
    const network = new MemoryNetwork();
    const sender = await peer(network, 100);
    const transport = network.createTransport({ host: "127.0.0.1", port: 1 });
    await storage.open();
    const fatal: Error[] = [];
    const driver = new Driver<R>({
      name: "test",
      role,
      envelope: testEnvelope(),
      transport,
      codec: binaryCodec,
      addressBook: roleBook({
        proposer: sender.transport.localEndpoint,
        learner: sender.transport.localEndpoint,
      }),
      storage,
      tickMs: TICK_MS,
      onFatal: (error) => fatal.push(error),
    });
    await driver.start();
    return { network, sender, transport, driver, fatal, at: transport.localEndpoint };
  }

  const heartbeat: Message = {
    type: "heartbeat",
    from: 3,
    ballot: { round: 1, node: 3 },
    decidedThrough: 0,
    proposedThrough: 0,
  };

  test("an InvariantViolation thrown by a role's step reaches onFatal and stops the driver", async () => {
    const role = new ScriptedRole();
    const s = await single(role);
    try {
      await waitFor(() => role.ticks >= 3, "a few ticks");
      const violation = new InvariantViolation("two values chosen in slot 4");
      role.throwOnStep = violation;
      s.sender.send(s.at, heartbeat);
      await waitFor(() => s.fatal.length > 0, "onFatal");
      assert.equal(s.fatal.length, 1);
      assert.equal(s.fatal[0], violation, "the very error the role threw");

      // Stopped: no more turns, ticks, or frames taken in; run() is ignored.
      const turns = s.driver.stats.turns;
      const ticks = role.ticks;
      const framesIn = s.driver.stats.framesIn;
      let ran = false;
      s.driver.run(() => {
        ran = true;
        return emptyOutput();
      });
      s.sender.send(s.at, heartbeat);
      await waitFor(() => s.transport.stats.framesReceived >= 2, "the later frame to arrive");
      await intervalsPass(10);
      assert.equal(s.driver.stats.turns, turns);
      assert.equal(role.ticks, ticks);
      assert.equal(s.driver.stats.framesIn, framesIn);
      assert.equal(ran, false);
      assert.equal(s.fatal.length, 1, "onFatal is called once");
    } finally {
      await s.driver.stop();
    }
  });

  test("an InvariantViolation thrown inside driver.run on a real role reaches onFatal", async () => {
    const s = await single(new Acceptor({ id: 1 }));
    try {
      s.driver.run(() => {
        throw new InvariantViolation("broken");
      });
      await waitFor(() => s.fatal.length === 1, "onFatal");
      assert.ok(s.fatal[0] instanceof InvariantViolation);
      assert.equal(s.fatal[0]?.message, "broken");
    } finally {
      await s.driver.stop();
    }
  });

  test("a non-Error thrown by a role is wrapped in an Error for onFatal", async () => {
    const role = new ScriptedRole();
    const s = await single(role);
    try {
      s.driver.run(() => {
        throw "a string"; // our code throws Errors, but a dependency might not
      });
      await waitFor(() => s.fatal.length === 1, "onFatal");
      assert.ok(s.fatal[0] instanceof Error);
      assert.match(s.fatal[0]?.message ?? "", /a string/);
    } finally {
      await s.driver.stop();
    }
  });

  test("a failed sync is fatal, and the votes waiting for it never leave", async () => {
    const storage = new GatedStorage();
    storage.failNextSync = new Error("EIO: disk on fire");
    const s = await single(new Acceptor({ id: 1 }), storage);
    try {
      s.sender.send(s.at, {
        type: "accept",
        from: 1,
        ballot: { round: 1, node: 1 },
        slot: 1,
        value: { commands: [{ client: 1, seq: 1, payload: "x" }] },
      });
      await waitFor(() => s.fatal.length === 1, "onFatal");
      assert.match(s.fatal[0]?.message ?? "", /EIO/);
      await turnsPass(s.driver, 0);
      assert.deepEqual(s.sender.received, [], "a vote left although its write failed");
      assert.equal(s.transport.stats.framesSent, 0);
    } finally {
      await s.driver.stop();
    }
  });

  test("stop() after a fatal error still closes the transport", async () => {
    const role = new ScriptedRole();
    const s = await single(role);
    role.throwOnStep = new InvariantViolation("boom");
    s.sender.send(s.at, heartbeat);
    await waitFor(() => s.fatal.length === 1, "onFatal");
    await s.driver.stop();
    // stop() is documented to close the transport; after onFatal it returns early and leaves it open,
    // which with a real socket keeps the port bound and the process alive.
    assert.equal(s.transport.listening, false, "the transport is still listening after stop()");
  });

  test("a message the codec cannot encode is fatal (onFatal), not an uncaught exception", async () => {
    const role = new ScriptedRole();
    const s = await single(role);
    const uncaught: unknown[] = [];
    const onUncaught = (error: unknown) => uncaught.push(error);
    // Node's test runner reports uncaught exceptions as failures of the running test; listening here
    // as well lets this test say what went wrong instead.
    process.prependListener("uncaughtException", onUncaught);
    try {
      role.nextTick = {
        persist: null,
        // A negative sender id is not a valid node id: the encoder refuses it (an InvariantViolation).
        send: [{ to: { role: "proposer" }, message: { ...heartbeat, from: -1 } }],
        sendAfterPersist: [],
        decided: [],
        snapshot: null,
      };
      await waitFor(() => s.fatal.length > 0 || uncaught.length > 0 || role.ticks > 5, "the bad tick");
      await turnsPass(s.driver, 0).catch(() => {});
      assert.deepEqual(
        uncaught.map((e) => String(e)),
        [],
        "Driver.turn() sends outside its try: the encoder's InvariantViolation escaped as an uncaught exception",
      );
      assert.equal(s.fatal.length, 1);
    } finally {
      process.removeListener("uncaughtException", onUncaught);
      await s.driver.stop();
    }
  });

  test("a full mailbox drops frames and counts them", async () => {
    const role = new ScriptedRole();
    const network = new MemoryNetwork();
    const sender = await peer(network, 100);
    const transport = network.createTransport({ host: "127.0.0.1", port: 1 });
    const storage = new MemoryStorage();
    await storage.open();
    const driver = new Driver({
      name: "small",
      role,
      envelope: testEnvelope(),
      transport,
      codec: binaryCodec,
      addressBook: roleBook({}),
      storage,
      tickMs: TICK_MS,
      mailboxMax: 5,
      onFatal: () => {},
    });
    await driver.start();
    try {
      for (let i = 0; i < 20; i++) sender.send(transport.localEndpoint, heartbeat);
      await waitFor(() => driver.stats.framesIn === 20, "20 frames");
      await waitFor(() => role.steps === 5, "5 steps");
      assert.equal(driver.stats.framesDropped, 15);
    } finally {
      await driver.stop();
    }
  });
});
