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
  /**
   * Client commands a proposer holds waiting for a slot, from all clients. Beyond it a new command is
   * not taken, and the leader tells its client so (`refuse`, "pending-full": not final, the client
   * sends it again later). Bounds the queue's memory at this many payloads (`payloadBytesMax` each).
   */
  readonly pendingCommandsMax: number;
  /**
   * Commands of one client a proposer holds waiting for a slot. Beyond it that client's new commands
   * are not taken, and the leader tells it so (`refuse`, "client-pending-full": not final), so one
   * client (or one flood under one made-up id) cannot take the whole pending queue from the others.
   * As large as a client's default window (`Client` `windowCommands`, 16,384): an honest client
   * never has more commands unacked, so never more pending.
   */
  readonly clientPendingCommandsMax: number;
  /** Most votes in one promise page, and most decided slots in one decide message. */
  readonly entriesPerMessageMax: number;
  /** Most estimated bytes of values in one promise page or decide message. */
  readonly bytesPerMessageMax: number;
  /** Most slots one catch-up request asks for. */
  readonly catchupSlotsMax: number;
  /**
   * Slots past `deliveredThrough + windowSlots` a learner still tracks: 256 (issue 9). Votes, decided
   * values waiting for a hole below them, and the part of a heartbeat's `decidedThrough` it takes on,
   * all lie within this horizon; beyond it votes are refused ("vote-beyond-horizon") and a heartbeat
   * is taken only up to it ("heartbeat-beyond-horizon"). At least `catchupSlotsMax`, so one catch-up
   * answer always fits. Honest votes come at most a window past the leader's delivered prefix; a
   * learner further behind drops them and catches up instead. The bound keeps a learner's tallies at
   * (windowSlots + this) slots times `tallyBallotsPerSlotMax`, whatever arrives.
   */
  readonly learnerMarginSlots: number;
  /**
   * Ballots a learner tallies votes for in one slot: 4. An honest slot sees a new ballot only when
   * a leader changes before it is decided; a vote at a fifth ballot is refused
   * ("tally-ballots-full"), and the slot is learned by catch-up instead. The learner's own
   * proposer's ballot always gets a tally (it replaces the lowest).
   */
  readonly tallyBallotsPerSlotMax: number;
  /**
   * Catch-up and snapshot requests a learner keeps track of (oldest dropped first): 32. A `decide`
   * or the first chunk of a snapshot is taken only in answer to one of them (issue 9).
   */
  readonly learnerRequestsMax: number;
  /**
   * Ticks a learner waits for answers to one request before it forgets it: 200 (2 s at 10 ms ticks;
   * twenty catch-up rounds). A late answer after that is refused ("decide-unrequested") and only
   * prompts a fresh request.
   */
  readonly learnerRequestTicks: number;
  /**
   * Catch-up and snapshot requests a learner answers per peer in a burst (the size of a token
   * bucket), and the tokens each tick adds back (`serveRequestsPerTick`): 64 and 2, so a peer
   * catching up is served 200 answers a second at 10 ms ticks (one decide message or one snapshot
   * window each). Past it, requests are refused ("serve-rate").
   */
  readonly serveRequestsBurst: number;
  readonly serveRequestsPerTick: number;
  /**
   * Peers a learner keeps a token bucket for when it does not know the cluster's members (the
   * course-harness layout, where ids are not listed anywhere): 256. Idle buckets go first; past it a
   * new peer is refused ("serve-peers-full"). With members known, only they get one.
   */
  readonly servePeersMax: number;
  /**
   * Estimated bytes (3 a UTF-16 unit) of snapshot chunks sent in answer to one request: 64 KiB, so
   * a 20-byte request is answered with at most about 64 KiB (two chunks at the default chunk size).
   * A catch-up is answered with one `decide` message (`entriesPerMessageMax`, `bytesPerMessageMax`).
   */
  readonly snapshotAnswerBytesMax: number;
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
  /**
   * Largest snapshot a learner assembles from chunks, in UTF-16 units (a bound on memory): 64 Mi
   * units. A chunk claiming more is refused ("snapshot-too-large"). It must stay below V8's longest
   * string (2^29 - 24 units; the former 512 Mi was above it, and assembling that much threw a
   * RangeError), and assembly holds the parts, the joined text and the decoded state at once: about
   * 3 x 128 MiB at this bound, within a default Node heap. A state larger than this cannot be
   * transferred by snapshot; compact it or raise the bound on every node together.
   */
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
  /**
   * Linearizable reads a leader holds while it confirms its leadership (`Replica.read`): 100,000.
   * Each is two numbers until one confirmation answers them all; past it a read is refused at once
   * (the caller reports the node busy), so a flood of reads costs bounded memory.
   */
  readonly readsPendingMax: number;
}

export const DEFAULT_LIMITS: Limits = Object.freeze({
  payloadBytesMax: 8192,
  batchCommandsMax: 512,
  batchBytesMax: 48 * 1024,
  windowSlots: 64,
  pendingCommandsMax: 1_000_000,
  clientPendingCommandsMax: 16_384,
  entriesPerMessageMax: 64,
  bytesPerMessageMax: 48 * 1024,
  catchupSlotsMax: 256,
  learnerMarginSlots: 256,
  tallyBallotsPerSlotMax: 4,
  learnerRequestsMax: 32,
  learnerRequestTicks: 200,
  serveRequestsBurst: 64,
  serveRequestsPerTick: 2,
  servePeersMax: 256,
  snapshotAnswerBytesMax: 64 * 1024,
  requestCommandsMax: 256,
  clientsMax: 100_000,
  clientRangesMax: 16_384,
  snapshotChunkUnits: 10 * 1024,
  snapshotChunksPerRequest: 8,
  snapshotUnitsMax: 64 * 1024 * 1024,
  snapshotPinsMax: 8,
  snapshotPinIdleTicks: 1000,
  ballotRoundMax: 2 ** 40,
  ballotJumpRoundsMax: 2 ** 24,
  slotHorizonMarginSlots: 4096,
  readsPendingMax: 100_000,
});

/**
 * Estimated encoded size of a command from its payload's length in UTF-16 units: at most 3 UTF-8
 * bytes a unit, plus the ids and framing. Exact enough for the binary codec; the JSON codec (for
 * debugging) can exceed it with payloads full of control characters, which it escapes to 6 bytes.
 */
export function commandBytesEstimate(payloadLength: number): number {
  return payloadLength * 3 + 64;
}
