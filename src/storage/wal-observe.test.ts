import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { waitFor } from "../test-support/index.js";
import { MemoryFileSystem } from "./memory-fs.js";
import { WalStorage } from "./wal.js";

/** An opened log over a simulated disk, with every group commit's duration recorded. */
async function openedLog(): Promise<{ wal: WalStorage; fs: MemoryFileSystem; commits: number[] }> {
  const fs = new MemoryFileSystem();
  const commits: number[] = [];
  const wal = new WalStorage({ dir: "/data/wal", fs, onCommit: (durationMs) => commits.push(durationMs) });
  const opened = await wal.open();
  assert.ok(opened.ok);
  return { wal, fs, commits };
}

describe("WalStorage: what metrics and /health read", () => {
  it("onCommit hears each group commit once, with its duration; nothing runs between them", async () => {
    const { wal, commits } = await openedLog();
    assert.equal(wal.commitRunningMs, 0);
    wal.append({ promised: { round: 1, node: 1 } });
    const first = wal.sync();
    // Appends while a commit is queued share it (group commit): still one commit for both.
    wal.append({ proposerRound: 2 });
    await Promise.all([first, wal.sync()]);
    assert.equal(commits.length, 1);
    wal.append({ promised: { round: 3, node: 1 } });
    await wal.sync();
    assert.equal(commits.length, 2);
    for (const durationMs of commits) assert.ok(durationMs >= 0 && Number.isFinite(durationMs));
    assert.equal(wal.commitRunningMs, 0, "no commit runs once the syncs resolved");
    assert.equal(wal.failed, null);
    // A sync with nothing appended is no commit.
    await wal.sync();
    assert.equal(commits.length, 2);
    await wal.close();
  });

  it("a commit shows as running while its data sync is held, and stops when it completes", async () => {
    let release: (() => void) | null = null;
    let hold = false;
    const fs = new MemoryFileSystem({
      scheduler: (operation) => {
        if (!hold || operation.kind !== "datasync") return;
        return new Promise<void>((resolve) => {
          release = resolve;
        });
      },
    });
    const wal = new WalStorage({ dir: "/data/wal", fs });
    assert.ok((await wal.open()).ok);
    hold = true;
    wal.append({ promised: { round: 1, node: 1 } });
    const sync = wal.sync();
    await waitFor(() => release !== null, "the commit to reach its data sync");
    await waitFor(() => wal.commitRunningMs > 0, "the running commit to show");
    const runningMs = wal.commitRunningMs;
    await waitFor(() => wal.commitRunningMs > runningMs, "the running time to grow while held");
    hold = false;
    (release as unknown as () => void)();
    await sync;
    assert.equal(wal.commitRunningMs, 0);
    await wal.close();
  });

  it("a failed sync fails the log for good, and `failed` says why", async () => {
    const { wal, fs, commits } = await openedLog();
    fs.failNext("datasync");
    wal.append({ promised: { round: 1, node: 1 } });
    await assert.rejects(wal.sync(), /EIO/);
    assert.match(wal.failed?.message ?? "", /EIO/);
    assert.equal(commits.length, 0, "a failed commit is not reported as a commit");
    assert.equal(wal.commitRunningMs, 0);
    await wal.close({ sync: false }).catch(() => {});
  });
});
