import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import { isWellFormedUnicode } from "./payload.js";
import { isPrintableAsIs, parsePrintedLine, printableLine } from "./printable.js";

/** The units in `text` that break or steer line-oriented output (C0 but tab, DEL, C1, U+2028/9). */
function lineBreakingUnits(text: string): string[] {
  return [...text].filter((c) => {
    const unit = c.charCodeAt(0);
    return (
      (unit < 0x20 && unit !== 0x09) || (unit >= 0x7f && unit <= 0x9f) || unit === 0x2028 || unit === 0x2029
    );
  });
}

describe("printableLine: one decided value, one line", () => {
  test("a line-safe payload prints as itself (the course harness compares lines to its input)", () => {
    for (const payload of ["x=1", "value 1 xxx", "tab\tinside", "back\\slash", 'end quote"', "añ€😀", ""]) {
      assert.equal(printableLine(payload), payload);
      assert.ok(isPrintableAsIs(payload));
    }
  });

  test("newline, carriage return, escape, NEL, line separators and lone surrogates are quoted and escaped", () => {
    const cases: [string, string][] = [
      ["a\nb", '"a\\nb"'],
      ["a\r\nb", '"a\\r\\nb"'],
      ["\u001b[2J", '"\\u001b[2J"'],
      ["nel\u0085", '"nel\\u0085"'],
      ["ls\u2028ps\u2029", '"ls\\u2028ps\\u2029"'],
      ["lone \ud800", '"lone \\ud800"'],
      ["\u0000", '"\\u0000"'],
      ["del\u007f", '"del\\u007f"'],
      ["tab\tand\nnewline", '"tab\\tand\\nnewline"'],
    ];
    for (const [payload, printed] of cases) {
      assert.equal(printableLine(payload), printed);
      assert.deepEqual(parsePrintedLine(printed), { ok: true, value: payload });
    }
  });

  test("a payload starting with a quote is quoted itself, so a quoted line is never ambiguous", () => {
    assert.equal(printableLine('"quoted"'), '"\\"quoted\\""');
    assert.deepEqual(parsePrintedLine('"\\"quoted\\""'), { ok: true, value: '"quoted"' });
  });

  test("property: every string prints as one line without line-breaking units, and parses back to itself", () => {
    fc.assert(
      fc.property(fc.string({ unit: "binary", maxLength: 64 }), (payload) => {
        const line = printableLine(payload);
        assert.deepEqual(lineBreakingUnits(line), []);
        assert.ok(isWellFormedUnicode(line), "a printed line has no lone surrogate");
        assert.equal(line.startsWith('"'), !isPrintableAsIs(payload));
        assert.deepEqual(parsePrintedLine(line), { ok: true, value: payload });
      }),
      { numRuns: 2000 },
    );
  });

  test("a line no printer writes is an error, not a guess", () => {
    assert.equal(parsePrintedLine('"unterminated').ok, false);
    assert.equal(parsePrintedLine('"a" trailing').ok, false);
    assert.equal(parsePrintedLine("raw\u001bescape").ok, false);
  });
});
