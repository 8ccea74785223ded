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
  /**
   * Peers a learner serves a snapshot transfer to at once, each from the snapshot its transfer
   * started on (pinned: see `Learner`), so that a transfer finishes however often snapshots are
   * taken. A pin holds one snapshot text alive (peers that started on the same snapshot share it),
   * so this bounds the memory transfers cost a server at this many snapshots beyond its own. A
   * cluster has few nodes catching up at once: 8 covers every other replica of a 7-node cluster and
   * one separate learner. Past it the pin idle the longest is dropped (counted), and its peer, if
   * still there, starts over on the newest snapshot.
   */
  readonly snapshotPinsMax: number;
  /**
   * Ticks a pinned snapshot is kept after its peer last asked for it. Longer than a receiver waits
   * before it gives a stalled transfer up (catchupTicks x 9 silent retries: 90 ticks by default),
   * so a pin outlives every transfer still going on; short enough (10 s at 10 ms ticks) that the
   * memory of a peer that went away comes back soon.
   */
  readonly snapshotPinIdleTicks: number;
  /**
   * Highest ballot round a role takes from a message or uses itself: 2^40. A message with a ballot
   * above it is refused ("ballot-above-ceiling"); a proposer that would need a higher round does not
   * campaign ("ballot-rounds-exhausted"). Far below 2^53 so that round arithmetic (a round plus one,
   * plus a jump) stays exact; far above any honest use: rounds rise by one per election over the
   * highest seen, and at a thousand elections a second 2^40 rounds last 34 years. A member that runs
   * them up must do so in jumps of at most `ballotJumpRoundsMax`: 2^16 frames, none of which alone
   * does it (see docs/security.md).
   */
  readonly ballotRoundMax: number;
  /**
   * Most rounds a ballot taken from a message may lie above the highest round this node knows of
   * (seen or used itself, or vouched for by a quorum of acceptors): 2^24. Beyond it the message is
   * refused ("ballot-jump"). Honest ballots are one round above what their proposer has seen; a node
   * falls 2^24 rounds behind only if the cluster held 16 million elections while it was away, and
   * even then it learns the current level from a quorum of acceptors' votes (see docs/security.md).
   */
  readonly ballotJumpRoundsMax: number;
  /**
   * Slots beyond what a node knows (decided, voted or proposed) plus the window that a message may
   * still name: 4096. An accept, a heartbeat's `decidedThrough`/`proposedThrough`, a promise's slots
   * or a reject's slot beyond it is refused ("slot-beyond-horizon"). Honest messages name slots at
   * most a window past what their sender knows decided; the margin covers a node a few thousand slots
   * behind, and a node further behind learns the level from a quorum of acceptors' votes.
   */
  readonly slotHorizonMarginSlots: number;
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
  snapshotPinsMax: 8,
  snapshotPinIdleTicks: 1000,
  ballotRoundMax: 2 ** 40,
  ballotJumpRoundsMax: 2 ** 24,
  slotHorizonMarginSlots: 4096,
});

/**
 * Estimated encoded size of a command from its payload's length in UTF-16 units: at most 3 UTF-8
 * bytes a unit, plus the ids and framing. Exact enough for the binary codec; the JSON codec (for
 * debugging) can exceed it with payloads full of control characters, which it escapes to 6 bytes.
 */
export function commandBytesEstimate(payloadLength: number): number {
  return payloadLength * 3 + 64;
}
