/**
 * The outer envelope every frame travels in: the cluster's identity, who sent it, whom it is for,
 * the sender's incarnation and sequence number, the encoded message, and, when a cluster key is
 * configured, an HMAC-SHA256 over all of it. Layout and reasons in docs/wire-format.md ("Envelope")
 * and docs/security.md ("Authentication and identity").
 *
 * ```text
 * envelope = magic:u8 (0xC1)  flags:u8  clusterId:u32 (big-endian)
 *            senderKind:u8  senderId:uint  receiverRole:u8  receiverId:uint (0: every member of the role)
 *            incarnation:uint  seq:uint  body  [mac: 16 bytes when flags bit 0 is set]
 * flags    = bit 0: a MAC follows the body; bit 1: a notice (body = reason:u8); other bits 0
 * ```
 *
 * The MAC is HMAC-SHA256 under the cluster key over every byte before it, truncated to 16 bytes
 * (128 bits, as IPsec's HMAC-SHA-256-128). A receiver compares it in constant time.
 */

import { createHmac, createSecretKey, type KeyObject, timingSafeEqual } from "node:crypto";
import { type Destination, type NodeId, Refusals, type Role } from "../core/index.js";

/** First byte of every envelope: distinct from the binary codec's 0xA1 and JSON's `{`. */
export const ENVELOPE_MAGIC = 0xc1;

/** Bytes of the truncated HMAC-SHA256. */
export const MAC_BYTES = 16;

/**
 * Most bytes an envelope adds to a message: magic, flags, cluster id (4), two kinds and two ids
 * (varints of at most 8 bytes), incarnation and seq (8 each), and the MAC.
 */
export const ENVELOPE_BYTES_MAX = 1 + 1 + 4 + 1 + 8 + 1 + 8 + 8 + 8 + MAC_BYTES;

/**
 * Sequence numbers a receiver remembers behind the highest one seen from a sender (a sliding window
 * bitmap, as IPsec's anti-replay window). A frame older than the window is refused as a replay: on a
 * datagram network reordering by more than a thousand frames of one sender is loss in practice, and
 * the protocol resends what it needs.
 */
export const REPLAY_WINDOW_FRAMES = 1024;

/** Clients whose replay state a receiver keeps; the least recently heard is forgotten first. */
export const CLIENT_SENDERS_MAX = 10_000;

/**
 * Senders other than members and clients tracked when no member list is given (the course harness's
 * multicast roles, whose proposer and learner ids no file lists); least recently heard forgotten first.
 */
export const OTHER_SENDERS_MAX = 1024;

/** Shortest cluster key accepted, in bytes (128 bits). */
export const CLUSTER_KEY_BYTES_MIN = 16;

const FLAG_MAC = 1;
const FLAG_NOTICE = 2;
const WINDOW_WORDS = REPLAY_WINDOW_FRAMES / 32;

/** Who sends: a collapsed node, one of the course harness's separate roles, or a client. */
export type SenderKind = "node" | "proposer" | "acceptor" | "learner" | "client";

const SENDER_KINDS: readonly SenderKind[] = ["node", "proposer", "acceptor", "learner", "client"];
const ROLES: readonly Role[] = ["proposer", "acceptor", "learner", "client"];

export interface Party {
  readonly kind: SenderKind;
  readonly id: NodeId;
}

/**
 * Why a frame was refused (counted in `Refusals` under these names; see docs/security.md).
 */
export type EnvelopeRefusal =
  | "malformed-envelope"
  | "wrong-cluster"
  | "unauthenticated"
  | "bad-mac"
  | "wrong-receiver"
  | "unknown-sender"
  | "stale-incarnation"
  | "replay";

/** What a notice tells the sender of a refused frame (it may be forged: a hint, never proof). */
export type NoticeReason = "unauthenticated" | "bad-mac" | "stale-incarnation";

const NOTICE_REASONS: readonly NoticeReason[] = ["unauthenticated", "bad-mac", "stale-incarnation"];

export interface EnvelopeOptions {
  /** The cluster's id (1 .. 2^32-1): frames carrying another are refused. */
  readonly clusterId: number;
  /** This process. */
  readonly self: Party;
  /** The roles this process receives for (a collapsed node: proposer, acceptor, learner). */
  readonly roles: readonly Role[];
  /** Strictly greater on every start of `self` (see docs/security.md). */
  readonly incarnation: number;
  /** The cluster key: frames are sealed with it and must carry a valid MAC. Null or absent: none. */
  readonly key?: Uint8Array | null;
  /** A second key accepted (never sent with) while the key is rotated. */
  readonly acceptKey?: Uint8Array | null;
  /**
   * The members (not clients) that may send. Given: a non-client sender outside it is refused
   * (`unknown-sender`). Absent: any sender is tracked, in a bounded table.
   */
  readonly members?: readonly Party[];
  /**
   * Multicast groups: every member of a role hears frames for one of them. A frame for another member
   * of our role is then expected traffic (`ignored`), not a refusal.
   */
  readonly groupDelivery?: boolean;
  readonly refusals?: Refusals;
}

/** What `open` found in a frame. */
export type Opened =
  | { readonly kind: "message"; readonly body: Uint8Array; readonly sender: Party }
  | { readonly kind: "notice"; readonly reason: NoticeReason; readonly sender: Party }
  /** For another member of our multicast group: not ours, not suspicious. */
  | { readonly kind: "ignored" }
  | {
      readonly kind: "refused";
      readonly reason: EnvelopeRefusal;
      /** The sender should be told (`notice`): its frames fail authentication or its incarnation is old. */
      readonly notify: NoticeReason | null;
      readonly sender: Party | null;
    };

/** A sender's replay state: its incarnation, the highest seq seen in it, and the window behind it. */
class ReplayWindow {
  incarnation = -1;
  highestSeq = 0;
  /** Bit i of the window: seq `highestSeq - i` was seen. */
  readonly bits = new Uint32Array(WINDOW_WORDS);

  /** Whether (incarnation, seq) is new; records it if so. */
  check(incarnation: number, seq: number): "ok" | "stale-incarnation" | "replay" {
    if (incarnation < this.incarnation) return "stale-incarnation";
    if (incarnation > this.incarnation) {
      this.incarnation = incarnation;
      this.highestSeq = seq;
      this.bits.fill(0);
      this.bits[0] = 1;
      return "ok";
    }
    if (seq > this.highestSeq) {
      this.shift(seq - this.highestSeq);
      this.highestSeq = seq;
      this.bits[0] = (this.bits[0] as number) | 1;
      return "ok";
    }
    const behind = this.highestSeq - seq;
    if (behind >= REPLAY_WINDOW_FRAMES) return "replay";
    const word = behind >>> 5;
    const bit = 1 << (behind & 31);
    if (((this.bits[word] as number) & bit) !== 0) return "replay";
    this.bits[word] = (this.bits[word] as number) | bit;
    return "ok";
  }

  /** Moves the window forward by `by` seqs (bit i becomes bit i + by). */
  private shift(by: number): void {
    if (by >= REPLAY_WINDOW_FRAMES) {
      this.bits.fill(0);
      return;
    }
    const words = by >>> 5;
    const bits = by & 31;
    for (let i = WINDOW_WORDS - 1; i >= 0; i--) {
      const from = i - words;
      const high = from >= 0 ? (this.bits[from] as number) : 0;
      const low = from - 1 >= 0 ? (this.bits[from - 1] as number) : 0;
      this.bits[i] = bits === 0 ? high : ((high << bits) | (low >>> (32 - bits))) >>> 0;
    }
  }
}

/** A map that forgets its least recently used entry past `max`. */
class BoundedTable {
  private readonly entries = new Map<string, ReplayWindow>();
  constructor(private readonly max: number) {}

  get size(): number {
    return this.entries.size;
  }

  get(key: string): ReplayWindow {
    let window = this.entries.get(key);
    if (window !== undefined) {
      this.entries.delete(key);
      this.entries.set(key, window);
      return window;
    }
    if (this.entries.size >= this.max) {
      const oldest = this.entries.keys().next().value as string;
      this.entries.delete(oldest);
    }
    window = new ReplayWindow();
    this.entries.set(key, window);
    return window;
  }
}

function partyKey(party: Party): string {
  return `${party.kind}:${party.id}`;
}

/**
 * Seals outgoing frames and opens incoming ones for one process: the cluster id, the receiver, the
 * MAC (with a key), and, with a key, the sender's incarnation and a replay window per sender.
 * Without a key nothing is secret or authenticated: the cluster id and the receiver are still
 * checked (two clusters on one network never mix), but incarnations and seqs are not enforced (an
 * unauthenticated frame could claim any, and lock a real sender out).
 *
 * @example
 * const guard = new EnvelopeGuard({ clusterId: 7, self: { kind: "node", id: 1 },
 *   roles: ["proposer", "acceptor", "learner"], incarnation: Date.now(), key });
 * const frame = guard.seal(binaryCodec.encode(message), { role: "acceptor", id: 2 });
 * const opened = peer.open(frame); // { kind: "message", body, sender: { kind: "node", id: 1 } }
 */
export class EnvelopeGuard {
  readonly clusterId: number;
  readonly self: Party;
  readonly incarnation: number;
  readonly refusals: Refusals;
  private readonly roles: ReadonlySet<Role>;
  /** Imported once: importing a raw key on every HMAC costs more than the HMAC of a small frame. */
  private readonly key: KeyObject | null;
  private readonly acceptKey: KeyObject | null;
  /** The header is built here, then copied into the frame (one allocation per frame). */
  private readonly header = new Uint8Array(ENVELOPE_BYTES_MAX - MAC_BYTES);
  private readonly groupDelivery: boolean;
  private nextSeq = 1;
  private readonly members: Map<string, ReplayWindow> | null;
  private readonly clients = new BoundedTable(CLIENT_SENDERS_MAX);
  private readonly others = new BoundedTable(OTHER_SENDERS_MAX);

  constructor(options: EnvelopeOptions) {
    if (!Number.isInteger(options.clusterId) || options.clusterId < 1 || options.clusterId > 0xffff_ffff)
      throw new RangeError(`cluster id ${options.clusterId} must be an integer in 1..4294967295`);
    if (!Number.isSafeInteger(options.incarnation) || options.incarnation < 0)
      throw new RangeError(`incarnation ${options.incarnation} must be a non-negative integer`);
    for (const key of [options.key, options.acceptKey]) {
      if (key !== undefined && key !== null && key.length < CLUSTER_KEY_BYTES_MIN)
        throw new RangeError(`a cluster key must have at least ${CLUSTER_KEY_BYTES_MIN} bytes`);
    }
    this.clusterId = options.clusterId;
    this.self = options.self;
    this.incarnation = options.incarnation;
    this.roles = new Set(options.roles);
    this.key = options.key ? createSecretKey(options.key) : null;
    this.acceptKey = options.acceptKey ? createSecretKey(options.acceptKey) : null;
    this.groupDelivery = options.groupDelivery ?? false;
    this.refusals = options.refusals ?? new Refusals();
    this.members =
      options.members === undefined
        ? null
        : new Map(options.members.map((member) => [partyKey(member), new ReplayWindow()]));
  }

  /** Whether frames are authenticated (a cluster key is configured). */
  get authenticated(): boolean {
    return this.key !== null;
  }

  /** Senders whose replay state is held (members, clients and others): bounded. */
  get sendersTracked(): number {
    return (this.members?.size ?? 0) + this.clients.size + this.others.size;
  }

  /** One encoded message in an envelope for `to`; each call takes the next sequence number. */
  seal(body: Uint8Array, to: Destination): Uint8Array {
    return this.build(0, ROLES.indexOf(to.role), to.id ?? 0, body);
  }

  /** A notice to the sender of a refused frame (never authenticated: the receiver may lack our key). */
  notice(reason: NoticeReason, to: Party): Uint8Array {
    return this.build(
      FLAG_NOTICE,
      SENDER_KINDS.indexOf(to.kind),
      to.id,
      Uint8Array.of(NOTICE_REASONS.indexOf(reason)),
    );
  }

  private build(flags: number, receiverCode: number, receiverId: number, body: Uint8Array): Uint8Array {
    const mac = this.key !== null && (flags & FLAG_NOTICE) === 0;
    const header = this.header;
    header[0] = ENVELOPE_MAGIC;
    header[1] = flags | (mac ? FLAG_MAC : 0);
    header[2] = this.clusterId >>> 24;
    header[3] = (this.clusterId >>> 16) & 0xff;
    header[4] = (this.clusterId >>> 8) & 0xff;
    header[5] = this.clusterId & 0xff;
    let at = 6;
    header[at++] = SENDER_KINDS.indexOf(this.self.kind);
    at = writeUint(header, at, this.self.id);
    header[at++] = receiverCode;
    at = writeUint(header, at, receiverId);
    at = writeUint(header, at, this.incarnation);
    at = writeUint(header, at, this.nextSeq++);
    const frame = new Uint8Array(at + body.length + (mac ? MAC_BYTES : 0));
    frame.set(header.subarray(0, at), 0);
    frame.set(body, at);
    if (mac) {
      const tag = computeMac(this.key as KeyObject, frame.subarray(0, at + body.length));
      frame.set(tag, at + body.length);
    }
    return frame;
  }

  /**
   * Checks one incoming frame. A refusal is counted in `refusals` under its reason, and the frame
   * must be dropped; replay state changes only for a frame that passed every other check.
   */
  open(frame: Uint8Array): Opened {
    const opened = this.check(frame);
    if (opened.kind === "refused") this.refusals.count(opened.reason);
    return opened;
  }

  private check(frame: Uint8Array): Opened {
    const header = parseHeader(frame);
    if (header === null) return refused("malformed-envelope", null);
    if (header.clusterId !== this.clusterId) return refused("wrong-cluster", null);
    const sender = header.sender;
    if (header.notice) {
      const reason = NOTICE_REASONS[frame[header.bodyStart] as number];
      if (header.bodyEnd - header.bodyStart !== 1 || reason === undefined || header.hasMac)
        return refused("malformed-envelope", sender);
      if (header.receiverCode !== SENDER_KINDS.indexOf(this.self.kind) || header.receiverId !== this.self.id)
        return refused("wrong-receiver", sender);
      return { kind: "notice", reason, sender };
    }
    if (this.key !== null) {
      if (!header.hasMac) return refused("unauthenticated", sender, "unauthenticated");
      const signed = frame.subarray(0, header.bodyEnd);
      const tag = frame.subarray(header.bodyEnd);
      if (
        !macMatches(this.key, signed, tag) &&
        (this.acceptKey === null || !macMatches(this.acceptKey, signed, tag))
      )
        return refused("bad-mac", sender, "bad-mac");
    }
    const role = ROLES[header.receiverCode];
    if (role === undefined || !this.roles.has(role)) return refused("wrong-receiver", sender);
    if (header.receiverId !== 0 && header.receiverId !== this.self.id) {
      return this.groupDelivery ? { kind: "ignored" } : refused("wrong-receiver", sender);
    }
    const window = this.windowOf(sender);
    if (window === null) return refused("unknown-sender", sender);
    if (this.key !== null) {
      const fresh = window.check(header.incarnation, header.seq);
      if (fresh === "stale-incarnation") return refused(fresh, sender, fresh);
      if (fresh === "replay") return refused(fresh, sender);
    }
    return { kind: "message", body: frame.subarray(header.bodyStart, header.bodyEnd), sender };
  }

  private windowOf(sender: Party): ReplayWindow | null {
    const key = partyKey(sender);
    if (sender.kind === "client") return this.clients.get(key);
    if (this.members !== null) return this.members.get(key) ?? null;
    return this.others.get(key);
  }
}

function refused(reason: EnvelopeRefusal, sender: Party | null, notify: NoticeReason | null = null): Opened {
  return { kind: "refused", reason, notify, sender };
}

/**
 * The envelope's fields and the message bytes inside, without checking cluster, MAC or receiver (for
 * tools and tests that read traffic); null if `frame` is not a well-formed envelope.
 */
export function parseEnvelope(frame: Uint8Array): {
  readonly clusterId: number;
  readonly sender: Party;
  readonly receiver: { readonly role: Role | null; readonly id: NodeId };
  readonly incarnation: number;
  readonly seq: number;
  readonly authenticated: boolean;
  readonly notice: boolean;
  readonly body: Uint8Array;
} | null {
  const header = parseHeader(frame);
  if (header === null) return null;
  return {
    clusterId: header.clusterId,
    sender: header.sender,
    receiver: { role: header.notice ? null : (ROLES[header.receiverCode] ?? null), id: header.receiverId },
    incarnation: header.incarnation,
    seq: header.seq,
    authenticated: header.hasMac,
    notice: header.notice,
    body: frame.subarray(header.bodyStart, header.bodyEnd),
  };
}

interface Header {
  readonly hasMac: boolean;
  readonly notice: boolean;
  readonly clusterId: number;
  readonly sender: Party;
  readonly receiverCode: number;
  readonly receiverId: number;
  readonly incarnation: number;
  readonly seq: number;
  readonly bodyStart: number;
  readonly bodyEnd: number;
}

/** The header's fields, or null if the frame is not a well-formed envelope. */
function parseHeader(frame: Uint8Array): Header | null {
  if (frame.length < 6 || frame[0] !== ENVELOPE_MAGIC) return null;
  const flags = frame[1] as number;
  if ((flags & ~(FLAG_MAC | FLAG_NOTICE)) !== 0) return null;
  const clusterId =
    (frame[2] as number) * 0x100_0000 +
    (frame[3] as number) * 0x1_0000 +
    (frame[4] as number) * 0x100 +
    (frame[5] as number);
  const reader = { at: 6 };
  const kind = SENDER_KINDS[readByte(frame, reader)];
  const senderId = readUint(frame, reader);
  const receiverCode = readByte(frame, reader);
  const receiverId = readUint(frame, reader);
  const incarnation = readUint(frame, reader);
  const seq = readUint(frame, reader);
  if (kind === undefined || senderId < 0 || receiverCode < 0 || receiverId < 0 || incarnation < 0 || seq < 0)
    return null;
  const hasMac = (flags & FLAG_MAC) !== 0;
  const bodyEnd = frame.length - (hasMac ? MAC_BYTES : 0);
  if (bodyEnd < reader.at) return null;
  return {
    hasMac,
    notice: (flags & FLAG_NOTICE) !== 0,
    clusterId,
    sender: { kind, id: senderId },
    receiverCode,
    receiverId,
    incarnation,
    seq,
    bodyStart: reader.at,
    bodyEnd,
  };
}

function readByte(frame: Uint8Array, reader: { at: number }): number {
  if (reader.at >= frame.length) return -1;
  return frame[reader.at++] as number;
}

/** An unsigned LEB128 varint up to 2^53-1, minimal encoding only; -1 if malformed. */
function readUint(frame: Uint8Array, reader: { at: number }): number {
  let value = 0;
  let scale = 1;
  for (let i = 0; i < 8; i++) {
    if (reader.at >= frame.length) return -1;
    const byte = frame[reader.at++] as number;
    value += (byte & 0x7f) * scale;
    if ((byte & 0x80) === 0) {
      if (byte === 0 && i > 0) return -1; // not minimal
      return value <= Number.MAX_SAFE_INTEGER ? value : -1;
    }
    scale *= 128;
  }
  return -1;
}

function writeUint(into: Uint8Array, at: number, value: number): number {
  let rest = value;
  while (rest >= 128) {
    into[at++] = (rest % 128) | 0x80;
    rest = Math.floor(rest / 128);
  }
  into[at++] = rest;
  return at;
}

function computeMac(key: KeyObject, signed: Uint8Array): Uint8Array {
  return createHmac("sha256", key).update(signed).digest().subarray(0, MAC_BYTES);
}

function macMatches(key: KeyObject, signed: Uint8Array, tag: Uint8Array): boolean {
  const expected = computeMac(key, signed);
  return tag.length === MAC_BYTES && timingSafeEqual(expected, tag);
}

/**
 * A 32-bit cluster id from text (FNV-1a), never 0: the default id of a cluster derived from its
 * name and members, or of a course deployment from its group addresses.
 */
export function clusterIdOf(text: string): number {
  let hash = 0x811c9dc5;
  for (const byte of new TextEncoder().encode(text)) {
    hash ^= byte;
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash === 0 ? 1 : hash;
}
