/**
 * UDP unicast over `node:dgram` (udp4). One datagram carries one frame, so frames are limited to
 * `UDP_FRAME_BYTES_MAX` (65507) bytes; larger ones are not sent and count as `sendErrors`.
 * Socket errors are counted and remembered in `lastError`; they never crash the process.
 */

import { createSocket, type Socket } from "node:dgram";
import { asError, bindSocket, closeSocket, receiveDatagram, sendDatagram } from "./datagram.js";
import {
  createTransportStats,
  type Endpoint,
  type FrameHandler,
  isBindablePort,
  type MutableTransportStats,
  type Transport,
  type TransportStats,
} from "./transport.js";

export interface UdpTransportOptions {
  /** Address to bind. Default `127.0.0.1`: listen on another interface only on purpose. */
  readonly host?: string;
  /** Port to bind; 0 (default) picks an ephemeral port, read it from `localEndpoint` after `start()`. */
  readonly port?: number;
  /**
   * Kernel receive buffer (SO_RCVBUF) in bytes, if set. A bigger buffer absorbs bursts (a leader's
   * accepts to every acceptor) that would otherwise be dropped by the kernel; Linux caps it at
   * `net.core.rmem_max`.
   */
  readonly receiveBufferBytes?: number;
  /** Kernel send buffer (SO_SNDBUF) in bytes, if set. */
  readonly sendBufferBytes?: number;
}

/**
 * UDP unicast transport.
 *
 * @example
 * const a = new UdpTransport(); // 127.0.0.1, ephemeral port
 * const b = new UdpTransport({ port: 7001 });
 * b.onFrame((frame, from) => console.log(frame, from));
 * await a.start();
 * await b.start();
 * a.send(b.localEndpoint, new Uint8Array([1, 2, 3]));
 */
export class UdpTransport implements Transport {
  private readonly counters: MutableTransportStats = createTransportStats();
  readonly stats: TransportStats = this.counters;
  /** The most recent socket error, for diagnostics (errors are counted, never thrown). */
  lastError: Error | undefined;
  private readonly options: UdpTransportOptions;
  private socket: Socket | null = null;
  private handler: FrameHandler | null = null;
  private bound: Endpoint;
  private starting: Promise<void> | null = null;
  private closed = false;

  constructor(options: UdpTransportOptions = {}) {
    this.options = options;
    const port = options.port ?? 0;
    if (!isBindablePort(port)) throw new RangeError(`udp port must be 0..65535, got ${port}`);
    this.bound = { host: options.host ?? "127.0.0.1", port };
  }

  get localEndpoint(): Endpoint {
    return this.bound;
  }

  start(): Promise<void> {
    if (this.closed) return Promise.reject(new Error("udp transport is closed"));
    this.starting ??= this.open();
    return this.starting;
  }

  private async open(): Promise<void> {
    const socket = createSocket({ type: "udp4" });
    try {
      await bindSocket(socket, this.bound.port, this.bound.host);
      if (this.options.receiveBufferBytes !== undefined) {
        socket.setRecvBufferSize(this.options.receiveBufferBytes);
      }
      if (this.options.sendBufferBytes !== undefined) socket.setSendBufferSize(this.options.sendBufferBytes);
    } catch (error) {
      await closeSocket(socket);
      throw new Error(
        `udp transport cannot bind ${this.bound.host}:${this.bound.port}: ${asError(error).message}`,
        {
          cause: error,
        },
      );
    }
    if (this.closed) {
      await closeSocket(socket);
      throw new Error("udp transport closed while starting");
    }
    socket.on("error", (error) => {
      this.counters.socketErrors++;
      this.lastError = error;
    });
    socket.on("message", (message, remote) => receiveDatagram(message, remote, this.handler, this.counters));
    const address = socket.address();
    this.bound = { host: address.address, port: address.port };
    this.socket = socket;
  }

  send(to: Endpoint, frame: Uint8Array): void {
    if (this.socket === null) {
      this.counters.sendErrors++;
      return;
    }
    sendDatagram(this.socket, to, frame, this.counters, this.onSendError);
  }

  onFrame(handler: FrameHandler): void {
    this.handler = handler;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.starting?.catch(() => undefined);
    const socket = this.socket;
    this.socket = null;
    if (socket !== null) await closeSocket(socket);
  }

  private readonly onSendError = (error: Error): void => {
    this.lastError = error;
  };
}
