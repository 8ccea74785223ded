import { err, ok, type Result } from "./result.js";

/**
 * Whether a UTF-16 unit would break line-oriented output, or mislead whoever reads it, if printed
 * raw: C0 controls but tab (newline, carriage return, escape sequences of terminals), DEL, C1
 * controls (NEL U+0085 among them), the Unicode line and paragraph separators, and lone surrogates
 * (which stdout would replace with U+FFFD, so the line would no longer say what was decided).
 */
function isUnsafeUnit(text: string, i: number): boolean {
  const unit = text.charCodeAt(i);
  if (unit < 0x20) return unit !== 0x09;
  if (unit < 0x7f) return false;
  if (unit <= 0x9f) return true;
  if (unit === 0x2028 || unit === 0x2029) return true;
  if (unit >= 0xd800 && unit <= 0xdbff) {
    const next = text.charCodeAt(i + 1);
    return !(next >= 0xdc00 && next <= 0xdfff);
  }
  if (unit >= 0xdc00 && unit <= 0xdfff) {
    const previous = i > 0 ? text.charCodeAt(i - 1) : 0;
    return !(previous >= 0xd800 && previous <= 0xdbff);
  }
  return false;
}

/** Whether `payload` prints as itself: no unsafe unit, and no leading `"` (which marks a quoted line). */
export function isPrintableAsIs(payload: string): boolean {
  if (payload.charCodeAt(0) === 0x22) return false;
  for (let i = 0; i < payload.length; i++) if (isUnsafeUnit(payload, i)) return false;
  return true;
}

const SHORT_ESCAPES: Readonly<Record<number, string>> = {
  8: "\\b",
  9: "\\t",
  10: "\\n",
  12: "\\f",
  13: "\\r",
  34: '\\"',
  92: "\\\\",
};

/**
 * How every printer of decided values (`paxos node`, `paxos learner`, `paxos cluster`, `paxos demo`,
 * the course-harness learner) writes a payload on one line, so that one value is always exactly one
 * line whatever it holds:
 *
 * - a payload without control characters (tab is fine), line separators or lone surrogates, and that
 *   does not start with `"`, is printed as it is: every line the course harness's clients read from
 *   their stdin comes back unchanged;
 * - any other payload is printed as a JSON string literal (`"a\nb"`, `"\u001b[2J"`): it starts with
 *   `"`, and `JSON.parse` (or {@link parsePrintedLine}) gives the payload back exactly.
 *
 * So a printed line is never ambiguous: it starts with `"` exactly when it is quoted. See
 * docs/security.md, "The edge: clients, printers and limits", for why values are escaped rather than
 * refused.
 *
 * @example
 * printableLine("x=1");      // 'x=1'
 * printableLine("a\nb");     // '"a\\nb"' (8 characters: the quotes, a, \, n, b)
 * printableLine('"quoted"'); // '"\\"quoted\\""'
 */
export function printableLine(payload: string): string {
  if (isPrintableAsIs(payload)) return payload;
  let quoted = '"';
  let from = 0;
  for (let i = 0; i < payload.length; i++) {
    const unit = payload.charCodeAt(i);
    const short = SHORT_ESCAPES[unit];
    if (short === undefined && !isUnsafeUnit(payload, i)) continue;
    quoted += payload.slice(from, i) + (short ?? `\\u${unit.toString(16).padStart(4, "0")}`);
    from = i + 1;
  }
  return `${quoted + payload.slice(from)}"`;
}

/**
 * The payload a line written by {@link printableLine} stands for (the line without its newline), or
 * why it is not one such line.
 *
 * @example
 * parsePrintedLine('"a\\nb"'); // { ok: true, value: "a\nb" }
 * parsePrintedLine("x=1");      // { ok: true, value: "x=1" }
 */
export function parsePrintedLine(line: string): Result<string, string> {
  if (line.charCodeAt(0) !== 0x22) {
    if (!isPrintableAsIs(line)) return err("an unquoted line holds a character a printer would have escaped");
    return ok(line);
  }
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    return err("a line starting with '\"' is not a JSON string literal");
  }
  if (typeof value !== "string") return err("a line starting with '\"' is not a JSON string literal");
  return ok(value);
}
