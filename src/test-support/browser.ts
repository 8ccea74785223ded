import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import type { Browser } from "playwright-core";

/** Debian's Chromium, which the browser tests drive (installed by `findChromium` if missing). */
export const CHROMIUM_PATH = "/usr/bin/chromium";

/** Most ms an `apt-get update` plus install of Chromium may take before the tests give up on it. */
const INSTALL_MS_MAX = 15 * 60_000;

let found: { readonly path: string } | { readonly skip: string } | null = null;

/**
 * Debian's Chromium: its path, installing it with apt-get first if it is missing (as root, once per
 * process), or the reason it cannot be had here, for a test's `skip` message. A browser test is
 * then skipped saying why, never passed silently.
 */
export function findChromium(): { readonly path: string } | { readonly skip: string } {
  if (found !== null) return found;
  found = locate();
  return found;
}

function locate(): { readonly path: string } | { readonly skip: string } {
  if (existsSync(CHROMIUM_PATH)) return { path: CHROMIUM_PATH };
  if (process.getuid?.() !== 0)
    return { skip: `no browser: ${CHROMIUM_PATH} is missing and installing it needs root` };
  const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
  const run = (args: string[]) =>
    spawnSync("apt-get", args, { stdio: ["ignore", "ignore", "pipe"], env, timeout: INSTALL_MS_MAX });
  const update = run(["update"]);
  const install =
    update.status === 0 ? run(["install", "-y", "--no-install-recommends", "chromium"]) : update;
  if (install.status === 0 && existsSync(CHROMIUM_PATH)) return { path: CHROMIUM_PATH };
  const why = install.error?.message ?? install.stderr?.toString().trim().split("\n").pop() ?? "unknown";
  return { skip: `no browser: apt-get could not install chromium (${why})` };
}

/**
 * Starts headless Chromium through playwright-core. Call `findChromium` first and skip the test
 * with its reason when it gives none. `--no-sandbox` because the tests may run as root (CI does).
 */
export async function launchChromium(path: string): Promise<Browser> {
  const { chromium } = await import("playwright-core");
  return chromium.launch({ executablePath: path, headless: true, args: ["--no-sandbox"] });
}
