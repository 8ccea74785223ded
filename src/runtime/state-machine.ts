import type { Command, Decision } from "../core/index.js";

/**
 * The application a replica drives: a deterministic state machine fed the decided commands in slot
 * order. Every replica applies the same commands in the same order, so every replica's state is the
 * same at the same slot; snapshots rely on it.
 *
 * @example
 * class Counter implements StateMachine {
 *   total = 0;
 *   apply(decision: Decision) { for (const c of decision.commands) this.total += Number(c.payload); }
 *   snapshot() { return String(this.total); }
 *   restore(state: string) { this.total = Number(state); }
 * }
 */
export interface StateMachine {
  /** Applies one slot's commands (`decision.commands`: already filtered for duplicates). */
  apply(decision: Decision): void;
  /** The whole state as well-formed text, as of the last slot applied. */
  snapshot(): string;
  /**
   * Replaces the whole state with one `snapshot()` returned, here or on another replica, as of
   * `slot`. Throws if the text is not a state of this machine, and then leaves the state exactly as
   * it was (check everything before changing anything). A snapshot from a peer that throws here is
   * refused and counted by the learner ("snapshot-restore-failed"), and the node goes on as before;
   * one restored from this node's own disk at start-up is fatal (it must not go on from a state it
   * cannot trust).
   */
  restore(state: string, slot: number): void;
}

/**
 * The state machine `paxos node` runs: it counts the commands applied and keeps a 64-bit digest
 * (two FNV-1a lanes) of their (client, seq, payload) sequence, and hands each command to `onCommand`
 * (the node prints it). Two replicas with the same count and digest applied the same commands.
 */
export class DigestMachine implements StateMachine {
  commands = 0;
  private low = 0x811c9dc5;
  private high = 0x01000193;

  constructor(private readonly onCommand?: (command: Command) => void) {}

  apply(decision: Decision): void {
    for (const command of decision.commands) {
      // Each number as its two 32-bit halves, then the payload's units, then its length (which
      // ends it): no text is built per command.
      this.mixUnit(command.client >>> 0);
      this.mixUnit(Math.floor(command.client / 2 ** 32));
      this.mixUnit(command.seq >>> 0);
      this.mixUnit(Math.floor(command.seq / 2 ** 32));
      const payload = command.payload;
      for (let i = 0; i < payload.length; i++) this.mixUnit(payload.charCodeAt(i));
      this.mixUnit(payload.length);
      this.commands++;
      this.onCommand?.(command);
    }
  }

  /** The digest as 16 hex digits. */
  get digest(): string {
    return this.high.toString(16).padStart(8, "0") + this.low.toString(16).padStart(8, "0");
  }

  snapshot(): string {
    return JSON.stringify({ commands: this.commands, digest: this.digest });
  }

  restore(state: string): void {
    const parsed = JSON.parse(state) as { commands?: unknown; digest?: unknown };
    const { commands, digest } = parsed;
    if (
      typeof commands !== "number" ||
      !Number.isSafeInteger(commands) ||
      commands < 0 ||
      typeof digest !== "string" ||
      !/^[0-9a-f]{16}$/.test(digest)
    ) {
      throw new Error(`not a digest machine state: ${state.slice(0, 100)}`);
    }
    this.commands = commands;
    this.high = Number.parseInt(digest.slice(0, 8), 16);
    this.low = Number.parseInt(digest.slice(8), 16);
  }

  private mixUnit(unit: number): void {
    const low = Math.imul(this.low ^ unit, 0x01000193);
    this.low = low >>> 0;
    this.high = Math.imul(this.high ^ unit ^ (low >>> 16), 0x01000193) >>> 0;
  }
}
