import { randomInt } from "node:crypto";
import { readFileSync } from "node:fs";
import { dirname, isAbsolute, resolve } from "node:path";
import { type Codec, codecByName, type NoticeReason, type Party } from "../codec/index.js";
import { Prng } from "../core/index.js";
import type { Logger } from "../observe/index.js";
import {
  type ClusterConfig,
  type ClusterKeys,
  type Driver,
  type KeySources,
  loadClusterKeys,
  lockDataDirOrError,
  openDataDir,
  prepareDataDirPath,
  type RejoinStep,
  type RoleLike,
} from "../runtime/index.js";
import { WalStorage } from "../storage/index.js";
import type { TcpTlsOptions } from "../transport/index.js";
import { StartError, UsageError } from "./errors.js";

export { RUNTIME_TIMING } from "../runtime/index.js";

/** Reads a file named on the command line; a missing file is a usage error. */
export function readConfigFile(path: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch (error) {
    throw new UsageError(
      `cannot read config "${path}": ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`,
    );
  }
}

export function parseId(text: string | undefined, what: string): number {
  if (text === undefined) throw new UsageError(`missing <id> (the ${what}'s id, a positive integer)`);
  if (!/^\d+$/.test(text) || Number(text) < 1 || !Number.isSafeInteger(Number(text))) {
    throw new UsageError(`<id> must be a positive integer, got "${text}"`);
  }
  return Number(text);
}

export function parsePositiveInt(text: string | undefined, flag: string, fallback: number): number {
  if (text === undefined) return fallback;
  if (!/^\d+$/.test(text) || Number(text) < 1)
    throw new UsageError(`${flag} wants a positive integer, got "${text}"`);
  return Number(text);
}

export function parseRate(text: string | undefined, flag: string): number | undefined {
  if (text === undefined) return undefined;
  const rate = Number(text);
  if (!Number.isFinite(rate) || rate < 0 || rate >= 1)
    throw new UsageError(`${flag} wants a number in [0, 1), got "${text}"`);
  return rate;
}

export function pickCodec(name: string | undefined): Codec {
  const codec = codecByName(name ?? "binary");
  if (!codec.ok) throw new UsageError(codec.error);
  return codec.value;
}

/** A PRNG for a real process: seeded from the OS, or from `--seed` to reproduce a run's choices. */
export function processPrng(seed: string | undefined): Prng {
  if (seed === undefined) return new Prng(randomInt(2 ** 31));
  if (!/^\d+$/.test(seed)) throw new UsageError(`--seed wants a non-negative integer, got "${seed}"`);
  return new Prng(Number(seed));
}

/** How a process opens its state: see `openDataDir` (runtime/data-dir.ts) for the rules. */
export interface OpenStorageOptions {
  /** Told it is a new member (`--new`). */
  readonly isNew: boolean;
  /** The operator declares the state lost (`--rejoin`). */
  readonly rejoin?: boolean;
  /** A collapsed replica rejoins; a separate acceptor refuses (damage is fatal, no state: silent). */
  readonly onLostState: "rejoin" | "refuse";
  /** Tests only: called after each step of a rejoin set-up. */
  readonly onStep?: (step: RejoinStep) => void | Promise<void>;
}

/**
 * Opens durable storage in `dir` (or memory storage without one) for a process: locks the directory
 * (`DIR.lock`, holding the pid; held until the process exits), then runs `openDataDir`, logging what
 * it did. An operator's mistake (a path that is not a directory, or is in use, or cannot be created
 * or written) is a `StartError` (one line, exit 1) and nothing is moved; so is damage for a role that
 * cannot rejoin.
 *
 * Tests: `PAXOS_TEST_CRASH_AT=<step>` makes the process SIGKILL itself after that step of a rejoin
 * set-up; `PAXOS_TEST_PAUSE_AT=<step>` makes it stop there with SIGSTOP, for a test to SIGKILL.
 */
export async function openStorage(dir: string | undefined, logger: Logger, options: OpenStorageOptions) {
  let path: string | undefined;
  if (dir !== undefined) {
    if (dir.trim() === "")
      throw new UsageError("--data needs a directory (an empty path would be the working directory)");
    const prepared = await prepareDataDirPath(dir);
    if (!prepared.ok) throw new StartError(prepared.error.message);
    path = prepared.value;
    lockDataDir(path);
  }
  const onStep = options.onStep ?? testCrashHook();
  const opened = await openDataDir({
    dir: path,
    isNew: options.isNew,
    ...(options.rejoin !== undefined ? { rejoin: options.rejoin } : {}),
    onLostState: options.onLostState,
    createLog: (logDir) => new WalStorage({ dir: logDir }),
    nowMs: Date.now(),
    ...(onStep !== undefined ? { onStep } : {}),
    onEvent: ({ level, message, fields }) => logger[level](fields, message),
  });
  if (!opened.ok) throw new StartError(opened.error.message);
  return opened.value;
}

/** The test hook of `openStorage`, from the environment (none unless a test sets it). */
function testCrashHook(): ((step: RejoinStep) => void) | undefined {
  const crashAt = process.env.PAXOS_TEST_CRASH_AT;
  const pauseAt = process.env.PAXOS_TEST_PAUSE_AT;
  if (crashAt === undefined && pauseAt === undefined) return undefined;
  return (step) => {
    if (step === crashAt) {
      process.stderr.write(`test: killed after rejoin step ${step}\n`);
      process.kill(process.pid, "SIGKILL");
    }
    if (step === pauseAt) {
      process.stderr.write(`test: paused after rejoin step ${step}\n`);
      process.kill(process.pid, "SIGSTOP");
    }
  };
}

/**
 * Makes this process the only user of data directory `dir` until it exits (see
 * `lockDataDirOrError` in runtime/data-dir-lock.ts); a live holder or an unusable path is a
 * `StartError` (one line, exit 1).
 */
export function lockDataDir(dir: string): void {
  const locked = lockDataDirOrError(dir);
  if (!locked.ok) throw new StartError(locked.error);
}

/**
 * Stops cleanly on SIGTERM or SIGINT (a second signal, or 1 s without finishing, exits at once), and
 * stops loudly on an invariant violation.
 */
export function handleSignals<R extends RoleLike>(
  driver: Driver<R>,
  logger: Logger,
  onStop?: () => void,
): Promise<number> {
  return new Promise((resolve) => {
    let stopping = false;
    const stop = (signal: string) => {
      if (stopping) process.exit(130);
      stopping = true;
      logger.info({ signal, stats: driver.stats, refusals: driver.refusals.byReason() }, "stopping");
      onStop?.();
      setTimeout(() => process.exit(0), 500).unref();
      void driver.stop().then(() => resolve(0));
    };
    process.once("SIGTERM", () => stop("SIGTERM"));
    process.once("SIGINT", () => stop("SIGINT"));
  });
}

export function fatalHandler(logger: Logger) {
  return (error: Error) => {
    logger.fatal({ err: error }, "fatal: stopping the process");
    process.stderr.write(`FATAL ${error.name}: ${error.message}\n`);
    process.exit(70);
  };
}

/**
 * Most bytes of output a node lets wait for a slow reader before it pauses its intake: 8 MiB.
 * Without a bound, a node whose stdout reader falls behind keeps every unwritten line in memory (a
 * leader deciding 100,000 values a second outgrew a 256 MiB heap that way).
 */
export const OUTPUT_BACKLOG_BYTES_MAX = 8 * 1024 * 1024;

/** What a paced writer pauses: a `Driver`'s intake. */
export interface Intake {
  pauseIntake(): void;
  resumeIntake(): void;
}

/**
 * A writer to `stream` that pauses `intake()` once more than `backlogBytesMax` bytes wait to be
 * written and resumes it when the stream drains, so a slow reader slows the node down instead of
 * filling its memory. Nothing is ever dropped from the output. On a stream that writes at once (a
 * file), nothing waits and nothing pauses.
 */
export function pacedWriter(
  stream: NodeJS.WritableStream & { readonly writableLength: number },
  intake: () => Intake,
  backlogBytesMax = OUTPUT_BACKLOG_BYTES_MAX,
): (text: string) => void {
  let paused = false;
  return (text) => {
    stream.write(text);
    if (paused || stream.writableLength <= backlogBytesMax) return;
    paused = true;
    intake().pauseIntake();
    stream.once("drain", () => {
      paused = false;
      intake().resumeIntake();
    });
  };
}

/** The cluster keys (see `loadClusterKeys`); a key that cannot be read is a usage error. */
export function clusterKeys(sources: Omit<KeySources, "env">): ClusterKeys {
  const keys = loadClusterKeys({ ...sources, env: process.env });
  if (!keys.ok) throw new UsageError(keys.error);
  return keys.value;
}

/** Logged (at warn, once per reason and peer) when a peer says it refuses this process's frames. */
export const NOTICE_MESSAGE = "a peer refuses our frames";

/** What a refusal notice means, for a log line or a client's error. */
export function noticeExplanation(reason: NoticeReason): string {
  switch (reason) {
    case "unauthenticated":
      return "our frames carry no MAC but the cluster requires its key (set auth.keyFile in the cluster file, --key-file, or PAXOS_CLUSTER_KEY)";
    case "bad-mac":
      return "our frames' MAC does not verify: this process has another cluster key than the peer";
    case "stale-incarnation":
      return "the peer has seen a later incarnation of this process (the clock stepped back? run with --data, or wait)";
  }
}

/** Logs each (reason, peer) of refusal notices once: they are unauthenticated hints. */
export function noticeLogger(logger: Logger) {
  const seen = new Set<string>();
  return (reason: NoticeReason, sender: Party) => {
    const key = `${reason} ${sender.kind}:${sender.id}`;
    if (seen.has(key) || seen.size >= 64) return;
    seen.add(key);
    logger.warn({ reason, peer: sender, explanation: noticeExplanation(reason) }, NOTICE_MESSAGE);
  };
}

/**
 * Mutual TLS options for a TCP transport from the cluster file's `"tls"`, for node `id` or client
 * `id`: its certificate and key (`{id}` replaced), the cluster CA, and who may be the peer. Nodes take
 * `node-<id>` of a member and any `client-<n>` the CA signed; clients take members only. Undefined
 * without `"tls"`; a file that cannot be read is a usage error.
 */
export function tcpTls(
  cluster: ClusterConfig,
  configPath: string,
  self: { kind: "node" | "client"; id: number },
): TcpTlsOptions | undefined {
  const tls = cluster.tls;
  if (tls === undefined) return undefined;
  const read = (template: string | undefined, what: string): string => {
    if (template === undefined)
      throw new UsageError(`${configPath}: tls.${what} is needed for a client over TLS`);
    const path = template.replaceAll("{id}", String(self.id));
    const full = isAbsolute(path) ? path : resolve(dirname(configPath), path);
    try {
      return readFileSync(full, "utf8");
    } catch (error) {
      throw new UsageError(
        `cannot read tls.${what} "${full}": ${(error as NodeJS.ErrnoException).code ?? String(error)}`,
      );
    }
  };
  const members = new Set(cluster.nodes.map((node) => `node-${node.id}`));
  return {
    ca: read(tls.caFile, "caFile"),
    cert: read(
      self.kind === "node" ? tls.certFile : tls.clientCertFile,
      self.kind === "node" ? "certFile" : "clientCertFile",
    ),
    key: read(
      self.kind === "node" ? tls.keyFile : tls.clientKeyFile,
      self.kind === "node" ? "keyFile" : "clientKeyFile",
    ),
    peerAllowed:
      self.kind === "node"
        ? (name) => members.has(name) || /^client-[1-9]\d*$/.test(name)
        : (name) => members.has(name),
  };
}

/** `{ tls }` when there is one (for an options object under exactOptionalPropertyTypes). */
export function tlsOption(tls: TcpTlsOptions | undefined): { tls?: TcpTlsOptions } {
  return tls === undefined ? {} : { tls };
}
