import type { Command, Decision } from "../core/index.js";
import { TraceHash } from "./hash.js";

/**
 * The simulated application of a replica: how many commands it applied and a hash of their
 * (client, seq, payload) sequence. Its state as a text (`encode`) is the `app` of the replica's
 * snapshots, so a snapshot taken a slot too early or too late, installed out of order, or built from
 * a different decided sequence shows as a different text. The checker computes the same digest from
 * the agreed decisions (`SafetyChecker`), the reference every replica's state is compared with.
 */
export class AppDigest {
  private count = 0;
  private hash = new TraceHash();
  /** The state before the last decision that changed it, for a deliberately broken variant (`SimBugs`). */
  private previous: string;

  constructor() {
    this.previous = this.encode();
  }

  /** The text of an empty application. */
  static readonly EMPTY = new AppDigest().encode();

  /** Rebuilds the application from a snapshot's `app` text; null if the text is not one. */
  static decode(text: string): AppDigest | null {
    const match = /^(\d+):([0-9a-f]{16})$/.exec(text);
    if (match === null) return null;
    const app = new AppDigest();
    app.count = Number(match[1]);
    app.hash = TraceHash.fromDigest(match[2] as string);
    app.previous = text;
    return app;
  }

  apply(command: Command): void {
    this.count++;
    this.hash.update(`${command.client}.${command.seq}.${command.payload}`);
  }

  /** Applies a delivered decision: its commands (duplicates already removed by the learner). */
  applyDecision(decision: Decision): void {
    if (decision.commands.length === 0) return;
    this.previous = this.encode();
    for (const command of decision.commands) this.apply(command);
  }

  get commandCount(): number {
    return this.count;
  }

  encode(): string {
    return `${this.count}:${this.hash.digest()}`;
  }

  /** The state before the last decision that changed it (a snapshot off by one slot: a broken variant). */
  encodePrevious(): string {
    return this.previous;
  }
}
