/** The runtime: real time, sockets and storage driving the pure core. */
export { type AddressBook, ClusterAddressBook, GroupAddressBook } from "./address-book.js";
export {
  type ClusterConfig,
  type ClusterNode,
  COURSE_GROUPS,
  type CourseConfig,
  parseClusterConfig,
  parseCourseConfig,
} from "./config.js";
export { describeMessage } from "./describe.js";
export { Driver, type DriverOptions, type DriverStats, type RoleLike } from "./driver.js";
