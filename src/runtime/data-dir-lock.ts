import { linkSync, readFileSync, unlinkSync, writeFileSync } from "node:fs";
import { err, ok, type Result } from "../core/index.js";

/** Whether a process with this pid exists (another user's counts). */
function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

/**
 * Makes this process the only user of data directory `dir` until it exits: creates `DIR.lock` holding
 * the pid (written under a private name first, then linked into place, so the lock never exists
 * without its pid). A lock whose process is gone (SIGKILL, power cut) is taken over; a live one is an
 * error: "DIR in use by pid N". The lock sits beside the directory, not in it, because a rejoin
 * set-up renames the directory.
 */
export function lockDataDirOrError(dir: string): Result<void, string> {
  const path = `${dir}.lock`;
  const mine = `${path}.${process.pid}`;
  try {
    writeFileSync(mine, `${process.pid}\n`);
  } catch (error) {
    return err(
      `cannot use --data ${dir}: cannot create its lock ${mine}: ${(error as NodeJS.ErrnoException).code}`,
    );
  }
  try {
    // A few rounds: each either takes the lock, finds it live, or removes a stale one.
    for (let attempt = 0; attempt < 5; attempt++) {
      try {
        linkSync(mine, path);
        process.once("exit", () => {
          try {
            if (readFileSync(path, "utf8").trim() === String(process.pid)) unlinkSync(path);
          } catch {
            // Gone already: nothing to release.
          }
        });
        return ok(undefined);
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code;
        if (code !== "EEXIST") return err(`cannot lock ${dir}: cannot create ${path}: ${code}`);
      }
      let holder: number;
      try {
        holder = Number(readFileSync(path, "utf8").trim());
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === "ENOENT") continue;
        return err(`cannot lock ${dir}: cannot read ${path}: ${(error as NodeJS.ErrnoException).code}`);
      }
      if (Number.isSafeInteger(holder) && holder > 0 && holder !== process.pid && isAlive(holder))
        return err(`${dir} in use by pid ${holder}`);
      // The process that held it is gone: take it over. (Two processes taking over one stale lock at
      // the same moment could both succeed; starting two nodes on one directory at once after a
      // crash is not guarded against.)
      try {
        unlinkSync(path);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== "ENOENT")
          return err(
            `cannot lock ${dir}: cannot remove stale ${path}: ${(error as NodeJS.ErrnoException).code}`,
          );
      }
    }
    return err(`cannot lock ${dir}: ${path} keeps changing`);
  } finally {
    try {
      unlinkSync(mine);
    } catch {
      // Already gone.
    }
  }
}
