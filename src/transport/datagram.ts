/**
 * Pieces shared by the UDP and multicast transports (internal; not exported from the folder's index).
 */

import type { RemoteInfo, Socket } from "node:dgram";
import {
  type Endpoint,
  type FrameHandler,
  isSendablePort,
  type MutableTransportStats,
  UDP_FRAME_BYTES_MAX,
} from "./transport.js";

/**
 * Sends one datagram, counting the outcome. Never throws: dgram throws synchronously for a bad port or
 * a closed socket, and reports other failures (EMSGSIZE, ENETUNREACH, ...) to the callback.
 */
export function sendDatagram(
  socket: Socket,
  to: Endpoint,
  frame: Uint8Array,
  stats: MutableTransportStats,
  onError: (error: Error) => void,
): void {
  if (frame.length > UDP_FRAME_BYTES_MAX || !isSendablePort(to.port)) {
    stats.sendErrors++;
    return;
  }
  const length = frame.length;
  try {
    socket.send(frame, to.port, to.host, (error) => {
      if (error) {
        stats.sendErrors++;
        onError(error);
      } else {
        stats.framesSent++;
        stats.bytesSent += length;
      }
    });
  } catch (error) {
    stats.sendErrors++;
    onError(asError(error));
  }
}

/** Delivers one received datagram to the handler, or counts it as dropped when there is none. */
export function receiveDatagram(
  message: Buffer,
  remote: RemoteInfo,
  handler: FrameHandler | null,
  stats: MutableTransportStats,
): void {
  if (handler === null) {
    stats.framesDropped++;
    return;
  }
  stats.framesReceived++;
  stats.bytesReceived += message.length;
  // dgram allocates a fresh Buffer per datagram, so handing it over without a copy is safe.
  handler(message, { host: remote.address, port: remote.port });
}

/** Binds a socket, resolving with nothing once bound and rejecting with the bind error. */
export function bindSocket(socket: Socket, port: number, address: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (error: Error): void => {
      socket.off("listening", onListening);
      reject(error);
    };
    const onListening = (): void => {
      socket.off("error", onError);
      resolve();
    };
    socket.once("error", onError);
    socket.once("listening", onListening);
    try {
      socket.bind({ port, address, exclusive: false });
    } catch (error) {
      socket.off("error", onError);
      socket.off("listening", onListening);
      reject(asError(error));
    }
  });
}

/** Closes a dgram socket, resolving when closed; closing an already closed socket resolves at once. */
export function closeSocket(socket: Socket): Promise<void> {
  return new Promise((resolve) => {
    try {
      socket.close(() => resolve());
    } catch {
      resolve(); // ERR_SOCKET_DGRAM_NOT_RUNNING: never bound, or already closed
    }
  });
}

export function asError(value: unknown): Error {
  return value instanceof Error ? value : new Error(String(value));
}
