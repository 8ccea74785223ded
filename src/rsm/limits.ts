/**
 * The bounds of the replicated applications (the key-value store and the lock service), each with
 * the reason for it; docs/security.md's bounds table lists them with the core's. A command past one
 * is refused with a clear error (a result, never an exception), before it changes anything.
 */
export interface AppLimits {
  /** Bytes of a key (UTF-8): keys are indexed and listed, so they stay short. */
  readonly keyBytesMax: number;
  /**
   * Bytes of a value (UTF-8). A command travels as one payload of at most `Limits.payloadBytesMax`
   * (8 KiB): a value this size leaves room for its key and the command's framing.
   */
  readonly valueBytesMax: number;
  /** Keys in the store: its snapshot (every replica's memory) is bounded by keys x (key + value). */
  readonly keysMax: number;
  /** Keys one `list` returns at most (it says when there are more). */
  readonly listKeysMax: number;
  /**
   * Changes kept for watches (a watch from an older revision gets "compacted", as in etcd): bounds
   * the history every replica keeps and snapshots.
   */
  readonly watchHistoryMax: number;
  /** Bytes of a lock's name. */
  readonly lockNameBytesMax: number;
  /** Locks held or waited for at once. */
  readonly locksMax: number;
  /** Waiters on one lock, and on all of them: a waiter is memory on every replica until granted. */
  readonly waitersPerLockMax: number;
  readonly waitersMax: number;
  /**
   * Clients (client sessions) holding or waiting for a lock at once: the lock service indexes each
   * one's locks so that an expiring session is dropped in time proportional to its own locks.
   */
  readonly lockSessionsMax: number;
}

export const DEFAULT_APP_LIMITS: AppLimits = {
  keyBytesMax: 512,
  valueBytesMax: 7 * 1024,
  keysMax: 1_000_000,
  listKeysMax: 10_000,
  watchHistoryMax: 10_000,
  lockNameBytesMax: 512,
  locksMax: 100_000,
  waitersPerLockMax: 1_000,
  waitersMax: 100_000,
  lockSessionsMax: 100_000,
};

/**
 * The bounds of the session layer (`SessionMachine`): client sessions and the results they keep for
 * exactly-once retries. Every replica keeps all of it in memory and in every snapshot, so each is
 * bounded; a command past one gets `busy` (nothing was done) on every replica alike. The values must
 * be the same on every node of a cluster: they decide outcomes.
 */
export interface SessionLimits {
  /**
   * A session with no command applied for this long, in the log's time, expires. Long enough for a
   * client to ride out a leader election and a few retries with backoff (seconds), short enough
   * that a crashed client's locks go to the next waiter soon after.
   */
  readonly sessionTtlMs: number;
  /**
   * Sessions open at once: each is memory on every replica until it expires, and opening one is a
   * cheap command, so a client opening sessions in a loop must not grow the state without bound.
   */
  readonly sessionsMax: number;
  /**
   * Results one session keeps until its client acknowledges them: how many commands a client may
   * have in flight at once (pipelining). A client with one command at a time keeps one.
   */
  readonly resultsPerSessionMax: number;
  /**
   * Results kept by all sessions together: sessionsMax x resultsPerSessionMax (10^8 results) would
   * not fit in memory, so the total is bounded too. Twice `sessionsMax`: every session can keep its
   * last result, with as much room again for clients that pipeline.
   */
  readonly resultsMax: number;
}

export const DEFAULT_SESSION_LIMITS: SessionLimits = {
  sessionTtlMs: 30_000,
  sessionsMax: 100_000,
  resultsPerSessionMax: 1_024,
  resultsMax: 200_000,
};

/** Bytes of a string in UTF-8 (without encoding it). */
export function utf8Bytes(text: string): number {
  let bytes = 0;
  for (let i = 0; i < text.length; i++) {
    const unit = text.charCodeAt(i);
    if (unit < 0x80) bytes += 1;
    else if (unit < 0x800) bytes += 2;
    else if (unit >= 0xd800 && unit <= 0xdbff && i + 1 < text.length) {
      bytes += 4;
      i++;
    } else bytes += 3;
  }
  return bytes;
}

/**
 * One node's own bounds and timeouts (`startNode`): what it holds for its callers. Unlike the
 * session limits they decide no outcome, so nodes of a cluster may differ.
 */
export interface NodeLimits {
  /**
   * Proposals this node waits on at once. Below the core's `clientPendingCommandsMax` (16,384): a
   * node proposes as one client of the cluster, and a leader takes at most that many of one
   * client's commands pending; past it a proposal is refused at once (`busy`).
   */
  readonly pendingProposalsMax: number;
  /** Linearizable reads waiting at once (the core's `readsPendingMax` on the leader). */
  readonly readsPendingMax: number;
  /**
   * How long a proposal waits for its outcome before `timeout` (unknown: it may still be applied).
   * Longer than an election (300 to 600 ms at the default tick) and a few retries.
   */
  readonly proposeTimeoutMs: number;
  /** How long a read waits for the leader's confirmation and the application to catch up. */
  readonly readTimeoutMs: number;
  /**
   * How often a leading node puts its time in the log (a `clock` entry: the log's clock, by which
   * sessions expire). A tenth of the default session TTL: a session expires within a tenth of its
   * TTL of its time, at a cost of one small log entry every few seconds.
   */
  readonly clockIntervalMs: number;
}

export const DEFAULT_NODE_LIMITS: NodeLimits = {
  pendingProposalsMax: 10_000,
  readsPendingMax: 10_000,
  proposeTimeoutMs: 10_000,
  readTimeoutMs: 5_000,
  clockIntervalMs: 3_000,
};

/**
 * The HTTP API's bounds and timeouts (`startHttpApi`, src/rsm/http.ts): what one node holds for
 * its HTTP clients. Like `NodeLimits` they decide no outcome, so nodes may differ. Past a bound a
 * request is answered at once (413, 429), never left hanging and never buffered without limit.
 */
export interface HttpLimits {
  /**
   * Bytes of a request body. A value is at most `AppLimits.valueBytesMax` (7 KiB) and a command
   * one payload of at most 8 KiB, so a longer body can never be applied: it is answered 413 as
   * soon as its `Content-Length` (or the bytes read so far) says so, without buffering the rest.
   */
  readonly bodyBytesMax: number;
  /** Bytes of a request's headers (node:http's `maxHeaderSize`): no route needs more. */
  readonly headerBytesMax: number;
  /**
   * Open connections. Each holds a socket and a parser; a load generator keeps one per client. A
   * connection past the bound is answered 429 `busy` and closed rather than left unanswered (twice
   * the bound, node:http drops new connections at once: the last guard on file descriptors).
   */
  readonly connectionsMax: number;
  /** Watches streaming at once: each holds a connection and a queue of changes (429 past it). */
  readonly watchesMax: number;
  /**
   * Changes queued for one watcher that reads slower than the store changes (the kept history it
   * starts with, then live changes). Twice `AppLimits.watchHistoryMax`: a whole history and as
   * many live changes. Past it the stream ends with an error event; the watcher resumes from its
   * last revision (`Last-Event-ID`), as it would after any disconnection.
   */
  readonly watchQueueMax: number;
  /**
   * A comment line on every idle watch this often, so proxies keep the stream open and a vanished
   * watcher is noticed (its socket errors) within a heartbeat.
   */
  readonly watchHeartbeatMs: number;
  /** Lock requests waiting (long polls) at once: each is a connection, a timer and a listener. */
  readonly lockWaitsMax: number;
  /** How long `POST /lock/<name>` waits for a grant when the request does not say (`wait-ms`). */
  readonly lockWaitMsDefault: number;
  /**
   * The longest `wait-ms` taken: a long poll longer than this is better a loop of shorter ones
   * (proxies and load balancers cut idle requests after a few minutes).
   */
  readonly lockWaitMsMax: number;
  /**
   * While a lock request waits, the node keeps its session alive this often: a third of the
   * default session TTL (30 s), so a waiter never loses its place by waiting.
   */
  readonly lockWaitKeepAliveMs: number;
  /**
   * Keys `GET /kv?prefix=` returns when the request gives no `limit`: a list answer is built in
   * memory, and 1,000 entries of up to 7.5 KiB is 7.5 MiB at worst (`AppLimits.listKeysMax` is the
   * most a request may ask for).
   */
  readonly listKeysDefault: number;
  /** Time for a client to send a request's headers (node:http `headersTimeout`): slow-loris bound. */
  readonly headersTimeoutMs: number;
  /** Time for a client to send a whole request, body included (node:http `requestTimeout`). */
  readonly requestTimeoutMs: number;
  /** An idle keep-alive connection is closed after this long (node:http `keepAliveTimeout`). */
  readonly keepAliveTimeoutMs: number;
  /**
   * How long a follower waits for the leader's answer to a read it forwarded: the leader's own
   * read timeout (`NodeLimits.readTimeoutMs`, 5 s) and some.
   */
  readonly forwardTimeoutMs: number;
  /** Connections a follower keeps to the leader for forwarded reads (reused: keep-alive). */
  readonly forwardSocketsMax: number;
}

export const DEFAULT_HTTP_LIMITS: HttpLimits = {
  bodyBytesMax: 8 * 1024,
  headerBytesMax: 16 * 1024,
  connectionsMax: 1_024,
  watchesMax: 256,
  watchQueueMax: 20_000,
  watchHeartbeatMs: 15_000,
  lockWaitsMax: 1_024,
  lockWaitMsDefault: 30_000,
  lockWaitMsMax: 300_000,
  lockWaitKeepAliveMs: 10_000,
  listKeysDefault: 1_000,
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 30_000,
  keepAliveTimeoutMs: 5_000,
  forwardTimeoutMs: 10_000,
  forwardSocketsMax: 64,
};
