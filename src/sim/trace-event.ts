import type { Message } from "../core/index.js";
import type { Violation } from "./checker.js";

/**
 * A message as the structured trace shows it: its type, the ballot it carries (`round.node`: the
 * ballot of a prepare, promise, accept, accepted or heartbeat, the promised ballot of a reject), the
 * slot it is about (an accept's, accepted's or reject's slot, a prepare's first slot, a decide's first
 * entry, a catch-up's first slot, a snapshot's slot) and the line trace's summary of it.
 */
export interface TraceMessage {
  readonly type: Message["type"];
  readonly ballot: string | null;
  readonly slot: number | null;
  readonly summary: string;
}

/**
 * Why a frame did not reach a process: lost by the network (the seed's drop rate), cut by a
 * partition (or a targeted sequence's cut links), its receiver kept away from everyone (the
 * laggard), nobody listening at the address (down, or still starting), no such address, or sent to
 * the stray peer's address (which listens to nothing).
 */
export type TraceDropReason =
  | "lost"
  | "partition"
  | "kept away"
  | "nobody listening"
  | "no such address"
  | "to the stray peer";

/** What every structured event carries: the simulator's event number and virtual time. */
interface TraceEventBase {
  /**
   * The number of the simulator event (an external stimulus: a frame arriving, a tick, a durability
   * call completing, a fault) during which this happened: `RunResult.events` counts them, and a
   * `Violation.event` names one.
   */
  readonly event: number;
  /** Virtual time in steps (a step is a virtual millisecond; a tick is `STEPS_PER_TICK` steps). */
  readonly timeMs: number;
}

/**
 * One thing that happened in a simulated run, as data (`SimOptions.onEvent`): what the line trace
 * (`SimOptions.trace`) prints, and besides what becomes of every frame (sent when, delivered or
 * dropped why, duplicated, held back), each learner's decisions and the checkers' violations.
 * Processes are named by their key (`replica:1`, `acceptor:2`, `client:1`, `stray:1`). A frame's
 * `message` is null where the simulator cannot name it (a frame the driver sent outside its trace:
 * an envelope notice).
 */
export type TraceEvent = TraceEventBase &
  (
    | {
        /** A frame reached a listening process; `accepted`: its driver decoded it and took it in. */
        readonly kind: "deliver";
        readonly from: string;
        readonly to: string;
        readonly sentMs: number;
        readonly message: TraceMessage | null;
        readonly accepted: boolean;
      }
    | {
        readonly kind: "drop";
        readonly from: string;
        readonly to: string;
        readonly sentMs: number;
        readonly message: TraceMessage | null;
        readonly reason: TraceDropReason;
      }
    /** The network will deliver two copies of a frame (each is then a `deliver` or a `drop`). */
    | {
        readonly kind: "duplicate";
        readonly from: string;
        readonly to: string;
        readonly message: TraceMessage | null;
      }
    /** A targeted sequence holds a slow leader's frame back (it is sent on later). */
    | {
        readonly kind: "hold";
        readonly from: string;
        readonly to: string;
        readonly message: TraceMessage | null;
      }
    /** A process's driver ticks (`t`). */
    | { readonly kind: "timer"; readonly process: string }
    /** A durability call (sync, datasync) of a process's disk completes (`s`). */
    | { readonly kind: "sync"; readonly process: string }
    /** A client submits a value (`c`). */
    | { readonly kind: "submit"; readonly process: string; readonly payload: string }
    | { readonly kind: "crash"; readonly process: string }
    | { readonly kind: "restart"; readonly process: string }
    /** A disk fault done to a crashed process's disk, or to its log at rest (`f`, `F`). */
    | { readonly kind: "disk-fault"; readonly process: string; readonly detail: string }
    /** A process opened its data directory and found its state lost or damaged: it rejoins (`j`). */
    | { readonly kind: "open"; readonly process: string; readonly detail: string }
    /** A replica took a snapshot or installed one from a peer (`k`, `i`). */
    | {
        readonly kind: "snapshot";
        readonly process: string;
        readonly slot: number;
        readonly how: "taken" | "installed";
      }
    /** A learner delivered a slot's value (`commands`: how many commands it applies). */
    | { readonly kind: "decide"; readonly process: string; readonly slot: number; readonly commands: number }
    /** A partition started (`p`): its shape and how many links it cuts. */
    | { readonly kind: "partition"; readonly shape: string; readonly links: number }
    | { readonly kind: "heal" }
    /** The laggard replica is sent away or comes back (`a`). */
    | { readonly kind: "laggard"; readonly process: string; readonly away: boolean }
    /** A step of the targeted fault sequence (`P`). */
    | { readonly kind: "plan"; readonly detail: string }
    /** The stray peer sends a frame to a role or a process (`S`; each copy then goes as any frame). */
    | { readonly kind: "stray"; readonly attack: string; readonly to: string; readonly detail: string }
    /** A checker saw a property broken (the run stops at the first). */
    | { readonly kind: "violation"; readonly property: Violation["property"]; readonly detail: string }
  );

/** The kinds of `TraceEvent`. */
export type TraceEventKind = TraceEvent["kind"];

/** A `TraceEvent` without its number and time (which the simulation adds). */
export type TraceEventBody = WithoutBase<TraceEvent>;

type WithoutBase<E> = E extends unknown ? Omit<E, "event" | "timeMs"> : never;
