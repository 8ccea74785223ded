import type { IncomingMessage, ServerResponse } from "node:http";

/**
 * Placeholder until the replay work (branch i11-replay) is merged, which replaces this file: it
 * serves the `/replay...` routes (a simulator run stepped through in the browser). Here it handles
 * nothing, and the dashboard answers 404 for them.
 */
export async function handleReplayRequest(
  _req: IncomingMessage,
  _res: ServerResponse,
  _url: URL,
): Promise<boolean> {
  return false;
}
