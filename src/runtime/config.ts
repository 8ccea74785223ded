import { isIP } from "node:net";
import { z } from "zod";
import { clusterIdOf } from "../codec/index.js";
import type { AcceptorSpec, QuorumSpec, ReplicaOptions, Role, SessionLimits } from "../core/index.js";
import { createQuorumSystem, DEFAULT_LIMITS, err, ok, type Result } from "../core/index.js";
import type { Endpoint } from "../transport/index.js";

/** The group names of the course harness's config file, and the role each one carries. */
export const COURSE_GROUPS: Readonly<Record<string, Role>> = Object.freeze({
  clients: "client",
  proposers: "proposer",
  acceptors: "acceptor",
  learners: "learner",
});

/** The course harness's config: one multicast group (address and port) per role. */
export interface CourseConfig {
  readonly groups: Readonly<Record<Role, Endpoint>>;
  /** One line per line of the file that was not understood (printed on stderr). */
  readonly warnings: readonly string[];
}

/**
 * Parses the course config format: one line per group, `<group> <ip> <port>`, for the groups
 * `clients`, `proposers`, `acceptors`, `learners`. Blank lines and `#` comments are skipped; unknown
 * lines become warnings; a missing group or a bad address is an error naming the line.
 *
 * @example
 * parseCourseConfig("clients 239.0.0.1 5000\nproposers 239.0.0.1 6000\n" +
 *   "acceptors 239.0.0.1 7000\nlearners 239.0.0.1 8000\n");
 */
export function parseCourseConfig(text: string): Result<CourseConfig, string> {
  const groups: Partial<Record<Role, Endpoint>> = {};
  const warnings: string[] = [];
  const lines = text.split(/\r?\n/);
  for (let index = 0; index < lines.length; index++) {
    const line = (lines[index] as string).replace(/#.*$/, "").trim();
    if (line === "") continue;
    const where = `line ${index + 1}`;
    const fields = line.split(/\s+/);
    const role = COURSE_GROUPS[fields[0] as string];
    if (role === undefined) {
      warnings.push(
        `${where}: unknown group "${fields[0]}" ignored (known: ${Object.keys(COURSE_GROUPS).join(", ")})`,
      );
      continue;
    }
    if (fields.length !== 3) return err(`${where}: expected "<group> <ip> <port>", got "${line}"`);
    const host = fields[1] as string;
    const port = /^\d{1,5}$/.test(fields[2] as string) ? Number(fields[2]) : Number.NaN;
    if (isIP(host) !== 4) return err(`${where}: "${host}" is not an IPv4 address`);
    if (!Number.isInteger(port) || port < 1 || port > 65535)
      return err(`${where}: port "${fields[2]}" is not 1..65535`);
    if (groups[role] !== undefined)
      warnings.push(`${where}: group "${fields[0]}" given again; the last one wins`);
    groups[role] = { host, port };
  }
  for (const [name, role] of Object.entries(COURSE_GROUPS)) {
    if (groups[role] === undefined) return err(`missing the "${name}" line ("${name} <ip> <port>")`);
  }
  return ok({ groups: groups as Record<Role, Endpoint>, warnings });
}

const nodeSchema = z.strictObject({
  id: z.int().positive(),
  host: z.string().min(1),
  port: z.int().min(1).max(65535),
  /** Voting weight (weighted and flexible quorums). */
  weight: z.int().min(1).max(1000).optional(),
  /** False for a node that proposes and learns but does not vote. Default true. */
  acceptor: z.boolean().optional(),
  /**
   * The node's HTTP API ("HOST:PORT"; docs/applications.md). Other nodes forward reads there when
   * this node leads; absent: the node serves HTTP only with `--http`, and is not forwarded to.
   */
  http: z
    .string()
    .regex(/^[^\s:]+:\d{1,5}$/, 'wants "HOST:PORT"')
    .optional(),
});

const quorumSchema = z.discriminatedUnion("kind", [
  z.strictObject({ kind: z.literal("majority") }),
  z.strictObject({ kind: z.literal("weighted") }),
  z.strictObject({
    kind: z.literal("flexible"),
    phase1Weight: z.int().positive(),
    phase2Weight: z.int().positive(),
  }),
]);

const authSchema = z.strictObject({
  /** A file holding the cluster key (at least 16 bytes; trailing whitespace is not part of it). */
  keyFile: z.string().min(1).optional(),
  /** During a key rotation: a second key accepted on receipt, never sent with. */
  acceptKeyFile: z.string().min(1).optional(),
});

const tlsSchema = z.strictObject({
  /** The cluster CA's certificate (PEM): the only CA trusted. */
  caFile: z.string().min(1),
  /** A node's certificate and key; `{id}` is replaced by the node's id. The certificate names `node-<id>`. */
  certFile: z.string().min(1),
  keyFile: z.string().min(1),
  /** A client's certificate and key (`{id}`: the client's id); the certificate names `client-<id>`. */
  clientCertFile: z.string().min(1).optional(),
  clientKeyFile: z.string().min(1).optional(),
});

const clusterSchema = z.strictObject({
  name: z.string().min(1).max(100).optional(),
  /**
   * The cluster's id in every frame's envelope (1..2^32-1): frames of another cluster are refused.
   * Default: derived from the name and the nodes' ids and addresses (see {@link clusterIdOfConfig}).
   */
  clusterId: z.int().min(1).max(0xffff_ffff).optional(),
  /** Authentication: the cluster key (docs/security.md, "Authentication and identity"). */
  auth: authSchema.optional(),
  /** Mutual TLS for `"transport": "tcp"` (docs/security.md, "Mutual TLS"). */
  tls: tlsSchema.optional(),
  nodes: z.array(nodeSchema).min(1).max(255),
  quorum: quorumSchema.optional(),
  transport: z.enum(["udp", "tcp"]).optional(),
  codec: z.enum(["binary", "json"]).optional(),
  tickMs: z.int().min(1).max(10_000).optional(),
  /** Batching: most commands per slot (1 turns batching off) and slots in flight. */
  batchCommandsMax: z.int().min(1).max(4096).optional(),
  windowSlots: z.int().min(1).max(1024).optional(),
  /** Snapshots: after this many estimated bytes of decided values (0: never), keeping this many slots. */
  snapshotLogBytes: z
    .int()
    .min(0)
    .max(2 ** 40)
    .optional(),
  logRetainSlots: z.int().min(0).max(1_000_000).optional(),
  /**
   * Session limits: most clients, and most ranges of delivered seqs per client. Cluster-wide (they
   * decide which commands replicas apply); the ceilings bound a snapshot's session list.
   */
  clientsMax: z.int().min(1).max(10_000_000).optional(),
  clientRangesMax: z.int().min(1).max(1_000_000).optional(),
});

export type ClusterNode = z.infer<typeof nodeSchema>;

/** Mutual TLS files, as written in the cluster file (relative to it; `{id}` replaced by an id). */
export type ClusterTls = z.infer<typeof tlsSchema>;

/** Where a cluster's key comes from: paths as written in the cluster file (relative to it). */
export interface ClusterAuth {
  readonly keyFile?: string;
  readonly acceptKeyFile?: string;
}

/** A cluster of collapsed nodes (`paxos node`, `paxos cluster`). */
export interface ClusterConfig {
  readonly name: string;
  /** The cluster id in every envelope; absent: derived ({@link clusterIdOfConfig}). */
  readonly clusterId?: number;
  /** The cluster key's files; absent: `PAXOS_CLUSTER_KEY`, or none (unauthenticated). */
  readonly auth?: ClusterAuth;
  /** Mutual TLS over TCP; absent: plain TCP. */
  readonly tls?: ClusterTls;
  readonly nodes: readonly ClusterNode[];
  readonly acceptors: readonly AcceptorSpec[];
  readonly quorum: QuorumSpec;
  readonly transport: "udp" | "tcp";
  readonly codec: "binary" | "json";
  readonly tickMs: number;
  readonly batchCommandsMax?: number;
  readonly windowSlots?: number;
  /**
   * A node snapshots its state machine and compacts its log once the values decided since its last
   * snapshot reach this many estimated bytes (0: never). Default {@link DEFAULT_SNAPSHOT_LOG_BYTES}.
   */
  readonly snapshotLogBytes: number;
  /** Decided slots a node keeps in memory below its snapshot, for peers a little behind. */
  readonly logRetainSlots?: number;
  /**
   * The session table's limits (`Limits.clientsMax`, `Limits.clientRangesMax`; defaults from
   * `DEFAULT_LIMITS`). They decide which decided commands are applied and which refused, so they
   * belong to the cluster, not to a node: every node reads them from this one file, and a snapshot
   * built under other limits is refused (see docs/durability.md, "Client sessions and their limits").
   */
  readonly sessionLimits: SessionLimits;
}

/** 32 MiB of estimated value bytes (about 350,000 values of 10 characters) between snapshots. */
export const DEFAULT_SNAPSHOT_LOG_BYTES = 32 * 1024 * 1024;

/**
 * Parses and checks a cluster file:
 * `{"nodes": [{"id": 1, "host": "127.0.0.1", "port": 7101}, ...], "quorum": {"kind": "majority"},
 *   "transport": "udp"}`. Errors name the field at fault.
 */
export function parseClusterConfig(text: string): Result<ClusterConfig, string> {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    return err(`not valid JSON: ${(error as Error).message}`);
  }
  const parsed = clusterSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const path = issue?.path.length ? issue.path.join(".") : "(top level)";
    return err(`${path}: ${issue?.message ?? "invalid"}`);
  }
  const config = parsed.data;
  if (config.tls !== undefined && config.transport !== "tcp") return err(`tls: needs "transport": "tcp"`);
  const seen = new Set<number>();
  const addresses = new Map<string, number>();
  for (const [index, node] of config.nodes.entries()) {
    if (seen.has(node.id)) return err(`nodes: id ${node.id} appears twice`);
    seen.add(node.id);
    const hostProblem = nodeHostProblem(node.host);
    if (hostProblem !== null) return err(`nodes.${index}.host: ${hostProblem}`);
    const address = `${node.host}:${node.port}`;
    const other = addresses.get(address);
    if (other !== undefined)
      return err(
        `nodes.${index}: node ${node.id} has the address of node ${other} (${address}); each node needs its own`,
      );
    addresses.set(address, node.id);
  }
  const acceptors: AcceptorSpec[] = config.nodes
    .filter((node) => node.acceptor !== false)
    .map((node) => (node.weight === undefined ? { id: node.id } : { id: node.id, weight: node.weight }));
  const quorum: QuorumSpec = config.quorum ?? { kind: "majority" };
  const check = createQuorumSystem(acceptors, quorum);
  if (!check.ok) return err(`quorum: ${check.error}`);
  return ok({
    name: config.name ?? "paxos",
    ...(config.clusterId !== undefined ? { clusterId: config.clusterId } : {}),
    ...(config.auth !== undefined ? { auth: config.auth } : {}),
    ...(config.tls !== undefined ? { tls: config.tls } : {}),
    nodes: config.nodes,
    acceptors,
    quorum,
    transport: config.transport ?? "udp",
    codec: config.codec ?? "binary",
    tickMs: config.tickMs ?? 10,
    ...(config.batchCommandsMax !== undefined ? { batchCommandsMax: config.batchCommandsMax } : {}),
    ...(config.windowSlots !== undefined ? { windowSlots: config.windowSlots } : {}),
    snapshotLogBytes: config.snapshotLogBytes ?? DEFAULT_SNAPSHOT_LOG_BYTES,
    ...(config.logRetainSlots !== undefined ? { logRetainSlots: config.logRetainSlots } : {}),
    sessionLimits: {
      clientsMax: config.clientsMax ?? DEFAULT_LIMITS.clientsMax,
      clientRangesMax: config.clientRangesMax ?? DEFAULT_LIMITS.clientRangesMax,
    },
  });
}

/**
 * Why a node's `host` cannot be used, or null: the transports send to IPv4 addresses (udp4, and TCP
 * to the address as written), so a host name would never be reached and an IPv6 address would fail
 * when the node binds it; both are refused here, with what to write instead.
 */
function nodeHostProblem(host: string): string | null {
  const kind = isIP(host);
  if (kind === 4) return null;
  if (kind === 6)
    return `"${host}" is an IPv6 address; nodes talk over IPv4 only (for loopback, write 127.0.0.1)`;
  return `"${host}" is not an IPv4 address (host names are not resolved; write the node's address${host === "localhost" ? ", 127.0.0.1" : ""})`;
}

/**
 * The cluster id a cluster's frames carry: the file's `clusterId`, or else a 32-bit hash of its name
 * and of every node's id, host and port, so that two clusters on one network differ unless they are
 * configured alike. Set `clusterId` to keep the id when the node list changes.
 */
export function clusterIdOfConfig(config: Pick<ClusterConfig, "name" | "nodes" | "clusterId">): number {
  if (config.clusterId !== undefined) return config.clusterId;
  const nodes = config.nodes.map((node) => `${node.id}@${node.host}:${node.port}`).join(",");
  return clusterIdOf(`cluster ${config.name} ${nodes}`);
}

/** The cluster id of a course deployment: a hash of its four group addresses. */
export function clusterIdOfCourse(config: CourseConfig): number {
  const groups = (["client", "proposer", "acceptor", "learner"] as const)
    .map((role) => `${role}=${config.groups[role].host}:${config.groups[role].port}`)
    .join(",");
  return clusterIdOf(`course ${groups}`);
}

/**
 * What a collapsed node's `Replica` takes from the cluster file: who may propose (every node), the
 * batching and session limits, the members whose catch-up and snapshots it serves and takes, and the
 * snapshot settings. `paxos node` and `startNode` build their replicas from it, so they agree.
 */
export function replicaOptionsOf(
  cluster: ClusterConfig,
): Pick<ReplicaOptions, "proposers" | "limits" | "members" | "snapshotLogBytes" | "logRetainSlots"> {
  const ids = cluster.nodes.map((node) => node.id);
  return {
    proposers: ids,
    limits: {
      ...(cluster.batchCommandsMax !== undefined ? { batchCommandsMax: cluster.batchCommandsMax } : {}),
      ...(cluster.windowSlots !== undefined ? { windowSlots: cluster.windowSlots } : {}),
      clientsMax: cluster.sessionLimits.clientsMax,
      clientRangesMax: cluster.sessionLimits.clientRangesMax,
    },
    // Catch-up and snapshots are served to, and taken from, the cluster's nodes only (issue 9).
    members: { acceptors: cluster.acceptors.map((a) => a.id), proposers: ids, learners: ids },
    snapshotLogBytes: cluster.snapshotLogBytes,
    ...(cluster.logRetainSlots !== undefined ? { logRetainSlots: cluster.logRetainSlots } : {}),
  };
}

/**
 * Proposer timeouts for real processes, in 10 ms ticks: heartbeats every 30 ms, elections after
 * 300 to 600 ms of silence. Wider than the simulator's, because a loaded machine (many processes on
 * two cores) can stall a process for a hundred milliseconds or more.
 */
export const RUNTIME_TIMING = Object.freeze({ heartbeatTicks: 3, electionTimeoutTicks: 30 });
