import type { Decision } from "../core/index.js";
import type { StateMachine } from "../runtime/index.js";
import { AppDigest } from "./app.js";

/** Deliberately broken variants of the application adapter (tests only; see `SimBugs`). */
export interface MachineBugs {
  /** `snapshot()` returns the state one decision behind (the last change missing). */
  readonly snapshotOneSlotBehind?: boolean;
  /** A snapshot handed to `restore()` is installed only after the next decision is applied. */
  readonly decideBeforeInstall?: boolean;
  /** `apply()` throws a `TypeError` (an application that crashes: the run must report it). */
  readonly applyThrows?: boolean;
}

/**
 * The `StateMachine` a simulated replica's `Driver` drives: an `AppDigest`. The driver applies each
 * delivered decision, installs snapshots from peers and takes snapshots through it, exactly as it
 * does for `paxos node`'s `DigestMachine`; the simulator compares its state with the agreed sequence.
 */
export class SimMachine implements StateMachine {
  app = new AppDigest();
  /** A snapshot `restore()` was given and has not installed yet (only with `decideBeforeInstall`). */
  private deferred: { readonly state: string; readonly slot: number } | null = null;

  /** @param onBadState called before `restore()` throws on a text that is not an `AppDigest`. */
  constructor(
    private readonly bugs: MachineBugs,
    private readonly onBadState: (slot: number) => void,
  ) {}

  apply(decision: Decision): void {
    if (this.bugs.applyThrows)
      throw new TypeError(`deliberate: the application threw at slot ${decision.slot}`);
    this.app.applyDecision(decision);
    if (this.deferred !== null) {
      const { state, slot } = this.deferred;
      this.deferred = null;
      this.install(state, slot);
    }
  }

  snapshot(): string {
    return this.bugs.snapshotOneSlotBehind ? this.app.encodePrevious() : this.app.encode();
  }

  restore(state: string, slot: number): void {
    if (this.bugs.decideBeforeInstall) this.deferred = { state, slot };
    else this.install(state, slot);
  }

  encode(): string {
    return this.app.encode();
  }

  private install(state: string, slot: number): void {
    const app = AppDigest.decode(state);
    if (app === null) {
      this.onBadState(slot);
      throw new Error(`snapshot through slot ${slot} has no application state`);
    }
    this.app = app;
  }
}
