/**
 * Byte-level transports behind one small interface ({@link Transport}): they move opaque frames between
 * endpoints; encoding messages is the codec's job. Memory for tests, UDP unicast, UDP multicast (where
 * `to` is a group endpoint) and TCP with length-prefixed frames.
 */

export { encodeFrames, FRAME_HEADER_BYTES, FrameDecoder } from "./framing.js";
export {
  MemoryNetwork,
  type MemoryNetworkOptions,
  type MemoryNetworkStats,
  MemoryTransport,
} from "./memory.js";
export { isMulticastAddress, MulticastTransport, type MulticastTransportOptions } from "./multicast.js";
export {
  certificateNames,
  DEFAULT_TCP_FRAME_BYTES_MAX,
  type TcpTlsOptions,
  TcpTransport,
  type TcpTransportOptions,
} from "./tcp.js";
export {
  createTransportStats,
  type Endpoint,
  endpointKey,
  type FrameHandler,
  type MutableTransportStats,
  normalizeHost,
  type Transport,
  type TransportStats,
  UDP_FRAME_BYTES_MAX,
} from "./transport.js";
export { UdpTransport, type UdpTransportOptions } from "./udp.js";
