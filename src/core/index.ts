/**
 * The pure Paxos core: no I/O, no clock, no randomness but the seeded PRNG handed in. Each role takes
 * a message (or a tick, or client commands) and returns an {@link Output}: what to persist, what to
 * send now, what to send only after persisting, and what was decided.
 */
export { Acceptor, type AcceptorBugs, type AcceptorOptions, type AcceptorState } from "./acceptor.js";
export { assert, InvariantViolation } from "./assert.js";
export * from "./ballot.js";
export { Client, type ClientOptions } from "./client.js";
export {
  CLAIMED_SLOT_CEILING,
  DEFAULT_LOG_RETAIN_SLOTS,
  Learner,
  type LearnerBugs,
  type LearnerOptions,
  snapshotWindowChunks,
} from "./learner.js";
export { DEFAULT_LIMITS, type Limits } from "./limits.js";
export { type ClusterMembers, clusterMembers, MemberSet } from "./members.js";
export * from "./messages.js";
export * from "./output.js";
export { copyAscii, isWellFormedUnicode, payloadProblem, utf8ByteLength } from "./payload.js";
export { isPrintableAsIs, parsePrintedLine, printableLine } from "./printable.js";
export { Prng } from "./prng.js";
export {
  DEFAULT_PROPOSER_TIMING,
  Proposer,
  type ProposerBugs,
  type ProposerMode,
  type ProposerOptions,
  type ProposerState,
  type ProposerTiming,
} from "./proposer.js";
export * from "./quorum.js";
export { ReadIndex, type ReadOutcome } from "./read-index.js";
export { Refusals } from "./refusals.js";
export {
  Replica,
  type ReplicaBugs,
  type ReplicaOptions,
  type ReplicaState,
  rejoinReportsSuffice,
} from "./replica.js";
export { err, ok, type Result } from "./result.js";
export {
  type DeliveryOutcome,
  type SessionBugs,
  type SessionLimits,
  SessionTable,
  sessionLimitsProblem,
  sessionListBody,
  sessionListLimits,
} from "./sessions.js";
export { chunkEnd, decodeSnapshot, encodeSnapshot, type Snapshot, textChecksum } from "./snapshot.js";
export { backoffTicks, Timeout } from "./timeout.js";
export { valueBytesEstimate } from "./value-size.js";
