import type {
  AcceptedEntry,
  Ballot,
  DurableDelta,
  ReplicaState,
  Result,
  SlotValue,
  Snapshot,
  Value,
} from "../core/index.js";
import { assert, ZERO_BALLOT } from "../core/index.js";

/**
 * What a node finds on stable storage when it starts: the union of `AcceptorState` and
 * `ProposerState` (see {@link toReplicaState}).
 */
export interface DurableState {
  /** The highest ballot promised (the last one written; the core only ever raises it). */
  readonly promised: Ballot;
  /**
   * Votes, one per slot, in slot order. For a slot written more than once the last write wins, as in
   * `mergeDelta`: an acceptor only replaces a vote with one at a ballot at least as high.
   */
  readonly accepted: AcceptedEntry[];
  /** The highest ballot round the proposer has used (the last one written). */
  readonly round: number;
  /**
   * Votes in slots below this were dropped by {@link Storage.compact} (0: none ever were). The node
   * must not answer for those slots as if it had never voted in them: it must know them decided.
   */
  readonly trimmedBelowSlot: number;
  /** The node lost or damaged its state and has not finished rejoining: it must not vote yet. */
  readonly rejoining: boolean;
  /** The newest snapshot persisted (null: none yet). It replaces the decided log through its slot. */
  readonly snapshot: Snapshot | null;
  /**
   * The delivered log past the snapshot, as far as it is contiguous: `log[i]` is slot S + 1 + i, where
   * S is the snapshot's slot (0 without one).
   */
  readonly log: Value[];
}

/** Why {@link Storage.open} could not load the state. A node that gets one must not vote. */
export type StorageError =
  /**
   * Bytes that were once durable are damaged or missing: a bad record before the end of the log, a
   * missing segment, a bad segment header. Nothing was repaired or deleted; an operator decides.
   */
  | { readonly kind: "corrupt"; readonly file: string; readonly offset: number; readonly detail: string }
  /** The operating system refused (permissions, disk full, not a directory, ...). */
  | { readonly kind: "io"; readonly detail: string; readonly code?: string };

/** Counters, for metrics and tests. They count from `open()`; the sizes describe the log as it is. */
export interface StorageStats {
  /** Records appended (a delta is one record unless it is very large). */
  readonly records: number;
  /** Encoded bytes appended, framing included (0 for storage that encodes nothing). */
  readonly bytes: number;
  /**
   * Encoded bytes in the log after its newest checkpoint (from its start without one), counting what
   * `open()` found and what was appended since. With {@link checkpointBytes}, what a driver needs to
   * decide when to `compact()`: compacting when this exceeds the checkpoint's size keeps the log
   * within about twice the size of the state it holds.
   */
  readonly bytesSinceCheckpoint: number;
  /** Encoded bytes of the newest checkpoint (0 if there is none): about the size of the state. */
  readonly checkpointBytes: number;
  /** Data syncs of log files (`fdatasync`/`fsync`): one per group commit, plus rolls and compactions. */
  readonly syncs: number;
  /** Syncs of the log directory (after a segment is created or deleted). */
  readonly directorySyncs: number;
  /** How long the last group commit took (write and sync), in milliseconds. */
  readonly lastSyncMs: number;
  /** Records appended but not yet handed to a sync. */
  readonly pendingRecords: number;
  /** Bytes appended but not yet handed to a sync. */
  readonly pendingBytes: number;
  /** Bytes cut off the end of the log by `open()`: a write that a crash interrupted. */
  readonly tornTailBytes: number;
  /** Live segment files. */
  readonly segments: number;
  /** Bytes the log occupies on disk (the sum of its segment sizes). */
  readonly diskBytes: number;
  /** Completed `compact()` calls. */
  readonly compactions: number;
}

export interface CompactOptions {
  /**
   * Drop votes in slots below this one (they must be decided and applied, or covered by an
   * application snapshot, on enough nodes). Default: keep every vote.
   */
  readonly trimBelowSlot?: number;
}

/**
 * Stable storage for what the core asks to persist (`Output.persist`). The driver appends each
 * output's delta, then calls `sync()` once for the whole batch (group commit), and only when it
 * resolves sends that batch's `sendAfterPersist`.
 *
 * @example
 * const storage = new WalStorage({ dir: "/var/lib/paxos/node-1" });
 * const opened = await storage.open();
 * if (!opened.ok) throw new Error(`cannot vote: ${JSON.stringify(opened.error)}`);
 * const replica = new Replica({ id: 1, quorum, prng, restore: toReplicaState(opened.value) });
 * const out = replica.tick();
 * if (out.persist) storage.append(out.persist);
 * await storage.sync();
 * // now send out.sendAfterPersist
 */
export interface Storage {
  /**
   * Loads what was durably written and repairs a torn tail (a write a crash interrupted). Reports
   * damage to durable data as a value and never guesses. Called once, before anything else.
   */
  open(): Promise<Result<DurableState, StorageError>>;
  /**
   * After a successful `open()`: true when it found no durable state at all (a new or emptied
   * directory; a `MemoryStorage` never synced). Storage cannot tell a new node from one that lost
   * everything: the caller decides, a node known to be new votes, an existing member rejoins.
   * Optional so that test doubles need not implement it.
   */
  readonly fresh?: boolean;
  /** Adds a delta to the write buffer. Not durable until a later `sync()` resolves. Cheap. */
  append(delta: DurableDelta): void;
  /**
   * Makes everything appended so far durable, with one write and one data sync for all of it (group
   * commit). Calls made while a sync is in flight share the next round. Rejects if the storage
   * failed; it then stays failed (a failed sync may have lost data: restart and `open()` again).
   */
  sync(): Promise<void>;
  /**
   * Rewrites the durable state compactly (optionally dropping old votes) and frees the space of what
   * it replaces: the newest snapshot, the decided log past it, the votes and the marks. Also makes
   * everything appended so far durable. Cheap to ask for, costly to run with a large snapshot (it is
   * written again): see `stats.bytesSinceCheckpoint`.
   */
  compact(options?: CompactOptions): Promise<void>;
  /**
   * Makes everything appended durable, then releases files. With `sync: false` it starts no new sync
   * (work already under way still finishes): what was appended since is lost, as in a crash.
   */
  close(options?: { readonly sync?: boolean }): Promise<void>;
  readonly stats: StorageStats;
}

/** The core's restore shape: `new Replica({ ..., restore: toReplicaState(state) })`. */
export function toReplicaState(state: DurableState): ReplicaState {
  return {
    acceptor: { promised: state.promised, accepted: state.accepted, floorSlot: state.trimmedBelowSlot },
    round: state.round,
    snapshot: state.snapshot,
    log: state.log,
  };
}

export function emptyDurableState(): DurableState {
  return {
    promised: ZERO_BALLOT,
    accepted: [],
    round: 0,
    trimmedBelowSlot: 0,
    rejoining: false,
    snapshot: null,
    log: [],
  };
}

/**
 * Everything a {@link DurableModel} holds, as a checkpoint writes it: unlike {@link DurableState}, the
 * decided slots past a gap too, so that replaying a checkpoint rebuilds exactly the same model.
 */
export interface DurableImage {
  readonly promised: Ballot;
  readonly round: number;
  readonly trimmedBelowSlot: number;
  readonly rejoining: boolean;
  readonly snapshot: Snapshot | null;
  /** Decided slots past the snapshot, in slot order. */
  readonly decided: SlotValue[];
  /** Votes, in slot order. */
  readonly accepted: AcceptedEntry[];
}

/**
 * The durable state as a sequence of deltas leaves it: the model both storages keep, and the
 * reference that property tests compare them with.
 *
 * Bounded when the node snapshots: decided slots are held only past the newest snapshot, votes only
 * from the floor up (the floor rises with each snapshot, in the same delta).
 */
export class DurableModel {
  promised: Ballot = ZERO_BALLOT;
  round = 0;
  trimmedBelowSlot = 0;
  rejoining = false;
  /** The newest snapshot (named apart from `snapshot()`, which reads the whole state). */
  private newestSnapshot: Snapshot | null = null;
  private readonly decided = new Map<number, Value>();
  private readonly votes = new Map<number, AcceptedEntry>();

  /** Number of votes held. */
  get size(): number {
    return this.votes.size;
  }

  /** Decided slots held (all past the snapshot). */
  get decidedCount(): number {
    return this.decided.size;
  }

  /** The slot of the newest snapshot (0: none). */
  get snapshotSlot(): number {
    return this.newestSnapshot?.slot ?? 0;
  }

  /** Applies a delta as `DurableDelta` says: the snapshot first, then the rest. */
  apply(delta: DurableDelta): void {
    if (delta.snapshot !== undefined) this.install(delta.snapshot);
    if (delta.promised !== undefined) this.promised = delta.promised;
    if (delta.proposerRound !== undefined) this.round = delta.proposerRound;
    for (const entry of delta.accepted ?? []) this.votes.set(entry.slot, entry);
    if (delta.floorSlot !== undefined) this.trim(delta.floorSlot);
    if (delta.rejoining !== undefined) this.rejoining = delta.rejoining;
    const snapshotSlot = this.snapshotSlot;
    // A slot at or below the snapshot is held in it: keeping its value too would only grow the model.
    for (const { slot, value } of delta.decided ?? []) if (slot > snapshotSlot) this.decided.set(slot, value);
  }

  /**
   * Makes `snapshot` the newest and drops the decided slots it covers. One below the current
   * snapshot is ignored: snapshots never go backwards (the core never asks for that).
   */
  private install(snapshot: Snapshot): void {
    if (snapshot.slot < this.snapshotSlot) return;
    this.newestSnapshot = snapshot;
    for (const slot of this.decided.keys()) if (slot <= snapshot.slot) this.decided.delete(slot);
  }

  /** Drops votes below `slot` (never un-drops: the mark only rises). */
  trim(slot: number): void {
    assert(Number.isSafeInteger(slot) && slot >= 0, `trim slot ${slot} must be a non-negative integer`);
    if (slot <= this.trimmedBelowSlot) return;
    this.trimmedBelowSlot = slot;
    for (const key of this.votes.keys()) if (key < slot) this.votes.delete(key);
  }

  /** Replaces everything with the marks of a checkpoint: its body (snapshot, log, votes) follows. */
  reset(marks: Pick<DurableImage, "promised" | "round" | "trimmedBelowSlot" | "rejoining">): void {
    this.promised = marks.promised;
    this.round = marks.round;
    this.trimmedBelowSlot = marks.trimmedBelowSlot;
    this.rejoining = marks.rejoining;
    this.newestSnapshot = null;
    this.decided.clear();
    this.votes.clear();
  }

  snapshot(): DurableState {
    return {
      promised: this.promised,
      accepted: this.sortedVotes(),
      round: this.round,
      trimmedBelowSlot: this.trimmedBelowSlot,
      rejoining: this.rejoining,
      snapshot: this.newestSnapshot,
      log: this.contiguousLog(),
    };
  }

  /** Everything held, for a checkpoint. */
  image(): DurableImage {
    const decided = [...this.decided.entries()]
      .sort(([a], [b]) => a - b)
      .map(([slot, value]) => ({ slot, value }));
    return {
      promised: this.promised,
      round: this.round,
      trimmedBelowSlot: this.trimmedBelowSlot,
      rejoining: this.rejoining,
      snapshot: this.newestSnapshot,
      decided,
      accepted: this.sortedVotes(),
    };
  }

  private sortedVotes(): AcceptedEntry[] {
    return [...this.votes.values()].sort((a, b) => a.slot - b.slot);
  }

  private contiguousLog(): Value[] {
    const log: Value[] = [];
    for (let slot = this.snapshotSlot + 1; ; slot++) {
      const value = this.decided.get(slot);
      if (value === undefined) return log;
      log.push(value);
    }
  }
}

/** Fresh copies of a delta's arrays: callers (see `mergeDelta`) may keep growing theirs. */
export function copyDelta(delta: DurableDelta): DurableDelta {
  return {
    ...(delta.promised !== undefined ? { promised: delta.promised } : {}),
    ...(delta.proposerRound !== undefined ? { proposerRound: delta.proposerRound } : {}),
    ...(delta.accepted !== undefined ? { accepted: [...delta.accepted] } : {}),
    ...(delta.floorSlot !== undefined ? { floorSlot: delta.floorSlot } : {}),
    ...(delta.rejoining !== undefined ? { rejoining: delta.rejoining } : {}),
    ...(delta.decided !== undefined ? { decided: [...delta.decided] } : {}),
    ...(delta.snapshot !== undefined
      ? { snapshot: { ...delta.snapshot, sessions: [...delta.snapshot.sessions] } }
      : {}),
  };
}
