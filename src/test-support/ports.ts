import { createSocket } from "node:dgram";

/**
 * `count` distinct UDP ports on 127.0.0.1 that were free a moment ago (bound to port 0 and released).
 * Another process may take one before the caller binds it; tests bind soon after.
 */
export async function freeUdpPorts(count: number): Promise<number[]> {
  const ports = new Set<number>();
  while (ports.size < count) {
    const socket = createSocket("udp4");
    await new Promise<void>((resolve) => socket.bind(0, "127.0.0.1", resolve));
    ports.add(socket.address().port);
    await new Promise<void>((resolve) => socket.close(() => resolve()));
  }
  return [...ports];
}
