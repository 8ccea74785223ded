import type { Readable } from "node:stream";

/**
 * Calls `onLine` with each complete line a child process writes on `stream`. `rest()` is what came
 * after the last newline so far (a process killed mid-line leaves it there).
 */
export function readLines(stream: Readable | null, onLine: (line: string) => void): { rest(): string } {
  let rest = "";
  stream?.setEncoding("utf8");
  stream?.on("data", (chunk: string) => {
    const parts = (rest + chunk).split("\n");
    rest = parts.pop() ?? "";
    for (const line of parts) onLine(line);
  });
  return { rest: () => rest };
}
