/**
 * UDP multicast, as the classic university Paxos course projects use it: one group address and port per
 * role (say acceptors on 239.0.0.1:7000, learners on 239.0.0.2:7000). Sending to a role is one `send` to
 * its group; every process that joined the group receives the frame, the sender included (loopback is
 * on), so callers filter out their own frames by the sender id inside the message.
 *
 * Multicast fits the ordinary {@link Transport} interface: `send(to)` takes a group endpoint (or any
 * unicast endpoint), and `onFrame` receives frames from every joined group plus unicast frames sent to
 * `localEndpoint`.
 *
 * Sockets. Each joined group gets a socket bound to the group's address and port with SO_REUSEADDR, so
 * several processes on one machine can bind the same group port and all receive every datagram.
 * Binding to the group address (not 0.0.0.0) keeps two groups on the same port apart: on Linux a socket
 * bound to 0.0.0.0 receives every group any socket on the host joined on that port. (Windows cannot
 * bind a multicast address; there we bind 0.0.0.0.) Frames leave from one separate socket bound to the
 * multicast interface's address on an ephemeral port: that is `localEndpoint`, so the `from` of every
 * frame names one transport, and a unicast reply to it arrives.
 *
 * Multicast on loopback (127.0.0.1, the default interface), as found on Linux 6.x: it works without
 * changing the system's configuration, even though `ip link show lo` shows no MULTICAST flag and
 * `ip route` has no route for 224.0.0.0/4. Joining the group on 127.0.0.1 (IP_ADD_MEMBERSHIP) does not
 * check the MULTICAST flag, and pinning the sending socket to the interface (IP_MULTICAST_IF =
 * 127.0.0.1, and binding it to 127.0.0.1) makes the kernel route group datagrams out of lo without a
 * routing-table lookup; IP_MULTICAST_LOOP then delivers them to every member socket on this host, once
 * each. What is needed is only that lo is up with 127.0.0.1 (in a fresh network namespace it is down:
 * `ip link set lo up`, or joining fails with ENODEV). Without IP_MULTICAST_IF and with an unbound
 * sending socket, datagrams would follow the default route out of another interface and never arrive.
 *
 * So that a misconfigured host fails loudly instead of silently losing datagrams, `start()` runs a
 * self-test (on by default): it joins the first group's address on a fresh ephemeral port, sends a
 * random probe from the sending socket and waits for it to come back. If the kernel refuses to join, or
 * the probe does not arrive, `start()` rejects with "multicast on 127.0.0.1 needs: ..." and what to try.
 */

import { randomBytes } from "node:crypto";
import { createSocket, type Socket } from "node:dgram";
import { isIPv4 } from "node:net";
import { asError, bindSocket, closeSocket, receiveDatagram, sendDatagram } from "./datagram.js";
import {
  createTransportStats,
  type Endpoint,
  endpointKey,
  type FrameHandler,
  isBindablePort,
  type MutableTransportStats,
  type Transport,
  type TransportStats,
} from "./transport.js";

export interface MulticastTransportOptions {
  /**
   * Groups to join and receive from (group address 224.0.0.0-239.255.255.255, and port). Default none:
   * a process that only sends to a role's group need not join it.
   */
  readonly groups?: readonly Endpoint[];
  /**
   * IPv4 address of the interface to join groups on and send from. Default `127.0.0.1`, which keeps
   * every datagram on this machine. Give a LAN address to reach other hosts.
   */
  readonly interfaceAddress?: string;
  /** IP time-to-live of sent datagrams. Default 1: never forwarded past the first router. */
  readonly ttl?: number;
  /** Deliver this host's own sends to its member sockets (IP_MULTICAST_LOOP). Default true. */
  readonly loopback?: boolean;
  /**
   * Check at `start()` that a datagram sent to a group comes back (see the module comment). Default
   * true. Skipped when `loopback` is false, since then nothing can come back to this host.
   */
  readonly selfTest?: boolean;
  /** How long the self-test waits for its probe. Default 1000 ms. */
  readonly selfTestTimeoutMs?: number;
  /** Kernel receive buffer (SO_RCVBUF) of each group socket, in bytes, if set. */
  readonly receiveBufferBytes?: number;
}

/** Probe group when no group is configured: administratively scoped, so it never leaves the site. */
const DEFAULT_PROBE_GROUP = "239.255.0.1";
/** How often the self-test resends its probe while it waits (a datagram can be lost even on lo). */
const PROBE_RESEND_MS = 25;

/**
 * UDP multicast transport.
 *
 * @example
 * const acceptors = { host: "239.0.0.1", port: 7000 };
 * const acceptor = new MulticastTransport({ groups: [acceptors] });
 * const proposer = new MulticastTransport(); // sends only
 * acceptor.onFrame((frame, from) => console.log(frame, from));
 * await acceptor.start();
 * await proposer.start();
 * proposer.send(acceptors, new Uint8Array([1])); // every acceptor on this machine receives it
 */
export class MulticastTransport implements Transport {
  private readonly counters: MutableTransportStats = createTransportStats();
  readonly stats: TransportStats = this.counters;
  /** The most recent socket error, for diagnostics (errors are counted, never thrown). */
  lastError: Error | undefined;
  /** The groups this transport receives from (deduplicated). */
  readonly groups: readonly Endpoint[];
  readonly interfaceAddress: string;
  private readonly ttl: number;
  private readonly loopback: boolean;
  private readonly selfTest: boolean;
  private readonly selfTestTimeoutMs: number;
  private readonly receiveBufferBytes: number | undefined;
  private sender: Socket | null = null;
  private receivers: Socket[] = [];
  private handler: FrameHandler | null = null;
  private bound: Endpoint;
  private starting: Promise<void> | null = null;
  /** Set once every socket is bound, joined and tested: until then `send` counts an error. */
  private ready = false;
  private closed = false;

  constructor(options: MulticastTransportOptions = {}) {
    const unique = new Map<string, Endpoint>();
    for (const group of options.groups ?? []) {
      if (!isMulticastAddress(group.host)) {
        throw new RangeError(`multicast group ${group.host} is not an IPv4 multicast address (224.0.0.0/4)`);
      }
      if (!isBindablePort(group.port) || group.port === 0) {
        throw new RangeError(`multicast group port must be 1..65535, got ${group.port}`);
      }
      unique.set(endpointKey(group), { host: group.host, port: group.port });
    }
    this.groups = [...unique.values()];
    this.interfaceAddress = options.interfaceAddress ?? "127.0.0.1";
    if (!isIPv4(this.interfaceAddress)) {
      throw new RangeError(`multicast interface must be an IPv4 address, got ${this.interfaceAddress}`);
    }
    this.ttl = options.ttl ?? 1;
    this.loopback = options.loopback ?? true;
    this.selfTest = options.selfTest ?? true;
    this.selfTestTimeoutMs = options.selfTestTimeoutMs ?? 1000;
    this.receiveBufferBytes = options.receiveBufferBytes;
    this.bound = { host: this.interfaceAddress, port: 0 };
  }

  /** The sending socket's address: the `from` other members see, and where unicast frames arrive. */
  get localEndpoint(): Endpoint {
    return this.bound;
  }

  start(): Promise<void> {
    if (this.closed) return Promise.reject(new Error("multicast transport is closed"));
    this.starting ??= this.open().catch(async (error: unknown) => {
      await this.releaseSockets();
      throw error;
    });
    return this.starting;
  }

  private async open(): Promise<void> {
    const sender = createSocket({ type: "udp4" });
    this.sender = sender;
    try {
      await bindSocket(sender, 0, this.interfaceAddress);
    } catch (error) {
      throw this.needs(`cannot bind the sending socket to ${this.interfaceAddress}`, error);
    }
    try {
      sender.setMulticastInterface(this.interfaceAddress);
      sender.setMulticastTTL(this.ttl);
      sender.setMulticastLoopback(this.loopback);
    } catch (error) {
      throw this.needs(`cannot send multicast from ${this.interfaceAddress}`, error);
    }
    this.listen(sender);

    for (const group of this.groups) {
      const receiver = createSocket({ type: "udp4", reuseAddr: true });
      this.receivers.push(receiver);
      await this.join(receiver, group);
      this.listen(receiver);
    }

    if (this.selfTest && this.loopback) await this.runSelfTest(sender);
    if (this.closed) throw new Error("multicast transport closed while starting");
    const address = sender.address();
    this.bound = { host: address.address, port: address.port };
    this.ready = true;
  }

  private async join(receiver: Socket, group: Endpoint): Promise<void> {
    const bindAddress = process.platform === "win32" ? "0.0.0.0" : group.host;
    try {
      await bindSocket(receiver, group.port, bindAddress);
    } catch (error) {
      // Not an interface problem: typically another socket holds the port without SO_REUSEADDR.
      throw new Error(
        `multicast transport cannot bind ${bindAddress}:${group.port}: ${asError(error).message}`,
        {
          cause: error,
        },
      );
    }
    try {
      receiver.addMembership(group.host, this.interfaceAddress);
    } catch (error) {
      throw this.needs(`cannot join ${group.host} on ${this.interfaceAddress}`, error);
    }
    if (this.receiveBufferBytes !== undefined) receiver.setRecvBufferSize(this.receiveBufferBytes);
  }

  private listen(socket: Socket): void {
    socket.on("error", (error) => {
      this.counters.socketErrors++;
      this.lastError = error;
    });
    socket.on("message", (message, remote) => receiveDatagram(message, remote, this.handler, this.counters));
  }

  /** Joins a probe group on a fresh port, sends a random probe from `sender`, waits for it to return. */
  private async runSelfTest(sender: Socket): Promise<void> {
    const probeGroup = this.groups[0]?.host ?? DEFAULT_PROBE_GROUP;
    const probe = createSocket({ type: "udp4" });
    this.receivers.push(probe); // closed with the others if anything below fails
    await this.join(probe, { host: probeGroup, port: 0 });
    const probePort = probe.address().port;
    const nonce = randomBytes(16);
    const arrived = await new Promise<boolean>((resolve) => {
      const finish = (result: boolean): void => {
        clearInterval(resend);
        clearTimeout(deadline);
        probe.removeAllListeners("message");
        resolve(result);
      };
      probe.on("message", (message) => {
        if (nonce.equals(message)) finish(true);
      });
      probe.on("error", () => undefined); // reported by the outcome of the probe itself
      const sendProbe = (): void => {
        try {
          sender.send(nonce, probePort, probeGroup, () => undefined);
        } catch {
          // a send failure shows as the probe never arriving
        }
      };
      const resend = setInterval(sendProbe, PROBE_RESEND_MS);
      const deadline = setTimeout(() => finish(false), this.selfTestTimeoutMs);
      sendProbe();
    });
    this.receivers = this.receivers.filter((socket) => socket !== probe);
    await closeSocket(probe);
    if (!arrived) {
      throw this.needs(
        `a probe sent to ${probeGroup}:${probePort} did not come back within ${this.selfTestTimeoutMs} ms`,
      );
    }
  }

  /** The error `start()` rejects with: what failed and what the host needs for multicast to work. */
  private needs(what: string, cause?: unknown): Error {
    const detail = cause === undefined ? "" : ` (${asError(cause).message})`;
    const fixes =
      this.interfaceAddress === "127.0.0.1"
        ? "the loopback interface up with address 127.0.0.1 (`ip link set lo up`); if it is up and " +
          "datagrams still do not arrive, also `ip link set lo multicast on` and " +
          "`ip route add 224.0.0.0/4 dev lo`, and no firewall rule dropping UDP to 224.0.0.0/4 on lo"
        : `an interface that is up with address ${this.interfaceAddress}, has the MULTICAST flag ` +
          "(`ip link set DEV multicast on`) and lets UDP to 224.0.0.0/4 through its firewall";
    return new Error(`multicast on ${this.interfaceAddress} needs: ${fixes}. ${what}${detail}`, { cause });
  }

  send(to: Endpoint, frame: Uint8Array): void {
    if (!this.ready || this.closed || this.sender === null) {
      this.counters.sendErrors++;
      return;
    }
    sendDatagram(this.sender, to, frame, this.counters, this.onSendError);
  }

  onFrame(handler: FrameHandler): void {
    this.handler = handler;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.starting?.catch(() => undefined);
    await this.releaseSockets();
  }

  private async releaseSockets(): Promise<void> {
    this.ready = false;
    const sockets = [...this.receivers, ...(this.sender === null ? [] : [this.sender])];
    this.receivers = [];
    this.sender = null;
    await Promise.all(sockets.map(closeSocket));
  }

  private readonly onSendError = (error: Error): void => {
    this.lastError = error;
  };
}

/** True for an IPv4 multicast address (224.0.0.0/4). */
export function isMulticastAddress(host: string): boolean {
  if (!isIPv4(host)) return false;
  const first = Number(host.slice(0, host.indexOf(".")));
  return first >= 224 && first <= 239;
}
