import type { Destination, Message, NodeId, Role } from "../core/index.js";
import type { Endpoint } from "../transport/index.js";
import type { ClusterConfig } from "./config.js";

/** Turns a core `Destination` into the endpoints a transport sends to. */
export interface AddressBook {
  resolve(to: Destination): readonly Endpoint[];
  /** Notes where a message came from (clients are not in any config: nodes answer them where they are). */
  observe(message: Message, from: Endpoint): void;
}

/**
 * Multicast, as the course harness runs: one group per role. Every member of a role hears every
 * message to that role, so a message for one member goes to its whole group and the others ignore it
 * (a promise carries its proposer's ballot, an ack its client's id).
 */
export class GroupAddressBook implements AddressBook {
  private readonly byRole: Readonly<Record<Role, readonly Endpoint[]>>;

  constructor(groups: Readonly<Record<Role, Endpoint>>) {
    this.byRole = {
      proposer: [groups.proposer],
      acceptor: [groups.acceptor],
      learner: [groups.learner],
      client: [groups.client],
    };
  }

  resolve(to: Destination): readonly Endpoint[] {
    return this.byRole[to.role];
  }

  observe(): void {}
}

/** Clients remembered at most; the oldest is forgotten first (it re-registers with its next request). */
const CLIENT_ENDPOINTS_MAX = 10_000;

/**
 * Unicast among collapsed nodes: every node plays proposer and learner, the voting ones acceptor too.
 * Clients are answered at the address their requests came from.
 */
export class ClusterAddressBook implements AddressBook {
  private readonly all: readonly Endpoint[];
  private readonly acceptors: readonly Endpoint[];
  private readonly byId = new Map<NodeId, readonly Endpoint[]>();
  private readonly clients = new Map<NodeId, readonly Endpoint[]>();

  constructor(config: ClusterConfig) {
    this.all = config.nodes.map((node) => ({ host: node.host, port: node.port }));
    this.acceptors = config.nodes
      .filter((node) => node.acceptor !== false)
      .map((node) => ({ host: node.host, port: node.port }));
    for (const node of config.nodes) this.byId.set(node.id, [{ host: node.host, port: node.port }]);
  }

  resolve(to: Destination): readonly Endpoint[] {
    if (to.role === "client") return to.id === undefined ? [] : (this.clients.get(to.id) ?? []);
    if (to.id !== undefined) return this.byId.get(to.id) ?? [];
    return to.role === "acceptor" ? this.acceptors : this.all;
  }

  observe(message: Message, from: Endpoint): void {
    if (message.type !== "request") return;
    this.clients.delete(message.from);
    if (this.clients.size >= CLIENT_ENDPOINTS_MAX) {
      const oldest = this.clients.keys().next().value as NodeId;
      this.clients.delete(oldest);
    }
    this.clients.set(message.from, [from]);
  }
}
