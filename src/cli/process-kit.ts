import { randomInt } from "node:crypto";
import { readFileSync } from "node:fs";
import { rename } from "node:fs/promises";
import { type Codec, codecByName } from "../codec/index.js";
import { Prng } from "../core/index.js";
import type { Logger } from "../observe/index.js";
import { type Driver, describeMessage, type RoleLike } from "../runtime/index.js";
import { MemoryStorage, type Storage, WalStorage } from "../storage/index.js";
import { UsageError } from "./errors.js";

/**
 * Proposer timeouts for real processes, in 10 ms ticks: heartbeats every 30 ms, elections after
 * 300 to 600 ms of silence. Wider than the simulator's, because a loaded machine (many processes on
 * two cores) can stall a process for a hundred milliseconds or more.
 */
export const RUNTIME_TIMING = Object.freeze({ heartbeatTicks: 3, electionTimeoutTicks: 30 });

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

/**
 * Opens durable storage in `dir`, or memory storage when no directory is given.
 *
 * With `rejoinIfDamaged` (collapsed nodes), damaged state is never guessed at or repaired in place:
 * the damaged log is moved aside (`DIR.damaged-<time>`, for an operator), a fresh log starts with a
 * durable "rejoining" mark, and the node comes back as a learner that votes again only once the
 * cluster has moved past every slot it might have voted in (`Replica`). `rejoin` does the same for
 * a node whose state is known lost (an operator's call: a replaced disk). Without `rejoinIfDamaged`
 * (a separate acceptor, which cannot tell when the cluster has moved on), damage is fatal.
 */
export async function openStorage(
  dir: string | undefined,
  logger: Logger,
  options: { rejoinIfDamaged?: boolean; rejoin?: boolean } = {},
) {
  let storage: Storage = dir === undefined ? new MemoryStorage() : new WalStorage({ dir });
  let opened = await storage.open();
  let rejoining = options.rejoin === true;
  if (!opened.ok) {
    if (!options.rejoinIfDamaged || dir === undefined) {
      logger.fatal({ error: opened.error }, "cannot load durable state; refusing to vote with damaged state");
      throw new UsageError(`storage in ${dir}: ${JSON.stringify(opened.error)}`);
    }
    logger.error(
      { error: opened.error },
      "durable state is damaged: moving it aside and rejoining as a learner",
    );
    rejoining = true;
  }
  if (rejoining && dir !== undefined) {
    await storage.close({ sync: false }).catch(() => {});
    const aside = `${dir}.damaged-${Date.now()}`;
    await rename(dir, aside).catch((error: NodeJS.ErrnoException) => {
      if (error.code !== "ENOENT") throw error;
    });
    logger.warn({ dir, aside }, "previous state moved aside");
    storage = new WalStorage({ dir });
    opened = await storage.open();
    if (!opened.ok) throw new UsageError(`storage in ${dir}: ${JSON.stringify(opened.error)}`);
  }
  if (!opened.ok) throw new UsageError(`storage in ${dir}: ${JSON.stringify(opened.error)}`);
  let state = opened.value;
  if (rejoining) {
    // The mark goes to disk first: a crash during the rejoin must come back rejoining.
    storage.append({ rejoining: true });
    await storage.sync();
    state = { ...state, rejoining: true };
  }
  if (dir !== undefined)
    logger.info({ dir, stats: storage.stats, rejoining: state.rejoining }, "durable state loaded");
  return { storage, state };
}

/** `--debug`: every message sent and received, one line each, on stderr. */
export function debugTracer(name: string) {
  return (direction: "in" | "out", message: Parameters<typeof describeMessage>[0], peer: string) => {
    process.stderr.write(`${name} ${direction === "in" ? "<-" : "->"} ${peer} ${describeMessage(message)}\n`);
  };
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
      logger.info({ signal, stats: driver.stats }, "stopping");
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
