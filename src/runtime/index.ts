/** The runtime: real time, sockets and storage driving the pure core. */
export { type AddressBook, ClusterAddressBook, GroupAddressBook } from "./address-book.js";
export {
  type ClusterAuth,
  type ClusterConfig,
  type ClusterNode,
  type ClusterTls,
  COURSE_GROUPS,
  type CourseConfig,
  clusterIdOfConfig,
  clusterIdOfCourse,
  DEFAULT_SNAPSHOT_LOG_BYTES,
  parseClusterConfig,
  parseCourseConfig,
  RUNTIME_TIMING,
  replicaOptionsOf,
} from "./config.js";
export {
  DATA_DIR_MESSAGES,
  type DataDirError,
  type DataDirEvent,
  type DataDirFileSystem,
  holdsNoRecords,
  isLogFileName,
  nodeDataDirFileSystem,
  type OpenDataDirOptions,
  type OpenedDataDir,
  openDataDir,
  prepareDataDirPath,
  REJOIN_STEPS,
  type RejoinReason,
  type RejoinStep,
  rejoinTempDir,
} from "./data-dir.js";
export { lockDataDirOrError } from "./data-dir-lock.js";
export {
  Driver,
  type DriverOptions,
  type DriverStats,
  NOTICES_PER_SECOND_MAX,
  REAL_SCHEDULER,
  type RoleLike,
  type Scheduler,
} from "./driver.js";
export {
  CLUSTER_ACCEPT_KEY_ENV,
  CLUSTER_KEY_ENV,
  type ClusterKeys,
  clusterEnvelope,
  courseEnvelope,
  type IdentityOptions,
  type KeySources,
  loadClusterKeys,
  NO_KEYS,
  NODE_ROLES,
  nextIncarnation,
  UNAUTHENTICATED_WARNING,
} from "./identity.js";
export { DigestMachine, type StateMachine } from "./state-machine.js";
