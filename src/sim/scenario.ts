import { type AcceptorSpec, Prng, type QuorumSpec } from "../core/index.js";
import type { KvSettings } from "./kv-workload.js";
import {
  describeStray,
  FORGED_ATTACKS,
  type StrayAttack,
  type StraySettings,
  straySettings,
} from "./stray.js";

/** Everything one seed chooses about a simulated run. */
export interface Scenario {
  readonly seed: number;
  /** Separate processes per role (as the course projects run), or collapsed replicas. */
  readonly layout: "separate" | "collapsed";
  readonly acceptors: readonly AcceptorSpec[];
  readonly quorum: QuorumSpec;
  /** Proposer and learner processes (separate layout only; collapsed replicas play all roles). */
  readonly proposers: number;
  readonly learners: number;
  readonly clients: number;
  readonly valuesPerClient: number;
  /** The fault phase lasts until both minimums are reached. */
  readonly faultPhaseEventsMin: number;
  readonly faultPhaseTicksMin: number;
  /** After healing, every submitted value must be decided within this many ticks. */
  readonly livenessTicksMax: number;
  readonly network: NetworkFaults;
  /** Per-tick chance that a partition starts (if none is active). */
  readonly partitionChance: number;
  /** Per-tick chance that a live process (not a client) crashes. */
  readonly crashChance: number;
  /** Chance that a replica's crash also damages its disk (on a minority of replicas at a time). */
  readonly diskFaultChance: number;
  /** Steps a disk write takes to become durable (uniform in [min, max]). */
  readonly syncStepsMin: number;
  readonly syncStepsMax: number;
  /** Batching limits used by the proposers. */
  readonly windowSlots: number;
  readonly batchCommandsMax: number;
  /** Snapshots (collapsed replicas only): null when the replicas never take one. */
  readonly snapshots: SnapshotSettings | null;
  /** The wire format every message is encoded in: binary, or JSON for one seed in eight. */
  readonly codec: "binary" | "json";
  /** Segment size of every log (`WalOptions.segmentBytesMax`): small, so that logs roll often. */
  readonly segmentBytesMax: number;
  /**
   * A fault sequence scheduled on purpose (one seed in eight), for traces random faults reach too
   * rarely; null: faults are random only. Random faults go on beside it.
   */
  readonly targeted: TargetedFaults | null;
  /**
   * The stray peer (`sim/stray.ts`): when it attacks, how hard, with what; null: no stray peer.
   * Drawn after everything else, so a seed's other fields are the same with or without it.
   */
  readonly stray: StraySettings | null;
  /**
   * The cluster key the nodes authenticate frames with (issue 9, section 2), or null: unkeyed, as
   * every run is until the driver's authenticated envelope reaches the simulator. The hook for the
   * forged attacks: they run only when this is set (the stray peer does not have the key, so the
   * envelope check must drop its frames); see `StrayOptions.forged`.
   */
  readonly clusterKey: string | null;
  /**
   * Key-value and lock clients calling the replicas' `PaxosNode`s (collapsed replicas only; see
   * `sim/kv-workload.ts`), their history checked for linearizability; null: none. Drawn from a PRNG
   * of its own, so every other field is what it is without it.
   */
  readonly kv: KvSettings | null;
}

/** How a seed's scenario includes the stray peer. */
export interface StrayOptions {
  /**
   * true: every seed has a stray peer (`paxos sim --stray`); false: none; "share" (the default):
   * {@link STRAY_SHARE} of the seeds.
   */
  readonly stray?: boolean | "share";
  /**
   * The stray peer also sends forged frames (member ids, valid-looking fields), which only
   * authentication stops. Needs a cluster key: `scenarioForSeed` refuses it without one.
   */
  readonly forged?: boolean;
  /**
   * Only these attacks (`paxos sim --stray-attacks`), to look at one kind of frame at a time; the
   * rest of the stray peer's settings are the seed's. Forged attacks need `forged` (and a key).
   */
  readonly attacks?: readonly StrayAttack[];
  /** The cluster key of the run (see `Scenario.clusterKey`); null: unkeyed. */
  readonly clusterKey?: string | null;
  /** Key-value clients (`Scenario.kv`): on every collapsed seed (true), none (false), or a share. */
  readonly kv?: boolean;
}

/**
 * The share of the default mix's seeds that run a stray peer (since issue 9's validation holds
 * with it: `paxos sim --seeds 1..4000 --stray` broke nothing). Changing it changes nothing else in
 * any seed (the stray peer is drawn last).
 */
export const STRAY_SHARE = 1 / 8;

/**
 * A deliberate fault sequence (see docs/simulator.md, "Targeted fault sequences"):
 * - `deaf-leader-rejoin` (3 collapsed replicas, majority): from `startTick` the leader C is cut off
 *   one way (it hears nobody; it is still heard); once another replica B leads, `voteTicks` later the
 *   third, A, crashes and loses its data directory; it reboots after `rebootTicks`, and B's messages
 *   to it are held back for `muteTicks` after that, so that it hears the deaf C first. Once A has
 *   rejoined (or `rejoinWaitTicks` passed), B crashes for `downTicks` and C hears everyone again: C
 *   takes over with A. Late copies of C's last frames to A (heartbeats it sent while it led) reach A
 *   first as it comes back.
 * - `campaign-crash` (collapsed replicas, 512-byte segments): from `startTick`, once every other
 *   replica's log has two segments, the leader crashes for `leaderDownTicks`; the first replica to
 *   run phase 1 then (or earlier, from `startTick` on)
 *   crashes right after its prepare leaves (its round durable), loses the newest segment of its log,
 *   and reboots after `rebootTicks`, hearing nobody for `deafTicks` more (long enough to campaign
 *   again first): a log that does not notice comes back with the round before.
 * - `promise-crash` (any layout): the first leader to send an accept from `startTick` on goes slow:
 *   for `slowTicks` every message it sends is held back. Another proposer takes over; every acceptor
 *   that promises it a higher ballot crashes right after (no disk fault) and reboots after
 *   `rebootTicks`, and as it starts listening it gets the held-back messages sent to it first; the
 *   rest go out `lateTicks` after the slow spell ends.
 */
export type TargetedFaults =
  | {
      readonly kind: "deaf-leader-rejoin";
      readonly startTick: number;
      readonly voteTicks: number;
      readonly rebootTicks: number;
      readonly muteTicks: number;
      readonly rejoinWaitTicks: number;
      readonly downTicks: number;
    }
  | {
      readonly kind: "promise-crash";
      readonly startTick: number;
      readonly slowTicks: number;
      readonly lateTicks: number;
      readonly rebootTicks: number;
    }
  | {
      readonly kind: "campaign-crash";
      readonly startTick: number;
      readonly rebootTicks: number;
      readonly deafTicks: number;
      readonly leaderDownTicks: number;
    };

/** How the replicas of a seed take, keep and transfer snapshots. */
export interface SnapshotSettings {
  /** A replica takes a snapshot once this many estimated bytes were delivered since its last one. */
  readonly snapshotLogBytes: number;
  /** Delivered slots a replica keeps below its snapshot (few, so that peers need the snapshot). */
  readonly logRetainSlots: number;
  /** Characters per `snapshot-chunk` and chunks per request (tiny: a transfer takes many messages). */
  readonly chunkUnits: number;
  readonly chunksPerRequest: number;
  /**
   * One replica kept away (crashed, or cut off from everyone) from `startTick` for `ticks` ticks,
   * so that the others snapshot past it and it must catch up from a snapshot. Null: none.
   */
  readonly laggard: {
    readonly replica: number;
    readonly how: "crash" | "partition";
    readonly startTick: number;
    readonly ticks: number;
  } | null;
}

export interface NetworkFaults {
  readonly dropRate: number;
  readonly duplicateRate: number;
  /** Delivery delay in steps, uniform in [min, max]; reordering follows from the spread. */
  readonly delayStepsMin: number;
  readonly delayStepsMax: number;
  /** Chance that a message is held back much longer (up to `longDelayStepsMax`). */
  readonly longDelayRate: number;
  readonly longDelayStepsMax: number;
  /**
   * One long delay in ten is longer still, by up to this many steps: far more than an election
   * timeout, so that a message from an old leader or an earlier incarnation arrives much later.
   */
  readonly veryLongDelayStepsMax: number;
}

/** Simulated steps per tick: a tick is the unit of the core's timeouts. */
export const STEPS_PER_TICK = 10;

/** Minimum events in the fault phase of every seed (the CI evidence asks for at least 2,000). */
export const FAULT_PHASE_EVENTS_MIN = 2000;

/**
 * Derives a scenario from a seed. Roughly a third of seeds are calm, a third rough and a third harsh,
 * so the band covers both the happy path and the corner cases.
 */
export function scenarioForSeed(seed: number, options: StrayOptions = {}): Scenario {
  const prng = new Prng(seed);
  const layout: Scenario["layout"] = prng.chance(0.5) ? "separate" : "collapsed";
  const acceptorCount = prng.pick([3, 5, 7]);
  const quorumKind = prng.pick(["majority", "weighted", "flexible"] as const);
  const acceptors: AcceptorSpec[] = [];
  for (let id = 1; id <= acceptorCount; id++) {
    acceptors.push(quorumKind === "weighted" ? { id, weight: prng.range(1, 3) } : { id });
  }
  let quorum: QuorumSpec;
  if (quorumKind === "flexible") {
    // Phase 2 anywhere from one acceptor short of a majority to all; phase 1 just large enough to intersect.
    const phase2Weight = prng.range(Math.max(1, Math.floor(acceptorCount / 2)), acceptorCount);
    quorum = { kind: "flexible", phase1Weight: acceptorCount - phase2Weight + 1, phase2Weight };
  } else {
    quorum = { kind: quorumKind };
  }
  const roughness = prng.pick(["calm", "rough", "harsh"] as const);
  const network: { -readonly [K in keyof NetworkFaults]: NetworkFaults[K] } =
    roughness === "calm"
      ? {
          dropRate: prng.float() * 0.05,
          duplicateRate: prng.float() * 0.1,
          delayStepsMin: 1,
          delayStepsMax: prng.range(2, 15),
          longDelayRate: 0,
          longDelayStepsMax: 1,
          veryLongDelayStepsMax: 1,
        }
      : {
          dropRate: prng.float() * (roughness === "harsh" ? 0.3 : 0.15),
          duplicateRate: prng.float() * 0.5,
          delayStepsMin: 1,
          delayStepsMax: prng.range(5, 40),
          longDelayRate: prng.float() * 0.05,
          longDelayStepsMax: prng.range(50, 400),
          veryLongDelayStepsMax: 0, // drawn last, below
        };
  const fields = {
    seed,
    layout,
    acceptors,
    quorum,
    proposers: prng.range(2, 3),
    learners: prng.range(2, 3),
    clients: prng.range(1, 3),
    valuesPerClient: prng.range(5, 30),
    faultPhaseEventsMin: FAULT_PHASE_EVENTS_MIN,
    faultPhaseTicksMin: prng.range(150, 400),
    livenessTicksMax: 3000,
    network,
    partitionChance: roughness === "calm" ? 0.002 : roughness === "rough" ? 0.01 : 0.03,
    crashChance: roughness === "calm" ? 0.001 : roughness === "rough" ? 0.005 : 0.015,
    diskFaultChance: roughness === "calm" ? 0 : 0.3,
    syncStepsMin: 1,
    syncStepsMax: prng.range(1, 20),
    windowSlots: prng.pick([1, 4, 16]),
    batchCommandsMax: prng.pick([1, 8, 64]),
  };
  // Drawn last, so that the fields above are what they were before snapshots came to the simulator.
  const snapshots = layout === "collapsed" ? snapshotSettings(prng, fields) : null;
  const codec: Scenario["codec"] = prng.chance(0.125) ? "json" : "binary";
  if (roughness !== "calm") network.veryLongDelayStepsMax = prng.range(500, 3000);
  const segmentBytesMax = prng.pick([512, 2048, 65_536]);
  const scenario: Scenario = {
    ...fields,
    snapshots,
    codec,
    segmentBytesMax,
    targeted: null,
    stray: null,
    // One seed in three runs keyed (the MAC, incarnations and the replay window under the simulated
    // network's duplicates, reordering and delays), derived from the seed, not drawn from the PRNG.
    clusterKey: options.clusterKey !== undefined ? options.clusterKey : defaultClusterKey(seed),
    kv: null,
  };
  // Drawn after everything else, so that the other seven seeds in eight are what they were before.
  const targeted = prng.chance(TARGETED_SHARE) ? targetedScenario(prng, scenario) : scenario;
  return withKv(withStray(prng, targeted, options), options);
}

/**
 * The share of collapsed-replica seeds that run key-value and lock clients (issue 10): a quarter, so
 * about one seed in eight of the default mix.
 */
export const KV_SHARE = 1 / 4;

/**
 * The key-value workload, drawn from a PRNG of its own (the seed's, offset), so adding it changed
 * no other field of any seed. `options.kv`: true forces it on every collapsed seed, false off.
 */
function withKv(s: Scenario, options: StrayOptions): Scenario {
  if (s.layout !== "collapsed" || options.kv === false) return s;
  const prng = new Prng((s.seed ^ 0x6b76_0000) >>> 0);
  if (options.kv !== true && prng.float() >= KV_SHARE) return s;
  return {
    ...s,
    kv: {
      clients: prng.range(2, 4),
      keys: prng.range(1, 4),
      opsPerClient: prng.range(10, 40),
      lockClients: prng.range(0, 3),
      sessionTtlMs: prng.pick([1_500, 4_000, 20_000]),
      callTimeoutSteps: prng.pick([300, 800, 2_000]),
    },
  };
}

/** The cluster key a seed runs with unless told otherwise: one seed in three has one. */
function defaultClusterKey(seed: number): string | null {
  return seed % 3 === 0 ? `sim cluster key for seed ${seed}` : null;
}

/**
 * The stray peer, drawn last of all (so every other field is what it is without it). Forced on
 * (`--stray`) or off, or in {@link STRAY_SHARE} of the seeds; the roll is drawn either way, so a
 * seed's stray peer is the same whether it was forced or drawn.
 */
function withStray(prng: Prng, s: Scenario, options: StrayOptions): Scenario {
  const mode = options.stray ?? "share";
  if (mode === false) return s;
  const roll = prng.float();
  if (mode === "share" && roll >= STRAY_SHARE) return s;
  const forged = options.forged === true;
  if (forged && s.clusterKey === null)
    throw new Error(
      `seed ${s.seed}: the stray peer's forged frames need a cluster key (only authentication stops them)`,
    );
  if (!forged && options.attacks?.some((attack) => FORGED_ATTACKS.includes(attack)))
    throw new Error(`seed ${s.seed}: forged attacks need the forged option (and a cluster key)`);
  return { ...s, stray: straySettings(prng, s.faultPhaseTicksMin, forged, options.attacks) };
}

/** The share of seeds that schedule a targeted fault sequence (`Scenario.targeted`). */
export const TARGETED_SHARE = 1 / 8;

/**
 * Half the targeted seeds cut a leader off one way and wipe a follower's disk after a leader change
 * (the rarer trace to hit: it needs the new leader to have decisions in flight when it goes down);
 * they run 3 collapsed replicas with majority quorums (the two leaders and the rejoining node are all
 * of the cluster). A quarter crash acceptors right after a promise, while the older leader's accepts
 * are held back; a quarter crash a candidate right after its prepare and lose its newest log segment
 * (collapsed replicas, since only replicas' disks take faults). None keeps a replica away on purpose
 * (no laggard).
 */
function targetedScenario(prng: Prng, s: Scenario): Scenario {
  const startTick = prng.range(20, Math.max(21, Math.floor(s.faultPhaseTicksMin / 3)));
  if (prng.chance(1 / 2)) {
    return {
      ...s,
      layout: "collapsed",
      acceptors: [{ id: 1 }, { id: 2 }, { id: 3 }],
      quorum: { kind: "majority" },
      snapshots: s.snapshots === null ? null : { ...s.snapshots, laggard: null },
      targeted: {
        kind: "deaf-leader-rejoin",
        startTick,
        voteTicks: prng.range(2, 30),
        rebootTicks: prng.range(1, 5),
        muteTicks: prng.range(3, 20),
        rejoinWaitTicks: prng.range(50, 200),
        downTicks: prng.range(100, 300),
      },
    };
  }
  if (prng.chance(1 / 2)) {
    return {
      ...s,
      layout: "collapsed",
      segmentBytesMax: 512,
      snapshots: s.snapshots === null ? null : { ...s.snapshots, laggard: null },
      targeted: {
        kind: "campaign-crash",
        startTick,
        rebootTicks: prng.range(1, 5),
        deafTicks: prng.range(60, 250),
        leaderDownTicks: prng.range(50, 300),
      },
    };
  }
  const slowTicks = prng.range(20, 60);
  return {
    ...s,
    snapshots: s.snapshots === null ? null : { ...s.snapshots, laggard: null },
    targeted: {
      kind: "promise-crash",
      startTick,
      slowTicks,
      lateTicks: slowTicks + prng.range(20, 150),
      rebootTicks: prng.range(1, 5),
    },
  };
}

/**
 * Snapshots for seven in ten collapsed seeds: one every few commands (a value of a few commands is
 * estimated at about 250 bytes), few slots kept below a snapshot, chunks of 8 to 64 characters; half
 * of them keep one replica away for a third to two thirds of the fault phase.
 */
function snapshotSettings(
  prng: Prng,
  s: { acceptors: readonly AcceptorSpec[]; faultPhaseTicksMin: number },
): SnapshotSettings | null {
  if (!prng.chance(0.7)) return null;
  const snapshotLogBytes = prng.pick([100, 250, 500, 1000, 2500]);
  const logRetainSlots = prng.range(0, 8);
  const chunkUnits = prng.pick([8, 16, 32, 64]);
  const chunksPerRequest = prng.range(1, 3);
  const third = Math.floor(s.faultPhaseTicksMin / 3);
  const laggard = prng.chance(0.5)
    ? {
        replica: prng.range(1, s.acceptors.length),
        how: prng.pick(["crash", "partition"] as const),
        startTick: prng.range(5, third),
        ticks: prng.range(third, 2 * third),
      }
    : null;
  return { snapshotLogBytes, logRetainSlots, chunkUnits, chunksPerRequest, laggard };
}

export function describeScenario(s: Scenario): string {
  const quorum =
    s.quorum.kind === "flexible"
      ? `flexible ${s.quorum.phase1Weight}/${s.quorum.phase2Weight}`
      : s.quorum.kind;
  const weights = s.acceptors.map((a) => a.weight ?? 1).join(",");
  const roles = s.layout === "separate" ? `${s.proposers}P ${s.learners}L` : "replicas";
  return (
    `${s.layout} ${s.acceptors.length}A(${weights}) ${roles} ${s.clients}C ${quorum}; ` +
    `drop ${(s.network.dropRate * 100).toFixed(0)}% dup ${(s.network.duplicateRate * 100).toFixed(0)}% ` +
    `delay ${s.network.delayStepsMin}-${s.network.delayStepsMax}; ${s.codec}, segments ${s.segmentBytesMax} bytes; partitions ${s.partitionChance}/tick crashes ${s.crashChance}/tick` +
    describeSnapshots(s.snapshots) +
    describeTargeted(s.targeted) +
    (s.stray === null ? "" : describeStray(s.stray)) +
    (s.clusterKey === null ? "" : "; cluster key set") +
    (s.kv === null
      ? ""
      : `; kv: ${s.kv.clients} clients x ${s.kv.opsPerClient} ops on ${s.kv.keys} keys, ${s.kv.lockClients} lock clients, sessions ${s.kv.sessionTtlMs} ms, calls time out after ${s.kv.callTimeoutSteps} steps`)
  );
}

function describeTargeted(t: TargetedFaults | null): string {
  if (t === null) return "";
  if (t.kind === "deaf-leader-rejoin")
    return (
      `; targeted: deaf leader from tick ${t.startTick}, a follower's disk wiped ${t.voteTicks} ticks after a new leader, ` +
      `back in ${t.rebootTicks} (new leader muted ${t.muteTicks} more), the new leader down ${t.downTicks} ticks`
    );
  if (t.kind === "campaign-crash")
    return `; targeted: from tick ${t.startTick} the leader down ${t.leaderDownTicks} ticks, and the first candidate crashes right after its prepare, loses its newest log segment, back in ${t.rebootTicks}, deaf ${t.deafTicks} more`;
  return (
    `; targeted: from tick ${t.startTick} the leader's messages held back for ${t.slowTicks} ticks, ` +
    `acceptors crash right after promising a higher ballot (back in ${t.rebootTicks}, held messages first; the rest ${t.lateTicks} ticks later)`
  );
}

function describeSnapshots(s: SnapshotSettings | null): string {
  if (s === null) return "";
  const laggard =
    s.laggard === null
      ? ""
      : `; a replica kept away (${s.laggard.how}, replica ${s.laggard.replica} or the next the quorums spare) ` +
        `ticks ${s.laggard.startTick}-${s.laggard.startTick + s.laggard.ticks}`;
  return (
    `; snapshots every ${s.snapshotLogBytes} bytes, ${s.logRetainSlots} slots kept, ` +
    `chunks ${s.chunkUnits} x ${s.chunksPerRequest}${laggard}`
  );
}
