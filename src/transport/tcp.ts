/**
 * TCP transport: length-prefixed frames (u32 big-endian length + bytes, see framing.ts) over one
 * outgoing connection per peer, plus a server for incoming connections.
 *
 * - Outgoing connections are opened lazily, on the first frame to a peer. Frames go out only on
 *   outgoing connections; frames arriving on incoming ones are delivered with the connection's remote
 *   address (the peer's ephemeral port, not where it listens).
 * - A failed or closed connection is retried with exponential backoff and jitter (base 50 ms, cap 2 s)
 *   while frames wait for it; an idle peer is reconnected on its next frame.
 * - Frames to one peer sent within one event-loop turn are written with one `write` (one syscall) on
 *   the next turn (setImmediate), and TCP_NODELAY is on, so batching is ours and Nagle adds no delay.
 * - Every queue has a limit: frames per peer, bytes per peer, peers, incoming connections, frame size.
 * - An incoming header announcing more than `frameBytesMax` closes that connection and counts
 *   `framesDropped`: the stream cannot be resynchronised after garbage.
 */

import { createConnection, createServer, type Server, type Socket } from "node:net";
import {
  type PeerCertificate,
  type TLSSocket,
  connect as tlsConnect,
  createServer as tlsCreateServer,
} from "node:tls";
import { encodeFrames, FRAME_HEADER_BYTES, FrameDecoder } from "./framing.js";
import {
  createTransportStats,
  type Endpoint,
  endpointKey,
  type FrameHandler,
  isBindablePort,
  isSendablePort,
  type MutableTransportStats,
  normalizeHost,
  type Transport,
  type TransportStats,
} from "./transport.js";

/** Default largest frame, 1 MiB: far above a Paxos message, far below what would hurt memory. */
export const DEFAULT_TCP_FRAME_BYTES_MAX = 1024 * 1024;

export interface TcpTransportOptions {
  /** Address the server binds. Default `127.0.0.1`. */
  readonly host?: string;
  /** Port the server binds; 0 (default) picks an ephemeral port, see `localEndpoint` after `start()`. */
  readonly port?: number;
  /** Largest frame sent or accepted, in bytes. Default 1 MiB. */
  readonly frameBytesMax?: number;
  /** Most frames waiting for one peer; beyond it the oldest are dropped. Default 4096. */
  readonly queueFramesMax?: number;
  /** Most bytes waiting for one peer; beyond it the oldest frames are dropped. Default 16 MiB. */
  readonly queueBytesMax?: number;
  /** First reconnect delay, doubled on each consecutive failure. Default 50 ms. */
  readonly backoffBaseMs?: number;
  /** Longest reconnect delay. Default 2000 ms. */
  readonly backoffMaxMs?: number;
  /** A connection attempt that takes longer than this fails (a peer that drops SYNs). Default 2000 ms. */
  readonly connectTimeoutMs?: number;
  /** Most incoming connections at once; the server refuses more. Default 1024. */
  readonly inboundConnectionsMax?: number;
  /** Most peers with an outgoing connection or queue; idle ones are forgotten to make room. Default 1024. */
  readonly peersMax?: number;
  /** Largest single write when flushing a peer's queue (at least one frame). Default 4 MiB. */
  readonly writeBatchBytesMax?: number;
  /** Returns a float in [0, 1) for backoff jitter. Default `Math.random`. */
  readonly random?: () => number;
  /** Mutual TLS on every connection, in and out (see {@link TcpTlsOptions}). Default: plain TCP. */
  readonly tls?: TcpTlsOptions;
}

/**
 * Mutual TLS: both ends present a certificate signed by the cluster's CA, and each checks that the
 * other's names a member (its subject CN or a DNS subject alternative name, e.g. `node-2`). A
 * connection whose peer fails either check is closed before any frame is read, and counted in
 * `tlsRefused`. How to make the certificates: docs/security.md ("Mutual TLS").
 */
export interface TcpTlsOptions {
  /** This end's certificate chain and private key (PEM). */
  readonly cert: string | Buffer;
  readonly key: string | Buffer;
  /** The CA(s) that sign the cluster's certificates (PEM); the system's CAs are not trusted. */
  readonly ca: string | Buffer;
  /** Whether a peer whose certificate carries `name` may talk to this end. */
  readonly peerAllowed: (name: string) => boolean;
}

/** The names a certificate carries: its subject CN and its DNS subject alternative names. */
export function certificateNames(certificate: PeerCertificate | null | undefined): string[] {
  if (certificate === null || certificate === undefined) return [];
  const names: string[] = [];
  const cn = certificate.subject?.CN;
  if (typeof cn === "string") names.push(cn);
  else if (Array.isArray(cn)) names.push(...(cn as string[]));
  for (const entry of (certificate.subjectaltname ?? "").split(",")) {
    const trimmed = entry.trim();
    if (trimmed.startsWith("DNS:")) names.push(trimmed.slice(4));
  }
  return names;
}

type PeerState = "idle" | "connecting" | "open" | "waiting";

/** A placeholder left in a queue slot once its frame is gone, so the frame can be garbage collected. */
const RELEASED = new Uint8Array(0);

/** The outgoing side of one peer: its connection, its queue, its backoff. */
class Peer {
  state: PeerState = "idle";
  socket: Socket | null = null;
  /** Frames waiting, oldest first, from index `head` on. */
  queue: Uint8Array[] = [];
  head = 0;
  queuedBytes = 0;
  /** Consecutive failed attempts or dropped connections since the last successful connect. */
  failures = 0;
  /** True once a connection or attempt to this peer has failed: the next success is a reconnect. */
  hadFailure = false;
  retryTimer: NodeJS.Timeout | null = null;
  /** `write` returned false: wait for 'drain' before writing more, so the queue limits hold. */
  blocked = false;
  flushScheduled = false;

  constructor(readonly endpoint: Endpoint) {}

  get queuedFrames(): number {
    return this.queue.length - this.head;
  }

  /** Removes the oldest frame (the caller checked there is one). */
  shift(): Uint8Array {
    const frame = this.queue[this.head] as Uint8Array;
    this.queue[this.head] = RELEASED;
    this.head++;
    this.queuedBytes -= frame.length;
    this.compact();
    return frame;
  }

  compact(): void {
    if (this.head === this.queue.length) {
      this.queue = [];
      this.head = 0;
    } else if (this.head >= 1024 && this.head * 2 >= this.queue.length) {
      this.queue = this.queue.slice(this.head);
      this.head = 0;
    }
  }
}

/**
 * TCP transport with length-prefixed frames.
 *
 * @example
 * const a = new TcpTransport(); // 127.0.0.1, ephemeral port
 * const b = new TcpTransport({ port: 7001 });
 * b.onFrame((frame, from) => console.log(frame.length, from));
 * await a.start();
 * await b.start();
 * a.send(b.localEndpoint, new Uint8Array(1024)); // connects on first use
 */
export class TcpTransport implements Transport {
  private readonly counters: MutableTransportStats = createTransportStats();
  readonly stats: TransportStats = this.counters;
  /** The most recent socket error, for diagnostics (errors are counted, never thrown). */
  lastError: Error | undefined;
  readonly frameBytesMax: number;
  private readonly queueFramesMax: number;
  private readonly queueBytesMax: number;
  private readonly backoffBaseMs: number;
  private readonly backoffMaxMs: number;
  private readonly connectTimeoutMs: number;
  private readonly inboundConnectionsMax: number;
  private readonly peersMax: number;
  private readonly writeBatchBytesMax: number;
  private readonly random: () => number;
  private readonly peers = new Map<string, Peer>();
  private readonly inbound = new Set<Socket>();
  /** Connections closed because the peer's certificate was missing, not trusted or names no member. */
  tlsRefused = 0;
  private readonly tls: TcpTlsOptions | null;
  /** Inbound connections by the peer's address, to answer a peer that has no listener (a client). */
  private readonly inboundByPeer = new Map<string, Socket>();
  private readonly flushPending = new Set<Peer>();
  private flushImmediate: NodeJS.Immediate | null = null;
  private server: Server | null = null;
  private handler: FrameHandler | null = null;
  private bound: Endpoint;
  private starting: Promise<void> | null = null;
  private listening = false;
  private closed = false;

  constructor(options: TcpTransportOptions = {}) {
    const port = options.port ?? 0;
    if (!isBindablePort(port)) throw new RangeError(`tcp port must be 0..65535, got ${port}`);
    this.bound = { host: options.host ?? "127.0.0.1", port };
    this.frameBytesMax = options.frameBytesMax ?? DEFAULT_TCP_FRAME_BYTES_MAX;
    this.queueFramesMax = options.queueFramesMax ?? 4096;
    this.queueBytesMax = options.queueBytesMax ?? 16 * 1024 * 1024;
    this.backoffBaseMs = options.backoffBaseMs ?? 50;
    this.backoffMaxMs = options.backoffMaxMs ?? 2000;
    this.connectTimeoutMs = options.connectTimeoutMs ?? 2000;
    this.inboundConnectionsMax = options.inboundConnectionsMax ?? 1024;
    this.peersMax = options.peersMax ?? 1024;
    this.writeBatchBytesMax = options.writeBatchBytesMax ?? 4 * 1024 * 1024;
    this.random = options.random ?? Math.random;
    this.tls = options.tls ?? null;
    new FrameDecoder(this.frameBytesMax); // validates frameBytesMax
    if (!(this.queueFramesMax >= 1)) throw new RangeError("queueFramesMax must be at least 1");
    if (!(this.queueBytesMax >= this.frameBytesMax)) {
      throw new RangeError(
        "queueBytesMax must be at least frameBytesMax, or a largest frame could never wait",
      );
    }
    if (!(this.backoffBaseMs > 0 && this.backoffMaxMs >= this.backoffBaseMs)) {
      throw new RangeError("backoff needs 0 < backoffBaseMs <= backoffMaxMs");
    }
  }

  get localEndpoint(): Endpoint {
    return this.bound;
  }

  start(): Promise<void> {
    if (this.closed) return Promise.reject(new Error("tcp transport is closed"));
    this.starting ??= this.listen();
    return this.starting;
  }

  private listen(): Promise<void> {
    const tls = this.tls;
    const server =
      tls === null
        ? createServer({ noDelay: true, keepAlive: true }, (socket) => this.accept(socket))
        : tlsCreateServer(
            {
              noDelay: true,
              keepAlive: true,
              cert: tls.cert,
              key: tls.key,
              ca: tls.ca,
              requestCert: true,
              rejectUnauthorized: true,
            },
            (socket) => {
              if (!this.memberCertificate(socket)) return;
              this.accept(socket);
            },
          );
    if (tls !== null)
      server.on("tlsClientError", () => {
        this.tlsRefused++;
      });
    server.maxConnections = this.inboundConnectionsMax;
    this.server = server;
    return new Promise<void>((resolve, reject) => {
      const onError = (error: Error): void => {
        this.server = null;
        reject(
          new Error(`tcp transport cannot listen on ${endpointKey(this.bound)}: ${error.message}`, {
            cause: error,
          }),
        );
      };
      server.once("error", onError);
      server.listen({ host: this.bound.host, port: this.bound.port }, () => {
        server.off("error", onError);
        server.on("error", this.onSocketError);
        const address = server.address();
        if (address !== null && typeof address === "object") {
          this.bound = { host: normalizeHost(address.address), port: address.port };
        }
        if (this.closed) {
          server.close();
          reject(new Error("tcp transport closed while starting"));
          return;
        }
        this.listening = true;
        resolve();
      });
    });
  }

  send(to: Endpoint, frame: Uint8Array): void {
    if (!this.listening || frame.length > this.frameBytesMax || !isSendablePort(to.port)) {
      this.counters.sendErrors++;
      return;
    }
    // A frame for the far end of an inbound connection goes back over it: a client's address as seen
    // here is its connection's ephemeral port, where nothing listens.
    const inbound = this.inboundByPeer.get(endpointKey(to));
    if (inbound !== undefined && !inbound.destroyed) {
      inbound.write(encodeFrames([frame]));
      this.counters.framesSent++;
      this.counters.bytesSent += frame.length;
      return;
    }
    const peer = this.peerFor(to);
    if (peer === null) {
      this.counters.sendErrors++;
      return;
    }
    peer.queue.push(frame);
    peer.queuedBytes += frame.length;
    // Full queue: drop the oldest frame, not the new one, and do not block the caller. A peer that is
    // down or slow keeps only the most recent frames, which are the ones worth sending: Paxos messages
    // are superseded by later ones (a higher ballot, a newer heartbeat or decision), and whatever is
    // lost the protocol retransmits on its own timeouts. Blocking instead would stall the single event
    // loop that also serves every healthy peer.
    while (peer.queuedFrames > this.queueFramesMax || peer.queuedBytes > this.queueBytesMax) {
      peer.shift();
      this.counters.sendErrors++;
    }
    if (peer.state === "idle") this.connect(peer);
    else if (peer.state === "open") this.scheduleFlush(peer);
  }

  onFrame(handler: FrameHandler): void {
    this.handler = handler;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.listening = false;
    await this.starting?.catch(() => undefined);
    if (this.flushImmediate !== null) clearImmediate(this.flushImmediate);
    this.flushImmediate = null;
    this.flushPending.clear();
    const sockets: Socket[] = [...this.inbound];
    for (const peer of this.peers.values()) {
      if (peer.retryTimer !== null) clearTimeout(peer.retryTimer);
      peer.retryTimer = null;
      this.counters.sendErrors += peer.queuedFrames; // accepted by send(), never sent
      peer.queue = [];
      peer.head = 0;
      peer.queuedBytes = 0;
      if (peer.socket !== null) sockets.push(peer.socket);
    }
    this.peers.clear();
    this.inbound.clear();
    this.inboundByPeer.clear();
    const closings = sockets.map(closed);
    for (const socket of sockets) socket.destroy();
    const server = this.server;
    this.server = null;
    if (server !== null) closings.push(new Promise<void>((resolve) => server.close(() => resolve())));
    await Promise.all(closings);
  }

  /** The peer for an endpoint, created if needed; null when `peersMax` peers are busy. */
  private peerFor(to: Endpoint): Peer | null {
    const key = endpointKey(to);
    const existing = this.peers.get(key);
    if (existing !== undefined) return existing;
    if (this.peers.size >= this.peersMax) {
      let idle: string | null = null;
      for (const [candidateKey, candidate] of this.peers) {
        if (candidate.state === "idle" && candidate.queuedFrames === 0) {
          idle = candidateKey;
          break;
        }
      }
      if (idle === null) return null;
      this.peers.delete(idle);
    }
    const peer = new Peer({ host: to.host, port: to.port });
    this.peers.set(key, peer);
    return peer;
  }

  private connect(peer: Peer): void {
    peer.state = "connecting";
    peer.blocked = false;
    const tls = this.tls;
    const socket: Socket =
      tls === null
        ? createConnection({
            host: peer.endpoint.host,
            port: peer.endpoint.port,
            noDelay: true,
            keepAlive: true,
          })
        : tlsConnect({
            host: peer.endpoint.host,
            port: peer.endpoint.port,
            cert: tls.cert,
            key: tls.key,
            ca: tls.ca,
            rejectUnauthorized: true,
            // The member check below replaces the host-name check: peers are named by id, not host.
            checkServerIdentity: () => undefined,
          });
    if (tls !== null) {
      socket.setNoDelay(true);
      socket.setKeepAlive(true);
    }
    peer.socket = socket;
    socket.setTimeout(this.connectTimeoutMs, () => {
      socket.destroy(new Error(`connect to ${endpointKey(peer.endpoint)} timed out`));
    });
    socket.once(tls === null ? "connect" : "secureConnect", () => {
      socket.setTimeout(0);
      if (peer.socket !== socket || this.closed) return;
      if (tls !== null && !this.memberCertificate(socket as TLSSocket)) return;
      peer.state = "open";
      peer.failures = 0;
      this.counters.connects++;
      if (peer.hadFailure) this.counters.reconnects++;
      this.scheduleFlush(peer);
    });
    socket.on("drain", () => {
      if (peer.socket !== socket) return;
      peer.blocked = false;
      this.scheduleFlush(peer);
    });
    socket.on("error", this.onSocketError);
    socket.on("close", () => {
      if (peer.socket !== socket) return;
      peer.socket = null;
      peer.blocked = false;
      peer.hadFailure = true;
      peer.failures++;
      if (this.closed) return;
      if (peer.queuedFrames > 0) this.scheduleRetry(peer);
      else peer.state = "idle";
    });
    // Peers send on their own outgoing connections, so nothing should arrive here; if something does,
    // it is read like any incoming connection rather than left to fill the socket buffer.
    this.readFrames(socket, peer.endpoint);
  }

  /** Exponential backoff with "equal jitter": half the delay fixed, half random, capped. */
  private scheduleRetry(peer: Peer): void {
    peer.state = "waiting";
    const exponent = Math.min(peer.failures - 1, 30);
    const delayMs = Math.min(this.backoffMaxMs, this.backoffBaseMs * 2 ** exponent);
    const jitteredMs = delayMs / 2 + (this.random() * delayMs) / 2;
    peer.retryTimer = setTimeout(() => {
      peer.retryTimer = null;
      if (!this.closed) this.connect(peer);
    }, jitteredMs);
  }

  private scheduleFlush(peer: Peer): void {
    if (peer.flushScheduled) return;
    peer.flushScheduled = true;
    this.flushPending.add(peer);
    this.flushImmediate ??= setImmediate(this.flushAll);
  }

  private readonly flushAll = (): void => {
    this.flushImmediate = null;
    const peers = [...this.flushPending];
    this.flushPending.clear();
    for (const peer of peers) {
      peer.flushScheduled = false;
      this.flush(peer);
    }
  };

  /** Writes the peer's queue in batches of up to `writeBatchBytesMax` until empty or the socket is full. */
  private flush(peer: Peer): void {
    const socket = peer.socket;
    if (peer.state !== "open" || socket === null || socket.destroyed) return;
    while (peer.queuedFrames > 0 && !peer.blocked) {
      const batch: Uint8Array[] = [];
      let batchBytes = 0;
      let frameBytes = 0;
      while (peer.queuedFrames > 0) {
        const next = peer.queue[peer.head] as Uint8Array;
        const size = FRAME_HEADER_BYTES + next.length;
        if (batch.length > 0 && batchBytes + size > this.writeBatchBytesMax) break;
        batch.push(peer.shift());
        batchBytes += size;
        frameBytes += next.length;
      }
      this.counters.framesSent += batch.length;
      this.counters.bytesSent += frameBytes;
      if (!socket.write(encodeFrames(batch))) peer.blocked = true;
    }
  }

  /** Whether a TLS peer's certificate names a member; if not, the connection is closed and counted. */
  private memberCertificate(socket: TLSSocket): boolean {
    const tls = this.tls as TcpTlsOptions;
    const names = certificateNames(socket.getPeerCertificate());
    if (socket.authorized && names.some((name) => tls.peerAllowed(name))) return true;
    this.tlsRefused++;
    socket.destroy();
    return false;
  }

  private accept(socket: Socket): void {
    if (this.closed) {
      socket.destroy();
      return;
    }
    this.inbound.add(socket);
    socket.setNoDelay(true);
    const from = { host: normalizeHost(socket.remoteAddress ?? ""), port: socket.remotePort ?? 0 };
    const key = endpointKey(from);
    this.inboundByPeer.set(key, socket);
    socket.on("error", this.onSocketError);
    socket.on("close", () => {
      this.inbound.delete(socket);
      if (this.inboundByPeer.get(key) === socket) this.inboundByPeer.delete(key);
    });
    this.readFrames(socket, from);
  }

  /** Decodes frames from a socket; garbage (a header above `frameBytesMax`) closes the connection. */
  private readFrames(socket: Socket, from: Endpoint): void {
    const decoder = new FrameDecoder(this.frameBytesMax);
    const deliver = (frame: Uint8Array): void => this.deliver(frame, from);
    socket.on("data", (chunk: Buffer) => {
      if (!decoder.push(chunk, deliver)) {
        this.counters.framesDropped++;
        socket.destroy();
      }
    });
  }

  private deliver(frame: Uint8Array, from: Endpoint): void {
    if (this.closed) return;
    const handler = this.handler;
    if (handler === null) {
      this.counters.framesDropped++;
      return;
    }
    this.counters.framesReceived++;
    this.counters.bytesReceived += frame.length;
    handler(frame, from);
  }

  private readonly onSocketError = (error: Error): void => {
    this.counters.socketErrors++;
    this.lastError = error;
  };
}

/** Resolves when the socket has closed (at once if it already has). */
function closed(socket: Socket): Promise<void> {
  if (socket.closed) return Promise.resolve();
  return new Promise((resolve) => socket.once("close", () => resolve()));
}
