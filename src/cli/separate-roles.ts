import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { BIN, dataDir, exitedLine, holdsNoLog, relayStderr, terminate } from "./cluster.js";
import { UsageError } from "./errors.js";
import { readLines } from "./lines.js";
import { parsePositiveInt } from "./process-kit.js";

/** The multicast group address of every role's group; the ports tell the groups apart. */
export const SEPARATE_ROLES_GROUP = "239.0.0.1";

/** The `paxos cluster` options `--separate-roles` reads (the others are refused by name). */
export interface SeparateRolesValues {
  readonly acceptors?: string | undefined;
  readonly proposers?: string | undefined;
  readonly learners?: string | undefined;
  readonly "base-port"?: string | undefined;
  readonly data?: string | undefined;
  readonly demo?: boolean | undefined;
  readonly [flag: string]: string | boolean | undefined;
}

/** Options of `paxos cluster` that mean nothing for separate roles. */
const COLLAPSED_ONLY = [
  "nodes",
  "weights",
  "quorum",
  "phase1-weight",
  "phase2-weight",
  "transport",
  "http-base-port",
] as const;

interface RoleProcess {
  readonly role: "acceptor" | "proposer" | "learner" | "client";
  readonly id: number;
  readonly child: ChildProcess;
}

/**
 * `paxos cluster --separate-roles`: the seed projects' layout on this machine. Acceptors, proposers
 * and learners run as separate processes (`paxos acceptor|proposer|learner`) over UDP multicast on
 * the loopback interface, with one `paxos client` that takes the typed values; learner 1's values are
 * printed as "decided: <value>". The course config (one multicast group per role, ports
 * `--base-port` + 0..3) is written beside the state. Ctrl-C stops every process; exit 1 if one of
 * them stopped on its own (it failed to start, or crashed), 2 on a usage error.
 */
export async function separateRolesCommand(values: SeparateRolesValues): Promise<number> {
  for (const flag of COLLAPSED_ONLY)
    if (values[flag] !== undefined)
      throw new UsageError(`--${flag} is for a cluster of collapsed nodes, not with --separate-roles`);
  const acceptors = parsePositiveInt(values.acceptors, "--acceptors", 3);
  const proposers = parsePositiveInt(values.proposers, "--proposers", 2);
  const learners = parsePositiveInt(values.learners, "--learners", 1);
  if (acceptors > 15) throw new UsageError("--acceptors: at most 15 local acceptors");
  if (proposers > 9) throw new UsageError("--proposers: at most 9 local proposers");
  if (learners > 9) throw new UsageError("--learners: at most 9 local learners");
  const basePort = parsePositiveInt(values["base-port"], "--base-port", 7101);
  if (basePort + 3 > 65535) throw new UsageError("--base-port: the ports run past 65535");

  const temporary = values.data === undefined;
  const dir = temporary
    ? mkdtempSync(join(tmpdir(), "paxos-cluster-"))
    : await dataDir(values.data as string);
  const removeTemporary = () => {
    if (temporary) rmSync(dir, { recursive: true, force: true });
  };
  const configPath = join(dir, "paxos.conf");
  const groups = {
    clients: basePort,
    proposers: basePort + 1,
    acceptors: basePort + 2,
    learners: basePort + 3,
  };
  writeFileSync(
    configPath,
    `${Object.entries(groups)
      .map(([group, port]) => `${group} ${SEPARATE_ROLES_GROUP} ${port}`)
      .join("\n")}\n`,
  );
  // Acceptors are new when none has a log yet (a first start); otherwise each loads its own.
  const roleDir = (role: string, id: number) => join(dir, `${role}-${id}`);
  const isNew =
    temporary || Array.from({ length: acceptors }, (_, i) => roleDir("acceptor", i + 1)).every(holdsNoLog);

  const lastWords = new Map<string, string>();
  const start = (role: RoleProcess["role"], id: number, stdout: "pipe" | "ignore"): RoleProcess => {
    const args = [BIN, role, String(id), configPath, "--acceptors", String(acceptors)];
    if (!temporary && (role === "acceptor" || role === "proposer")) args.push("--data", roleDir(role, id));
    if (role === "acceptor" && isNew) args.push("--new");
    const child = spawn(process.execPath, args, {
      stdio: [role === "client" ? "pipe" : "ignore", stdout, "pipe"],
      env: { ...process.env, PAXOS_LOG_LEVEL: process.env.PAXOS_LOG_LEVEL ?? "warn" },
    });
    relayStderr(child, `${role} ${id}`, lastWords);
    return { role, id, child };
  };
  const range = (count: number) => Array.from({ length: count }, (_, i) => i + 1);
  const processes: RoleProcess[] = [
    ...range(acceptors).map((id) => start("acceptor", id, "ignore")),
    ...range(proposers).map((id) => start("proposer", id, "ignore")),
    ...range(learners).map((id) => start("learner", id, id === 1 ? "pipe" : "ignore")),
    start("client", 1, "ignore"),
  ];
  const client = processes.at(-1) as RoleProcess;
  const pids = (role: RoleProcess["role"]) =>
    processes
      .filter((p) => p.role === role)
      .map((p) => p.child.pid)
      .join(",");
  const where = (group: keyof typeof groups) => `group ${SEPARATE_ROLES_GROUP}:${groups[group]}`;
  const plural = (count: number, word: string) => `${count} ${word}${count === 1 ? "" : "s"}`;
  const ids = (count: number) => (count === 1 ? "id 1" : `ids 1..${count}`);
  process.stderr.write(
    `paxos cluster: separate roles over UDP multicast on 127.0.0.1; config ${configPath}\n` +
      `paxos cluster:   ${plural(acceptors, "acceptor")} (${ids(acceptors)}, majority quorums of ${Math.floor(acceptors / 2) + 1}) on ${where("acceptors")}, pids ${pids("acceptor")}\n` +
      `paxos cluster:   ${plural(proposers, "proposer")} (${ids(proposers)}; one leads at a time) on ${where("proposers")}, pids ${pids("proposer")}\n` +
      `paxos cluster:   ${plural(learners, "learner")} (${ids(learners)}; learner 1's values are printed) on ${where("learners")}, pids ${pids("learner")}\n` +
      `paxos cluster:   1 client (id 1; sends what you type) on ${where("clients")}, pid ${client.child.pid}\n` +
      `paxos cluster: state: ${temporary ? "in memory (this folder is removed on exit)" : `acceptors and proposers keep theirs in ${dir}`}\n`,
  );

  // Learner 1's values, in decision order.
  const learner = processes.find((p) => p.role === "learner" && p.id === 1) as RoleProcess;
  if (learner.child.stdout !== null)
    createInterface({ input: learner.child.stdout }).on("line", (line) =>
      process.stdout.write(`decided: ${line}\n`),
    );
  // Typed values go to the client, which resends each until it is decided.
  const toClient = client.child.stdin;
  toClient?.on("error", () => {}); // the client exited: its exit says why
  const input = readLines(process.stdin, {
    onLine: (line) => {
      if (toClient?.write(`${line}\n`) === false) {
        input.pause();
        toClient.once("drain", () => input.resume());
      }
    },
    onRefused: (problem) => process.stderr.write(`paxos cluster: ${problem}\n`),
    onEnd: () => {},
  });
  let demo: NodeJS.Timeout | null = null;
  if (values.demo === true) {
    let n = 0;
    demo = setInterval(() => toClient?.write(`demo-${++n}\n`), 500);
  }
  if (process.stdin.isTTY) process.stderr.write("type a value and press Enter; Ctrl-C stops the cluster\n");

  return new Promise((resolve) => {
    let stopping = false;
    let exited = 0;
    let status = 0;
    const stop = () => {
      if (stopping) return;
      stopping = true;
      if (demo !== null) clearInterval(demo);
      input.close();
      process.stderr.write("paxos cluster: stopping\n");
      terminate(processes.map(({ child }) => child));
    };
    for (const { role, id, child } of processes) {
      child.on("exit", (code, signal) => {
        if (!stopping) {
          status = 1;
          process.stderr.write(exitedLine(`${role} ${id}`, signal ?? `status ${code}`, lastWords));
          stop();
        }
        if (++exited === processes.length) {
          removeTemporary();
          resolve(status);
        }
      });
    }
    process.once("SIGINT", stop);
    process.once("SIGTERM", stop);
  });
}
