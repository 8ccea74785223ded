/**
 * Limits on everything that can grow. Each bound says why it is what it is. A driver may lower them;
 * raising the message-size ones past what a UDP datagram holds breaks the UDP transports.
 */
export interface Limits {
  /** Largest client payload, in UTF-8 bytes. Larger commands are refused at the edge. */
  readonly payloadBytesMax: number;
  /** Most commands in one slot's batch: bounds the size of an accept message. */
  readonly batchCommandsMax: number;
  /**
   * Most payload bytes in one slot's batch (estimated at 3 bytes a character plus framing), so an
   * accept still fits one 64 KiB UDP datagram.
   */
  readonly batchBytesMax: number;
  /** Slots a leader may have in flight (proposed, not yet decided): the pipelining window. */
  readonly windowSlots: number;
  /** Client commands a proposer holds waiting for a slot; beyond this new requests are dropped. */
  readonly pendingCommandsMax: number;
  /** Most votes in one promise page, and most decided slots in one decide message. */
  readonly entriesPerMessageMax: number;
  /** Most estimated bytes of values in one promise page or decide message. */
  readonly bytesPerMessageMax: number;
  /** Most slots one catch-up request asks for. */
  readonly catchupSlotsMax: number;
  /** Most commands in one client request message. */
  readonly requestCommandsMax: number;
  /**
   * Most distinct clients whose delivered sequence numbers a learner remembers (a session each; no
   * session is ever evicted, which could let a resent value be applied twice). Past it, a decided
   * command of a new client is refused and its client told (`RefuseMessage`, "clients-full").
   * Cluster-wide: it decides which commands replicas apply, so every replica must use the same value
   * (cluster configuration; recorded in snapshots, which a replica under another value refuses).
   */
  readonly clientsMax: number;
  /**
   * Ranges of delivered sequence numbers a learner keeps per client (a client numbering without gaps
   * needs one; each restart from a higher base adds one; commands decided out of order open gaps for
   * a while). A decided command that would open one more is refused, and the client is closed: its
   * undelivered commands are all refused from then on ("client-gaps"), so a refusal is final. No gap is
   * ever given up (that acked commands never applied). Half the client window or more, so in-flight
   * gaps never reach it. Cluster-wide, like `clientsMax`.
   */
  readonly clientRangesMax: number;
  /**
   * Characters (UTF-16 units) of a snapshot in one `snapshot-chunk`: at most 3 UTF-8 bytes each, so
   * a chunk fits one 64 KiB UDP datagram.
   */
  readonly snapshotChunkUnits: number;
  /** Chunks a learner sends for one request: the transfer's window. */
  readonly snapshotChunksPerRequest: number;
  /** Largest snapshot a learner assembles from chunks, in UTF-16 units (a bound on memory). */
  readonly snapshotUnitsMax: number;
}

export const DEFAULT_LIMITS: Limits = Object.freeze({
  payloadBytesMax: 8192,
  batchCommandsMax: 512,
  batchBytesMax: 48 * 1024,
  windowSlots: 64,
  pendingCommandsMax: 1_000_000,
  entriesPerMessageMax: 64,
  bytesPerMessageMax: 48 * 1024,
  catchupSlotsMax: 256,
  requestCommandsMax: 256,
  clientsMax: 100_000,
  clientRangesMax: 16_384,
  snapshotChunkUnits: 10 * 1024,
  snapshotChunksPerRequest: 8,
  snapshotUnitsMax: 512 * 1024 * 1024,
});

/**
 * Estimated encoded size of a command from its payload's length in UTF-16 units: at most 3 UTF-8
 * bytes a unit, plus the ids and framing. Exact enough for the binary codec; the JSON codec (for
 * debugging) can exceed it with payloads full of control characters, which it escapes to 6 bytes.
 */
export function commandBytesEstimate(payloadLength: number): number {
  return payloadLength * 3 + 64;
}
