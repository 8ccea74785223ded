/**
 * A real crash test: three `paxos node` processes on loopback, each with its durable state (promises,
 * votes, ballot round) in a write-ahead log under its own `--data` directory, are killed with SIGKILL
 * at random moments while an in-process client writes a steady stream of unique values, and each is
 * restarted on the same directory. It runs in phases:
 *
 * 1. start: the cluster (on fresh ports should some be taken), then the client, until a first ack;
 * 2. kill rounds: each round kills one node (half the time the leader), or a majority, or one node
 *    and then another as soon as it is back; or kills a node and kills it again while it restarts
 *    (during recovery: opening and replaying its log); or kills a node, damages its newest log
 *    segment, and kills it again while it sets up its rejoin. Every victim is restarted and must
 *    say "started" again;
 * 3. convergence: the client waits for every value to be acked, then for every node to have printed
 *    every acked value, all ending at the same place;
 * 4. stop: SIGTERM, after which every node must exit 0, and no incarnation may have died on its own
 *    or logged a fatal line;
 * 5. the verdict: `checkCrashOutputs` (crash-check.ts, pure, unit-tested) on what every incarnation
 *    printed:
 *
 * - lost: an acked value missing from some node's final output (must be 0);
 * - duplicates: a value printed twice by one incarnation of a node, or at two positions (must be 0);
 * - decided changed: an incarnation's output that is not its piece of the agreed sequence (each
 *   incarnation prints from where its state begins: slot 1, or the snapshot it restored, whose
 *   command count it logs; a snapshot installed from a peer starts a new piece at its count; a
 *   decided value must never move or change), or nodes that end at different places (must be 0);
 * - unknown: a printed value nobody submitted (must be 0);
 * - recovered: values that were in flight (submitted, not yet acked) at a kill and were decided.
 *
 * The log lines it follows (started, snapshots, durable state loaded) are `LOG_MESSAGES` of
 * `observe/`, the constants the nodes log them with. Only processes this module started are
 * signalled, by pid. The work directory (cluster file, each node's data and stderr log, each
 * incarnation's stdout, the timeline) is removed after a clean run and kept, with its path in the
 * report, after a failing one.
 *
 * @example
 * const report = await runCrashTest({ rounds: 15 });
 * console.log(formatCrashReport(report)); // attempted 3120, acknowledged 3120, lost 0, ...
 * if (!report.ok) console.error(report.problems.join("\n"), report.dir);
 */

import { randomInt } from "node:crypto";
import {
  closeSync,
  createWriteStream,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  statSync,
  type WriteStream,
  writeFileSync,
  writeSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { codecByName } from "../codec/index.js";
import { Client, type Message, Prng } from "../core/index.js";
import { LOG_MESSAGES, numberField, parseLogLine } from "../observe/index.js";
import {
  ClusterAddressBook,
  type ClusterConfig,
  clusterEnvelope,
  DATA_DIR_MESSAGES,
  Driver,
  loadClusterKeys,
  parseClusterConfig,
} from "../runtime/index.js";
import { MemoryStorage } from "../storage/index.js";
import { type StartedProcess, startPaxos, waitFor } from "../test-support/index.js";
import { TcpTransport, type Transport, UdpTransport } from "../transport/index.js";
import {
  type CrashVerdict,
  checkCrashOutputs,
  endOf,
  type IncarnationOutput,
  type OutputRun,
} from "./crash-check.js";
import { readLines } from "./lines.js";

/** Nodes in the cluster: majority quorums of 2, so one node may be down at a time. */
const NODE_COUNT = 3;

/** The same socket buffer the `paxos` command gives its client: absorbs bursts of acks. */
const CLIENT_RECEIVE_BUFFER_BYTES = 4 * 1024 * 1024;

/** Lines kept per incarnation's stdout: far above a run's values, a bound against a runaway. */
const STDOUT_LINES_MAX = 2_000_000;

/** How long a node has after SIGTERM before SIGKILL at the end of the run. */
const STOP_GRACE_MS = 2000;

/** Start-up attempts with fresh random ports, should a port be taken. */
const PORT_ATTEMPTS = 4;

/** A restart whose port another process holds is tried again this often, this far apart (5 s). */
const RESTART_ATTEMPTS = 50;
const RESTART_RETRY_MS = 100;

/**
 * Bytes overwritten at the start of a node's newest log segment to damage its state: the whole
 * segment header (16 bytes in `storage/wal-format.ts`). A full-length header of non-zero garbage is
 * damage, never a creation a crash cut short (a short or all-zero header would be read as that).
 */
const DAMAGE_BYTES = 16;

/**
 * Most ms between a start-up kill's trigger and the kill. Opening a short log, or setting up a
 * rejoin (rename, new log, mark, syncs), takes some ms to some tens of ms here: kills spread over
 * it, and a few land after it.
 */
const START_UP_KILL_JITTER_MS = 30;

export interface CrashTestOptions {
  /** Kill-and-restart rounds (default 15). */
  readonly rounds?: number;
  /** Transport between nodes and to the client (default udp). */
  readonly transport?: "udp" | "tcp";
  /** Seed for the harness's choices (victims, pauses, values); default from the OS. */
  readonly seed?: number;
  /** Pause before each round's kill, in ms, [min, max] (default [300, 1500]). */
  readonly roundGapMs?: readonly [number, number];
  /** How long a killed node stays down, in ms, [min, max] (default [100, 800]). */
  readonly downMs?: readonly [number, number];
  /** Chance that a round kills a second node as soon as the first is back (default 0.25). */
  readonly doubleKillChance?: number;
  /**
   * Chance that a round kills two nodes at once, a majority of three: writes stall until they are
   * back (default 0). A stronger test of durability: the restarted majority must remember its votes.
   */
  readonly majorityKillChance?: number;
  /**
   * Chance that a round kills a node, restarts it, and kills it again while it starts up: at a
   * random moment while it opens and replays its log (default 0). It must come back all the same.
   */
  readonly recoveryKillChance?: number;
  /**
   * Chance that a round kills a node, damages its newest log segment, restarts it (it finds the
   * damage, moves its state aside and sets up a rejoin), and kills it again at a random moment of
   * that set-up (default 0). It must come back, rejoin, and catch up.
   */
  readonly rejoinKillChance?: number;
  /**
   * A restart after a kill during rejoin set-up that comes back without the rejoin mark (a fresh
   * voter with an empty log: issue 8, 1b) is a problem, not just counted (default false: the
   * set-up is not yet atomic).
   */
  readonly requireRejoinMark?: boolean;
  /**
   * Environment variables for every node process (beside `PAXOS_LOG_LEVEL=info`): a way to turn on
   * test-only hooks, e.g. a pause at a step of the rejoin set-up for a kill to land on.
   */
  readonly nodeEnv?: Readonly<Record<string, string>>;
  /**
   * Share of datagrams each node drops on receipt (`--drop-rate`, default 0). Loss makes acceptors'
   * votes differ, so a node that forgot its votes could be caught out.
   */
  readonly dropRate?: number;
  /** Chance that a victim is the node that acked the client last, i.e. the leader (default 0.5). */
  readonly leaderKillChance?: number;
  /** The client submits `submitBatch` values every `submitEveryMs` (defaults 5 and 2). */
  readonly submitEveryMs?: number;
  readonly submitBatch?: number;
  /** After the last round: how long every value has to be acked (default 20 s). */
  readonly ackDeadlineMs?: number;
  /** Then how long every node has to print every acked value, the same sequence (default 20 s). */
  readonly convergeDeadlineMs?: number;
  /**
   * How long a started node has to say "started" (default 30 s: about 1 s on an idle 2-core
   * machine, but some took about 8 s in the course harness runs under a load of 20).
   */
  readonly startDeadlineMs?: number;
  /** Keep the work directory even after a clean run. */
  readonly keepDir?: boolean;
  /** Progress lines (each kill and restart, the phases). */
  readonly log?: (line: string) => void;
  /**
   * Snapshots every this many estimated bytes of values (the cluster file's `snapshotLogBytes`;
   * default: the nodes' default, which a short run never reaches). Each incarnation's output is
   * placed in the agreed sequence from the snapshot it restored; a snapshot installed from a peer
   * mid-run starts a new run of output at that snapshot's count (the node logs where its stdout
   * had reached), and the values in between are checked in other nodes' output.
   */
  readonly snapshotLogBytes?: number;
  /** Slots kept below each snapshot (the cluster file's `logRetainSlots`; default: the nodes'). */
  readonly logRetainSlots?: number;
}

export interface CrashTestReport {
  readonly ok: boolean;
  /** Values the client submitted. */
  readonly attempted: number;
  /** Values acked to the client (decided and delivered, by the leader's word). */
  readonly acknowledged: number;
  /** Submitted values never acked before the deadline (a liveness problem, not a safety one). */
  readonly unacknowledged: number;
  /** Acked values missing from some node's final output: must be 0. */
  readonly lost: number;
  /** Values in flight at some kill (submitted, unacked) that were decided after all. */
  readonly recovered: number;
  /** Distinct values in flight at some kill. */
  readonly inFlightAtKills: number;
  /** Values printed twice by one incarnation of one node: must be 0. */
  readonly duplicates: number;
  /** Incarnations whose output is not a prefix of the agreed sequence, plus disagreeing nodes: must be 0. */
  readonly decidedChanged: number;
  /** Printed values the client never submitted: must be 0. */
  readonly unknown: number;
  /** Values in the agreed final sequence. */
  readonly decided: number;
  /** Snapshots the nodes took (each compacted the write-ahead log), all incarnations. */
  readonly snapshotsTaken: number;
  /** Incarnations that started from a snapshot of their own. */
  readonly restoredFromSnapshot: number;
  /** Snapshots installed from a peer mid-run, all incarnations (each leaves a gap in that output). */
  readonly snapshotsInstalled: number;
  readonly rounds: number;
  /** SIGKILLs sent, start-up kills included. */
  readonly kills: number;
  /** Kills of a node while it started up and opened its log (`recoveryKillChance`). */
  readonly recoveryKills: number;
  /** Kills of a node while it set up a rejoin after damage (`rejoinKillChance`). */
  readonly rejoinKills: number;
  /** Where the start-up kills landed: "recovery: before its log was loaded" and the like, with counts. */
  readonly killLandings: Readonly<Record<string, number>>;
  /** Incarnations that started rejoining (their state was damaged, or a rejoin was under way). */
  readonly rejoiningStarts: number;
  /** Restarts after a kill during rejoin set-up that came back without the rejoin mark (issue 8, 1b). */
  readonly rejoinMarkLost: number;
  /** Incarnations per node, first start included. */
  readonly incarnations: readonly number[];
  readonly durationMs: number;
  readonly seed: number;
  readonly transport: "udp" | "tcp";
  /** Every problem found, one line each; empty when `ok`. */
  readonly problems: readonly string[];
  /** Kills, restarts and phases, with ms since the start. */
  readonly timeline: readonly string[];
  /** The work directory: removed after a clean run unless `keepDir`, kept (and named) otherwise. */
  readonly dir: string;
  readonly dirKept: boolean;
}

/** The report's summary line. */
export function formatCrashReport(report: CrashTestReport): string {
  return (
    `attempted ${report.attempted}, acknowledged ${report.acknowledged}, lost ${report.lost}, ` +
    `recovered ${report.recovered}, rounds ${report.rounds}`
  );
}

/**
 * Runs the crash test, phase by phase: start the cluster and the client, rounds of kills, wait for
 * convergence, stop, then `checkCrashOutputs` on what every incarnation printed. Never throws for a
 * failed check: problems are in the report (`ok` false); it throws only when the test itself cannot
 * run (no free ports, a node that will not start).
 */
export async function runCrashTest(options: CrashTestOptions = {}): Promise<CrashTestReport> {
  const run = new CrashRun(options);
  try {
    await run.startCluster();
    await run.startClient();
    await run.killRounds();
    await run.converge();
    await run.stopNodes();
    return await run.finish();
  } catch (error) {
    throw run.abort(error as Error);
  } finally {
    await run.cleanUp();
  }
}

/** How far an incarnation has got in starting up, from its log lines. */
type StartPhase = "spawned" | "found damage" | "moved state aside" | "loaded its log" | "started";

/** One process lifetime of one node. */
class Incarnation {
  /** Complete stdout lines: decided values, in slot order. */
  readonly lines: string[] = [];
  /**
   * Where each run of stdout lines sits in the agreed sequence (see `IncarnationOutput.runs`): the
   * first run starts at the snapshot this incarnation restored, each install from a peer starts another.
   */
  readonly runs: OutputRun[] = [{ fromLine: 0, at: 0 }];
  restoredSnapshot = false;
  snapshotsTaken = 0;
  snapshotsInstalled = 0;
  /** What its "durable state loaded" line said: rejoining or not; null before that line. */
  rejoining: boolean | null = null;
  phase: StartPhase = "spawned";
  /** A last stdout line cut short by the kill (no newline), if any. */
  tornTail: string | null = null;
  /** Exit code or signal name; null while it runs. */
  exit: string | null = null;
  /** It could not bind its port: another process holds it (not the node's fault). */
  portTaken = false;
  /** The first fatal line on stderr (an invariant violation, a failed sync), if any. */
  fatal: string | null = null;
  killedOnPurpose = false;
  /** Resolves with `exit` once it has exited and its pipes have closed. */
  readonly exited: Promise<string>;

  constructor(
    readonly node: number,
    readonly number: number,
    readonly proc: StartedProcess,
    log: WriteStream,
    onUnexpectedExit: (incarnation: Incarnation) => void,
  ) {
    const child = proc.child;
    const stdout = readLines(child.stdout, (line) => {
      if (this.lines.length < STDOUT_LINES_MAX) this.lines.push(line);
    });
    child.stderr?.on("data", (chunk: string | Buffer) => log.write(chunk));
    readLines(child.stderr, (line) => this.onLogLine(line));
    child.once("error", (error) => log.write(`harness: spawn failed: ${error.message}\n`));
    this.exited = proc.closed.then(({ code, signal }) => {
      if (stdout.rest() !== "") this.tornTail = stdout.rest();
      this.exit ??= signal ?? (code === null ? "spawn-error" : String(code));
      log.write(`harness: node ${node} incarnation ${number} (pid ${child.pid}) exited: ${this.exit}\n`);
      if (!this.killedOnPurpose) onUnexpectedExit(this);
      return this.exit;
    });
  }

  /** Reads one stderr line: the log messages of `LOG_MESSAGES` the harness follows, and fatal lines. */
  private onLogLine(line: string): void {
    // pino's level 60 is fatal; the fatal handler also prints "FATAL <name>: <message>".
    if (this.fatal === null && (line.startsWith("FATAL ") || line.includes('"level":60'))) this.fatal = line;
    if (!this.started && line.includes("EADDRINUSE")) this.portTaken = true;
    const record = parseLogLine(line);
    if (record === null) return;
    switch (record.msg) {
      case DATA_DIR_MESSAGES.damagedRejoin:
        if (this.phase === "spawned") this.phase = "found damage";
        break;
      case DATA_DIR_MESSAGES.movedAside:
        if (this.phase === "spawned" || this.phase === "found damage") this.phase = "moved state aside";
        break;
      case DATA_DIR_MESSAGES.loaded:
        this.rejoining = record.rejoining === true;
        if (!this.started) this.phase = "loaded its log";
        break;
      case LOG_MESSAGES.started:
        this.phase = "started";
        break;
      case LOG_MESSAGES.restoredFromSnapshot:
        this.runs[0] = { fromLine: 0, at: numberField(record, "commands") };
        this.restoredSnapshot = true;
        break;
      case LOG_MESSAGES.snapshotTaken:
        this.snapshotsTaken++;
        break;
      case LOG_MESSAGES.snapshotInstalled:
        this.snapshotsInstalled++;
        this.runs.push({ fromLine: numberField(record, "stdoutLines"), at: numberField(record, "commands") });
        break;
    }
  }

  get started(): boolean {
    return this.phase === "started";
  }

  get running(): boolean {
    return this.exit === null;
  }

  get pid(): number | undefined {
    return this.proc.pid;
  }

  /** How far this incarnation's state reaches: the position after its last line (or its last install). */
  get end(): number {
    return endOf(this);
  }

  output(): IncarnationOutput {
    return {
      node: this.node,
      number: this.number,
      lines: this.lines,
      runs: this.runs,
      tornTail: this.tornTail,
    };
  }

  /** "node 2 (pid 1234, incarnation 3)" */
  describe(): string {
    return `node ${this.node} (pid ${this.pid}, incarnation ${this.number})`;
  }
}

/** The client's bookkeeping: what it submitted, what was acked, what was in flight at kills. */
class Ledger {
  readonly payloadBySeq = new Map<number, string>();
  readonly submitted = new Set<string>();
  /** Submitted and not yet acked. */
  readonly unackedSeqs = new Set<number>();
  readonly acked = new Set<string>();
  /** Values in flight at some kill. */
  readonly inFlightAtKills = new Set<string>();
  /** The node that acked last: the leader, as far as the client knows. */
  lastAckFrom: number | null = null;
  lastAckedCount = 0;
  refused = 0;

  submittedOne(seq: number, payload: string): void {
    this.payloadBySeq.set(seq, payload);
    this.submitted.add(payload);
    this.unackedSeqs.add(seq);
  }

  /** Moves what `client` now counts as acked from unacked to acked. */
  sawAcks(client: Client): void {
    if (client.acked === this.lastAckedCount) return;
    this.lastAckedCount = client.acked;
    for (const seq of this.unackedSeqs) {
      if (!client.isAcked(seq)) continue;
      this.unackedSeqs.delete(seq);
      this.acked.add(this.payloadBySeq.get(seq) as string);
    }
  }

  /** Notes every unacked value as in flight at a kill. */
  killHappened(): void {
    for (const seq of this.unackedSeqs) this.inFlightAtKills.add(this.payloadBySeq.get(seq) as string);
  }
}

/** The cluster's files and every incarnation of every node. */
interface Cluster {
  readonly configPath: string;
  readonly config: ClusterConfig;
  readonly incarnations: Incarnation[][];
  readonly logs: WriteStream[];
}

/** One run of the crash test: its settings, its state, and one method per phase. */
class CrashRun {
  private readonly rounds: number;
  private readonly transportName: "udp" | "tcp";
  private readonly seed: number;
  private readonly prng: Prng;
  private readonly startDeadlineMs: number;
  private readonly startedAt = performance.now();
  private readonly timeline: string[] = [];
  private readonly problems: string[] = [];
  private readonly ledger = new Ledger();
  private readonly killLandings = new Map<string, number>();
  readonly dir: string;
  private cluster: Cluster | null = null;
  private driver: Driver<Client> | null = null;
  private submitTimer: NodeJS.Timeout | null = null;
  /**
   * Whether an exit now is one we caused (stopping everything, giving up on a start), so that
   * nobody reports it as a node that exited on its own.
   */
  private stopping = false;
  private kills = 0;
  private recoveryKills = 0;
  private rejoinKills = 0;
  private rejoinMarkLost = 0;
  /** The one node the rejoin rounds damage, once chosen. */
  private rejoinVictim: number | null = null;

  constructor(private readonly options: CrashTestOptions) {
    this.rounds = options.rounds ?? 15;
    this.transportName = options.transport ?? "udp";
    this.seed = options.seed ?? randomInt(2 ** 31);
    this.prng = new Prng(this.seed);
    this.startDeadlineMs = options.startDeadlineMs ?? 30_000;
    this.dir = mkdtempSync(join(tmpdir(), "paxos-crash-"));
    const dropRate = options.dropRate ?? 0;
    this.note(
      `work directory ${this.dir}; seed ${this.seed}; transport ${this.transportName}` +
        (dropRate > 0 ? `; drop rate ${dropRate}` : ""),
    );
  }

  private elapsed(): number {
    return Math.round(performance.now() - this.startedAt);
  }

  private note(line: string): void {
    const stamped = `${String(this.elapsed()).padStart(6)} ms  ${line}`;
    this.timeline.push(stamped);
    this.options.log?.(stamped);
  }

  private get c(): Cluster {
    if (this.cluster === null) throw new Error("the cluster has not started");
    return this.cluster;
  }

  // --- phase 1: start the cluster, on fresh ports should some be taken -------------------------

  async startCluster(): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      const basePort = randomBasePort();
      const candidate = this.writeClusterFiles(basePort);
      this.note(`attempt ${attempt}: nodes on 127.0.0.1:${basePort}..${basePort + NODE_COUNT - 1}`);
      const started = candidate.incarnations.map((_, i) => this.spawn(candidate, i + 1));
      await waitFor(
        () => started.every((i) => i.started) || started.some((i) => !i.running),
        "every node to start",
        { timeoutMs: this.startDeadlineMs },
      ).catch(() => {
        // Reported below with the others.
      });
      if (started.every((i) => i.started)) {
        this.cluster = candidate;
        this.note("all nodes started");
        return;
      }
      this.stopping = true; // exits from here on are ours
      await stopAll(candidate);
      await closeLogs(candidate.logs);
      const why = started
        .map((i) => `node ${i.node}: ${i.started ? "started" : `exit ${i.exit}`}`)
        .join(", ");
      if (attempt >= PORT_ATTEMPTS)
        throw new Error(`the cluster would not start (${why}); logs in ${this.dir}`);
      this.note(`start failed (${why}); trying other ports`);
      rmSync(this.dir, { recursive: true, force: true });
      mkdirSync(this.dir, { recursive: true });
      this.problems.length = 0;
      this.stopping = false;
    }
  }

  /** The cluster file (nodes from `basePort` on), each node's data directory and log file. */
  private writeClusterFiles(basePort: number): Cluster {
    const nodes = Array.from({ length: NODE_COUNT }, (_, i) => ({
      id: i + 1,
      host: "127.0.0.1",
      port: basePort + i,
    }));
    const { snapshotLogBytes, logRetainSlots } = this.options;
    const snapshots =
      snapshotLogBytes !== undefined
        ? { snapshotLogBytes, ...(logRetainSlots !== undefined ? { logRetainSlots } : {}) }
        : {};
    const config = {
      name: "crash",
      nodes,
      quorum: { kind: "majority" },
      transport: this.transportName,
      ...snapshots,
    };
    const configText = `${JSON.stringify(config, null, 2)}\n`;
    const parsed = parseClusterConfig(configText);
    if (!parsed.ok) throw new Error(`generated cluster file is invalid: ${parsed.error}`);
    const configPath = join(this.dir, "cluster.json");
    writeFileSync(configPath, configText);
    for (const node of nodes) mkdirSync(this.dataDir(node.id), { recursive: true });
    return {
      configPath,
      config: parsed.value,
      incarnations: nodes.map(() => []),
      logs: nodes.map((node) => createWriteStream(join(this.dir, `node-${node.id}.log`), { flags: "a" })),
    };
  }

  private dataDir(node: number): string {
    return join(this.dir, `node-${node}`);
  }

  /** Spawns the next incarnation of `node`, with `env` (beside `nodeEnv`) for this start only. */
  private spawn(c: Cluster, node: number, env?: Readonly<Record<string, string>>): Incarnation {
    const list = c.incarnations[node - 1] as Incarnation[];
    const log = c.logs[node - 1] as WriteStream;
    const number = list.length + 1;
    const args = ["node", "--config", c.configPath, "--id", String(node), "--data", this.dataDir(node)];
    // A new cluster: each node's first incarnation is a new member; later ones load their state.
    if (number === 1) args.push("--new");
    const dropRate = this.options.dropRate ?? 0;
    if (dropRate > 0) args.push("--drop-rate", String(dropRate));
    const proc = startPaxos(args, {
      name: `node ${node}`,
      stdout: "pipe",
      stderr: "pipe",
      logLevel: "info",
      env: { ...this.options.nodeEnv, ...env },
    });
    log.write(
      `harness: node ${node} incarnation ${number} started, pid ${proc.pid} (${this.elapsed()} ms)\n`,
    );
    const incarnation = new Incarnation(node, number, proc, log, (gone) => this.exitedOnItsOwn(gone));
    list.push(incarnation);
    return incarnation;
  }

  private exitedOnItsOwn(gone: Incarnation): void {
    if (this.stopping) return;
    if (gone.portTaken) {
      this.note(`node ${gone.node} incarnation ${gone.number}: its port is taken by another process`);
      return;
    }
    this.problems.push(
      `node ${gone.node} incarnation ${gone.number} (pid ${gone.pid}) exited on its own: ${gone.exit} ` +
        `(see node-${gone.node}.log)`,
    );
    this.note(`node ${gone.node} incarnation ${gone.number} exited on its own: ${gone.exit}`);
  }

  private current(node: number): Incarnation {
    const list = this.c.incarnations[node - 1] as Incarnation[];
    return list[list.length - 1] as Incarnation;
  }

  // --- phase 1b: the client, writing a steady stream until the rounds are done ------------------

  async startClient(): Promise<void> {
    const c = this.c;
    const ledger = this.ledger;
    const client = new Client({ id: 1_000_000 + (process.pid % 1_000_000), prng: this.prng.fork() });
    const codec = codecByName(c.config.codec);
    if (!codec.ok) throw new Error(codec.error);
    const transport: Transport =
      this.transportName === "tcp"
        ? new TcpTransport({ host: "127.0.0.1", port: 0 })
        : new UdpTransport({ host: "127.0.0.1", port: 0, receiveBufferBytes: CLIENT_RECEIVE_BUFFER_BYTES });
    const keys = loadClusterKeys({ auth: c.config.auth, env: process.env });
    if (!keys.ok) throw new Error(keys.error);
    const driver = new Driver<Client>({
      name: "crash client",
      role: client,
      envelope: clusterEnvelope(
        c.config,
        { kind: "client", id: client.id },
        { keys: keys.value, incarnation: Date.now() },
      ),
      transport,
      codec: codec.value,
      addressBook: new ClusterAddressBook(c.config),
      storage: new MemoryStorage(),
      tickMs: c.config.tickMs,
      onFatal: (error) => {
        this.problems.push(`the client stopped: ${error.name}: ${error.message}`);
      },
      onTrace: (direction, message: Message) => {
        if (direction === "in" && message.type === "ack") ledger.lastAckFrom = message.from;
      },
      onTurnEnd: (role) => ledger.sawAcks(role),
    });
    this.driver = driver;
    await driver.start();

    const runTag = `c${this.seed.toString(36)}`;
    const submitBatch = this.options.submitBatch ?? 2;
    let valuesMade = 0;
    const submitSome = () => {
      const payloads = Array.from({ length: submitBatch }, () => `${runTag}-${++valuesMade}`);
      driver.run((role) => {
        const result = role.submitAll(payloads);
        ledger.refused += result.refused.length;
        const refusedIndexes = new Set(result.refused.map((r) => r.index));
        let seq = result.firstSeq;
        payloads.forEach((payload, index) => {
          if (refusedIndexes.has(index)) return;
          ledger.submittedOne(seq, payload);
          seq++;
        });
        return result.output;
      });
    };
    this.submitTimer = setInterval(submitSome, this.options.submitEveryMs ?? 5);
    // A first ack says the cluster has a leader: the rounds start from a working cluster.
    await waitFor(() => ledger.acked.size > 0, "a first ack from the cluster", {
      timeoutMs: this.startDeadlineMs,
    });
    this.note(`first ack; leader is node ${ledger.lastAckFrom}`);
  }

  // --- phase 2: rounds of kill -9 and restart ---------------------------------------------------

  async killRounds(): Promise<void> {
    const [gapMin, gapMax] = this.options.roundGapMs ?? [300, 1500];
    const chance = (value: number | undefined) => this.prng.chance(value ?? 0);
    for (let round = 1; round <= this.rounds; round++) {
      await sleep(this.prng.range(gapMin, gapMax));
      this.note(`round ${round}`);
      const first = this.pickVictim(null);
      if (chance(this.options.majorityKillChance)) {
        const second = this.pickVictim(first.node);
        await this.killAndRestart([first.node, second.node], `a majority (${first.why}; ${second.why})`);
      } else if (chance(this.options.recoveryKillChance)) {
        await this.killDuringRecovery(first.node, first.why);
      } else if (chance(this.options.rejoinKillChance)) {
        // Always the same node: two nodes rejoining at once (neither votes until its rejoin is
        // done, and the harness cannot see when that is) would leave one voter, and writes stall.
        const victim = this.rejoinVictim ?? first.node;
        this.rejoinVictim = victim;
        await this.killDuringRejoinSetUp(victim, victim === first.node ? first.why : "the node that rejoins");
      } else {
        await this.killAndRestart([first.node], first.why);
        if (this.prng.chance(this.options.doubleKillChance ?? 0.25)) {
          const second = this.pickVictim(first.node);
          await this.killAndRestart([second.node], `${second.why}, right after node ${first.node} came back`);
        }
      }
    }
  }

  private pickVictim(not: number | null): { node: number; why: string } {
    const leader = this.ledger.lastAckFrom;
    if (leader !== null && leader !== not && this.prng.chance(this.options.leaderKillChance ?? 0.5)) {
      return { node: leader, why: "the last node to ack" };
    }
    const choices = Array.from({ length: NODE_COUNT }, (_, i) => i + 1).filter((n) => n !== not);
    return { node: this.prng.pick(choices), why: "at random" };
  }

  /** SIGKILLs every victim at once; then, after `downMs`, runs `beforeRestart` and restarts them. */
  private async killAndRestart(
    victims: readonly number[],
    why: string,
    beforeRestart?: (node: number) => void,
  ): Promise<void> {
    await this.kill(victims, why);
    const [downMin, downMax] = this.options.downMs ?? [100, 800];
    const downMs = this.prng.range(downMin, downMax);
    await sleep(downMs);
    for (const victim of victims) beforeRestart?.(victim);
    this.note(`restarting node(s) ${victims.join(" and ")} after ${downMs} ms down`);
    await Promise.all(victims.map((victim) => this.restart(victim)));
  }

  /** SIGKILLs the current incarnation of every victim at once and waits until each has exited. */
  private async kill(victims: readonly number[], why: string): Promise<void> {
    this.ledger.killHappened();
    const killed = victims.map((victim) => this.current(victim));
    this.note(
      `SIGKILL ${killed.map((i) => i.describe()).join(" and ")}, ${why}; ` +
        `${this.ledger.unackedSeqs.size} values in flight, ${this.ledger.acked.size} acked`,
    );
    this.kills += killed.length;
    await Promise.all(killed.map((incarnation) => signal(incarnation, "SIGKILL")));
  }

  /**
   * Starts `node` again and waits until it says "started". Should another process hold its port
   * meanwhile (an ephemeral port handed to someone else while the node was down), tries again.
   */
  private async restart(node: number): Promise<Incarnation> {
    for (let attempt = 1; ; attempt++) {
      const next = this.spawn(this.c, node);
      await waitFor(() => next.started || !next.running, `node ${node} to start again`, {
        timeoutMs: this.startDeadlineMs,
      });
      if (next.started) {
        this.note(`node ${node} is back (pid ${next.pid}, incarnation ${next.number})`);
        return next;
      }
      if (!next.portTaken || attempt >= RESTART_ATTEMPTS) {
        throw new Error(`node ${node} did not come back: exit ${next.exit} (see node-${node}.log)`);
      }
      await sleep(RESTART_RETRY_MS);
    }
  }

  /**
   * Starts `node` again and SIGKILLs it at a random moment of its start-up: `jitterMs` (random, up
   * to `START_UP_KILL_JITTER_MS`) after `trigger`, which is either its first open file in its data
   * directory (it has begun to open its log: Linux /proc, else its log loaded) or its log line
   * saying it found damage (it is about to set up a rejoin). Most of a start is Node.js loading the
   * program, far longer than opening the log, so a kill at a random time would almost never land
   * there. Returns the killed incarnation; the report counts where the kills landed. `env` goes
   * to this start only: a test-only hook that stops the node at a chosen step would go there.
   */
  private async startAndKill(
    node: number,
    trigger: "opens its data" | "finds damage",
    env?: Readonly<Record<string, string>>,
  ): Promise<Incarnation> {
    const next = this.spawn(this.c, node, env);
    const dir = this.dataDir(node);
    const pid = next.pid;
    const triggered =
      trigger === "finds damage"
        ? () => next.phase !== "spawned"
        : () => next.phase !== "spawned" || (pid !== undefined && hasOpenFileUnder(pid, dir));
    await waitFor(() => triggered() || !next.running, `node ${node} to begin its start-up`, {
      timeoutMs: this.startDeadlineMs,
      pollMs: 1,
      immediatePolls: 0,
    }).catch(() => {
      // Never seen: kill it anyway, wherever it is.
    });
    const jitterMs = this.prng.range(0, START_UP_KILL_JITTER_MS);
    if (jitterMs > 0) await Promise.race([sleep(jitterMs), next.exited]);
    if (!next.running && !next.portTaken) {
      throw new Error(`node ${node} exited while it started: ${next.exit} (see node-${node}.log)`);
    }
    this.kills++;
    await signal(next, "SIGKILL");
    // What it had logged when it died: it may have got a little further than its log says.
    this.note(`SIGKILL ${next.describe()} ${jitterMs} ms after it ${trigger}: it had ${next.phase}`);
    return next;
  }

  private landed(kind: string, phase: StartPhase): void {
    const key = `${kind}: ${phase}`;
    this.killLandings.set(key, (this.killLandings.get(key) ?? 0) + 1);
  }

  /** Kills `node`, restarts it, kills it again while it opens and replays its log, then restarts it. */
  private async killDuringRecovery(node: number, why: string): Promise<void> {
    await this.kill([node], `${why}, to kill it again during recovery`);
    this.recoveryKills++;
    this.landed("recovery", (await this.startAndKill(node, "opens its data")).phase);
    await this.restart(node);
  }

  /**
   * Kills `node`, damages its newest log segment, restarts it (it finds the damage, moves its state
   * aside and sets up a rejoin), kills it again during that set-up, then restarts it: it must come
   * back rejoining and catch up. A node with no segment to damage gets a recovery kill instead.
   */
  private async killDuringRejoinSetUp(node: number, why: string): Promise<void> {
    await this.kill([node], `${why}, to damage its log and kill it during rejoin set-up`);
    const damaged = damageNewestSegment(this.dataDir(node));
    if (damaged === null) {
      this.note(`node ${node} has no log segment to damage: a kill during recovery instead`);
      this.recoveryKills++;
      this.landed("recovery", (await this.startAndKill(node, "opens its data")).phase);
      await this.restart(node);
      return;
    }
    this.note(`damaged node ${node}'s ${damaged} (its first ${DAMAGE_BYTES} bytes overwritten)`);
    this.rejoinKills++;
    const killed = await this.startAndKill(node, "finds damage");
    this.landed("rejoin set-up", killed.phase);
    const back = await this.restart(node);
    // Killed before it logged its new log loaded (with the rejoin mark synced), it may have moved
    // its state aside without writing the mark: the next start must still come back rejoining. (One
    // killed later may have finished its rejoin by then, and rightly come back a voter.)
    const setUpDone = killed.phase === "loaded its log" || killed.phase === "started";
    if (!setUpDone && back.rejoining === false) {
      this.rejoinMarkLost++;
      const line =
        `node ${node} incarnation ${back.number} came back as a fresh voter after a kill during ` +
        "rejoin set-up: the rejoin mark was lost (issue 8, 1b)";
      this.note(line);
      if (this.options.requireRejoinMark === true) this.problems.push(line);
    }
  }

  // --- phase 3: stop writing, wait for acks, then for every node to print every value ----------

  async converge(): Promise<void> {
    const ledger = this.ledger;
    if (this.submitTimer !== null) clearInterval(this.submitTimer);
    this.submitTimer = null;
    this.note(
      `rounds done; ${ledger.payloadBySeq.size} submitted, ${ledger.acked.size} acked; waiting for the rest`,
    );
    const ackDeadlineMs = this.options.ackDeadlineMs ?? 20_000;
    try {
      const ms = await waitFor(() => ledger.unackedSeqs.size === 0, "every value to be acked", {
        timeoutMs: ackDeadlineMs,
      });
      this.note(`every value acked (${Math.round(ms)} ms after the last round)`);
    } catch {
      this.problems.push(
        `${ledger.unackedSeqs.size} of ${ledger.payloadBySeq.size} values not acked within ${ackDeadlineMs} ms ` +
          `(first: ${[...ledger.unackedSeqs].slice(0, 5).join(", ")})`,
      );
      this.note(`${ledger.unackedSeqs.size} values still unacked at the deadline`);
    }
    try {
      const ms = await waitFor(() => this.converged(), "every node to print every acked value", {
        timeoutMs: this.options.convergeDeadlineMs ?? 20_000,
        pollMs: 50,
        detail: () =>
          this.ends()
            .map((end, i) => `node ${i + 1}: ${end} values`)
            .join(", "),
      });
      this.note(`nodes converged (${Math.round(ms)} ms)`);
    } catch (error) {
      this.problems.push(`nodes did not converge: ${(error as Error).message.replace(/\n/g, "; ")}`);
      this.note("nodes did not converge");
    }
  }

  /** Where each node's output ends: the values it has applied. */
  private ends(): number[] {
    return this.c.incarnations.map((list) => (list[list.length - 1] as Incarnation).end);
  }

  /** Every node ends at the same place, and every acked value was printed somewhere. */
  private converged(): boolean {
    const reached = this.ends();
    if (!reached.every((end) => end === reached[0])) return false;
    const printed = new Set(this.c.incarnations.flatMap((list) => list.flatMap((i) => i.lines)));
    for (const payload of this.ledger.acked) if (!printed.has(payload)) return false;
    return true;
  }

  // --- phase 4: stop everything; every node must stop cleanly, none may have died ---------------

  async stopNodes(): Promise<void> {
    this.stopping = true;
    if (this.driver !== null) await this.driver.stop();
    this.driver = null;
    await stopAll(this.c);
    this.note("nodes stopped");
    for (const list of this.c.incarnations) {
      const last = list[list.length - 1] as Incarnation;
      if (last.exit !== "0")
        this.problems.push(`node ${last.node} did not stop cleanly on SIGTERM: exit ${last.exit}`);
      for (const incarnation of list) {
        if (incarnation.fatal !== null)
          this.problems.push(
            `node ${incarnation.node} incarnation ${incarnation.number}: ${incarnation.fatal}`,
          );
      }
    }
  }

  // --- phase 5: the verdict on what was printed, and the report ---------------------------------

  async finish(): Promise<CrashTestReport> {
    const c = this.c;
    const ledger = this.ledger;
    const verdict: CrashVerdict = checkCrashOutputs({
      nodes: c.incarnations.map((list) => list.map((i) => i.output())),
      submitted: ledger.submitted,
      acked: ledger.acked,
      inFlightAtKills: ledger.inFlightAtKills,
    });
    const problems = [...this.problems, ...verdict.problems];
    if (ledger.refused > 0) problems.push(`${ledger.refused} values refused by the client`);
    const ok = problems.length === 0;
    const all = c.incarnations.flat();
    const dirKept = !ok || this.options.keepDir === true;
    const report: CrashTestReport = {
      ok,
      attempted: ledger.payloadBySeq.size,
      acknowledged: ledger.acked.size,
      unacknowledged: ledger.unackedSeqs.size,
      lost: verdict.lost,
      recovered: verdict.recovered,
      inFlightAtKills: ledger.inFlightAtKills.size,
      duplicates: verdict.duplicates,
      decidedChanged: verdict.decidedChanged,
      unknown: verdict.unknown,
      decided: verdict.agreed.length,
      snapshotsTaken: all.reduce((sum, i) => sum + i.snapshotsTaken, 0),
      restoredFromSnapshot: all.filter((i) => i.restoredSnapshot).length,
      snapshotsInstalled: all.reduce((sum, i) => sum + i.snapshotsInstalled, 0),
      rounds: this.rounds,
      kills: this.kills,
      recoveryKills: this.recoveryKills,
      rejoinKills: this.rejoinKills,
      killLandings: Object.fromEntries(this.killLandings),
      rejoiningStarts: all.filter((i) => i.rejoining === true).length,
      rejoinMarkLost: this.rejoinMarkLost,
      incarnations: c.incarnations.map((list) => list.length),
      durationMs: this.elapsed(),
      seed: this.seed,
      transport: this.transportName,
      problems,
      timeline: this.timeline,
      dir: this.dir,
      dirKept,
    };
    this.note(formatCrashReport(report));
    await closeLogs(c.logs);
    if (dirKept) writeEvidence(this.dir, c, report.timeline, report);
    else rmSync(this.dir, { recursive: true, force: true });
    return report;
  }

  /** The test could not run to its end: keep everything for a look, and say where. */
  abort(error: Error): Error {
    if (this.cluster !== null)
      writeEvidence(this.dir, this.cluster, [...this.timeline, `aborted: ${error.stack}`], null);
    return new Error(`crash test aborted: ${error.message}; evidence kept in ${this.dir}`, { cause: error });
  }

  /** Whatever happened: no timer left, no client, no node process of ours left running. */
  async cleanUp(): Promise<void> {
    this.stopping = true;
    if (this.submitTimer !== null) clearInterval(this.submitTimer);
    this.submitTimer = null;
    if (this.driver !== null) await this.driver.stop();
    this.driver = null;
    if (this.cluster !== null) await stopAll(this.cluster);
  }
}

/** SIGKILL (or SIGTERM) to one incarnation we started, by its pid; resolves when it has exited. */
async function signal(incarnation: Incarnation, name: "SIGKILL" | "SIGTERM"): Promise<void> {
  if (!incarnation.running) return;
  incarnation.killedOnPurpose = true;
  incarnation.proc.kill(name);
  if (name === "SIGTERM") {
    const killer = setTimeout(() => incarnation.proc.kill("SIGKILL"), STOP_GRACE_MS);
    try {
      await incarnation.exited;
    } finally {
      clearTimeout(killer);
    }
  } else {
    await incarnation.exited;
  }
}

async function stopAll(c: Cluster): Promise<void> {
  await Promise.all(c.incarnations.map((list) => Promise.all(list.map((i) => signal(i, "SIGTERM")))));
}

/** Whether process `pid` has a file or directory open in or at `dir` (Linux /proc; false elsewhere). */
function hasOpenFileUnder(pid: number, dir: string): boolean {
  let fds: string[];
  try {
    fds = readdirSync(`/proc/${pid}/fd`);
  } catch {
    return false;
  }
  for (const fd of fds) {
    try {
      const target = readlinkSync(`/proc/${pid}/fd/${fd}`);
      if (target === dir || target.startsWith(`${dir}/`)) return true;
    } catch {
      // Closed while we looked.
    }
  }
  return false;
}

/**
 * Damages the state in `dataDir`: overwrites the first `DAMAGE_BYTES` bytes of its newest log
 * segment (`wal-*.log`) with 0xff. Returns the segment's name, or null if none is long enough.
 */
function damageNewestSegment(dataDir: string): string | null {
  const segments = readdirSync(dataDir)
    .filter((name) => /^wal-\d+\.log$/.test(name))
    .sort();
  const newest = segments.at(-1);
  if (newest === undefined) return null;
  const path = join(dataDir, newest);
  if (statSync(path).size < DAMAGE_BYTES) return null;
  const fd = openSync(path, "r+");
  try {
    writeSync(fd, Buffer.alloc(DAMAGE_BYTES, 0xff), 0, DAMAGE_BYTES, 0);
  } finally {
    closeSync(fd);
  }
  return newest;
}

/**
 * A random first port for the nodes, in 20000..59999 but outside the kernel's range of ephemeral
 * ports where it can: a port in that range may be handed to any socket bound to port 0 (a client,
 * another test) while its node is down, and the node could not restart on it.
 */
function randomBasePort(): number {
  let low = 32768; // Linux's default ip_local_port_range
  let high = 60999;
  try {
    const [first, second] = readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8")
      .trim()
      .split(/\s+/);
    if (first !== undefined && second !== undefined && Number(first) > 0 && Number(second) >= Number(first)) {
      low = Number(first);
      high = Number(second);
    }
  } catch {
    // Not Linux: keep the defaults, and rely on restarts being retried.
  }
  // Below the ephemeral range if there is room, else above it, else anywhere in 20000..59999.
  const width = NODE_COUNT * 10;
  let from = 20_000;
  let to = 59_999;
  if (Math.min(to, low - 1) - from + 1 >= width) to = Math.min(to, low - 1);
  else if (to - Math.max(from, high + 1) + 1 >= width) from = Math.max(from, high + 1);
  return from + randomInt(to - from + 2 - NODE_COUNT);
}

function closeLogs(logs: readonly WriteStream[]): Promise<void> {
  return Promise.all(logs.map((log) => new Promise<void>((resolve) => log.end(() => resolve())))).then(
    () => {},
  );
}

/** Each incarnation's stdout, the timeline and the report, beside the nodes' logs and data. */
function writeEvidence(
  dir: string,
  c: Cluster,
  timeline: readonly string[],
  report: CrashTestReport | null,
): void {
  for (const list of c.incarnations) {
    for (const incarnation of list) {
      const text = incarnation.lines.map((line) => `${line}\n`).join("") + (incarnation.tornTail ?? "");
      writeFileSync(join(dir, `node-${incarnation.node}.stdout.${incarnation.number}`), text);
    }
  }
  writeFileSync(join(dir, "timeline.txt"), `${timeline.join("\n")}\n`);
  if (report === null) return;
  const { timeline: _timeline, ...summary } = report;
  writeFileSync(join(dir, "report.json"), `${JSON.stringify(summary, null, 2)}\n`);
}
