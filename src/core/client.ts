import { assert } from "./assert.js";
import type { NodeId } from "./ballot.js";
import { commandBytesEstimate, DEFAULT_LIMITS, type Limits } from "./limits.js";
import {
  type BusyReason,
  type Command,
  type Destination,
  isBusyReason,
  type Message,
  type RefusalReason,
} from "./messages.js";
import { emptyOutput, type Output } from "./output.js";
import { payloadProblem } from "./payload.js";
import type { Prng } from "./prng.js";
import { err, ok, type Result } from "./result.js";
import { backoffTicks } from "./timeout.js";

export interface ClientOptions {
  readonly id: NodeId;
  readonly prng: Prng;
  readonly limits?: Partial<Limits>;
  /** First wait for an ack before a command is sent again, until acks have been timed; doubles per attempt. */
  readonly retryTicks?: number;
  readonly retryTicksMax?: number;
  /** The shortest first wait once acks have been timed (see `retryBaseTicks`). */
  readonly retryTicksMin?: number;
  /** Most commands sent and not yet acked; the rest wait their turn. */
  readonly windowCommands?: number;
  /**
   * The first sequence number (default 1). A client that restarts with the same id must continue
   * above its earlier numbers, or its new commands are taken for resends of delivered ones.
   */
  readonly firstSeq?: number;
  /** Where requests go: every proposer by default. */
  readonly to?: Destination;
}

interface Outstanding {
  readonly command: Command;
  /** When it was first sent (for round-trip samples: only commands acked on their first send count). */
  readonly sentTick: number;
  dueTick: number;
  attempt: number;
}

/**
 * A client: it numbers its commands 1, 2, 3, ... and sees to it that each one is decided, sending it
 * again with backoff until a leader acks it. Resending is safe: learners deliver a (client, seq) once.
 *
 * @example
 * const client = new Client({ id: 7, prng: new Prng(7) });
 * const out = client.submit("x=1"); // a request to the proposers
 */
export class Client {
  readonly id: NodeId;
  private readonly prng: Prng;
  private readonly limits: Limits;
  private readonly retryTicks: number;
  private readonly retryTicksMax: number;
  private readonly windowCommands: number;
  private readonly to: Destination;
  private nextSeq: number;
  private now = 0;
  private readonly waiting: Command[] = [];
  private waitingHead = 0;
  private readonly outstanding = new Map<number, Outstanding>();
  private ackedCount = 0;
  /** Seqs the cluster refused (never applied), kept so `isAcked` never counts them as acked. */
  private readonly refusedSeqs = new Map<number, RefusalReason>();
  /** Refusals not yet drained by the caller. */
  private newRefusals: { seq: number; reason: RefusalReason }[] = [];
  /** "Not now" refusals (see `BusyReason`) by reason, since the caller last drained them. */
  private newBusy = new Map<BusyReason, number>();
  private busyCount = 0;
  private smoothedRoundTrip: number | null = null;
  private roundTripDeviation = 0;
  private readonly retryTicksMin: number;

  constructor(options: ClientOptions) {
    assert(
      Number.isSafeInteger(options.id) && options.id > 0,
      `client id ${options.id} must be a positive integer`,
    );
    this.id = options.id;
    this.prng = options.prng;
    this.limits = { ...DEFAULT_LIMITS, ...options.limits };
    this.retryTicks = options.retryTicks ?? 50;
    this.retryTicksMax = options.retryTicksMax ?? 400;
    this.retryTicksMin = options.retryTicksMin ?? 10;
    this.windowCommands = options.windowCommands ?? 16_384;
    this.to = options.to ?? { role: "proposer" };
    this.nextSeq = options.firstSeq ?? 1;
    assert(
      Number.isSafeInteger(this.nextSeq) && this.nextSeq >= 1,
      `firstSeq ${this.nextSeq} must be a positive integer`,
    );
  }

  /** Commands submitted and not yet acked. */
  get unackedCount(): number {
    return this.waiting.length - this.waitingHead + this.outstanding.size;
  }

  get acked(): number {
    return this.ackedCount;
  }

  /** Commands the cluster refused (see `RefuseMessage`): each one an error, never applied. */
  get refused(): number {
    return this.refusedSeqs.size;
  }

  /**
   * The refusals received since the last call: each seq was refused by the cluster's session table
   * (`"clients-full"`: the cluster serves as many clients as it may; `"client-gaps"`: this client id
   * has too many gaps in its sequence numbers and must not be used again). They will never be applied.
   */
  drainRefused(): { seq: number; reason: RefusalReason }[] {
    const drained = this.newRefusals;
    this.newRefusals = [];
    return drained;
  }

  /**
   * Commands a leader could not take for now (see `BusyReason`: its pending queue, or this client's
   * share of it, is full), counted once per refusal. Each stays unacked and is sent again later,
   * with backoff; none is given up.
   */
  get busy(): number {
    return this.busyCount;
  }

  /** The "not now" refusals since the last call, by reason (so a caller can say the cluster is busy). */
  drainBusy(): { reason: BusyReason; count: number }[] {
    const drained = [...this.newBusy].map(([reason, count]) => ({ reason, count }));
    this.newBusy = new Map();
    return drained;
  }

  /** Why `seq` was refused, or null if it was not (it is acked, pending or unknown). */
  refusalOf(seq: number): RefusalReason | null {
    return this.refusedSeqs.get(seq) ?? null;
  }

  /**
   * Queues a payload; returns its sequence number and the requests to send now, or why the payload
   * cannot be sent (over the size limit, or not well-formed Unicode).
   */
  submit(payload: string): Result<{ seq: number; output: Output }, string> {
    const problem = payloadProblem(payload, this.limits);
    if (problem !== null) return err(problem);
    const command: Command = { client: this.id, seq: this.nextSeq++, payload };
    this.waiting.push(command);
    return ok({ seq: command.seq, output: this.sendWaiting() });
  }

  /**
   * Queues many payloads at once and sends them in as few requests as fit: the way to feed a
   * stream of values. Payloads that cannot be sent are skipped and reported by index.
   */
  submitAll(payloads: readonly string[]): {
    firstSeq: number;
    refused: { index: number; problem: string }[];
    output: Output;
  } {
    const firstSeq = this.nextSeq;
    const refused: { index: number; problem: string }[] = [];
    payloads.forEach((payload, index) => {
      const problem = payloadProblem(payload, this.limits);
      if (problem !== null) refused.push({ index, problem });
      else this.waiting.push({ client: this.id, seq: this.nextSeq++, payload });
    });
    return { firstSeq, refused, output: this.sendWaiting() };
  }

  step(message: Message): Output {
    if (message.type === "refuse" && message.client === this.id) {
      const reason = message.reason;
      if (isBusyReason(reason)) {
        this.onBusy(reason, message.seqs);
        return emptyOutput();
      }
      for (const seq of message.seqs) {
        // Only a seq still waiting for an answer: a refusal after an ack cannot be (an acked command
        // was applied, and the cluster never refuses an applied one), and a repeated one counts once.
        if (!this.outstanding.delete(seq)) continue;
        this.refusedSeqs.set(seq, reason);
        this.newRefusals.push({ seq, reason });
      }
      return this.sendWaiting();
    }
    if (message.type !== "ack" || message.client !== this.id) return emptyOutput();
    for (const seq of message.seqs) {
      const entry = this.outstanding.get(seq);
      if (entry === undefined) continue;
      this.outstanding.delete(seq);
      this.ackedCount++;
      if (entry.attempt === 0) this.sampleRoundTrip(this.now - entry.sentTick);
    }
    return this.sendWaiting();
  }

  /** Whether `seq` has been acked (or was never submitted). A refused seq is not acked. */
  isAcked(seq: number): boolean {
    if (seq >= this.nextSeq) return false;
    if (this.outstanding.has(seq) || this.refusedSeqs.has(seq)) return false;
    // Waiting commands hold the highest seqs, in order.
    const firstWaiting = this.waiting[this.waitingHead];
    return firstWaiting === undefined || seq < firstWaiting.seq;
  }

  tick(): Output {
    this.now++;
    const output = emptyOutput();
    const resend = this.requestBuilder(output);
    // Entries sit in the order they were (re)sent, so the due ones come first: stop at the first
    // that is not due. A resent entry moves to the back (and is not due again this tick).
    for (const [seq, entry] of this.outstanding) {
      if (entry.dueTick > this.now) break;
      entry.attempt++;
      entry.dueTick =
        this.now + backoffTicks(this.prng, this.retryBaseTicks(), this.retryTicksMax, entry.attempt);
      this.outstanding.delete(seq);
      this.outstanding.set(seq, entry);
      resend.add(entry.command);
    }
    resend.flush();
    const fresh = this.sendWaiting();
    for (const envelope of fresh.send) output.send.push(envelope);
    return output;
  }

  /**
   * A leader could not take these commands for now: each stays outstanding and waits longer before
   * it is sent again (the next backoff step), so a full leader is not hammered. Moved to the back of
   * `outstanding`, which `tick` reads in due order.
   */
  private onBusy(reason: BusyReason, seqs: readonly number[]): void {
    for (const seq of seqs) {
      const entry = this.outstanding.get(seq);
      if (entry === undefined) continue;
      entry.attempt++;
      entry.dueTick =
        this.now + backoffTicks(this.prng, this.retryBaseTicks(), this.retryTicksMax, entry.attempt);
      this.outstanding.delete(seq);
      this.outstanding.set(seq, entry);
      this.busyCount++;
      this.newBusy.set(reason, (this.newBusy.get(reason) ?? 0) + 1);
    }
  }

  /**
   * The first wait before a resend adapts to how long acks take, as TCP's retransmission timer does
   * (RFC 6298: smoothed round trip plus four deviations), between `retryTicks` and `retryTicksMax`:
   * on a quiet network a lost request is resent quickly; under load resends do not pile on.
   */
  private retryBaseTicks(): number {
    if (this.smoothedRoundTrip === null) return this.retryTicks;
    const timeout = Math.ceil(this.smoothedRoundTrip + 4 * this.roundTripDeviation);
    return Math.min(this.retryTicksMax, Math.max(this.retryTicksMin, timeout));
  }

  private sampleRoundTrip(ticks: number): void {
    if (this.smoothedRoundTrip === null) {
      this.smoothedRoundTrip = ticks;
      this.roundTripDeviation = ticks / 2;
      return;
    }
    this.roundTripDeviation =
      0.75 * this.roundTripDeviation + 0.25 * Math.abs(this.smoothedRoundTrip - ticks);
    this.smoothedRoundTrip = 0.875 * this.smoothedRoundTrip + 0.125 * ticks;
  }

  private sendWaiting(): Output {
    const output = emptyOutput();
    const batch = this.requestBuilder(output);
    while (this.waitingHead < this.waiting.length && this.outstanding.size < this.windowCommands) {
      const command = this.waiting[this.waitingHead++] as Command;
      this.outstanding.set(command.seq, {
        command,
        sentTick: this.now,
        dueTick: this.now + backoffTicks(this.prng, this.retryBaseTicks(), this.retryTicksMax, 0),
        attempt: 0,
      });
      batch.add(command);
    }
    batch.flush();
    if (this.waitingHead > 1024 && this.waitingHead * 2 > this.waiting.length) {
      this.waiting.splice(0, this.waitingHead);
      this.waitingHead = 0;
    }
    return output;
  }

  /**
   * Collects commands into requests that stay within the command count and byte limits (the same
   * byte limit as a slot's batch, so a request always fits one datagram).
   */
  private requestBuilder(output: Output): { add(command: Command): void; flush(): void } {
    let commands: Command[] = [];
    let bytes = 16;
    const flush = () => {
      if (commands.length > 0) this.pushRequest(output, commands);
      commands = [];
      bytes = 16;
    };
    return {
      add: (command: Command) => {
        const size = commandBytesEstimate(command.payload.length);
        if (
          commands.length >= this.limits.requestCommandsMax ||
          (commands.length > 0 && bytes + size > this.limits.batchBytesMax)
        ) {
          flush();
        }
        commands.push(command);
        bytes += size;
      },
      flush,
    };
  }

  private pushRequest(output: Output, commands: Command[]): void {
    output.send.push({ to: this.to, message: { type: "request", from: this.id, commands } });
  }
}
