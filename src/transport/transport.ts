/**
 * The byte-level transport interface (in the spirit of hashicorp/raft's `Transport`): it moves opaque
 * frames (`Uint8Array`) between endpoints and knows nothing about messages. Encoding is the codec's job;
 * deciding whom to talk to is the runtime's.
 *
 * Delivery is best effort on every implementation: frames may be lost, and on the datagram transports
 * (memory, UDP, multicast) also reordered. The Paxos protocol above tolerates both and retransmits on
 * its own timeouts, so no transport retries a frame it could not hand to the operating system.
 *
 * Implementations: {@link MemoryNetwork} (tests), `UdpTransport`, `MulticastTransport` (the same
 * interface, where `to` is a group endpoint) and `TcpTransport` (length-prefixed frames).
 */

/** Where a peer listens (or, for multicast, a group address and port). */
export interface Endpoint {
  readonly host: string;
  readonly port: number;
}

/**
 * Receives one frame. `from` is the sender's address as seen by the socket: for TCP inbound connections
 * and UDP it is the sender's ephemeral source port, not necessarily where the sender listens, so reply
 * to the node id carried inside the message, not to `from`.
 */
export type FrameHandler = (frame: Uint8Array, from: Endpoint) => void;

/**
 * Counters every transport keeps. They only grow; read them at any time (the object is live).
 * Byte counts are frame bytes, without the transport's own framing (the TCP length prefix, IP/UDP headers).
 */
export interface TransportStats {
  /** Frames handed to the operating system (or, in memory, to the network). */
  readonly framesSent: number;
  /** Frames delivered to the handler. */
  readonly framesReceived: number;
  readonly bytesSent: number;
  readonly bytesReceived: number;
  /**
   * Frames accepted by `send()` that never left: too large, sent before `start()` or after `close()`,
   * refused by the socket, or dropped from a full outgoing queue (TCP).
   */
  readonly sendErrors: number;
  /** Incoming data thrown away: oversize frames, malformed framing, frames arriving with no handler. */
  readonly framesDropped: number;
  /**
   * Errors a socket reported outside any one frame's send: connection refused, reset or timed out,
   * receive errors. The last one is kept in the transport's `lastError`.
   */
  readonly socketErrors: number;
  /** Outgoing connections established (TCP only; always 0 for datagram transports). */
  readonly connects: number;
  /** Of `connects`, those re-established after an earlier connection or attempt to that peer failed. */
  readonly reconnects: number;
}

/** The writable view of {@link TransportStats} that implementations update. */
export type MutableTransportStats = { -readonly [K in keyof TransportStats]: TransportStats[K] };

/** A fresh set of zeroed counters. */
export function createTransportStats(): MutableTransportStats {
  return {
    framesSent: 0,
    framesReceived: 0,
    bytesSent: 0,
    bytesReceived: 0,
    sendErrors: 0,
    framesDropped: 0,
    socketErrors: 0,
    connects: 0,
    reconnects: 0,
  };
}

/**
 * Moves frames between endpoints.
 *
 * Contract for implementers and callers:
 * - `send` never throws and never blocks; a frame that cannot go out is counted in `stats.sendErrors`.
 * - The caller must not modify a frame after passing it to `send` (the transport may hold it until a
 *   later event-loop turn).
 * - Frames handed to the handler belong to the receiver; the transport never reuses their memory.
 * - One handler: calling `onFrame` again replaces it. A handler that throws is a bug in the caller and
 *   the exception propagates like any event listener's.
 *
 * @example
 * const transport = new UdpTransport({ host: "127.0.0.1", port: 0 });
 * transport.onFrame((frame, from) => console.log(frame.length, "bytes from", from));
 * await transport.start();
 * transport.send({ host: "127.0.0.1", port: 7001 }, new Uint8Array([1, 2, 3]));
 * await transport.close();
 */
export interface Transport {
  /** Starts listening; resolves when ready. Rejects if the address cannot be bound. */
  start(): Promise<void>;
  /** Sends one frame to one endpoint (or multicast group). Never throws; failures are counted. */
  send(to: Endpoint, frame: Uint8Array): void;
  /** Sets the handler for frames received, with the sender's address as seen by the socket. */
  onFrame(handler: FrameHandler): void;
  /** Stops listening and releases every socket and timer. Frames not yet sent are discarded. */
  close(): Promise<void>;
  readonly stats: TransportStats;
  /** Where this transport receives unicast frames; after `start()` the actual bound port (so port 0 works). */
  readonly localEndpoint: Endpoint;
}

/** Largest payload of one UDP datagram over IPv4: 65535 - 20 (IP header) - 8 (UDP header). */
export const UDP_FRAME_BYTES_MAX = 65_507;

/** A stable map key for an endpoint, `host:port`. */
export function endpointKey(endpoint: Endpoint): string {
  return `${endpoint.host}:${endpoint.port}`;
}

/** Strips the IPv4-mapped IPv6 prefix Node reports for IPv4 peers on dual-stack sockets. */
export function normalizeHost(host: string): string {
  return host.startsWith("::ffff:") ? host.slice(7) : host;
}

/** True for a valid TCP/UDP port to send to (1..65535). */
export function isSendablePort(port: number): boolean {
  return Number.isInteger(port) && port > 0 && port <= 65_535;
}

/** A port to bind: 0 (ephemeral) to 65535. */
export function isBindablePort(port: number): boolean {
  return Number.isInteger(port) && port >= 0 && port <= 65_535;
}
