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

/**
 * A first port of `count` consecutive ports on 127.0.0.1 that were all free a moment ago for both
 * UDP and TCP, for commands that take a base port (`paxos cluster --base-port`). Random bases in
 * 20000..59999, tried until one fits. The same race as `freeUdpPorts`.
 */
export async function freePortRange(count: number): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const base = 20_000 + Math.floor(Math.random() * (40_000 - count));
    let free = true;
    for (let port = base; port < base + count && free; port++) free = await isFree(port);
    if (free) return base;
  }
  throw new Error(`no ${count} consecutive free ports found`);
}

/** Whether `port` can be bound on 127.0.0.1 for UDP and for TCP right now. */
async function isFree(port: number): Promise<boolean> {
  const udp = await new Promise<boolean>((resolve) => {
    const socket = createSocket("udp4");
    socket.once("error", () => {
      socket.close();
      resolve(false);
    });
    socket.bind(port, "127.0.0.1", () => socket.close(() => resolve(true)));
  });
  if (!udp) return false;
  return new Promise<boolean>((resolve) => {
    const server = createServer();
    server.once("error", () => resolve(false));
    server.listen(port, "127.0.0.1", () => server.close(() => resolve(true)));
  });
}
