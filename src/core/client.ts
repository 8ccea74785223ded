import { assert } from "./assert.js";
import type { NodeId } from "./ballot.js";
import { commandBytesEstimate, DEFAULT_LIMITS, type Limits } from "./limits.js";
import type { Command, Destination, Message } from "./messages.js";
import { emptyOutput, type Output } from "./output.js";
import { payloadProblem } from "./payload.js";
import type { Prng } from "./prng.js";
import { err, ok, type Result } from "./result.js";
import { backoffTicks } from "./timeout.js";

export interface ClientOptions {
  readonly id: NodeId;
  readonly prng: Prng;
  readonly limits?: Partial<Limits>;
  /** First wait for an ack before a command is sent again; doubles per attempt. */
  readonly retryTicks?: number;
  readonly retryTicksMax?: number;
  /** Most commands sent and not yet acked; the rest wait their turn. */
  readonly windowCommands?: number;
  /** Where requests go: every proposer by default. */
  readonly to?: Destination;
}

interface Outstanding {
  readonly command: Command;
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
  private nextSeq = 1;
  private now = 0;
  private readonly waiting: Command[] = [];
  private waitingHead = 0;
  private readonly outstanding = new Map<number, Outstanding>();
  private ackedCount = 0;

  constructor(options: ClientOptions) {
    assert(
      Number.isSafeInteger(options.id) && options.id > 0,
      `client id ${options.id} must be a positive integer`,
    );
    this.id = options.id;
    this.prng = options.prng;
    this.limits = { ...DEFAULT_LIMITS, ...options.limits };
    this.retryTicks = options.retryTicks ?? 10;
    this.retryTicksMax = options.retryTicksMax ?? 100;
    this.windowCommands = options.windowCommands ?? 4096;
    this.to = options.to ?? { role: "proposer" };
  }

  /** Commands submitted and not yet acked. */
  get unackedCount(): number {
    return this.waiting.length - this.waitingHead + this.outstanding.size;
  }

  get acked(): number {
    return this.ackedCount;
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

  step(message: Message): Output {
    if (message.type !== "ack" || message.client !== this.id) return emptyOutput();
    for (const seq of message.seqs) {
      if (this.outstanding.delete(seq)) this.ackedCount++;
    }
    return this.sendWaiting();
  }

  /** Whether `seq` has been acked (or was never submitted). */
  isAcked(seq: number): boolean {
    if (seq >= this.nextSeq) return false;
    if (this.outstanding.has(seq)) return false;
    for (let i = this.waitingHead; i < this.waiting.length; i++)
      if ((this.waiting[i] as Command).seq === seq) return false;
    return true;
  }

  tick(): Output {
    this.now++;
    const output = emptyOutput();
    let resend: Command[] = [];
    for (const entry of this.outstanding.values()) {
      if (entry.dueTick > this.now) continue;
      entry.attempt++;
      entry.dueTick = this.now + backoffTicks(this.prng, this.retryTicks, this.retryTicksMax, entry.attempt);
      if (this.full(resend, entry.command)) {
        this.pushRequest(output, resend);
        resend = [];
      }
      resend.push(entry.command);
    }
    if (resend.length > 0) this.pushRequest(output, resend);
    const fresh = this.sendWaiting();
    for (const envelope of fresh.send) output.send.push(envelope);
    return output;
  }

  private sendWaiting(): Output {
    const output = emptyOutput();
    let batch: Command[] = [];
    while (this.waitingHead < this.waiting.length && this.outstanding.size < this.windowCommands) {
      const command = this.waiting[this.waitingHead++] as Command;
      this.outstanding.set(command.seq, {
        command,
        dueTick: this.now + backoffTicks(this.prng, this.retryTicks, this.retryTicksMax, 0),
        attempt: 0,
      });
      if (this.full(batch, command)) {
        this.pushRequest(output, batch);
        batch = [];
      }
      batch.push(command);
    }
    if (batch.length > 0) this.pushRequest(output, batch);
    if (this.waitingHead > 1024 && this.waitingHead * 2 > this.waiting.length) {
      this.waiting.splice(0, this.waitingHead);
      this.waitingHead = 0;
    }
    return output;
  }

  /**
   * Whether adding `next` would take a request past its command count or byte limit (the same byte
   * limit as a slot's batch, so a request always fits one datagram).
   */
  private full(commands: readonly Command[], next: Command): boolean {
    if (commands.length === 0) return false;
    if (commands.length >= this.limits.requestCommandsMax) return true;
    let bytes = commandBytesEstimate(next.payload.length) + 16;
    for (const command of commands) bytes += commandBytesEstimate(command.payload.length);
    return bytes > this.limits.batchBytesMax;
  }

  private pushRequest(output: Output, commands: Command[]): void {
    output.send.push({ to: this.to, message: { type: "request", from: this.id, commands } });
  }
}
