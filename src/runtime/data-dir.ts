import { mkdir, open as openFile, readdir, realpath, rename, rm, rmdir, stat } from "node:fs/promises";
import { basename, dirname, join, resolve } from "node:path";
import { assert, err, ok, type Result } from "../core/index.js";
import { type DurableState, MemoryStorage, type Storage, type StorageError } from "../storage/index.js";

/**
 * Opening a node's durable state: the one place that decides whether a node starts as a fresh voter,
 * loads what it wrote, or rejoins as a learner, and that sets up a rejoin so that a crash at any
 * point of the set-up still comes back rejoining. The processes (`paxos node`, `paxos acceptor`) and
 * the simulator run this same code; only the {@link DataDirFileSystem} and the log differ.
 *
 * The rules (docs/durability.md, "The data directory"):
 * - A node starts as a fresh voter only when told it is new (`start: "new"`) and it finds no durable
 *   state. Without the word, no state (a missing or empty directory, or memory storage) means this
 *   node may have voted before and forgotten it: it rejoins.
 * - Damage to the log's bytes (the storage reports `kind: "corrupt"`) means rejoin (or refusal, for a
 *   role that cannot rejoin). Anything else (not a directory, a directory holding other files,
 *   permission denied, disk full) is the operator's to fix: an error, and nothing is moved.
 * - Only this project's log is ever moved aside, never deleted; the only thing ever deleted is the
 *   set-up's own temporary directory `DIR.rejoin-tmp`.
 */

/**
 * The few file-system operations the set-up needs. Errors are thrown with a Node-style `code`
 * (`ENOENT`, `EACCES`, `ENOSPC`, ...). {@link nodeDataDirFileSystem} is the real one; the simulator
 * passes its own.
 */
export interface DataDirFileSystem {
  /** What is at `path`, following symbolic links; null when nothing is. */
  kind(path: string): Promise<"directory" | "file" | "other" | null>;
  /** The canonical path of an existing `path` (symbolic links resolved). */
  realpath(path: string): Promise<string>;
  /** Creates one directory (not its parents); throws EEXIST if something is there. */
  mkdir(path: string): Promise<void>;
  readdir(path: string): Promise<string[]>;
  /** Atomic rename within one file system. */
  rename(from: string, to: string): Promise<void>;
  /** Removes an empty directory (throws ENOTEMPTY otherwise). */
  removeEmptyDirectory(path: string): Promise<void>;
  /** Removes a directory and everything in it: used only on the set-up's own temporary directory. */
  removeTree(path: string): Promise<void>;
  /** Makes the directory's entries (creations, renames) durable. */
  syncDirectory(path: string): Promise<void>;
}

/** The real file system. */
export const nodeDataDirFileSystem: DataDirFileSystem = {
  async kind(path) {
    try {
      const info = await stat(path);
      return info.isDirectory() ? "directory" : info.isFile() ? "file" : "other";
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") return null;
      throw error;
    }
  },
  realpath: (path) => realpath(path),
  // Never `recursive: true`: Node's recursive mkdir loops forever on /proc (ENOENT for a parent
  // that exists); `makeParents` walks up one level at a time instead.
  mkdir: async (path) => {
    await mkdir(path);
  },
  readdir: (path) => readdir(path),
  rename: (from, to) => rename(from, to),
  removeEmptyDirectory: (path) => rmdir(path),
  removeTree: (path) => rm(path, { recursive: true, force: true }),
  async syncDirectory(path) {
    // On Windows a directory cannot be opened for syncing; its metadata is journaled anyway.
    if (process.platform === "win32") return;
    const handle = await openFile(path, "r");
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  },
};

/** The steps of a rejoin set-up, in order; `onStep` is called after each (tests crash there). */
export const REJOIN_STEPS = [
  "temp-created",
  "temp-synced",
  "previous-moved-aside",
  "temp-renamed",
  "parent-synced",
] as const;
export type RejoinStep = (typeof REJOIN_STEPS)[number];

/** Log messages the processes print for what `openDataDir` did (read by tests: constants). */
export const DATA_DIR_MESSAGES = Object.freeze({
  loaded: "durable state loaded",
  startedNew: "no durable state: starting as a new member (told --new)",
  noStateRejoin: "no durable state and not started with --new: rejoining as a learner",
  noStateRefuse:
    "no durable state and not started with --new: not voting (a separate acceptor cannot rejoin)",
  damagedRejoin: "durable state is damaged: moving it aside and rejoining as a learner",
  requestedRejoin: "state declared lost (--rejoin): moving what is there aside and rejoining as a learner",
  interruptedRejoin: "a rejoin set-up was interrupted: setting it up again",
  movedAsideRejoin: "this node's earlier state was moved aside and no state is in its place: rejoining",
  movedAside: "previous state moved aside",
  newIgnored: "--new ignored: this node has durable state",
});

/** Why a node rejoins (null: it does not). */
export type RejoinReason = "requested" | "damaged" | "no-state" | "interrupted" | "moved-aside";

export interface OpenDataDirOptions {
  /** The data directory; undefined: memory storage (nothing survives the process). */
  readonly dir: string | undefined;
  /** Told it is a new member (`--new`): with no durable state it starts as a fresh voter. */
  readonly isNew: boolean;
  /** The operator declares the state lost (`--rejoin`): set up a rejoin whatever is there. */
  readonly rejoin?: boolean;
  /**
   * What damage or missing state leads to: `rejoin` (a collapsed replica, which can rejoin safely)
   * or `refuse` (a separate acceptor: damage is an error; no state means a durable rejoin mark, so
   * it stays silent).
   */
  readonly onLostState: "rejoin" | "refuse";
  readonly fs?: DataDirFileSystem;
  /** The log in a directory (default: none; the caller passes `dir => new WalStorage({ dir })`). */
  readonly createLog: (dir: string) => Storage;
  /** Storage without a directory (default: `MemoryStorage`). */
  readonly createMemory?: () => Storage;
  /** Milliseconds since the epoch, for the name of a directory moved aside. */
  readonly nowMs: number;
  /** Called after each step of a rejoin set-up (tests throw here to crash at that step). */
  readonly onStep?: (step: RejoinStep) => void | Promise<void>;
  /** What happened, for the caller's log (`level`, a constant message from DATA_DIR_MESSAGES, fields). */
  readonly onEvent?: (event: DataDirEvent) => void;
}

export interface DataDirEvent {
  readonly level: "info" | "warn" | "error";
  readonly message: string;
  readonly fields: Record<string, unknown>;
}

export interface OpenedDataDir {
  readonly storage: Storage;
  readonly state: DurableState;
  /** How the node starts: with what it wrote, as a new member, or rejoining. */
  readonly how: "loaded" | "new" | "rejoining";
  readonly reason: RejoinReason | null;
  /** The canonical data directory (null for memory storage). */
  readonly dir: string | null;
}

/**
 * Why the state could not be opened: `operator` (the path, permissions, disk: fix and restart; nothing
 * was moved), or `corrupt` (the log's bytes are damaged and this role cannot rejoin).
 */
export type DataDirError =
  | { readonly kind: "operator"; readonly message: string }
  | { readonly kind: "corrupt"; readonly message: string; readonly error: StorageError };

/** The temporary directory a rejoin is set up in, beside `dir`. */
export function rejoinTempDir(dir: string): string {
  return `${dir}.rejoin-tmp`;
}

/** Whether a file name in a data directory is this project's (the log's segments and its records). */
export function isLogFileName(name: string): boolean {
  return /^wal-/.test(name) || /^manifest/i.test(name);
}

/**
 * Whether an opened log holds no record at all (a new directory, or one whose first start crashed
 * before anything was written). The one place that decides it, until the storage reports it itself.
 */
export function holdsNoRecords(storage: Storage): boolean {
  return storage.stats.bytesSinceCheckpoint === 0 && storage.stats.checkpointBytes === 0;
}

class OperatorError extends Error {}

function codeOf(error: unknown): string {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === "string" ? code : error instanceof Error ? error.message : String(error);
}

/**
 * Opens a node's durable state in `dir` (or memory) and decides how the node starts. See the module
 * comment for the rules; every path out either returns state that is safe to act on or an error that
 * moved nothing.
 *
 * @example
 * const opened = await openDataDir({
 *   dir: "data/node-1", isNew: false, onLostState: "rejoin", nowMs: Date.now(),
 *   createLog: (dir) => new WalStorage({ dir }),
 * });
 * if (!opened.ok) throw new Error(opened.error.message);
 * const replica = new Replica({ ..., restore: toReplicaState(opened.value.state),
 *   rejoining: opened.value.state.rejoining });
 */
export async function openDataDir(options: OpenDataDirOptions): Promise<Result<OpenedDataDir, DataDirError>> {
  try {
    return await open(options);
  } catch (error) {
    if (error instanceof OperatorError) return err({ kind: "operator", message: error.message });
    throw error;
  }
}

async function open(options: OpenDataDirOptions): Promise<Result<OpenedDataDir, DataDirError>> {
  const fs = options.fs ?? nodeDataDirFileSystem;
  const emit = (level: DataDirEvent["level"], message: string, fields: Record<string, unknown> = {}) =>
    options.onEvent?.({ level, message, fields });
  const refuse = options.onLostState === "refuse";

  if (options.dir === undefined) {
    const storage = (options.createMemory ?? (() => new MemoryStorage()))();
    const opened = await storage.open();
    assert(opened.ok, "memory storage always opens");
    if (options.isNew && options.rejoin !== true) {
      return ok({ storage, state: opened.value, how: "new", reason: null, dir: null });
    }
    emit("warn", refuse ? DATA_DIR_MESSAGES.noStateRefuse : DATA_DIR_MESSAGES.noStateRejoin, {
      dir: null,
    });
    storage.append({ rejoining: true });
    await storage.sync();
    return ok({
      storage,
      state: { ...opened.value, rejoining: true },
      how: "rejoining",
      reason: options.rejoin === true ? "requested" : "no-state",
      dir: null,
    });
  }

  const dir = await canonical(fs, options.dir);
  const temp = rejoinTempDir(dir);
  const step = async (name: RejoinStep) => {
    await options.onStep?.(name);
  };
  const fail = (what: string, error: unknown): never => {
    throw new OperatorError(`${what}: ${codeOf(error)}`);
  };

  // 1. A rejoin set-up that a crash interrupted: its temporary directory is left. Whatever it holds
  //    and whatever is in DIR, the node had decided to rejoin: set it up again from the start.
  let reason: RejoinReason | null = options.rejoin === true ? "requested" : null;
  if ((await fs.kind(temp).catch((error) => fail(`cannot read ${temp}`, error))) !== null) {
    emit("warn", DATA_DIR_MESSAGES.interruptedRejoin, { dir, temp });
    await fs.removeTree(temp).catch((error) => fail(`cannot remove ${temp}`, error));
    reason = "interrupted";
  }

  // 2. What is at DIR: nothing, a directory of ours (or empty), or an operator's mistake.
  const kind = await fs.kind(dir).catch((error) => fail(`cannot use --data ${dir}`, error));
  if (kind === "file" || kind === "other") throw new OperatorError(`--data ${dir} is not a directory`);
  let names: string[] = [];
  if (kind === "directory") {
    names = await fs.readdir(dir).catch((error) => fail(`cannot read --data ${dir}`, error));
    const foreign = names.filter((name) => !isLogFileName(name));
    if (foreign.length > 0) {
      throw new OperatorError(
        `--data ${dir} holds files that are not a paxos log (${foreign.slice(0, 3).join(", ")}${foreign.length > 3 ? ", ..." : ""}): refusing to use it`,
      );
    }
  } else {
    await makeParents(fs, dirname(dir));
    // No DIR, but an earlier one of this node was moved aside: this node had state.
    if (reason === null) {
      const siblings = await fs
        .readdir(dirname(dir))
        .catch((error) => fail(`cannot read ${dirname(dir)}`, error));
      const prefix = `${basename(dir)}.damaged-`;
      if (siblings.some((name) => name.startsWith(prefix) || name.startsWith(`${basename(dir)}.previous-`))) {
        emit("warn", DATA_DIR_MESSAGES.movedAsideRejoin, { dir });
        reason = "moved-aside";
      }
    }
  }

  // 3. Open the log, unless a rejoin is already decided.
  if (reason === null && names.length > 0) {
    const storage = options.createLog(dir);
    const opened = await storage.open();
    if (opened.ok && !holdsNoRecords(storage)) {
      if (options.isNew) emit("info", DATA_DIR_MESSAGES.newIgnored, { dir });
      emit("info", DATA_DIR_MESSAGES.loaded, {
        dir,
        stats: storage.stats,
        rejoining: opened.value.rejoining,
      });
      return ok({
        storage,
        state: opened.value,
        how: opened.value.rejoining ? "rejoining" : "loaded",
        reason: null,
        dir,
      });
    }
    if (opened.ok) {
      // A log without a single record: a first start that stopped before it wrote anything.
      if (options.isNew) return startNew(storage, opened.value, dir, emit);
      await storage.close({ sync: false }).catch(() => undefined);
      reason = "no-state";
    } else if (opened.error.kind === "io") {
      throw new OperatorError(`cannot open the log in ${dir}: ${opened.error.code ?? opened.error.detail}`);
    } else {
      const where = `${opened.error.file} at offset ${opened.error.offset}: ${opened.error.detail}`;
      if (refuse) {
        emit("error", "durable state is damaged; refusing to vote with damaged state", {
          error: opened.error,
        });
        return err({
          kind: "corrupt",
          message: `the log in ${dir} is damaged (${where}); this role cannot rejoin: an operator must decide`,
          error: opened.error,
        });
      }
      emit("error", DATA_DIR_MESSAGES.damagedRejoin, { dir, error: opened.error });
      reason = "damaged";
    }
  } else if (reason === null) {
    // No state at all: a missing or empty directory.
    if (options.isNew) {
      if (kind === null) {
        await fs.mkdir(dir).catch((error) => fail(`cannot create --data ${dir}`, error));
        await fs.syncDirectory(dirname(dir)).catch((error) => fail(`cannot sync ${dirname(dir)}`, error));
      }
      const storage = options.createLog(dir);
      const opened = await storage.open();
      if (!opened.ok) throw new OperatorError(`cannot create a log in ${dir}: ${describe(opened.error)}`);
      return startNew(storage, opened.value, dir, emit);
    }
    reason = "no-state";
  }

  if (reason === "no-state")
    emit("warn", refuse ? DATA_DIR_MESSAGES.noStateRefuse : DATA_DIR_MESSAGES.noStateRejoin, { dir });
  if (reason === "requested") emit("warn", DATA_DIR_MESSAGES.requestedRejoin, { dir });
  return setUpRejoin(options, fs, dir, kind !== null, reason, emit, step, fail);
}

/** A new member's first start: a record that it started, so a later start finds state. */
async function startNew(
  storage: Storage,
  state: DurableState,
  dir: string,
  emit: (level: DataDirEvent["level"], message: string, fields?: Record<string, unknown>) => void,
): Promise<Result<OpenedDataDir, DataDirError>> {
  storage.append({ rejoining: false });
  await storage.sync();
  emit("info", DATA_DIR_MESSAGES.startedNew, { dir });
  return ok({ storage, state, how: "new", reason: null, dir });
}

/**
 * Sets up a rejoin so that a crash at any step still comes back rejoining: the new log, holding the
 * rejoin mark, is built and synced in `DIR.rejoin-tmp`; only then is DIR moved aside (or removed, if
 * it is an empty directory) and the temporary directory renamed into its place, and the parent
 * synced. Until the last rename, the temporary directory exists, and `openDataDir` starts again from
 * the beginning; after it, DIR holds the mark.
 */
async function setUpRejoin(
  options: OpenDataDirOptions,
  fs: DataDirFileSystem,
  dir: string,
  dirExists: boolean,
  reason: RejoinReason,
  emit: (level: DataDirEvent["level"], message: string, fields?: Record<string, unknown>) => void,
  step: (name: RejoinStep) => Promise<void>,
  fail: (what: string, error: unknown) => never,
): Promise<Result<OpenedDataDir, DataDirError>> {
  const temp = rejoinTempDir(dir);
  const parent = dirname(dir);
  await fs.mkdir(temp).catch((error) => fail(`cannot create ${temp}`, error));
  await step("temp-created");
  const building = options.createLog(temp);
  const built = await building.open();
  if (!built.ok) throw new OperatorError(`cannot create a log in ${temp}: ${describe(built.error)}`);
  building.append({ rejoining: true });
  await building.sync().catch((error) => fail(`cannot write the rejoin mark in ${temp}`, error));
  await building.close();
  await fs.syncDirectory(parent).catch((error) => fail(`cannot sync ${parent}`, error));
  await step("temp-synced");

  if (dirExists) {
    const entries = await fs.readdir(dir).catch((error) => fail(`cannot read ${dir}`, error));
    if (entries.length === 0) {
      await fs.removeEmptyDirectory(dir).catch((error) => fail(`cannot remove empty ${dir}`, error));
    } else {
      const aside = `${dir}.${reason === "damaged" ? "damaged" : "previous"}-${options.nowMs}`;
      await fs.rename(dir, aside).catch((error) => fail(`cannot move ${dir} aside`, error));
      emit("warn", DATA_DIR_MESSAGES.movedAside, { dir, aside });
    }
  }
  await step("previous-moved-aside");
  await fs.rename(temp, dir).catch((error) => fail(`cannot rename ${temp} to ${dir}`, error));
  await step("temp-renamed");
  await fs.syncDirectory(parent).catch((error) => fail(`cannot sync ${parent}`, error));
  await step("parent-synced");

  const storage = options.createLog(dir);
  const opened = await storage.open();
  if (!opened.ok) throw new OperatorError(`cannot open the new log in ${dir}: ${describe(opened.error)}`);
  assert(opened.value.rejoining, "a rejoin set-up leaves the rejoin mark in the log");
  emit("info", DATA_DIR_MESSAGES.loaded, { dir, stats: storage.stats, rejoining: true });
  return ok({ storage, state: opened.value, how: "rejoining", reason, dir });
}

function describe(error: StorageError): string {
  return error.kind === "io" ? (error.code ?? error.detail) : `${error.file}: ${error.detail}`;
}

/** The absolute path of `dir`, with symbolic links resolved as far as it exists. */
async function canonical(fs: DataDirFileSystem, dir: string): Promise<string> {
  const absolute = resolve(dir);
  const missing: string[] = [];
  let at = absolute;
  for (let depth = 0; depth < 256; depth++) {
    try {
      return join(await fs.realpath(at), ...missing.reverse());
    } catch (error) {
      const code = codeOf(error);
      if (code !== "ENOENT") throw new OperatorError(`cannot use --data ${absolute}: ${code}`);
      if (dirname(at) === at) break;
      missing.push(basename(at));
      at = dirname(at);
    }
  }
  return absolute;
}

/**
 * The canonical path of a data directory, with its missing parents created (not the directory
 * itself): what a lock beside it (`DIR.lock`) needs before `openDataDir` runs.
 */
export async function prepareDataDirPath(
  dir: string,
  fs: DataDirFileSystem = nodeDataDirFileSystem,
): Promise<Result<string, DataDirError>> {
  try {
    const path = await canonical(fs, dir);
    await makeParents(fs, dirname(path));
    return ok(path);
  } catch (error) {
    if (error instanceof OperatorError) return err({ kind: "operator", message: error.message });
    throw error;
  }
}

/** Creates `dir` and its missing parents, one level at a time; errors are the operator's. */
async function makeParents(fs: DataDirFileSystem, dir: string): Promise<void> {
  const missing: string[] = [];
  let at = dir;
  for (let depth = 0; depth < 256; depth++) {
    const kind = await fs.kind(at).catch((error) => {
      throw new OperatorError(`cannot use ${at}: ${codeOf(error)}`);
    });
    if (kind === "directory") break;
    if (kind !== null) throw new OperatorError(`${at} is not a directory`);
    if (dirname(at) === at) break;
    missing.push(at);
    at = dirname(at);
  }
  for (const path of missing.reverse()) {
    await fs.mkdir(path).catch((error) => {
      if (codeOf(error) !== "EEXIST") throw new OperatorError(`cannot create ${path}: ${codeOf(error)}`);
    });
  }
}
