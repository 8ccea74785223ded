import {
  createTransportStats,
  type Endpoint,
  endpointKey,
  type FrameHandler,
  type MutableTransportStats,
  type Transport,
} from "../transport/index.js";

/**
 * The simulated network's side of a transport: `SimNetwork` (in `simulation.ts`) implements it with
 * the seeded faults and the event queue.
 */
export interface SimWire {
  /** A transport started listening at `local` (a new incarnation of a process takes over its address). */
  listen(local: Endpoint, transport: SimTransport): void;
  /** It stopped listening (closed, or its process crashed). */
  unlisten(local: Endpoint, transport: SimTransport): void;
  /** One frame from `from` (the sender's address) to `to` (a process or a group). */
  send(from: Endpoint, to: Endpoint, frame: Uint8Array): void;
}

/**
 * A `Transport` over the simulated network: the same interface as `UdpTransport`, so the real
 * `Driver` runs over it unchanged. Frames are the codec's bytes; delivery, loss, duplication, delay,
 * reordering and partitions are the network's (`SimWire`), decided by the seed. A frame goes to
 * whichever transport listens at its address when it arrives, as with UDP: a frame sent to an
 * earlier incarnation of a process reaches the new one.
 */
export class SimTransport implements Transport {
  readonly stats: MutableTransportStats = createTransportStats();
  private handler: FrameHandler | null = null;
  private listening = false;
  private closed = false;

  constructor(
    private readonly wire: SimWire,
    readonly localEndpoint: Endpoint,
  ) {}

  async start(): Promise<void> {
    if (this.closed) throw new Error(`sim transport ${endpointKey(this.localEndpoint)} is closed`);
    this.listening = true;
    this.wire.listen(this.localEndpoint, this);
  }

  send(to: Endpoint, frame: Uint8Array): void {
    if (!this.listening || this.closed) {
      this.stats.sendErrors++;
      return;
    }
    this.stats.framesSent++;
    this.stats.bytesSent += frame.length;
    this.wire.send(this.localEndpoint, to, frame);
  }

  onFrame(handler: FrameHandler): void {
    this.handler = handler;
  }

  async close(): Promise<void> {
    this.drop();
  }

  /** The process crashed: the socket is gone at once (nothing async, nothing flushed). */
  drop(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.listening) this.wire.unlisten(this.localEndpoint, this);
    this.listening = false;
  }

  /** The network hands over a frame that arrived. */
  deliver(frame: Uint8Array, from: Endpoint): void {
    if (this.handler === null || this.closed) {
      this.stats.framesDropped++;
      return;
    }
    this.stats.framesReceived++;
    this.stats.bytesReceived += frame.length;
    this.handler(frame, from);
  }
}
