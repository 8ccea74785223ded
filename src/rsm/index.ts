/**
 * The replicated applications: a key-value store and a lock service, as deterministic state machines
 * (every replica applies the same commands in the same order and gets the same results), and the
 * session layer that runs them with exactly-once client sessions.
 */

// A node's metrics (`PaxosNode.metrics`), for programs that serve or merge them.
export type { NodeMetrics, NodeMetricsSample } from "../observe/index.js";
export {
  type Application,
  type ApplyContext,
  HTTP_STATUS_OF,
  type NodeEvents,
  type NodeStatus,
  PaxosError,
  type PaxosErrorCode,
  type PaxosNodeApi,
  type ProposeOptions,
  type SessionRef,
} from "./api.js";
export {
  DEFAULT_HEALTH_LIMITS,
  type HealthLimits,
  HTTP_HEADERS,
  type HttpApi,
  type HttpApiOptions,
  healthProblem,
  type KvLockNode,
  type StorageStanding,
  startHttpApi,
} from "./http.js";
export {
  type KvChange,
  type KvCommand,
  type KvEntry,
  type KvError,
  type KvResult,
  KvStore,
} from "./kv.js";
export { type AppCommand, type AppResult, KvLockApp, type KvLockAppOptions } from "./kv-lock-app.js";
export {
  type AppLimits,
  DEFAULT_APP_LIMITS,
  DEFAULT_HTTP_LIMITS,
  DEFAULT_NODE_LIMITS,
  DEFAULT_SESSION_LIMITS,
  type HttpLimits,
  type NodeLimits,
  type SessionLimits,
  utf8Bytes,
} from "./limits.js";
export {
  type LockApplied,
  type LockCommand,
  type LockError,
  type LockGrant,
  type LockResult,
  LockService,
} from "./lock.js";
export {
  type NodeBugs,
  type NodeHost,
  type NodeOptions,
  type NodeParts,
  PaxosNode,
  startNode,
} from "./node.js";
export {
  decodeEnvelope,
  encodeEnvelope,
  type SessionEnvelope,
  SessionMachine,
  type SessionMachineOptions,
  type SessionOutcome,
} from "./session-machine.js";
