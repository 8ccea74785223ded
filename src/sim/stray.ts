import type { Codec } from "../codec/index.js";
import {
  type Ballot,
  type Command,
  chunkEnd,
  DEFAULT_LIMITS,
  encodeSnapshot,
  type Message,
  NOOP,
  type NodeId,
  type Prng,
  SessionTable,
  type SlotValue,
  textChecksum,
  type Value,
} from "../core/index.js";

/**
 * The stray peer (issue 9, section 4): a simulated process at its own address (`stray:1`) that,
 * during a run, sends frames built with the real codec through the simulated network, so that the
 * real drivers and roles receive them like any other frame. Everything it sends comes from the run's
 * PRNG, so a seed replays frame for frame.
 *
 * Its attacks come in two kinds:
 * - **refusable** (the default): frames that validation must refuse whatever the key, because a
 *   field is out of range (ballot rounds near 2^53 or far beyond anything seen, slots near 2^53),
 *   the state was never asked for (snapshot chunks and decides for no transfer or catch-up the node
 *   started: from the receiver's own id or from an id that is no member), the sender is no member,
 *   or the frames come in a flood (prepares with rising ballots); plus catch-up requests from
 *   non-members, made-up client ids with gapped sequence numbers, and frames that do not decode.
 *   With these, every checker must hold.
 * - **forged** (only in a run with a cluster key, `StraySettings.forged`): votes, accepts, decides
 *   and snapshots that claim member ids with fields that look valid. Only authentication stops
 *   them: the stray peer does not have the key, so the envelope check must drop its frames.
 */
export type StrayAttack =
  | "ballot-ceiling"
  | "slot-horizon"
  | "snapshot-unrequested"
  | "snapshot-unrestorable"
  | "decide-unrequested"
  | "non-member"
  | "prepare-flood"
  | "catchup-non-member"
  | "client-flood"
  | "garbage"
  | "forged-vote"
  | "forged-accept"
  | "forged-decide"
  | "forged-snapshot";

/** The attacks validation must refuse (the default). */
export const REFUSABLE_ATTACKS: readonly StrayAttack[] = [
  "ballot-ceiling",
  "slot-horizon",
  "snapshot-unrequested",
  "snapshot-unrestorable",
  "decide-unrequested",
  "non-member",
  "prepare-flood",
  "catchup-non-member",
  "client-flood",
  "garbage",
];

/** Every attack, refusable first. */
export const STRAY_ATTACKS: readonly StrayAttack[] = [
  "ballot-ceiling",
  "slot-horizon",
  "snapshot-unrequested",
  "snapshot-unrestorable",
  "decide-unrequested",
  "non-member",
  "prepare-flood",
  "catchup-non-member",
  "client-flood",
  "garbage",
  "forged-vote",
  "forged-accept",
  "forged-decide",
  "forged-snapshot",
];

/** The attacks only authentication stops (a run with a cluster key only). */
export const FORGED_ATTACKS: readonly StrayAttack[] = [
  "forged-vote",
  "forged-accept",
  "forged-decide",
  "forged-snapshot",
];

/** When and how hard the stray peer attacks (`Scenario.stray`). */
export interface StraySettings {
  /** It sends from this tick until `endTick` (both within the fault phase) ... */
  readonly startTick: number;
  readonly endTick: number;
  /**
   * ... and again for this many ticks after the network heals (0: not at all), into the liveness
   * phase: a disruption that outlasts the faults must still let everything be decided.
   */
  readonly livenessTicks: number;
  /** Frames sent on each tick of the attack (besides floods). */
  readonly framesPerTick: number;
  /** Every this many ticks a flood of prepares with rising ballots goes out ... */
  readonly floodEveryTicks: number;
  /** ... of this many prepares. */
  readonly floodPrepares: number;
  /** The attacks it draws from (each frame picks one, uniformly). */
  readonly attacks: readonly StrayAttack[];
  /**
   * Whether the forged attacks are among them: only in a run with a cluster key (see
   * `Scenario.clusterKey`), where the envelope check must drop them.
   */
  readonly forged: boolean;
}

/** Draws a stray peer's settings from a seed's PRNG (`scenarioForSeed`). */
export function straySettings(
  prng: Prng,
  faultPhaseTicksMin: number,
  forged: boolean,
  only?: readonly StrayAttack[],
): StraySettings {
  const startTick = prng.range(5, Math.max(6, Math.floor(faultPhaseTicksMin / 3)));
  const endTick = prng.range(startTick + 20, Math.max(startTick + 21, faultPhaseTicksMin));
  // Between one and all of the refusable attacks, so that some seeds concentrate on a few.
  let attacks = REFUSABLE_ATTACKS.filter(() => prng.chance(0.6));
  if (attacks.length === 0) attacks.push(prng.pick(REFUSABLE_ATTACKS));
  if (forged) attacks.push(...FORGED_ATTACKS);
  // Narrowed to some attacks (`paxos sim --stray-attacks`), after the same draws.
  if (only !== undefined && only.length > 0) attacks = [...only];
  return {
    startTick,
    endTick,
    framesPerTick: prng.pick([1, 1, 2, 4, 8]),
    floodEveryTicks: prng.pick([5, 20, 50]),
    floodPrepares: prng.pick([5, 10, 30]),
    attacks,
    forged,
    livenessTicks: prng.pick([0, 100, 300, 3000]),
  };
}

export function describeStray(s: StraySettings): string {
  return (
    `; stray peer ticks ${s.startTick}-${s.endTick}${s.livenessTicks > 0 ? ` and ${s.livenessTicks} after healing` : ""}, ${s.framesPerTick}/tick, ` +
    `${s.floodPrepares} prepares every ${s.floodEveryTicks} ticks, ${s.forged ? "forged frames too, " : ""}` +
    `attacks ${s.attacks.filter((a) => !FORGED_ATTACKS.includes(a)).join(",")}`
  );
}

/** What the stray peer knows of the run when it builds its frames (it watches the traffic). */
export interface StrayView {
  readonly tick: number;
  /** Ids by role: proposers (and, in the collapsed layout, every replica), acceptors, learners. */
  readonly ids: Readonly<Record<"proposer" | "acceptor" | "learner", readonly NodeId[]>>;
  /** Whether nodes know each other (collapsed replicas: a cluster configuration lists them). */
  readonly membersKnown: boolean;
  /**
   * The acceptors a buggy member may be: those the cluster can do without (the others still form a
   * phase-1 and a phase-2 quorum). One the cluster cannot do without vouches alone for any ballot
   * or slot, and no Paxos outlives a faulty member that is a quorum by itself; with none here, the
   * stray claims stranger ids for acceptors.
   */
  readonly spareAcceptors: readonly NodeId[];
  /** The highest ballot round any process sent so far, and the newest leader's ballot. */
  readonly highestRound: number;
  readonly leaderBallot: Ballot;
  /** Slots 1 ..= this are decided (as far as the learners delivered). */
  readonly decidedThrough: number;
  /** Whether the network has healed (the liveness phase, in which every fault stops). */
  readonly healed: boolean;
}

/** Where a stray frame goes: one member of a role (`id`), or every member of it. */
export interface StrayTarget {
  readonly role: "proposer" | "acceptor" | "learner";
  readonly id?: NodeId;
}

export interface StrayFrame {
  readonly attack: StrayAttack;
  readonly to: StrayTarget;
  readonly frame: Uint8Array;
  /** The sender the frame claims to be (its message's `from`): the envelope names it too. */
  readonly from: number;
  /** For the trace: the message, briefly. */
  readonly summary: string;
}

/** Client ids of the stray's made-up clients (registered with the checker: their values may be decided). */
export const STRAY_CLIENT_BASE = 10_000;
/** Client id of the values nobody proposed, in forged and refusable frames (never registered). */
export const STRAY_FORGED_CLIENT = 20_000;

const MAX = Number.MAX_SAFE_INTEGER; // 2^53 - 1: the largest number the wire carries

/**
 * Made-up clients of one run's client flood. Each gets a session in every replica, which every
 * snapshot carries; the session table's bound (100,000 clients) is far past what a run reaches, so
 * more of them test nothing more, while they grow snapshots past what the simulator's smallest
 * transfer settings (8 units a chunk, 1 or 2 chunks a request) move within the liveness phase: seed
 * 495304 made 16,603 units of snapshot from 400 made-up clients, 1,000 round trips at 16 units each,
 * and 718172 still 3,905 units from 64 of them, at 8 units a round trip under 24% loss.
 */
const STRAY_FLOOD_CLIENTS_MAX = 16;
const TWO_30 = 2 ** 30;

/** The stray peer: builds its frames, tick by tick, from the run's PRNG (see the module comment). */
export class StrayPeer {
  /** Frames sent, by attack. */
  readonly sent = new Map<StrayAttack, number>();
  /** Commands of made-up clients it sent (the checker counts them as submitted, not as required). */
  readonly commands: Command[] = [];
  private nextClient = STRAY_CLIENT_BASE + 1;
  /** The made-up clients of the client flood (at most STRAY_FLOOD_CLIENTS_MAX). */
  private readonly floodClients: NodeId[] = [];
  /** The one buggy member per role whose id refusable frames claim (see `member`). */
  private readonly buggy = new Map<string, NodeId>();
  /**
   * The header of a session list under the cluster's session limits (the simulator runs the
   * defaults): a snapshot that carries it restores on every replica.
   */
  private readonly sessionHeader: readonly number[] = new SessionTable({
    clientsMax: DEFAULT_LIMITS.clientsMax,
    clientRangesMax: DEFAULT_LIMITS.clientRangesMax,
  }).export();
  private forgedSeq = 1;

  constructor(
    readonly settings: StraySettings,
    private readonly prng: Prng,
    private readonly codec: Codec,
  ) {}

  /**
   * Whether it attacks on `tick`: from `startTick` to `endTick`, and for `livenessTicks` after the
   * network healed at `healTick` (null: not yet).
   */
  active(tick: number, healTick: number | null): boolean {
    const s = this.settings;
    if (healTick !== null) return tick < healTick + s.livenessTicks;
    return tick >= s.startTick && tick < s.endTick;
  }

  /** The frames it sends on one tick of its attack. */
  framesFor(view: StrayView): StrayFrame[] {
    const frames: StrayFrame[] = [];
    for (let i = 0; i < this.settings.framesPerTick; i++) {
      const attack = this.prng.pick(this.settings.attacks);
      if (attack === "prepare-flood") continue; // floods go out on their own schedule, below
      this.build(attack, view, frames);
    }
    // A flood of prepares with rising ballots is a member duelling for leadership: no Paxos decides
    // while one goes on (the disruption guard holds it off only while a leader lives), so it stops
    // with the other faults when the network heals; the other attacks go on, and must stay harmless.
    if (
      !view.healed &&
      this.settings.attacks.includes("prepare-flood") &&
      (view.tick - this.settings.startTick) % this.settings.floodEveryTicks === 0
    )
      this.flood(view, frames);
    return frames;
  }

  get totalSent(): number {
    let total = 0;
    for (const n of this.sent.values()) total += n;
    return total;
  }

  // --- the attacks ---------------------------------------------------------------------------------

  private build(attack: StrayAttack, view: StrayView, out: StrayFrame[]): void {
    switch (attack) {
      case "ballot-ceiling":
        this.ballotCeiling(view, out);
        return;
      case "slot-horizon":
        this.slotHorizon(view, out);
        return;
      case "snapshot-unrequested":
        this.snapshotUnrequested(view, out);
        return;
      case "snapshot-unrestorable":
        this.snapshotUnrestorable(view, out);
        return;
      case "decide-unrequested":
        this.decideUnrequested(view, out);
        return;
      case "non-member":
        this.nonMember(view, out);
        return;
      case "prepare-flood":
        this.flood(view, out);
        return;
      case "catchup-non-member":
        this.catchupNonMember(view, out);
        return;
      case "client-flood":
        this.clientFlood(view, out);
        return;
      case "garbage":
        this.garbage(view, out);
        return;
      case "forged-vote":
      case "forged-accept":
      case "forged-decide":
      case "forged-snapshot":
        this.forged(attack, view, out);
        return;
    }
  }

  /** Any ballot-carrying message with a round near 2^53, or far beyond any round seen. */
  private ballotCeiling(view: StrayView, out: StrayFrame[]): void {
    const ballot = { round: this.extremeRound(view), node: this.member(view, "proposer") };
    const slot = view.decidedThrough + this.prng.range(1, 4);
    const acceptor = this.member(view, "acceptor");
    const kind = this.prng.pick(["prepare", "accept", "heartbeat", "reject", "promise", "accepted"] as const);
    switch (kind) {
      case "prepare":
        this.emit(
          out,
          "ballot-ceiling",
          { role: "acceptor" },
          {
            type: "prepare",
            from: ballot.node,
            ballot,
            firstSlot: this.prng.range(1, view.decidedThrough + 1),
          },
        );
        return;
      case "accept":
        this.emit(
          out,
          "ballot-ceiling",
          { role: "acceptor" },
          {
            type: "accept",
            from: ballot.node,
            ballot,
            slot,
            value: this.unproposedValue(),
          },
        );
        return;
      case "heartbeat":
        this.emit(
          out,
          "ballot-ceiling",
          { role: this.prng.pick(["proposer", "learner"] as const) },
          {
            type: "heartbeat",
            from: ballot.node,
            ballot,
            decidedThrough: view.decidedThrough,
            proposedThrough: view.decidedThrough,
          },
        );
        return;
      case "reject":
        this.emit(
          out,
          "ballot-ceiling",
          { role: "proposer" },
          {
            type: "reject",
            from: acceptor,
            ballot: view.leaderBallot,
            promised: ballot,
            slot: this.prng.chance(0.5) ? 0 : slot,
          },
        );
        return;
      case "promise":
        this.emit(
          out,
          "ballot-ceiling",
          { role: "proposer" },
          {
            type: "promise",
            from: acceptor,
            ballot,
            firstSlot: 1,
            accepted: [{ slot, ballot, value: this.unproposedValue() }],
            nextSlot: null,
            floorSlot: 0,
          },
        );
        return;
      case "accepted":
        this.emit(
          out,
          "ballot-ceiling",
          { role: "learner" },
          {
            type: "accepted",
            from: acceptor,
            ballot,
            slot,
            value: this.unproposedValue(),
          },
        );
        return;
    }
  }

  /** Slots near 2^53 (or far past what is decided) in accept, heartbeat, promise, reject, snapshot. */
  private slotHorizon(view: StrayView, out: StrayFrame[]): void {
    const slot = this.extremeSlot(view);
    const ballot = view.leaderBallot;
    const leader = ballot.node === 0 ? this.member(view, "proposer") : ballot.node;
    const acceptor = this.member(view, "acceptor");
    const kind = this.prng.pick([
      "accept",
      "heartbeat",
      "promise",
      "reject",
      "snapshot",
      "accepted",
    ] as const);
    switch (kind) {
      case "accept":
        this.emit(
          out,
          "slot-horizon",
          { role: "acceptor" },
          {
            type: "accept",
            from: leader,
            ballot,
            slot,
            value: this.prng.chance(0.5) ? NOOP : this.unproposedValue(),
          },
        );
        return;
      case "heartbeat":
        this.emit(
          out,
          "slot-horizon",
          { role: this.prng.pick(["proposer", "learner"] as const) },
          {
            type: "heartbeat",
            from: leader,
            ballot,
            decidedThrough: this.prng.chance(0.5) ? slot : view.decidedThrough,
            proposedThrough: slot,
          },
        );
        return;
      case "promise":
        this.emit(
          out,
          "slot-horizon",
          { role: "proposer" },
          {
            type: "promise",
            from: acceptor,
            ballot,
            firstSlot: 1,
            accepted: [],
            nextSlot: this.prng.chance(0.5) ? slot : null,
            floorSlot: this.prng.chance(0.5) ? slot : 0,
          },
        );
        return;
      case "reject":
        this.emit(
          out,
          "slot-horizon",
          { role: "proposer" },
          {
            type: "reject",
            from: acceptor,
            ballot,
            promised: ballot,
            slot,
          },
        );
        return;
      case "accepted":
        this.emit(
          out,
          "slot-horizon",
          { role: "learner" },
          {
            type: "accepted",
            from: acceptor,
            ballot,
            slot,
            value: NOOP,
          },
        );
        return;
      case "snapshot": {
        // A self-consistent snapshot at a slot near 2^53, from the receiver's own id or a non-member.
        const target = this.learnerTarget(view);
        const text = encodeSnapshot({ slot, sessions: this.sessionHeader, app: this.fakeApp() });
        this.emitSnapshot(out, "slot-horizon", target, this.unaskedFrom(view, target), slot, text);
        return;
      }
    }
  }

  /**
   * A snapshot nobody asked for, whose state would restore: from the receiver's own id (it never
   * asks itself) or from an id that is no member; at a slot already decided, or a little past.
   */
  private snapshotUnrequested(view: StrayView, out: StrayFrame[]): void {
    const target = this.learnerTarget(view);
    const slot = this.prng.chance(0.5)
      ? this.prng.range(1, Math.max(1, view.decidedThrough))
      : view.decidedThrough + this.prng.range(1, 50);
    const client = this.newClient();
    const count = this.prng.range(1, 40);
    const text = encodeSnapshot({
      slot,
      sessions: [...this.sessionHeader, client, 1, 1, count],
      app: this.fakeApp(count),
    });
    this.emitSnapshot(out, "snapshot-unrequested", target, this.unaskedFrom(view, target), slot, text);
  }

  /** Snapshot chunks whose state cannot restore (bad header, bad application state, bad checksum, a huge claimed length). */
  private snapshotUnrestorable(view: StrayView, out: StrayFrame[]): void {
    const target = this.learnerTarget(view);
    const from = this.unaskedFrom(view, target);
    const slot = view.decidedThrough + this.prng.range(1, 50);
    const kind = this.prng.pick(["app", "header", "sessions", "checksum", "length"] as const);
    if (kind === "length") {
      // The first chunk of a snapshot claiming the most characters the wire carries (issue 9 found
      // 52,429 chunks claiming 2^29 exhausting memory; 2^29 itself no longer encodes): no receiver
      // should start on it.
      const data = "x".repeat(64);
      this.emit(out, "snapshot-unrestorable", target, {
        type: "snapshot-chunk",
        from,
        slot,
        length: DEFAULT_LIMITS.snapshotUnitsMax,
        checksum: this.prng.uint32(),
        offset: 0,
        data,
      });
      return;
    }
    const text =
      kind === "app"
        ? encodeSnapshot({ slot, sessions: this.sessionHeader, app: "{not an application state" })
        : kind === "header"
          ? `{"slot":${slot},"sessions":"nope"}\n0:0000000000000000`
          : kind === "sessions"
            ? encodeSnapshot({ slot, sessions: [7, 3, 1], app: this.fakeApp() })
            : encodeSnapshot({ slot, sessions: this.sessionHeader, app: this.fakeApp() });
    this.emitSnapshot(out, "snapshot-unrestorable", target, from, slot, text, kind === "checksum");
  }

  /**
   * Decides nobody asked for: from the receiver's own id or a non-member, for slots already decided
   * (contradicting them), a little past them, or near 2^53, with values nobody proposed.
   */
  private decideUnrequested(view: StrayView, out: StrayFrame[]): void {
    const target = this.learnerTarget(view);
    const where = this.prng.pick(["decided", "next", "horizon"] as const);
    const first =
      where === "decided"
        ? this.prng.range(1, Math.max(1, view.decidedThrough))
        : where === "next"
          ? view.decidedThrough + 1
          : this.extremeSlot(view) - 3;
    const entries: SlotValue[] = [];
    const count = this.prng.range(1, 3);
    for (let i = 0; i < count; i++) entries.push({ slot: first + i, value: this.unproposedValue() });
    this.emit(out, "decide-unrequested", target, {
      type: "decide",
      from: this.unaskedFrom(view, target),
      entries,
    });
  }

  /**
   * Votes from ids that are no acceptor (to learners: a quorum of made-up acceptors), and, where
   * nodes know each other (collapsed replicas), prepares and accepts from ids that are no member.
   */
  private nonMember(view: StrayView, out: StrayFrame[]): void {
    const stranger = this.stranger();
    const round = atMost(view.highestRound + this.prng.range(1, 3));
    const slot = view.decidedThrough + this.prng.range(1, 3);
    if (!view.membersKnown || this.prng.chance(0.5)) {
      // A quorum's worth of made-up acceptors vote for a value nobody proposed.
      const value = this.unproposedValue();
      const voters = Math.max(1, view.ids.acceptor.length);
      for (let i = 0; i < voters; i++) {
        this.emit(
          out,
          "non-member",
          { role: "learner" },
          {
            type: "accepted",
            from: stranger + i,
            ballot: view.leaderBallot.node === 0 ? { round, node: stranger } : view.leaderBallot,
            slot,
            value,
          },
        );
      }
      return;
    }
    const ballot = { round, node: stranger };
    if (this.prng.chance(0.5)) {
      this.emit(
        out,
        "non-member",
        { role: "acceptor" },
        {
          type: "prepare",
          from: stranger,
          ballot,
          firstSlot: view.decidedThrough + 1,
        },
      );
    } else {
      this.emit(
        out,
        "non-member",
        { role: "acceptor" },
        {
          type: "accept",
          from: stranger,
          ballot,
          slot,
          value: this.unproposedValue(),
        },
      );
    }
  }

  /** A flood of prepares with rising ballots (from member ids and strangers). */
  private flood(view: StrayView, out: StrayFrame[]): void {
    let round = view.highestRound;
    for (let i = 0; i < this.settings.floodPrepares; i++) {
      round = atMost(round + this.prng.range(1, 3));
      const node =
        view.membersKnown && this.prng.chance(0.25) ? this.stranger() : this.member(view, "proposer");
      this.emit(
        out,
        "prepare-flood",
        { role: "acceptor" },
        {
          type: "prepare",
          from: node,
          ballot: { round, node },
          firstSlot: view.decidedThrough + 1,
        },
      );
    }
  }

  /** Catch-up and snapshot requests from ids that are no member (an amplifier if answered). */
  private catchupNonMember(view: StrayView, out: StrayFrame[]): void {
    const target = this.learnerTarget(view);
    const from = this.stranger();
    if (this.prng.chance(0.7)) {
      this.emit(out, "catchup-non-member", target, {
        type: "catchup",
        from,
        role: "learner",
        fromSlot: 1,
        toSlot: this.prng.chance(0.5) ? MAX : Math.max(1, view.decidedThrough),
      });
    } else {
      this.emit(out, "catchup-non-member", target, {
        type: "snapshot-request",
        from,
        role: "learner",
        slot: 0,
        offset: 0,
      });
    }
  }

  /** Requests from made-up client ids with gapped sequence numbers (some near 2^53). */
  private clientFlood(view: StrayView, out: StrayFrame[]): void {
    // New made-up clients until STRAY_FLOOD_CLIENTS_MAX, then the same ones again (see there).
    const fresh = this.floodClients.length < STRAY_FLOOD_CLIENTS_MAX && this.prng.chance(0.7);
    if (fresh || this.floodClients.length === 0) this.floodClients.push(this.newClient());
    const client = fresh
      ? (this.floodClients[this.floodClients.length - 1] as NodeId)
      : this.prng.pick(this.floodClients);
    const commands: Command[] = [];
    const count = this.prng.range(1, 4);
    for (let i = 0; i < count; i++) {
      const seq = this.prng.pick([1, 2, 5, 100, 1_000_000, MAX - 1, MAX]);
      if (commands.some((c) => c.seq === seq)) continue;
      commands.push({ client, seq, payload: `s${client}.${seq}` });
    }
    for (const command of commands) this.commands.push(command);
    this.emit(
      out,
      "client-flood",
      { role: "proposer", id: this.member(view, "proposer") },
      {
        type: "request",
        from: client,
        commands,
      },
    );
  }

  /** A real frame cut short, or with bytes of junk: the decoder must refuse it. */
  private garbage(view: StrayView, out: StrayFrame[]): void {
    const from = this.member(view, "proposer");
    const frame = this.codec.encode({
      type: "heartbeat",
      from,
      ballot: view.leaderBallot,
      decidedThrough: view.decidedThrough,
      proposedThrough: view.decidedThrough,
    });
    let bytes: Uint8Array;
    if (this.prng.chance(0.5) && frame.length > 1) {
      bytes = frame.slice(0, this.prng.range(0, frame.length - 1));
    } else {
      bytes = new Uint8Array(this.prng.range(1, 64));
      for (let i = 0; i < bytes.length; i++) bytes[i] = this.prng.int(256);
    }
    const to: StrayTarget = { role: this.prng.pick(["proposer", "acceptor", "learner"] as const) };
    this.count("garbage");
    out.push({ attack: "garbage", to, frame: bytes, from, summary: `${bytes.length} bytes` });
  }

  /**
   * Forged frames (a run with a cluster key only): member ids, valid-looking fields, values nobody
   * proposed. Validation cannot tell them from a member's; the envelope check must drop them.
   */
  private forged(attack: StrayAttack, view: StrayView, out: StrayFrame[]): void {
    const slot = view.decidedThrough + this.prng.range(1, 3);
    const value = this.unproposedValue();
    const ballot =
      view.leaderBallot.node === 0
        ? { round: atMost(view.highestRound + 1), node: this.member(view, "proposer") }
        : view.leaderBallot;
    switch (attack) {
      case "forged-vote":
        for (const from of view.ids.acceptor)
          this.emit(out, attack, { role: "learner" }, { type: "accepted", from, ballot, slot, value });
        return;
      case "forged-accept":
        this.emit(
          out,
          attack,
          { role: "acceptor" },
          {
            type: "accept",
            from: ballot.node,
            ballot,
            slot,
            value,
          },
        );
        return;
      case "forged-decide": {
        const target = this.learnerTarget(view);
        const others = view.ids.learner.filter((id) => id !== target.id);
        this.emit(out, attack, target, {
          type: "decide",
          from: others.length > 0 ? this.prng.pick(others) : this.member(view, "learner"),
          entries: [{ slot, value }],
        });
        return;
      }
      default: {
        const target = this.learnerTarget(view);
        const others = view.ids.learner.filter((id) => id !== target.id);
        const at = view.decidedThrough + this.prng.range(1, 20);
        const text = encodeSnapshot({ slot: at, sessions: this.sessionHeader, app: this.fakeApp() });
        const from = others.length > 0 ? this.prng.pick(others) : this.member(view, "learner");
        this.emitSnapshot(out, attack, target, from, at, text);
      }
    }
  }

  // --- helpers -------------------------------------------------------------------------------------

  private emit(out: StrayFrame[], attack: StrayAttack, to: StrayTarget, message: Message): void {
    this.count(attack);
    out.push({
      attack,
      to,
      frame: this.codec.encode(message),
      from: message.from,
      summary: summarizeStray(message),
    });
  }

  private count(attack: StrayAttack): void {
    this.sent.set(attack, (this.sent.get(attack) ?? 0) + 1);
  }

  /** Every chunk of `text` (small chunks, as a real transfer cuts them), or one with a wrong checksum. */
  private emitSnapshot(
    out: StrayFrame[],
    attack: StrayAttack,
    to: StrayTarget,
    from: NodeId,
    slot: number,
    text: string,
    wrongChecksum = false,
  ): void {
    const checksum = wrongChecksum ? (textChecksum(text) ^ 1) >>> 0 : textChecksum(text);
    for (let offset = 0; offset < text.length; ) {
      const end = chunkEnd(text, offset, 64);
      this.emit(out, attack, to, {
        type: "snapshot-chunk",
        from,
        slot,
        length: text.length,
        checksum,
        offset,
        data: text.slice(offset, end),
      });
      offset = end;
    }
  }

  /** A learner to address by id: what the receiver's own id or a stranger's is chosen against. */
  private learnerTarget(view: StrayView): StrayTarget {
    const ids = view.ids.learner;
    return ids.length > 0 ? { role: "learner", id: this.prng.pick(ids) } : { role: "learner" };
  }

  /** An id the receiver never asked: its own, or one that is no member. */
  /** The sender of state nobody asked for: a stranger (a member's answer, when asked, is a member's word). */
  private unaskedFrom(_view: StrayView, _target: StrayTarget): NodeId {
    return this.stranger();
  }

  /**
   * The member whose id the peer's refusable frames claim: one per role, fixed for the run. A
   * refusable frame stands for one buggy member (or a stranger using its id without a key), never
   * for a quorum of them: frames claiming several members with in-range fields are forged votes,
   * which only the cluster key stops (the `forged` attacks, in keyed runs).
   */
  private member(view: StrayView, role: "proposer" | "acceptor" | "learner"): NodeId {
    const ids = role === "acceptor" ? view.spareAcceptors : view.ids[role];
    if (ids.length === 0) return role === "acceptor" ? this.stranger() : 1;
    const chosen = this.buggy.get(role);
    if (chosen !== undefined && ids.includes(chosen)) return chosen;
    const id = this.prng.pick(ids);
    this.buggy.set(role, id);
    return id;
  }

  /** An id no process of the run has (ids of the scenarios are at most 7). */
  private stranger(): NodeId {
    return this.prng.range(100, 999);
  }

  private newClient(): NodeId {
    return this.nextClient++;
  }

  /** A round near 2^53, or far beyond any round seen. */
  private extremeRound(view: StrayView): number {
    switch (this.prng.int(4)) {
      case 0:
        return MAX;
      case 1:
        return MAX - 1;
      case 2:
        return MAX - this.prng.range(2, 1000);
      default:
        return atMost(view.highestRound + TWO_30 + this.prng.int(TWO_30));
    }
  }

  /** A slot near 2^53, or far past what is decided. */
  private extremeSlot(view: StrayView): number {
    switch (this.prng.int(4)) {
      case 0:
        return MAX;
      case 1:
        return MAX - 1;
      case 2:
        return 10 ** 15;
      default:
        return atMost(view.decidedThrough + TWO_30 + this.prng.int(TWO_30));
    }
  }

  /** A value nobody proposed (its client is never registered with the checker). */
  private unproposedValue(): Value {
    const seq = this.forgedSeq++;
    return { commands: [{ client: STRAY_FORGED_CLIENT, seq, payload: `forged${seq}` }] };
  }

  /** An application state that `AppDigest.decode` takes (count:16 hex digits). */
  private fakeApp(count = this.prng.range(1, 40)): string {
    let hex = "";
    for (let i = 0; i < 2; i++) hex += this.prng.uint32().toString(16).padStart(8, "0");
    return `${count}:${hex}`;
  }
}

/** `n`, or the largest number the wire carries if `n` is past it (rounds seen may be near 2^53 already). */
function atMost(n: number): number {
  return Math.min(n, MAX);
}

/** One line per stray message, for the trace. */
function summarizeStray(message: Message): string {
  switch (message.type) {
    case "prepare":
      return `prepare ${message.from} ${message.ballot.round}.${message.ballot.node} ${message.firstSlot}`;
    case "accept":
    case "accepted":
      return `${message.type} ${message.from} ${message.ballot.round}.${message.ballot.node} ${message.slot}`;
    case "heartbeat":
      return `heartbeat ${message.from} ${message.ballot.round}.${message.ballot.node} ${message.decidedThrough} ${message.proposedThrough}`;
    case "reject":
      return `reject ${message.from} ${message.promised.round}.${message.promised.node} ${message.slot}`;
    case "promise":
      return `promise ${message.from} ${message.ballot.round}.${message.ballot.node} ${message.floorSlot} ${message.nextSlot}`;
    case "decide":
      return `decide ${message.from} ${message.entries.map((e) => e.slot).join(",")}`;
    case "snapshot-chunk":
      return `snapshot-chunk ${message.from} ${message.slot} ${message.offset}/${message.length}`;
    case "catchup":
      return `catchup ${message.from} ${message.fromSlot}-${message.toSlot}`;
    case "snapshot-request":
      return `snapshot-request ${message.from}`;
    case "request":
      return `request ${message.from} ${message.commands.map((c) => c.seq).join(",")}`;
    default:
      return message.type;
  }
}
