import { closeSync, fsyncSync, openSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { dirname, isAbsolute, resolve } from "node:path";
import { CLUSTER_KEY_BYTES_MIN, EnvelopeGuard, type Party } from "../codec/index.js";
import { err, ok, type Refusals, type Result, type Role } from "../core/index.js";
import { type ClusterConfig, type CourseConfig, clusterIdOfConfig, clusterIdOfCourse } from "./config.js";

/** The environment variable that holds the cluster key when no key file is named. */
export const CLUSTER_KEY_ENV = "PAXOS_CLUSTER_KEY";
/** The environment variable that holds a second key accepted during a rotation. */
export const CLUSTER_ACCEPT_KEY_ENV = "PAXOS_CLUSTER_ACCEPT_KEY";

/** Logged once at start by a process whose cluster traffic is not authenticated. */
export const UNAUTHENTICATED_WARNING =
  "cluster traffic is unauthenticated: no cluster key (set auth.keyFile in the cluster file, or PAXOS_CLUSTER_KEY)";

/** A cluster's keys: the one frames are sealed with, and one more accepted during a rotation. */
export interface ClusterKeys {
  readonly key: Uint8Array | null;
  readonly acceptKey: Uint8Array | null;
}

export const NO_KEYS: ClusterKeys = Object.freeze({ key: null, acceptKey: null });

export interface KeySources {
  /** `--key-file`: wins over the cluster file. */
  readonly keyFile?: string | undefined;
  /** The cluster file's `auth` (paths relative to `configPath`'s directory). */
  readonly auth?: { readonly keyFile?: string; readonly acceptKeyFile?: string } | undefined;
  readonly configPath?: string | undefined;
  /** The environment (`PAXOS_CLUSTER_KEY`, `PAXOS_CLUSTER_ACCEPT_KEY`), used when no file is named. */
  readonly env?: Readonly<Record<string, string | undefined>>;
}

/**
 * Loads the cluster keys: the key from `--key-file`, else the cluster file's `auth.keyFile`, else
 * `PAXOS_CLUSTER_KEY`; the accepted second key from `auth.acceptKeyFile`, else
 * `PAXOS_CLUSTER_ACCEPT_KEY`. A key is the file's bytes (or the variable's UTF-8) less trailing
 * whitespace, at least 16 bytes. An error names the source at fault.
 */
export function loadClusterKeys(sources: KeySources): Result<ClusterKeys, string> {
  const env = sources.env ?? {};
  const base = sources.configPath !== undefined ? dirname(sources.configPath) : ".";
  const fromFile = (path: string, what: string): Result<Uint8Array, string> => {
    const full = isAbsolute(path) ? path : resolve(base, path);
    let bytes: Buffer;
    try {
      bytes = readFileSync(full);
    } catch (error) {
      return err(`cannot read ${what} "${full}": ${(error as NodeJS.ErrnoException).code ?? String(error)}`);
    }
    return checkKey(trimEnd(bytes), `${what} "${full}"`);
  };
  const fromEnv = (name: string): Result<Uint8Array, string> | null => {
    const value = env[name];
    if (value === undefined || value === "") return null;
    return checkKey(trimEnd(Buffer.from(value, "utf8")), name);
  };
  const keyFile = sources.keyFile ?? sources.auth?.keyFile;
  const key = keyFile !== undefined ? fromFile(keyFile, "key file") : fromEnv(CLUSTER_KEY_ENV);
  if (key !== null && !key.ok) return key;
  const acceptFile = sources.auth?.acceptKeyFile;
  const acceptKey =
    acceptFile !== undefined ? fromFile(acceptFile, "accepted key file") : fromEnv(CLUSTER_ACCEPT_KEY_ENV);
  if (acceptKey !== null && !acceptKey.ok) return acceptKey;
  return ok({ key: key?.value ?? null, acceptKey: acceptKey?.value ?? null });
}

function trimEnd(bytes: Uint8Array): Uint8Array {
  let end = bytes.length;
  while (
    end > 0 &&
    (bytes[end - 1] === 0x0a || bytes[end - 1] === 0x0d || bytes[end - 1] === 0x20 || bytes[end - 1] === 0x09)
  )
    end--;
  return bytes.subarray(0, end);
}

function checkKey(bytes: Uint8Array, what: string): Result<Uint8Array, string> {
  if (bytes.length < CLUSTER_KEY_BYTES_MIN)
    return err(
      `${what}: a cluster key needs at least ${CLUSTER_KEY_BYTES_MIN} bytes (make one with "openssl rand -hex 32")`,
    );
  return ok(new Uint8Array(bytes));
}

/**
 * This start's incarnation: strictly greater than every earlier start's, as far as this process can
 * know. It is the wall clock in milliseconds; with a data directory, also greater than the one
 * recorded in `DIR.incarnation` (written and synced here, before any frame is sent), so a clock that
 * stepped back cannot give a node an old incarnation. Without a data directory a clock that stepped
 * back by more than the time since the last start gives an old incarnation: keyed peers that still
 * remember the newer one refuse the node's frames (`stale-incarnation`, and they tell it so) until
 * they restart or the clock passes it (see docs/security.md).
 */
export function nextIncarnation(dataDir: string | undefined, nowMs: number = Date.now()): number {
  if (dataDir === undefined) return nowMs;
  const path = `${resolve(dataDir)}.incarnation`;
  let previous = 0;
  try {
    const text = readFileSync(path, "utf8").trim();
    if (/^\d{1,16}$/.test(text)) previous = Number(text);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error;
  }
  const incarnation = Math.max(nowMs, previous + 1);
  const temporary = `${path}.tmp`;
  writeFileSync(temporary, `${incarnation}\n`);
  const file = openSync(temporary, "r+");
  try {
    fsyncSync(file);
  } finally {
    closeSync(file);
  }
  renameSync(temporary, path);
  const directory = openSync(dirname(path), "r");
  try {
    fsyncSync(directory);
  } finally {
    closeSync(directory);
  }
  return incarnation;
}

/** The roles a collapsed node receives for. */
export const NODE_ROLES: readonly Role[] = ["proposer", "acceptor", "learner"];

export interface IdentityOptions {
  readonly keys: ClusterKeys;
  readonly incarnation: number;
  readonly refusals?: Refusals;
}

/**
 * The envelope of a process of a cluster of collapsed nodes (`self` a node, or a client): the
 * cluster's id, its members (the nodes), and the keys.
 */
export function clusterEnvelope(config: ClusterConfig, self: Party, options: IdentityOptions): EnvelopeGuard {
  return new EnvelopeGuard({
    clusterId: clusterIdOfConfig(config),
    self,
    roles: self.kind === "client" ? ["client"] : NODE_ROLES,
    incarnation: options.incarnation,
    key: options.keys.key,
    acceptKey: options.keys.acceptKey,
    members: config.nodes.map((node) => ({ kind: "node", id: node.id })),
    ...(options.refusals !== undefined ? { refusals: options.refusals } : {}),
  });
}

/**
 * The envelope of one of the course harness's separate roles over multicast: the deployment's id
 * from its group addresses; every sender tracked in a bounded table (no file lists the proposers and
 * learners); a frame for another member of this process's group is ignored, not refused.
 */
export function courseEnvelope(config: CourseConfig, self: Party, options: IdentityOptions): EnvelopeGuard {
  const role = self.kind === "node" ? "proposer" : self.kind;
  return new EnvelopeGuard({
    clusterId: clusterIdOfCourse(config),
    self,
    roles: [role],
    incarnation: options.incarnation,
    key: options.keys.key,
    acceptKey: options.keys.acceptKey,
    groupDelivery: true,
    ...(options.refusals !== undefined ? { refusals: options.refusals } : {}),
  });
}
