import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";

/**
 * A node's metrics in the Prometheus text format (prom-client), one `Registry` per node (never the
 * global default), so several nodes in one process (tests, `startNode` embedded twice) do not
 * collide. Most values are read from counters the node keeps anyway, at scrape time (`collect`):
 * nothing is added to the hot path but a few histogram observations (commit latency, batch sizes,
 * WAL sync latency, HTTP requests). Every metric is listed, with what healthy values look like, in
 * docs/operations.md ("Monitoring").
 */

/** A ballot as the core has it: (round, node). */
interface BallotLike {
  readonly round: number;
  readonly node: number;
}

/** What a node reports at each scrape (built by `startNode` from its driver, replica and storage). */
export interface NodeMetricsSample {
  /** The driver's counters (`DriverStats`). */
  readonly driver: {
    readonly framesIn: number;
    readonly framesOut: number;
    readonly decodeErrors: number;
    readonly framesDropped: number;
    readonly framesIgnored: number;
    readonly framesPaused: number;
    readonly framesDroppedByHook: number;
    readonly decisions: number;
    readonly snapshotsTaken: number;
    readonly snapshotsInstalled: number;
  };
  /** Messages received and sent, by type (`Driver.messageCounts`). */
  readonly messagesIn: Readonly<Partial<Record<string, number>>>;
  readonly messagesOut: Readonly<Partial<Record<string, number>>>;
  /** Frames the envelope refused, by reason (`Driver.refusals.byReason()`). */
  readonly frameRefusals: Readonly<Record<string, number>>;
  /** Input the core's roles refused, by reason (`Replica.refusals.byReason()`). */
  readonly roleRefusals: Readonly<Record<string, number>>;
  readonly proposer: {
    readonly mode: string;
    /** This node's ballot (zero while it follows). */
    readonly ballot: BallotLike;
    /** The leader this node knows (0: none). */
    readonly leader: number;
    readonly electionsStarted: number;
    readonly prepareResends: number;
    readonly acceptResends: number;
    readonly checkQuorumStepDowns: number;
    /** Commands dropped because the leader's pending queue was full. */
    readonly droppedCommands: number;
  };
  /** The acceptor's promised ballot (null: this node does not vote). */
  readonly promised: BallotLike | null;
  readonly appliedThroughSlot: number;
  /** The highest slot this node knows to be decided (chosen here, or claimed by a leader's heartbeat). */
  readonly knownDecidedThroughSlot: number;
  readonly snapshotsRefused: number;
  readonly rejoining: boolean;
  /** Commands proposed through this node's API, and commands it applied. */
  readonly proposals: number;
  readonly commandsDecided: number;
  readonly pendingProposals: number;
  readonly pendingReads: number;
  readonly sessionsOpen: number;
  /** The write-ahead log's counters (`StorageStats`), and whether it failed. */
  readonly storage: {
    readonly syncs: number;
    readonly bytes: number;
    readonly diskBytes: number;
    readonly segments: number;
    readonly compactions: number;
  };
  readonly storageFailed: boolean;
  /** How long the write-ahead log's group commit in progress has run (0: none runs). */
  readonly walSyncRunningMs: number;
}

export interface NodeMetricsOptions {
  /** The node's id: every metric carries it as the label `node`. */
  readonly nodeId: number;
  /**
   * Read once per scrape (`text()`), and by `sample()`. Return copies, not live counters: a scrape
   * reads the sample across awaits while the node runs on, and its numbers must agree.
   */
  readonly sample: () => NodeMetricsSample;
  /**
   * Also prom-client's process metrics (`process_*`, `nodejs_*`: CPU, memory, event-loop lag) in
   * this registry. Give it to one node per process only (`paxos node --http` does).
   */
  readonly processMetrics?: boolean;
}

/** The reasons of `paxos_frames_dropped_total` and the driver counters they come from. */
const DROP_REASONS = [
  ["decode-error", "decodeErrors"],
  ["ignored", "framesIgnored"],
  ["paused", "framesPaused"],
  ["mailbox-full", "framesDropped"],
  ["control", "framesDroppedByHook"],
] as const;

/** Seconds: 0.5 ms to 10 s (a commit on loopback takes about a millisecond; a sync, a few). */
const LATENCY_BUCKETS_SECONDS = [
  0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
];

/** Commands per decided slot: 1 up to the default `batchCommandsMax` (512). */
const BATCH_BUCKETS_COMMANDS = [0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512];

/** Routes of the HTTP API, as `paxos_http_requests_total` labels them (keys and names left out). */
export type HttpRoute =
  | "/health"
  | "/metrics"
  | "/kv"
  | "/kv/:key"
  | "/watch/:prefix"
  | "/lock/:name"
  | "/session"
  | "/session/:id"
  | "other";

/** The route label of a request path (bounded: a key never becomes a label). */
export function httpRouteOf(path: string): HttpRoute {
  if (path === "/health" || path === "/metrics" || path === "/kv" || path === "/session") return path;
  if (path.startsWith("/kv/")) return "/kv/:key";
  if (path === "/watch" || path.startsWith("/watch/")) return "/watch/:prefix";
  if (path.startsWith("/lock/")) return "/lock/:name";
  if (path.startsWith("/session/")) return "/session/:id";
  return "other";
}

/** Methods as labelled (anything else is "other": the label's values stay bounded). */
const HTTP_METHODS = new Set(["GET", "PUT", "POST", "DELETE", "HEAD", "OPTIONS", "PATCH"]);

/**
 * One node's metrics. `startNode` builds one per node (`PaxosNode.metrics`); the HTTP API serves
 * `text()` on `/metrics`; a program embedding nodes can serve it (or `registry`) itself.
 *
 * @example
 * const node = await startNode({ cluster, id: 1, app: new KvLockApp() });
 * const text = await node.metrics?.text(); // "# HELP paxos_slots_decided_total ..."
 */
export class NodeMetrics {
  /** The node's own registry (never prom-client's global one). */
  readonly registry = new Registry();
  private readonly readSample: () => NodeMetricsSample;
  /** The sample of the scrape under way (one per `text()`), or null: read afresh. */
  private cached: NodeMetricsSample | null = null;
  private readonly commitLatency: Histogram;
  private readonly batchSize: Histogram;
  private readonly walSync: Histogram;
  private readonly leaderChanges: Counter;
  private readonly httpRequests: Counter<"route" | "method" | "status">;
  private readonly httpDuration: Histogram<"route">;
  /** Label-bound children of the HTTP metrics (no label hashing per request), by "route method status" and by route. */
  private readonly httpRequestsBy = new Map<string, { inc(): void }>();
  private readonly httpDurationBy = new Map<string, { observe(value: number): void }>();

  constructor(options: NodeMetricsOptions) {
    this.readSample = options.sample;
    const registers = [this.registry];
    this.registry.setDefaultLabels({ node: String(options.nodeId) });
    if (options.processMetrics === true) collectDefaultMetrics({ register: this.registry });
    const sample = () => this.sample();

    // --- events observed as they happen ----------------------------------------------------------
    this.commitLatency = new Histogram({
      name: "paxos_commit_latency_seconds",
      help: "Time from a command proposed on this node to its result applied here (timeouts and refused commands are not counted)",
      buckets: LATENCY_BUCKETS_SECONDS,
      registers,
    });
    this.batchSize = new Histogram({
      name: "paxos_batch_size_commands",
      help: "Commands in each slot this node delivered (the batch the leader proposed in it; 0: a no-op)",
      buckets: BATCH_BUCKETS_COMMANDS,
      registers,
    });
    this.walSync = new Histogram({
      name: "paxos_wal_sync_seconds",
      help: "Duration of each group commit of the write-ahead log (one write and one data sync)",
      buckets: LATENCY_BUCKETS_SECONDS,
      registers,
    });
    this.leaderChanges = new Counter({
      name: "paxos_leader_changes_total",
      help: "Times the leader this node knows of changed (to another node, or to none)",
      registers,
    });
    this.httpRequests = new Counter({
      name: "paxos_http_requests_total",
      help: "HTTP requests answered, by route, method and status",
      labelNames: ["route", "method", "status"],
      registers,
    });
    this.httpDuration = new Histogram({
      name: "paxos_http_request_duration_seconds",
      help: "Time from an HTTP request's arrival to the end of its answer, by route",
      labelNames: ["route"],
      buckets: LATENCY_BUCKETS_SECONDS,
      registers,
    });

    // --- counters the node keeps, read at each scrape ---------------------------------------------
    const counter = (name: string, help: string, read: (s: NodeMetricsSample) => number) =>
      new Counter({
        name,
        help,
        registers,
        collect() {
          this.reset();
          this.inc(read(sample()));
        },
      });
    const counterBy = (
      name: string,
      help: string,
      label: string,
      read: (s: NodeMetricsSample) => Readonly<Partial<Record<string, number>>>,
    ) =>
      new Counter({
        name,
        help,
        labelNames: [label],
        registers,
        collect() {
          this.reset();
          for (const [value, count] of Object.entries(read(sample())))
            if (count !== undefined) this.inc({ [label]: value }, count);
        },
      });
    const gauge = (name: string, help: string, read: (s: NodeMetricsSample) => number) =>
      new Gauge({
        name,
        help,
        registers,
        collect() {
          this.set(read(sample()));
        },
      });

    counter("paxos_proposals_total", "Commands proposed through this node's API", (s) => s.proposals);
    counter(
      "paxos_slots_decided_total",
      "Slots this node delivered (decided and applied)",
      (s) => s.driver.decisions,
    );
    counter(
      "paxos_commands_decided_total",
      "Commands this node applied (in decided slots; a command decided twice counts once)",
      (s) => s.commandsDecided,
    );
    counter(
      "paxos_elections_started_total",
      "Campaigns this node began (phase 1 with a new ballot)",
      (s) => s.proposer.electionsStarted,
    );
    counter(
      "paxos_phase1_retries_total",
      "Prepares this node sent again (an acceptor's promise did not come in time)",
      (s) => s.proposer.prepareResends,
    );
    counter(
      "paxos_phase2_retries_total",
      "Accepts this node sent again as leader (a slot was not chosen in time)",
      (s) => s.proposer.acceptResends,
    );
    counter(
      "paxos_check_quorum_step_downs_total",
      "Times this node stepped down as leader because no phase-2 quorum answered within the election timeout",
      (s) => s.proposer.checkQuorumStepDowns,
    );
    counter(
      "paxos_proposer_commands_dropped_total",
      "Commands this node's proposer dropped because its pending queue was full",
      (s) => s.proposer.droppedCommands,
    );
    counter(
      "paxos_catchup_requests_sent_total",
      "Catch-up requests this node sent (it missed decided slots)",
      (s) => s.messagesOut.catchup ?? 0,
    );
    counter(
      "paxos_catchup_requests_received_total",
      "Catch-up requests this node received from peers",
      (s) => s.messagesIn.catchup ?? 0,
    );
    counter(
      "paxos_snapshot_chunks_sent_total",
      "Snapshot chunks this node sent to peers behind its snapshot",
      (s) => s.messagesOut["snapshot-chunk"] ?? 0,
    );
    counter(
      "paxos_snapshot_chunks_received_total",
      "Snapshot chunks this node received",
      (s) => s.messagesIn["snapshot-chunk"] ?? 0,
    );
    counter(
      "paxos_snapshots_installed_total",
      "Snapshots from peers this node installed",
      (s) => s.driver.snapshotsInstalled,
    );
    counter(
      "paxos_snapshots_taken_total",
      "Snapshots this node took of its state",
      (s) => s.driver.snapshotsTaken,
    );
    counter(
      "paxos_snapshots_refused_total",
      "Snapshot chunks or assembled snapshots this node refused (malformed, bad checksum, other limits)",
      (s) => s.snapshotsRefused,
    );
    counterBy(
      "paxos_messages_received_total",
      "Protocol messages received (decoded and accepted by the envelope), by type",
      "type",
      (s) => s.messagesIn,
    );
    counterBy(
      "paxos_messages_sent_total",
      "Protocol messages sent (one per destination), by type",
      "type",
      (s) => s.messagesOut,
    );
    counter("paxos_frames_received_total", "Frames received from the network", (s) => s.driver.framesIn);
    counter("paxos_frames_sent_total", "Frames sent to the network", (s) => s.driver.framesOut);
    counterBy(
      "paxos_frames_dropped_total",
      "Frames dropped before the protocol saw them, by reason (decode-error, ignored, paused, mailbox-full)",
      "reason",
      (s) => Object.fromEntries(DROP_REASONS.map(([reason, field]) => [reason, s.driver[field]])),
    );
    counterBy(
      "paxos_frames_refused_total",
      "Frames the envelope refused (wrong cluster, bad MAC, replay, sender mismatch, ...), by reason",
      "reason",
      (s) => s.frameRefusals,
    );
    counterBy(
      "paxos_inputs_refused_total",
      "Messages the protocol refused (out of bounds, unrequested, non-member, rate-limited), by reason (docs/security.md)",
      "reason",
      (s) => s.roleRefusals,
    );
    counter("paxos_wal_syncs_total", "Data syncs of the write-ahead log's files", (s) => s.storage.syncs);
    counter("paxos_wal_bytes_written_total", "Bytes appended to the write-ahead log", (s) => s.storage.bytes);
    counter(
      "paxos_wal_compactions_total",
      "Compactions of the write-ahead log",
      (s) => s.storage.compactions,
    );

    // --- gauges ----------------------------------------------------------------------------------
    gauge("paxos_is_leader", "1 if this node leads, else 0", (s) => (s.proposer.mode === "leader" ? 1 : 0));
    gauge("paxos_leader_id", "The leader this node knows of (0: none known)", (s) => s.proposer.leader);
    gauge(
      "paxos_ballot_round",
      "The round of this node's ballot while it campaigns or leads (0 while it follows)",
      (s) => s.proposer.ballot.round,
    );
    gauge(
      "paxos_promised_ballot_round",
      "The round of the highest ballot this node's acceptor promised (-1: it does not vote)",
      (s) => (s.promised === null ? -1 : s.promised.round),
    );
    gauge(
      "paxos_promised_ballot_node",
      "The node of the highest ballot this node's acceptor promised (-1: it does not vote)",
      (s) => (s.promised === null ? -1 : s.promised.node),
    );
    gauge(
      "paxos_applied_through_slot",
      "The last slot applied to the state machine",
      (s) => s.appliedThroughSlot,
    );
    gauge(
      "paxos_known_decided_through_slot",
      "The highest slot this node knows to be decided",
      (s) => s.knownDecidedThroughSlot,
    );
    gauge(
      "paxos_lag_slots",
      "Slots known decided but not yet applied here (known decided through - applied through)",
      (s) => Math.max(0, s.knownDecidedThroughSlot - s.appliedThroughSlot),
    );
    gauge("paxos_rejoining", "1 while this node rejoins after losing its state (it does not vote)", (s) =>
      s.rejoining ? 1 : 0,
    );
    gauge("paxos_sessions_open", "Client sessions open in the replicated state", (s) => s.sessionsOpen);
    gauge(
      "paxos_pending_proposals",
      "Proposals on this node waiting for their result",
      (s) => s.pendingProposals,
    );
    gauge(
      "paxos_pending_reads",
      "Linearizable reads on this node waiting for confirmation",
      (s) => s.pendingReads,
    );
    gauge("paxos_wal_disk_bytes", "Bytes the write-ahead log occupies on disk", (s) => s.storage.diskBytes);
    gauge("paxos_wal_segments", "Segment files of the write-ahead log", (s) => s.storage.segments);
    gauge(
      "paxos_wal_sync_running_seconds",
      "How long the group commit in progress has run (0: none runs; seconds here mean a stuck disk)",
      (s) => s.walSyncRunningMs / 1000,
    );
    gauge("paxos_wal_failed", "1 if the write-ahead log failed (the node stops)", (s) =>
      s.storageFailed ? 1 : 0,
    );
  }

  /** The node's counters and state now (the sample of the scrape under way, during one). */
  sample(): NodeMetricsSample {
    return this.cached ?? this.readSample();
  }

  /** A proposal's result was applied here, `latencyMs` after it was proposed. */
  committed(latencyMs: number): void {
    this.commitLatency.observe(latencyMs / 1000);
  }

  /** This node delivered a slot holding `commands` commands. */
  decided(commands: number): void {
    this.batchSize.observe(commands);
  }

  /** A group commit of the write-ahead log took `durationMs`. */
  walSynced(durationMs: number): void {
    this.walSync.observe(durationMs / 1000);
  }

  /** The leader this node knows of changed. */
  leaderChanged(): void {
    this.leaderChanges.inc();
  }

  /** An HTTP request was answered (`path` is labelled by its route: see `httpRouteOf`). */
  httpRequest(path: string, method: string, status: number, durationMs: number): void {
    const route = httpRouteOf(path);
    const labelMethod = HTTP_METHODS.has(method) ? method : "other";
    const key = `${route} ${labelMethod} ${status}`;
    let requests = this.httpRequestsBy.get(key);
    if (requests === undefined) {
      requests = this.httpRequests.labels({ route, method: labelMethod, status: String(status) });
      this.httpRequestsBy.set(key, requests);
    }
    requests.inc();
    let duration = this.httpDurationBy.get(route);
    if (duration === undefined) {
      duration = this.httpDuration.labels({ route });
      this.httpDurationBy.set(route, duration);
    }
    duration.observe(durationMs / 1000);
  }

  /** The Content-Type of `text()`. */
  get contentType(): string {
    return this.registry.contentType;
  }

  /** Every metric in the Prometheus text format. */
  async text(): Promise<string> {
    this.cached = this.readSample();
    try {
      return await this.registry.metrics();
    } finally {
      this.cached = null;
    }
  }
}
