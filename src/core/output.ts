import type { Ballot } from "./ballot.js";
import type { AcceptedEntry, Decision, Envelope, SlotValue } from "./messages.js";
import type { Snapshot } from "./snapshot.js";

/**
 * State that must be on stable storage before some messages may leave: the acceptor's promise and
 * votes, and the highest ballot round a proposer has used (so a restart never reuses a ballot).
 * A delta holds only what changed; `accepted` entries replace earlier votes in the same slot.
 */
export interface DurableDelta {
  promised?: Ballot;
  accepted?: AcceptedEntry[];
  proposerRound?: number;
  /**
   * The acceptor keeps no votes below this slot: every slot below it is decided (it trimmed them, or
   * it lost its state and rejoined only after the cluster had moved past them). Only ever rises.
   */
  floorSlot?: number;
  /**
   * True: this node's state was lost or damaged and it is rejoining (it must come back rejoining
   * after a crash too). False: the rejoin is complete.
   */
  rejoining?: boolean;
  /**
   * Delivered slots (a replica's learner keeps its log durable, so that what it learned survives a
   * restart: an acceptor's floor is only safe if decided values below it are kept somewhere).
   */
  decided?: SlotValue[];
  /**
   * The node's newest snapshot: it replaces the decided log through its slot. Within one delta the
   * snapshot applies first; `decided` entries at or below its slot are superseded by it.
   */
  snapshot?: Snapshot;
}

/**
 * What a role asks its driver to do after one input. The driver must:
 * 1. write `persist` to stable storage and sync it,
 * 2. only then send `sendAfterPersist` (promises, votes: they depend on that state),
 * 3. send `send` at any time (it depends on nothing unsynced),
 * 4. install `snapshot` in the application, if set (it replaces the application's state with the
 *    state as of `snapshot.slot`; it never goes backwards),
 * 5. then deliver `decided` to the application (gap-free, in slot order, each past the snapshot).
 * `sendAfterPersist` of one output may leave only after this output's persist and every earlier one
 * are durable; drivers keep outputs in order to guarantee it.
 */
export interface Output {
  persist: DurableDelta | null;
  send: Envelope[];
  sendAfterPersist: Envelope[];
  decided: Decision[];
  snapshot: Snapshot | null;
}

export function emptyOutput(): Output {
  return { persist: null, send: [], sendAfterPersist: [], decided: [], snapshot: null };
}

export function isEmptyOutput(output: Output): boolean {
  return (
    output.persist === null &&
    output.send.length === 0 &&
    output.sendAfterPersist.length === 0 &&
    output.decided.length === 0 &&
    output.snapshot === null
  );
}

/** Merges deltas: later values win, votes for the same slot keep the later one. */
export function mergeDelta(into: DurableDelta | null, delta: DurableDelta | null): DurableDelta | null {
  if (delta === null) return into;
  if (into === null) return { ...delta, ...(delta.accepted ? { accepted: [...delta.accepted] } : {}) };
  if (delta.promised !== undefined) into.promised = delta.promised;
  if (delta.proposerRound !== undefined) into.proposerRound = delta.proposerRound;
  if (delta.floorSlot !== undefined) into.floorSlot = Math.max(into.floorSlot ?? 0, delta.floorSlot);
  if (delta.rejoining !== undefined) into.rejoining = delta.rejoining;
  if (delta.snapshot !== undefined) {
    const slot = delta.snapshot.slot;
    into.snapshot = delta.snapshot;
    if (into.decided !== undefined) into.decided = into.decided.filter((entry) => entry.slot > slot);
  }
  if (delta.decided !== undefined) {
    const decided = into.decided ?? [];
    decided.push(...delta.decided);
    into.decided = decided;
  }
  if (delta.accepted !== undefined) {
    const accepted = into.accepted ?? [];
    accepted.push(...delta.accepted);
    into.accepted = accepted;
  }
  return into;
}

/**
 * Appends `source` into `target` (in place) and returns `target`. A snapshot in `source` supersedes
 * the decisions `target` holds at or below its slot (the snapshot already holds their effect).
 */
export function mergeOutput(target: Output, source: Output): Output {
  target.persist = mergeDelta(target.persist, source.persist);
  for (const envelope of source.send) target.send.push(envelope);
  for (const envelope of source.sendAfterPersist) target.sendAfterPersist.push(envelope);
  if (source.snapshot !== null) {
    const slot = source.snapshot.slot;
    target.snapshot = source.snapshot;
    target.decided = target.decided.filter((decision) => decision.slot > slot);
  }
  for (const decision of source.decided) target.decided.push(decision);
  return target;
}
