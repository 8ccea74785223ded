/**
 * An in-memory network for tests (after hashicorp/raft's `InmemTransport`): transports created by
 * endpoint, asynchronous delivery, partitions and random loss from an injected random function.
 *
 * It behaves like a datagram network: a frame is either delivered once, intact, or lost. Partitions and
 * loss are decided when the frame is sent; a frame already in flight is delivered even if a partition
 * is made before it lands (like a packet already on the wire).
 */

import {
  createTransportStats,
  type Endpoint,
  endpointKey,
  type FrameHandler,
  type MutableTransportStats,
  type Transport,
  type TransportStats,
  UDP_FRAME_BYTES_MAX,
} from "./transport.js";

export interface MemoryNetworkOptions {
  /** Returns a float in [0, 1); drives `dropProbability`. Default `Math.random`; pass a seeded PRNG to replay. */
  readonly random?: () => number;
  /** Probability that any one frame is lost, in [0, 1]. Default 0. */
  readonly dropProbability?: number;
  /**
   * When frames land. `"immediate"` (default) delivers on a later event-loop turn with `setImmediate`,
   * so a ping-pong between two handlers cannot starve timers and I/O. `"microtask"` delivers sooner,
   * with `queueMicrotask`.
   */
  readonly delivery?: "immediate" | "microtask";
  /**
   * Largest frame the network carries; larger sends count as `sendErrors`. Default 65507, a UDP
   * datagram, so a test on memory fails where a run over UDP would.
   */
  readonly frameBytesMax?: number;
  /**
   * Most frames in flight at once; beyond this new frames are lost (counted in `stats.framesLost`).
   * Bounds memory when a test's handlers answer every frame with several. Default 1,000,000.
   */
  readonly inFlightFramesMax?: number;
}

/** What the network itself saw (the transports count their own side). */
export interface MemoryNetworkStats {
  readonly framesDelivered: number;
  /** Frames lost to partitions, `dropProbability`, an unknown or stopped destination, or a full network. */
  readonly framesLost: number;
}

interface InFlight {
  readonly to: MemoryTransport;
  readonly from: Endpoint;
  readonly frame: Uint8Array;
}

/** The first port handed out for `port: 0`: the start of the IANA dynamic range, as an OS would. */
const EPHEMERAL_PORT_FIRST = 49_152;
const EPHEMERAL_PORT_LAST = 65_535;

/**
 * A simulated network of {@link MemoryTransport}s.
 *
 * @example
 * const network = new MemoryNetwork({ random: () => prng.float(), dropProbability: 0.01 });
 * const a = network.createTransport({ host: "a", port: 1 });
 * const b = network.createTransport({ host: "b", port: 1 });
 * await a.start();
 * await b.start();
 * b.onFrame((frame, from) => console.log(from.host)); // "a"
 * a.send(b.localEndpoint, new Uint8Array([42]));
 * network.disconnect(a.localEndpoint, b.localEndpoint); // a and b can no longer reach each other
 * network.heal();
 */
export class MemoryNetwork {
  private readonly random: () => number;
  private dropProbability: number;
  private readonly delivery: "immediate" | "microtask";
  readonly frameBytesMax: number;
  private readonly inFlightFramesMax: number;
  private readonly transports = new Map<string, MemoryTransport>();
  /** Blocked directed links, keyed `from -> to` by endpoint keys. */
  private readonly blocked = new Set<string>();
  private readonly isolated = new Set<string>();
  private inFlight: InFlight[] = [];
  private drainScheduled = false;
  private nextEphemeralPort = EPHEMERAL_PORT_FIRST;
  private readonly counters = { framesDelivered: 0, framesLost: 0 };
  readonly stats: MemoryNetworkStats = this.counters;

  constructor(options: MemoryNetworkOptions = {}) {
    this.random = options.random ?? Math.random;
    this.dropProbability = checkProbability(options.dropProbability ?? 0);
    this.delivery = options.delivery ?? "immediate";
    this.frameBytesMax = options.frameBytesMax ?? UDP_FRAME_BYTES_MAX;
    this.inFlightFramesMax = options.inFlightFramesMax ?? 1_000_000;
  }

  /**
   * A transport that will receive frames sent to `endpoint` once started. Port 0 picks a free port.
   * Throws if another live transport already has that endpoint (like EADDRINUSE).
   */
  createTransport(endpoint: Endpoint): MemoryTransport {
    let port = endpoint.port;
    if (port === 0) port = this.ephemeralPort(endpoint.host);
    const local = { host: endpoint.host, port };
    const key = endpointKey(local);
    if (this.transports.has(key)) throw new Error(`memory transport ${key} already exists`);
    const transport = new MemoryTransport(this, local);
    this.transports.set(key, transport);
    return transport;
  }

  /** The next free port in 49152..65535 on `host`, wrapping around like an operating system does. */
  private ephemeralPort(host: string): number {
    const rangeSize = EPHEMERAL_PORT_LAST - EPHEMERAL_PORT_FIRST + 1;
    for (let tries = 0; tries < rangeSize; tries++) {
      const port = this.nextEphemeralPort;
      this.nextEphemeralPort = port === EPHEMERAL_PORT_LAST ? EPHEMERAL_PORT_FIRST : port + 1;
      if (!this.transports.has(endpointKey({ host, port }))) return port;
    }
    throw new Error(`memory network has no free port left on ${host}`);
  }

  /** Cuts the link between `a` and `b` in both directions, or only from `a` to `b` with `oneWay`. */
  disconnect(a: Endpoint, b: Endpoint, options: { oneWay?: boolean } = {}): void {
    this.blocked.add(linkKey(a, b));
    if (options.oneWay !== true) this.blocked.add(linkKey(b, a));
  }

  /** Restores the link between `a` and `b` in both directions (an isolated endpoint stays isolated). */
  connect(a: Endpoint, b: Endpoint): void {
    this.blocked.delete(linkKey(a, b));
    this.blocked.delete(linkKey(b, a));
  }

  /** Cuts `endpoint` off from every other endpoint, both ways (it can still reach itself). */
  isolate(endpoint: Endpoint): void {
    this.isolated.add(endpointKey(endpoint));
  }

  /** Undoes {@link isolate} for one endpoint. */
  rejoin(endpoint: Endpoint): void {
    this.isolated.delete(endpointKey(endpoint));
  }

  /** Restores every link and every isolated endpoint. */
  heal(): void {
    this.blocked.clear();
    this.isolated.clear();
  }

  setDropProbability(probability: number): void {
    this.dropProbability = checkProbability(probability);
  }

  /** True if a frame from `from` to `to` would pass the partitions (ignoring random loss). */
  canReach(from: Endpoint, to: Endpoint): boolean {
    const fromKey = endpointKey(from);
    const toKey = endpointKey(to);
    if (fromKey === toKey) return true;
    if (this.isolated.has(fromKey) || this.isolated.has(toKey)) return false;
    return !this.blocked.has(`${fromKey}>${toKey}`);
  }

  /** @internal Called by {@link MemoryTransport.send} after its own checks. */
  transmit(from: Endpoint, to: Endpoint, frame: Uint8Array): void {
    const destination = this.transports.get(endpointKey(to));
    if (
      destination === undefined ||
      !destination.listening ||
      !this.canReach(from, to) ||
      this.inFlight.length >= this.inFlightFramesMax ||
      (this.dropProbability > 0 && this.random() < this.dropProbability)
    ) {
      this.counters.framesLost++;
      return;
    }
    // Copy: the receiver owns its frame, and a sender that (wrongly) reuses its buffer must not be able
    // to change a frame in flight — over a real socket it could not either.
    this.inFlight.push({ to: destination, from, frame: frame.slice() });
    this.scheduleDrain();
  }

  /** @internal */
  forget(transport: MemoryTransport): void {
    const key = endpointKey(transport.localEndpoint);
    if (this.transports.get(key) === transport) this.transports.delete(key);
  }

  private scheduleDrain(): void {
    if (this.drainScheduled) return;
    this.drainScheduled = true;
    if (this.delivery === "microtask") queueMicrotask(this.drain);
    else setImmediate(this.drain);
  }

  /** Delivers the frames in flight now, in send order; frames sent by handlers wait for the next turn. */
  private readonly drain = (): void => {
    this.drainScheduled = false;
    const batch = this.inFlight;
    this.inFlight = [];
    let next = 0;
    try {
      while (next < batch.length) {
        const item = batch[next++] as InFlight;
        if (item.to.deliver(item.frame, item.from)) this.counters.framesDelivered++;
        else this.counters.framesLost++;
      }
    } finally {
      // A handler threw (a bug the exception reports): still deliver the rest of the batch, first.
      if (next < batch.length) {
        this.inFlight = batch.slice(next).concat(this.inFlight);
        this.scheduleDrain();
      }
    }
  };
}

/** One endpoint on a {@link MemoryNetwork}. Create it with {@link MemoryNetwork.createTransport}. */
export class MemoryTransport implements Transport {
  private readonly counters: MutableTransportStats = createTransportStats();
  readonly stats: TransportStats = this.counters;
  private handler: FrameHandler | null = null;
  private state: "new" | "listening" | "closed" = "new";

  /** @internal Use {@link MemoryNetwork.createTransport}. */
  constructor(
    private readonly network: MemoryNetwork,
    readonly localEndpoint: Endpoint,
  ) {}

  get listening(): boolean {
    return this.state === "listening";
  }

  async start(): Promise<void> {
    if (this.state === "closed")
      throw new Error(`memory transport ${endpointKey(this.localEndpoint)} is closed`);
    this.state = "listening";
  }

  send(to: Endpoint, frame: Uint8Array): void {
    if (this.state !== "listening" || frame.length > this.network.frameBytesMax) {
      this.counters.sendErrors++;
      return;
    }
    this.counters.framesSent++;
    this.counters.bytesSent += frame.length;
    this.network.transmit(this.localEndpoint, to, frame);
  }

  onFrame(handler: FrameHandler): void {
    this.handler = handler;
  }

  async close(): Promise<void> {
    if (this.state === "closed") return;
    this.state = "closed";
    this.network.forget(this);
  }

  /** @internal Returns false if the frame could not be delivered (closed meanwhile). */
  deliver(frame: Uint8Array, from: Endpoint): boolean {
    if (this.state !== "listening") return false;
    const handler = this.handler;
    if (handler === null) {
      this.counters.framesDropped++;
      return false;
    }
    this.counters.framesReceived++;
    this.counters.bytesReceived += frame.length;
    handler(frame, from);
    return true;
  }
}

function linkKey(from: Endpoint, to: Endpoint): string {
  return `${endpointKey(from)}>${endpointKey(to)}`;
}

function checkProbability(probability: number): number {
  if (!(probability >= 0 && probability <= 1)) {
    throw new RangeError(`drop probability must be in [0, 1], got ${probability}`);
  }
  return probability;
}
