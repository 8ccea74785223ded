import type { NodeId } from "./ballot.js";
import type { Role } from "./messages.js";

/**
 * The ids of a cluster's members, by role (ids are per role: proposer 1 and learner 1 may be two
 * processes). A learner answers catch-up and snapshot requests, and takes decided values, snapshot
 * chunks and heartbeats, only from members (issue 9). In a collapsed cluster every node is in every
 * list. The course-harness layout lists no ids (multicast groups), so its roles run without.
 *
 * @example
 * const members = clusterMembers([1, 2, 3]); // three replicas
 */
export interface ClusterMembers {
  readonly acceptors: readonly NodeId[];
  readonly proposers: readonly NodeId[];
  readonly learners: readonly NodeId[];
}

/** The members of a collapsed cluster: every node plays every role. */
export function clusterMembers(ids: readonly NodeId[]): ClusterMembers {
  return { acceptors: ids, proposers: ids, learners: ids };
}

/** Membership lookups by role; `null` members (not known) let every id through. */
export class MemberSet {
  private readonly byRole: ReadonlyMap<Role, ReadonlySet<NodeId>> | null;

  constructor(members: ClusterMembers | null) {
    this.byRole =
      members === null
        ? null
        : new Map<Role, ReadonlySet<NodeId>>([
            ["acceptor", new Set(members.acceptors)],
            ["proposer", new Set(members.proposers)],
            ["learner", new Set(members.learners)],
          ]);
  }

  /** Whether the members are known (otherwise `has` is true of every id of a cluster role). */
  get known(): boolean {
    return this.byRole !== null;
  }

  /** Whether `id` is a member in `role` (clients never are). */
  has(role: Role, id: NodeId): boolean {
    if (role === "client") return false;
    return this.byRole === null || (this.byRole.get(role)?.has(id) ?? false);
  }
}
