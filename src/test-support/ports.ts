import { createSocket } from "node:dgram";
import { createServer } from "node:net";

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

/**
 * `count` distinct TCP ports on 127.0.0.1 that were free a moment ago (listened on with port 0 and
 * released), for servers another program starts (HTTP APIs, etcd). The same race as `freeUdpPorts`.
 */
export async function freeTcpPorts(count: number): Promise<number[]> {
  const ports = new Set<number>();
  while (ports.size < count) {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const address = server.address();
    if (address !== null && typeof address === "object") ports.add(address.port);
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
  return [...ports];
}
