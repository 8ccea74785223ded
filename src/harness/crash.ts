/**
 * A real crash test: three `paxos node` processes on loopback, each with its durable state (promises,
 * votes, ballot round) in a write-ahead log under its own `--data` directory, are killed with SIGKILL
 * at random moments while an in-process client writes a steady stream of unique values, and each is
 * restarted on the same directory. Many rounds. Then the client waits for every value to be acked and
 * every node to have printed every acked value, and the outputs are checked:
 *
 * - lost: an acked value missing from some node's final output (must be 0);
 * - duplicates: a value printed twice by one incarnation of a node (must be 0);
 * - decided changed: an incarnation's output that is not its piece of the agreed sequence (each
 *   incarnation prints from where its state begins: slot 1, or the snapshot it restored, whose
 *   command count it logs; a decided value must never move or change), or nodes that end at
 *   different places (must be 0);
 * - recovered: values that were in flight (submitted, not yet acked) at a kill and were decided.
 *
 * Only processes this module started are signalled, by pid. The work directory (cluster file, each
 * node's data and stderr log, each incarnation's stdout, the timeline) is removed after a clean run
 * and kept, with its path in the report, after a failing one.
 *
 * @example
 * const report = await runCrashTest({ rounds: 15 });
 * console.log(formatCrashReport(report)); // attempted 3120, acknowledged 3120, lost 0, ...
 * if (!report.ok) console.error(report.problems.join("\n"), report.dir);
 */

import { type ChildProcess, spawn } from "node:child_process";
import { randomInt } from "node:crypto";
import {
  createWriteStream,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  type WriteStream,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { codecByName } from "../codec/index.js";
import { Client, type Message, Prng } from "../core/index.js";
import { ClusterAddressBook, type ClusterConfig, Driver, parseClusterConfig } from "../runtime/index.js";
import { MemoryStorage } from "../storage/index.js";
import { TcpTransport, type Transport, UdpTransport } from "../transport/index.js";
import { readLines } from "./lines.js";
import { waitFor } from "./netns.js";

const BIN = fileURLToPath(new URL("../../bin/paxos.js", import.meta.url));

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
  /** How long a started node has to say "started" (default 10 s). */
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
  readonly kills: number;
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

/** One process lifetime of one node. */
class Incarnation {
  /** Complete stdout lines: decided values, in slot order. */
  readonly lines: string[] = [];
  /**
   * Where each run of stdout lines sits in the agreed sequence: from line `fromLine` on, line i is
   * position `at + i - fromLine`. The first run starts at the commands of the snapshot this
   * incarnation restored (0 without one); a snapshot installed from a peer starts a new run at its
   * commands, leaving a gap this incarnation never prints (other nodes do).
   */
  readonly runs: { fromLine: number; at: number }[] = [{ fromLine: 0, at: 0 }];
  restoredSnapshot = false;
  snapshotsTaken = 0;
  snapshotsInstalled = 0;
  /** A last stdout line cut short by the kill (no newline), if any. */
  tornTail: string | null = null;
  /** Exit code or signal name; null while it runs. */
  exit: string | null = null;
  started = false;
  /** It could not bind its port: another process holds it (not the node's fault). */
  portTaken = false;
  /** The first fatal line on stderr (an invariant violation, a failed sync), if any. */
  fatal: string | null = null;
  killedOnPurpose = false;
  readonly exited: Promise<string>;
  private readonly stdout: { rest(): string };

  constructor(
    readonly node: number,
    readonly number: number,
    readonly child: ChildProcess,
    log: WriteStream,
    onUnexpectedExit: (incarnation: Incarnation) => void,
  ) {
    this.stdout = readLines(child.stdout, (line) => {
      if (this.lines.length < STDOUT_LINES_MAX) this.lines.push(line);
    });
    child.stderr?.on("data", (chunk: string | Buffer) => log.write(chunk));
    readLines(child.stderr, (line) => {
      if (!this.started && line.includes('"msg":"started"')) this.started = true;
      if (!this.started && line.includes("EADDRINUSE")) this.portTaken = true;
      if (line.includes('"msg":"restored from snapshot"')) {
        this.runs[0] = { fromLine: 0, at: numberField(line, "commands") };
        this.restoredSnapshot = true;
      }
      if (line.includes('"msg":"snapshot taken; log compacted"')) this.snapshotsTaken++;
      if (line.includes('"msg":"snapshot installed from a peer"')) {
        this.snapshotsInstalled++;
        this.runs.push({ fromLine: numberField(line, "stdoutLines"), at: numberField(line, "commands") });
      }
      // pino's level 60 is fatal; the fatal handler also prints "FATAL <name>: <message>".
      if (this.fatal === null && (line.startsWith("FATAL ") || line.includes('"level":60')))
        this.fatal = line;
    });
    this.exited = new Promise((resolve) => {
      child.on("error", (error) => {
        log.write(`harness: spawn failed: ${error.message}\n`);
        this.exit ??= "spawn-error";
        resolve(this.exit);
      });
      child.on("close", (code, signal) => {
        if (this.stdout.rest() !== "") this.tornTail = this.stdout.rest();
        this.exit ??= signal ?? String(code);
        log.write(`harness: node ${node} incarnation ${number} (pid ${child.pid}) exited: ${this.exit}\n`);
        if (!this.killedOnPurpose) onUnexpectedExit(this);
        resolve(this.exit);
      });
    });
  }

  /** The position of stdout line `line` in the agreed sequence. */
  positionOf(line: number): number {
    let run = this.runs[0] as { fromLine: number; at: number };
    for (const next of this.runs) if (next.fromLine <= line) run = next;
    return run.at + line - run.fromLine;
  }

  /** How far this incarnation's state reaches: the position after its last line (or its last install). */
  get end(): number {
    const last = this.runs[this.runs.length - 1] as { fromLine: number; at: number };
    return last.at + this.lines.length - last.fromLine;
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  get running(): boolean {
    return this.exit === null;
  }
}

interface Cluster {
  readonly dir: string;
  readonly configPath: string;
  readonly config: ClusterConfig;
  readonly incarnations: Incarnation[][];
  readonly logs: WriteStream[];
}

/**
 * Runs the crash test. Never throws for a failed check: problems are in the report (`ok` false);
 * it throws only when the test itself cannot run (no free ports, a node that will not start).
 */
export async function runCrashTest(options: CrashTestOptions = {}): Promise<CrashTestReport> {
  const rounds = options.rounds ?? 15;
  const transportName = options.transport ?? "udp";
  const seed = options.seed ?? randomInt(2 ** 31);
  const prng = new Prng(seed);
  const [gapMin, gapMax] = options.roundGapMs ?? [300, 1500];
  const [downMin, downMax] = options.downMs ?? [100, 800];
  const doubleKillChance = options.doubleKillChance ?? 0.25;
  const leaderKillChance = options.leaderKillChance ?? 0.5;
  const majorityKillChance = options.majorityKillChance ?? 0;
  const dropRate = options.dropRate ?? 0;
  const submitEveryMs = options.submitEveryMs ?? 5;
  const submitBatch = options.submitBatch ?? 2;
  const ackDeadlineMs = options.ackDeadlineMs ?? 20_000;
  const convergeDeadlineMs = options.convergeDeadlineMs ?? 20_000;
  const startDeadlineMs = options.startDeadlineMs ?? 10_000;
  const say = options.log ?? (() => {});

  const startedAt = performance.now();
  const elapsed = () => Math.round(performance.now() - startedAt);
  const timeline: string[] = [];
  const note = (line: string) => {
    const stamped = `${String(elapsed()).padStart(6)} ms  ${line}`;
    timeline.push(stamped);
    say(stamped);
  };
  const problems: string[] = [];

  const dir = mkdtempSync(join(tmpdir(), "paxos-crash-"));
  note(
    `work directory ${dir}; seed ${seed}; transport ${transportName}` +
      (dropRate > 0 ? `; drop rate ${dropRate}` : ""),
  );

  let cluster: Cluster | null = null;
  let driver: Driver<Client> | null = null;
  let submitTimer: NodeJS.Timeout | null = null;
  let finished = false;

  /** Spawns the next incarnation of `node`. */
  const startNode = (c: Cluster, node: number): Incarnation => {
    const list = c.incarnations[node - 1] as Incarnation[];
    const log = c.logs[node - 1] as WriteStream;
    const number = list.length + 1;
    const args = [
      BIN,
      "node",
      "--config",
      c.configPath,
      "--id",
      String(node),
      "--data",
      join(c.dir, `node-${node}`),
    ];
    // A new cluster: each node's first incarnation is a new member; later ones load their state.
    if (number === 1) args.push("--new");
    if (dropRate > 0) args.push("--drop-rate", String(dropRate));
    const child = spawn(process.execPath, args, {
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, PAXOS_LOG_LEVEL: "info" },
    });
    log.write(`harness: node ${node} incarnation ${number} started, pid ${child.pid} (${elapsed()} ms)\n`);
    const incarnation = new Incarnation(node, number, child, log, (gone) => {
      if (finished) return;
      if (gone.portTaken) {
        note(`node ${gone.node} incarnation ${gone.number}: its port is taken by another process`);
        return;
      }
      problems.push(
        `node ${gone.node} incarnation ${gone.number} (pid ${gone.pid}) exited on its own: ${gone.exit} ` +
          `(see node-${gone.node}.log)`,
      );
      note(`node ${gone.node} incarnation ${gone.number} exited on its own: ${gone.exit}`);
    });
    list.push(incarnation);
    return incarnation;
  };

  const current = (c: Cluster, node: number): Incarnation => {
    const list = c.incarnations[node - 1] as Incarnation[];
    return list[list.length - 1] as Incarnation;
  };

  /** SIGKILL (or SIGTERM) to one incarnation we started, by its pid; resolves when it has exited. */
  const signal = async (incarnation: Incarnation, name: "SIGKILL" | "SIGTERM"): Promise<void> => {
    if (!incarnation.running) return;
    incarnation.killedOnPurpose = true;
    incarnation.child.kill(name);
    if (name === "SIGTERM") {
      const killer = setTimeout(() => {
        if (incarnation.running) incarnation.child.kill("SIGKILL");
      }, STOP_GRACE_MS);
      try {
        await incarnation.exited;
      } finally {
        clearTimeout(killer);
      }
    } else {
      await incarnation.exited;
    }
  };

  const stopAll = async (c: Cluster) => {
    await Promise.all(c.incarnations.map((list) => Promise.all(list.map((i) => signal(i, "SIGTERM")))));
  };

  // --- the client's bookkeeping ----------------------------------------------------------------
  const runTag = `c${seed.toString(36)}`;
  let valuesMade = 0;
  const payloadBySeq = new Map<number, string>();
  const seqByPayload = new Map<string, number>();
  /** Submitted and not yet acked. */
  const unackedSeqs = new Set<number>();
  const ackedPayloads = new Set<string>();
  /** Values in flight at some kill. */
  const inFlightAtKills = new Set<string>();
  let lastAckedCount = 0;
  let lastAckFrom: number | null = null;
  let refused = 0;

  try {
    // --- start the cluster, on fresh ports should some be taken --------------------------------
    for (let attempt = 1; cluster === null; attempt++) {
      const basePort = randomBasePort();
      const nodes = Array.from({ length: NODE_COUNT }, (_, i) => ({
        id: i + 1,
        host: "127.0.0.1",
        port: basePort + i,
      }));
      const snapshots =
        options.snapshotLogBytes !== undefined
          ? {
              snapshotLogBytes: options.snapshotLogBytes,
              ...(options.logRetainSlots !== undefined ? { logRetainSlots: options.logRetainSlots } : {}),
            }
          : {};
      const configText = `${JSON.stringify({ name: "crash", nodes, quorum: { kind: "majority" }, transport: transportName, ...snapshots }, null, 2)}\n`;
      const parsed = parseClusterConfig(configText);
      if (!parsed.ok) throw new Error(`generated cluster file is invalid: ${parsed.error}`);
      const configPath = join(dir, "cluster.json");
      writeFileSync(configPath, configText);
      const candidate: Cluster = {
        dir,
        configPath,
        config: parsed.value,
        incarnations: nodes.map(() => []),
        logs: nodes.map((node) => createWriteStream(join(dir, `node-${node.id}.log`), { flags: "a" })),
      };
      for (const node of nodes) mkdirSync(join(dir, `node-${node.id}`), { recursive: true });
      note(`attempt ${attempt}: nodes on 127.0.0.1:${basePort}..${basePort + NODE_COUNT - 1}`);
      const started = nodes.map((node) => startNode(candidate, node.id));
      try {
        await waitFor(
          () => started.every((i) => i.started) || started.some((i) => !i.running),
          startDeadlineMs,
          "every node to start",
        );
      } catch {
        // Reported below with the others.
      }
      if (started.every((i) => i.started)) {
        cluster = candidate;
        break;
      }
      finished = true; // exits from here on are ours
      await stopAll(candidate);
      for (const log of candidate.logs) log.end();
      const why = started
        .map((i) => `node ${i.node}: ${i.started ? "started" : `exit ${i.exit}`}`)
        .join(", ");
      if (attempt >= PORT_ATTEMPTS) throw new Error(`the cluster would not start (${why}); logs in ${dir}`);
      note(`start failed (${why}); trying other ports`);
      rmSync(dir, { recursive: true, force: true });
      mkdirSync(dir, { recursive: true });
      problems.length = 0;
      finished = false;
    }
    const c: Cluster = cluster;
    note("all nodes started");

    // --- the client -------------------------------------------------------------------------
    const client = new Client({ id: 1_000_000 + (process.pid % 1_000_000), prng: prng.fork() });
    const codec = codecByName(c.config.codec);
    if (!codec.ok) throw new Error(codec.error);
    const transport: Transport =
      transportName === "tcp"
        ? new TcpTransport({ host: "127.0.0.1", port: 0 })
        : new UdpTransport({ host: "127.0.0.1", port: 0, receiveBufferBytes: CLIENT_RECEIVE_BUFFER_BYTES });
    const clientDriver = new Driver<Client>({
      name: "crash client",
      role: client,
      transport,
      codec: codec.value,
      addressBook: new ClusterAddressBook(c.config),
      storage: new MemoryStorage(),
      tickMs: c.config.tickMs,
      onFatal: (error) => {
        problems.push(`the client stopped: ${error.name}: ${error.message}`);
      },
      onTrace: (direction, message: Message) => {
        if (direction === "in" && message.type === "ack") lastAckFrom = message.from;
      },
      onTurnEnd: (role) => {
        if (role.acked === lastAckedCount) return;
        lastAckedCount = role.acked;
        for (const seq of unackedSeqs) {
          if (!role.isAcked(seq)) continue;
          unackedSeqs.delete(seq);
          ackedPayloads.add(payloadBySeq.get(seq) as string);
        }
      },
    });
    driver = clientDriver;
    await clientDriver.start();

    const submitSome = () => {
      const payloads = Array.from({ length: submitBatch }, () => `${runTag}-${++valuesMade}`);
      clientDriver.run((role) => {
        const result = role.submitAll(payloads);
        refused += result.refused.length;
        const refusedIndexes = new Set(result.refused.map((r) => r.index));
        let seq = result.firstSeq;
        payloads.forEach((payload, index) => {
          if (refusedIndexes.has(index)) return;
          payloadBySeq.set(seq, payload);
          seqByPayload.set(payload, seq);
          unackedSeqs.add(seq);
          seq++;
        });
        return result.output;
      });
    };
    submitTimer = setInterval(submitSome, submitEveryMs);
    // A first ack says the cluster has a leader: the rounds start from a working cluster.
    await waitFor(() => ackedPayloads.size > 0, startDeadlineMs, "a first ack from the cluster");
    note(`first ack; leader is node ${lastAckFrom}`);

    // --- rounds of kill -9 and restart ----------------------------------------------------------
    let kills = 0;
    /** SIGKILLs every victim at once, waits, restarts them, and waits until they say "started". */
    const killAndRestart = async (victims: readonly number[], why: string) => {
      for (const seq of unackedSeqs) inFlightAtKills.add(payloadBySeq.get(seq) as string);
      const killed = victims.map((victim) => current(c, victim));
      note(
        `SIGKILL ${killed.map((i) => `node ${i.node} (pid ${i.pid}, incarnation ${i.number})`).join(" and ")}, ` +
          `${why}; ${unackedSeqs.size} values in flight, ${ackedPayloads.size} acked`,
      );
      kills += killed.length;
      await Promise.all(killed.map((incarnation) => signal(incarnation, "SIGKILL")));
      const downMs = prng.range(downMin, downMax);
      await sleep(downMs);
      note(`restarting node(s) ${victims.join(" and ")} after ${downMs} ms down`);
      await Promise.all(victims.map((victim) => restart(victim)));
    };
    /**
     * Starts `node` again and waits until it says "started". Should another process hold its port
     * meanwhile (an ephemeral port handed to someone else while the node was down), tries again.
     */
    const restart = async (node: number): Promise<void> => {
      for (let attempt = 1; ; attempt++) {
        const next = startNode(c, node);
        await waitFor(() => next.started || !next.running, startDeadlineMs, `node ${node} to start again`);
        if (next.started) {
          note(`node ${node} is back (pid ${next.pid}, incarnation ${next.number})`);
          return;
        }
        if (!next.portTaken || attempt >= RESTART_ATTEMPTS) {
          throw new Error(`node ${node} did not come back: exit ${next.exit} (see node-${node}.log)`);
        }
        await sleep(RESTART_RETRY_MS);
      }
    };
    const pickVictim = (not: number | null): { node: number; why: string } => {
      const leader = lastAckFrom;
      if (leader !== null && leader !== not && prng.chance(leaderKillChance)) {
        return { node: leader, why: "the last node to ack" };
      }
      const choices = Array.from({ length: NODE_COUNT }, (_, i) => i + 1).filter((n) => n !== not);
      return { node: prng.pick(choices), why: "at random" };
    };
    for (let round = 1; round <= rounds; round++) {
      await sleep(prng.range(gapMin, gapMax));
      note(`round ${round}`);
      const first = pickVictim(null);
      if (prng.chance(majorityKillChance)) {
        const second = pickVictim(first.node);
        await killAndRestart([first.node, second.node], `a majority (${first.why}; ${second.why})`);
      } else {
        await killAndRestart([first.node], first.why);
        if (prng.chance(doubleKillChance)) {
          const second = pickVictim(first.node);
          await killAndRestart([second.node], `${second.why}, right after node ${first.node} came back`);
        }
      }
    }

    // --- the end: stop writing, wait for acks, then for every node to print every value --------
    clearInterval(submitTimer);
    submitTimer = null;
    note(`rounds done; ${payloadBySeq.size} submitted, ${ackedPayloads.size} acked; waiting for the rest`);
    try {
      const ms = await waitFor(() => unackedSeqs.size === 0, ackDeadlineMs, "every value to be acked");
      note(`every value acked (${Math.round(ms)} ms after the last round)`);
    } catch {
      problems.push(
        `${unackedSeqs.size} of ${payloadBySeq.size} values not acked within ${ackDeadlineMs} ms ` +
          `(first: ${[...unackedSeqs].slice(0, 5).join(", ")})`,
      );
      note(`${unackedSeqs.size} values still unacked at the deadline`);
    }
    const lastOf = (list: Incarnation[]) => list[list.length - 1] as Incarnation;
    /** Where each node's output ends: the values it has applied. */
    const ends = () => c.incarnations.map((list) => lastOf(list).end);
    const converged = () => {
      const reached = ends();
      if (!reached.every((end) => end === reached[0])) return false;
      const printed = new Set(c.incarnations.flatMap((list) => list.flatMap((i) => i.lines)));
      for (const payload of ackedPayloads) if (!printed.has(payload)) return false;
      return true;
    };
    try {
      const ms = await waitFor(
        converged,
        convergeDeadlineMs,
        "every node to print every acked value",
        () =>
          ends()
            .map((end, i) => `node ${i + 1}: ${end} values`)
            .join(", "),
        50,
      );
      note(`nodes converged (${Math.round(ms)} ms)`);
    } catch (error) {
      problems.push(`nodes did not converge: ${(error as Error).message.replace(/\n/g, "; ")}`);
      note("nodes did not converge");
    }

    finished = true;
    await clientDriver.stop();
    driver = null;
    await stopAll(c);
    note("nodes stopped");
    for (const list of c.incarnations) {
      const last = list[list.length - 1] as Incarnation;
      if (last.exit !== "0")
        problems.push(`node ${last.node} did not stop cleanly on SIGTERM: exit ${last.exit}`);
      for (const incarnation of list) {
        if (incarnation.fatal !== null) {
          problems.push(`node ${incarnation.node} incarnation ${incarnation.number}: ${incarnation.fatal}`);
        }
      }
    }

    // --- the checks ---------------------------------------------------------------------------
    // The agreed sequence, put together from every incarnation's piece (each starts where its state
    // began): two pieces that disagree on a position mean a decided value changed.
    const agreed: string[] = [];
    let decidedChanged = 0;
    let duplicates = 0;
    let unknown = 0;
    for (const list of c.incarnations) {
      for (const incarnation of list) {
        const where = `node ${incarnation.node} incarnation ${incarnation.number}`;
        incarnation.lines.forEach((value, i) => {
          const at = incarnation.positionOf(i);
          const known = agreed[at];
          if (known === undefined) agreed[at] = value;
          else if (known !== value) {
            decidedChanged++;
            if (decidedChanged <= 10)
              problems.push(`${where}: position ${at + 1} is "${value}", elsewhere "${known}"`);
          }
        });
      }
    }
    const holes = [...agreed.keys()].filter((at) => agreed[at] === undefined);
    if (holes.length > 0) {
      decidedChanged += holes.length;
      problems.push(
        `no incarnation printed position(s) ${holes
          .slice(0, 5)
          .map((at) => at + 1)
          .join(", ")}`,
      );
    }
    for (const list of c.incarnations) {
      for (const incarnation of list) {
        const where = `node ${incarnation.node} incarnation ${incarnation.number}`;
        const tail = incarnation.tornTail;
        const expected = agreed[incarnation.end];
        if (tail !== null && (expected === undefined || !expected.startsWith(tail))) {
          decidedChanged++;
          problems.push(`${where}: its last, cut-short line "${tail}" does not begin "${expected}"`);
        }
        const seen = new Set<string>();
        for (const value of incarnation.lines) {
          if (seen.has(value)) {
            duplicates++;
            if (duplicates <= 10) problems.push(`${where}: printed "${value}" twice`);
          }
          seen.add(value);
          if (!seqByPayload.has(value)) {
            unknown++;
            if (unknown <= 10) problems.push(`${where}: printed "${value}", which was never submitted`);
          }
        }
      }
    }
    // Each value at most once in the whole sequence (a value decided twice would sit in two places).
    const positions = new Map<string, number>();
    agreed.forEach((value, at) => {
      if (positions.has(value)) {
        duplicates++;
        if (duplicates <= 10)
          problems.push(
            `"${value}" decided at positions ${(positions.get(value) as number) + 1} and ${at + 1}`,
          );
      } else positions.set(value, at);
    });
    const finalEnds = ends();
    finalEnds.forEach((end, i) => {
      if (end !== agreed.length) {
        decidedChanged++;
        problems.push(
          `node ${i + 1} ends with ${end} values applied, the agreed sequence has ${agreed.length}`,
        );
      }
    });
    // Lost: an acked value not in the sequence, or past where some node's state ends.
    let lost = 0;
    for (const payload of ackedPayloads) {
      const at = positions.get(payload);
      const missingAt = finalEnds.flatMap((end, i) => (at !== undefined && at < end ? [] : [i + 1]));
      if (missingAt.length > 0) {
        lost++;
        if (lost <= 10)
          problems.push(`acked value "${payload}" is missing from node(s) ${missingAt.join(", ")}`);
      }
    }
    if (lost > 10) problems.push(`... ${lost} acked values lost in all`);
    if (refused > 0) problems.push(`${refused} values refused by the client`);
    if (ackedPayloads.size === 0) problems.push("nothing was acked");
    const agreedSet = new Set(agreed);
    let recovered = 0;
    for (const payload of inFlightAtKills) if (agreedSet.has(payload)) recovered++;

    const ok = problems.length === 0;
    const dirKept = !ok || options.keepDir === true;
    const report: CrashTestReport = {
      ok,
      attempted: payloadBySeq.size,
      acknowledged: ackedPayloads.size,
      unacknowledged: unackedSeqs.size,
      lost,
      recovered,
      inFlightAtKills: inFlightAtKills.size,
      duplicates,
      decidedChanged,
      unknown,
      decided: agreed.length,
      snapshotsTaken: c.incarnations.flat().reduce((sum, i) => sum + i.snapshotsTaken, 0),
      restoredFromSnapshot: c.incarnations.flat().filter((i) => i.restoredSnapshot).length,
      snapshotsInstalled: c.incarnations.flat().reduce((sum, i) => sum + i.snapshotsInstalled, 0),
      rounds,
      kills,
      incarnations: c.incarnations.map((list) => list.length),
      durationMs: elapsed(),
      seed,
      transport: transportName,
      problems,
      timeline,
      dir,
      dirKept,
    };
    note(formatCrashReport(report));
    await closeLogs(c.logs);
    if (dirKept) {
      writeEvidence(c, report.timeline, report);
    } else {
      rmSync(dir, { recursive: true, force: true });
    }
    return report;
  } catch (error) {
    // The test could not run to its end: keep everything for a look.
    if (cluster !== null) writeEvidence(cluster, [...timeline, `aborted: ${(error as Error).stack}`], null);
    throw new Error(`crash test aborted: ${(error as Error).message}; evidence kept in ${dir}`, {
      cause: error,
    });
  } finally {
    finished = true;
    if (submitTimer !== null) clearInterval(submitTimer);
    if (driver !== null) await driver.stop();
    if (cluster !== null) await stopAll(cluster);
  }
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
function writeEvidence(c: Cluster, timeline: readonly string[], report: CrashTestReport | null): void {
  for (const list of c.incarnations) {
    for (const incarnation of list) {
      const text = incarnation.lines.map((line) => `${line}\n`).join("") + (incarnation.tornTail ?? "");
      writeFileSync(join(c.dir, `node-${incarnation.node}.stdout.${incarnation.number}`), text);
    }
  }
  writeFileSync(join(c.dir, "timeline.txt"), `${timeline.join("\n")}\n`);
  if (report === null) return;
  const { timeline: _timeline, ...summary } = report;
  writeFileSync(join(c.dir, "report.json"), `${JSON.stringify(summary, null, 2)}\n`);
}

/** A whole-number field of a JSON log line (0 when it is missing). */
function numberField(line: string, name: string): number {
  return Number(new RegExp(`"${name}":(\\d+)`).exec(line)?.[1] ?? 0);
}
