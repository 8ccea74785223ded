/**
 * Most bytes of one input line kept while reading it: 1 MiB. A value is at most 8 KiB
 * (`Limits.payloadBytesMax`), so a longer line is refused anyway; past this bound its bytes are not
 * even kept (a stream without newlines must not fill memory).
 */
export const LINE_BYTES_MAX = 1024 * 1024;

export interface LineHandlers {
  /** A line's text (without its "\n" or "\r\n"); `lineNumber` counts from 1, blank lines included. */
  readonly onLine: (line: string, lineNumber: number) => void;
  /** A line that is not valid UTF-8, or longer than `LINE_BYTES_MAX`: said, never sent. */
  readonly onRefused: (problem: string, lineNumber: number) => void;
  /** The stream ended (or failed); every line has been handed over. */
  readonly onEnd: () => void;
}

export interface LineReader {
  pause(): void;
  resume(): void;
  /** Stops reading: no more lines, and `onEnd` is not called. */
  close(): void;
}

/**
 * Reads `stream` line by line, as `paxos client` and `paxos cluster` take their values from stdin:
 * one value per line ("\n" or "\r\n"); blank lines (only white space) are skipped; a line that is
 * not valid UTF-8 is refused with its line number rather than sent with U+FFFD in place of its bad
 * bytes (as a text decoder would), since that would decide a value nobody typed.
 */
export function readLines(stream: NodeJS.ReadableStream, handlers: LineHandlers): LineReader {
  const decoder = new TextDecoder("utf-8", { fatal: true });
  let pieces: Buffer[] = [];
  let bytes = 0;
  let tooLong = false;
  let lineNumber = 0;
  let closed = false;
  const finishLine = () => {
    lineNumber++;
    const wasTooLong = tooLong;
    let line = pieces.length === 1 ? (pieces[0] as Buffer) : Buffer.concat(pieces, bytes);
    pieces = [];
    bytes = 0;
    tooLong = false;
    if (wasTooLong) {
      handlers.onRefused(`line ${lineNumber} is over ${LINE_BYTES_MAX} bytes; not sent`, lineNumber);
      return;
    }
    if (line.length > 0 && line[line.length - 1] === 0x0d) line = line.subarray(0, line.length - 1);
    let text: string;
    try {
      text = decoder.decode(line);
    } catch {
      handlers.onRefused(`line ${lineNumber} is not valid UTF-8; not sent`, lineNumber);
      return;
    }
    if (text.trim() === "") return;
    handlers.onLine(text, lineNumber);
  };
  const keep = (piece: Buffer) => {
    if (tooLong || piece.length === 0) return;
    if (bytes + piece.length > LINE_BYTES_MAX) {
      tooLong = true;
      pieces = [];
      bytes = 0;
      return;
    }
    pieces.push(piece);
    bytes += piece.length;
  };
  const onData = (chunk: Buffer | string) => {
    if (closed) return;
    const data = typeof chunk === "string" ? Buffer.from(chunk) : chunk;
    let start = 0;
    for (let newline = data.indexOf(0x0a); newline !== -1; newline = data.indexOf(0x0a, start)) {
      keep(data.subarray(start, newline));
      start = newline + 1;
      finishLine();
      if (closed) return;
    }
    keep(data.subarray(start));
  };
  const onEnd = () => {
    if (closed) return;
    if (bytes > 0 || tooLong) finishLine();
    closed = true;
    handlers.onEnd();
  };
  stream.on("data", onData);
  stream.once("end", onEnd);
  stream.once("error", onEnd);
  return {
    pause: () => stream.pause(),
    resume: () => stream.resume(),
    close: () => {
      closed = true;
      stream.off("data", onData);
      stream.pause();
    },
  };
}
