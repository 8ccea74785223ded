import { formatBallot, type Message } from "../core/index.js";

/**
 * `--debug`: one readable line per message a node sends or receives, on stderr, beside the JSON
 * log (readers of the log skip lines that are not JSON). Every line has the same shape:
 *
 *   14:03:07.412 node 1 -> node 2 (127.0.0.1:7102) accept ballot=3.1 slot=17 commands=3 bytes=152
 *
 * time (UTC), this node, the direction (`->` sent, `<-` received), the peer (its node id when the
 * address is a member's, and the address), the message kind, then `key=value` fields: the ballot
 * (round.node), the slot or slots, counts, and the encoded size in bytes.
 */

/** What a debug line describes. */
export interface DebugEvent {
  /** This node: "node 1". */
  readonly self: string;
  readonly direction: "in" | "out";
  /** The peer's address, "host:port". */
  readonly address: string;
  /** The peer's name when known ("node 2"), else null (a client, or an address not in the cluster). */
  readonly peer: string | null;
  readonly message: Message;
  /** The encoded message's size. */
  readonly bytes: number;
  /** When (default: now). */
  readonly at?: Date;
}

/** The `key=value` fields of a message: ballot first, then slots, then counts. */
export function messageFields(message: Message): string {
  switch (message.type) {
    case "request": {
      const first = message.commands[0]?.seq;
      const last = message.commands[message.commands.length - 1]?.seq;
      return `from=${message.from} commands=${message.commands.length}${first === undefined ? "" : ` seq=${first}..${last}`}`;
    }
    case "ack":
      return `client=${message.client} seqs=${message.seqs.length}`;
    case "refuse":
      return `client=${message.client} seqs=${message.seqs.length} reason=${message.reason}`;
    case "prepare":
      return `ballot=${formatBallot(message.ballot)} slot=${message.firstSlot}..`;
    case "promise":
      return `ballot=${formatBallot(message.ballot)} votes=${message.accepted.length} next=${message.nextSlot ?? "none"}`;
    case "accept":
      return `ballot=${formatBallot(message.ballot)} slot=${message.slot} commands=${message.value.commands.length}`;
    case "accepted":
      return `ballot=${formatBallot(message.ballot)} slot=${message.slot}`;
    case "reject":
      return `ballot=${formatBallot(message.ballot)} promised=${formatBallot(message.promised)} slot=${message.slot}`;
    case "decide": {
      const first = message.entries[0]?.slot;
      const last = message.entries[message.entries.length - 1]?.slot;
      return first === undefined ? "slots=0" : `slot=${first}..${last} slots=${message.entries.length}`;
    }
    case "heartbeat":
      return `ballot=${formatBallot(message.ballot)} decided-through=${message.decidedThrough}`;
    case "catchup":
      return `slot=${message.fromSlot}..${message.toSlot} role=${message.role}`;
    case "snapshot-request":
      return `slot=${message.slot} offset=${message.offset} role=${message.role}`;
    case "snapshot-chunk":
      return `slot=${message.slot} offset=${message.offset} chunk=${message.data.length} length=${message.length}`;
    case "rejoin-query":
      return `promised=${formatBallot(message.promised)} nonce=${message.nonce}`;
    case "rejoin-report":
      return message.voting
        ? `promised=${formatBallot(message.promised)} voted-through=${message.votedThrough} leader=${formatBallot(message.leaderBallot)} proposed-through=${message.proposedThrough} nonce=${message.nonce}`
        : `not-voting leader=${formatBallot(message.leaderBallot)} proposed-through=${message.proposedThrough} nonce=${message.nonce}`;
  }
}

/** One `--debug` line (no newline). */
export function debugLine(event: DebugEvent): string {
  const time = (event.at ?? new Date()).toISOString().slice(11, 23);
  const arrow = event.direction === "out" ? "->" : "<-";
  const peer = event.peer === null ? event.address : `${event.peer} (${event.address})`;
  return `${time} ${event.self} ${arrow} ${peer} ${event.message.type} ${messageFields(event.message)} bytes=${event.bytes}`;
}

/**
 * A driver's `onTrace` that writes one `debugLine` per message: `peers` names the members'
 * addresses ("127.0.0.1:7102" -> "node 2"); `write` defaults to stderr.
 */
export function debugTracer(
  self: string,
  peers: ReadonlyMap<string, string>,
  write: (line: string) => void = (line) => process.stderr.write(line),
): (direction: "in" | "out", message: Message, address: string, bytes: number) => void {
  return (direction, message, address, bytes) =>
    write(`${debugLine({ self, direction, address, peer: peers.get(address) ?? null, message, bytes })}\n`);
}
