import { type Ballot, formatBallot, type Message, type Value } from "../core/index.js";
import type { AppCommand, AppResult, KvLockApp, PaxosNode } from "../rsm/index.js";
import type { ClusterConfig } from "../runtime/index.js";
import type { Endpoint } from "../transport/index.js";
import {
  APP_ITEMS_MAX,
  APP_REPORT_INTERVAL_MS,
  type AppReport,
  DECIDED_PER_REPORT_MAX,
  type DecidedSlot,
  isNodeControl,
  LATENCIES_PER_REPORT_MAX,
  type LaneKind,
  MESSAGES_PER_REPORT_MAX,
  type NodeControl,
  type NodeReport,
  PAYLOAD_CHARS_MAX,
  REPORT_INTERVAL_MS,
  type SampledMessage,
} from "./protocol.js";

/**
 * Slots whose accept was seen but which are not applied yet, kept at most (a node far behind, or
 * cut off, hears accepts it cannot apply for a while): beyond it the oldest are forgotten, and
 * their log lines show no ballot.
 */
const PENDING_SLOTS_MAX = 10_000;

/** A node of the key-value cluster, as the reporter watches it. */
type KvNode = PaxosNode<AppCommand, AppResult, KvLockApp>;

/** What `process.send` looks like (absent in a process started without an IPC channel). */
export type SendToParent = (message: NodeReport | AppReport) => void;

/** The lane diagram's kind of a protocol message. */
export function laneKind(type: Message["type"]): LaneKind {
  switch (type) {
    case "prepare":
    case "promise":
    case "accept":
    case "accepted":
    case "decide":
    case "heartbeat":
      return type;
    case "catchup":
      return "catch-up";
    case "snapshot-request":
    case "snapshot-chunk":
      return "snapshot";
    default:
      return "other";
  }
}

/** The slot a message is about, if it names one (the first of a prepare's or a decide's). */
function slotOf(message: Message): number | null {
  switch (message.type) {
    case "prepare":
    case "promise":
      return message.firstSlot;
    case "accept":
    case "accepted":
    case "reject":
      return message.slot;
    case "decide":
      return message.entries[0]?.slot ?? null;
    case "catchup":
      return message.fromSlot;
    case "snapshot-request":
    case "snapshot-chunk":
      return message.slot;
    case "heartbeat":
      return message.decidedThrough;
    default:
      return null;
  }
}

/**
 * Watches one node for the dashboard (in the `paxos node --http` process `paxos cluster` started):
 * samples the messages it sends, notes what it applies and how long its decisions took, and sends
 * it all to the parent every `REPORT_INTERVAL_MS`; takes the parent's network controls (cut off,
 * message loss) and applies them through the driver's `dropFrame` hook.
 *
 * Give `onTrace` and `dropFrame` to `startNode`, then `attach` the node it returned.
 */
export class NodeReporter {
  /** Node ids by "host:port" of their endpoints (a sent frame names its receiver's endpoint). */
  private readonly idOf = new Map<string, number>();
  private sample: SampledMessage[] = [];
  private sent = 0;
  private decided: DecidedSlot[] = [];
  private latencies: number[] = [];
  private latenciesSeen = 0;
  /** Slot -> the ballot and value of the accept seen for it (see `PENDING_SLOTS_MAX`). */
  private readonly pending = new Map<number, { ballot: Ballot | null; value: Value }>();
  /** Slot -> when this node sent its first accept for it (only a leader sends accepts). */
  private readonly acceptSentMs = new Map<number, number>();
  private cut = false;
  private lossRate = 0;
  private framesDropped = 0;
  private node: KvNode | null = null;
  private timers: NodeJS.Timeout[] = [];
  /** The message sampled by the last trace of a message sent (the next `dropFrame("out")` is its). */
  private lastOut: SampledMessage | null = null;
  /** Whether the parent asked for reports (until then, tracing costs one test per message). */
  private reporting = false;

  constructor(
    private readonly id: number,
    cluster: ClusterConfig,
    private readonly send: SendToParent,
  ) {
    for (const node of cluster.nodes) this.idOf.set(`${node.host}:${node.port}`, node.id);
  }

  /** For `startNode`'s `onTrace`: every message in and out. */
  readonly onTrace = (direction: "in" | "out", message: Message, peer: string): void => {
    if (!this.reporting) return;
    const nowMs = Date.now();
    if (message.type === "accept") {
      if (!this.pending.has(message.slot)) {
        if (this.pending.size >= PENDING_SLOTS_MAX) this.forgetOldest();
        this.pending.set(message.slot, { ballot: message.ballot, value: message.value });
      }
      if (direction === "out" && !this.acceptSentMs.has(message.slot))
        this.acceptSentMs.set(message.slot, nowMs);
    } else if (message.type === "decide" && direction === "in") {
      for (const entry of message.entries)
        if (!this.pending.has(entry.slot) && this.pending.size < PENDING_SLOTS_MAX)
          this.pending.set(entry.slot, { ballot: null, value: entry.value });
    }
    if (direction !== "out") return;
    this.lastOut = null;
    const to = this.idOf.get(peer);
    if (to === undefined || to === this.id) return;
    this.sent++;
    // Reservoir sampling: every message sent in the interval is equally likely to be drawn.
    const index =
      this.sent <= MESSAGES_PER_REPORT_MAX ? this.sent - 1 : Math.floor(Math.random() * this.sent);
    if (index >= MESSAGES_PER_REPORT_MAX) return;
    this.lastOut = this.sample[index] = {
      tMs: nowMs,
      from: this.id,
      to,
      kind: laneKind(message.type),
      type: message.type,
      ballot: "ballot" in message ? formatBallot(message.ballot) : null,
      slot: slotOf(message),
    };
  };

  /** For `startNode`'s `dropFrame`: cut off drops everything; the loss rate drops frames sent. */
  readonly dropFrame = (direction: "in" | "out", _peer: Endpoint): boolean => {
    const drop = this.cut || (direction === "out" && this.lossRate > 0 && Math.random() < this.lossRate);
    if (drop) this.framesDropped++;
    // The driver traces a message before it asks about its frame: mark the one just drawn.
    if (drop && direction === "out" && this.lastOut !== null) this.lastOut.lost = true;
    if (direction === "out") this.lastOut = null;
    return drop;
  };

  /** Applies a control from the parent (anything else is ignored: the channel is ours). */
  control(message: unknown): void {
    if (!isNodeControl(message)) return;
    const control: NodeControl = message;
    if (control.type === "report") this.startReporting();
    else if (control.type === "cut") this.cut = control.on;
    else this.lossRate = control.rate;
  }

  /** Watches `node` (its `applied` events, its state): reports once the parent asks, until `stop`. */
  attach(node: KvNode): void {
    this.node = node;
    node.on("applied", (slot) => {
      if (this.reporting) this.applied(slot);
    });
    if (this.reporting) this.startTimers();
  }

  private startReporting(): void {
    if (this.reporting) return;
    this.reporting = true;
    if (this.node !== null) this.startTimers();
  }

  private startTimers(): void {
    if (this.timers.length > 0) return;
    this.timers.push(setInterval(() => this.report(), REPORT_INTERVAL_MS));
    this.timers.push(setInterval(() => this.reportApp(), APP_REPORT_INTERVAL_MS));
    for (const timer of this.timers) timer.unref();
  }

  stop(): void {
    for (const timer of this.timers) clearInterval(timer);
    this.timers = [];
  }

  private applied(slot: number): void {
    const seen = this.pending.get(slot);
    this.pending.delete(slot);
    const sentMs = this.acceptSentMs.get(slot);
    if (sentMs !== undefined) {
      this.acceptSentMs.delete(slot);
      this.latenciesSeen++;
      const latencyMs = Date.now() - sentMs;
      if (this.latencies.length < LATENCIES_PER_REPORT_MAX) this.latencies.push(latencyMs);
      else {
        const index = Math.floor(Math.random() * this.latenciesSeen);
        if (index < LATENCIES_PER_REPORT_MAX) this.latencies[index] = latencyMs;
      }
    }
    const commands = seen?.value.commands ?? [];
    this.decided.push({
      slot,
      ballot: seen?.ballot ? formatBallot(seen.ballot) : null,
      payloads: commands.slice(0, 4).map((command) => command.payload.slice(0, PAYLOAD_CHARS_MAX)),
      commands: commands.length,
    });
    if (this.decided.length > DECIDED_PER_REPORT_MAX) this.decided.shift();
  }

  private forgetOldest(): void {
    for (const slot of this.pending.keys()) {
      this.pending.delete(slot);
      this.acceptSentMs.delete(slot);
      if (this.pending.size < PENDING_SLOTS_MAX / 2) return;
    }
  }

  private report(): void {
    const node = this.node;
    if (node === null) return;
    const status = node.status();
    const protocol = node.protocolState();
    const report: NodeReport = {
      type: "report",
      id: this.id,
      tMs: Date.now(),
      messages: this.sample,
      sent: this.sent,
      state: {
        mode: status.mode,
        leader: status.leader,
        ballot: formatBallot(status.ballot),
        promised: protocol.promised === null ? null : formatBallot(protocol.promised),
        floorSlot: protocol.floorSlot,
        appliedThrough: status.appliedThrough,
        rejoining: status.rejoining,
        cut: this.cut,
        lossRate: this.lossRate,
        framesDropped: this.framesDropped,
      },
      decided: this.decided,
      commitLatenciesMs: this.latencies,
    };
    this.sample = [];
    this.sent = 0;
    this.decided = [];
    this.latencies = [];
    this.latenciesSeen = 0;
    this.send(report);
  }

  private reportApp(): void {
    const node = this.node;
    if (node === null) return;
    const app = node.app;
    const listed = app.list("", APP_ITEMS_MAX);
    const entries =
      listed.ok && listed.op === "list"
        ? listed.entries.map((entry) => ({
            key: entry.key,
            value: entry.value.slice(0, PAYLOAD_CHARS_MAX),
            modRevision: entry.modRevision,
          }))
        : [];
    const locks = app
      .holders()
      .slice(0, APP_ITEMS_MAX)
      .map((grant) => ({
        name: grant.name,
        holder: grant.client,
        token: grant.token,
        waiters: app.waiters(grant.name).slice(0, APP_ITEMS_MAX),
      }));
    this.send({ type: "app", id: this.id, revision: app.revision, entries, locks });
  }
}
