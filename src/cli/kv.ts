import { parseCommandArgs } from "./args.js";
import { UsageError } from "./errors.js";
import {
  answerMessage,
  EXIT_UNKNOWN,
  type HttpAnswer,
  NodeClient,
  parseNodeList,
  SessionWriter,
  type WriteOutcome,
  watchChanges,
} from "./http-client.js";
import { parseId, parsePositiveInt } from "./process-kit.js";

export const KV_HELP = `Usage: paxos kv <get|put|del|cas|list|watch> [arguments] --node HOST:PORT[,HOST:PORT...]

The key-value store of a running cluster, through the HTTP API of its nodes ("paxos node --http",
"paxos cluster"; docs/applications.md). With several nodes, a request that meets a connection error
or a 503 goes to the next one (first to the leader a node names), again and again until --timeout-ms.

  get KEY                   print the value (a linearizable read); exit 1 if there is no such key
  put KEY VALUE             set KEY to VALUE ("-": read the value from stdin); prints {"revision": N}
  del KEY                   delete KEY; prints {"revision": N, "deleted": true|false}
  cas KEY VALUE --prev-value OLD | --prev-revision N | --prev-exist false
                            set KEY to VALUE only if its value is OLD, or it last changed at revision
                            N (0: absent), or it is absent; prints {"revision": N}, or exit 1 with the
                            entry as it is. With --delete instead of VALUE: delete under the condition
  list [PREFIX]             the keys under PREFIX in key order, one JSON object a line
                            ({"key", "value", "createRevision", "modRevision"}); --limit N
  watch [PREFIX]            print each change under PREFIX as it is applied, one JSON line each
                            ({"revision", "key", "value"}; value null: deleted), until Ctrl-C;
                            --revision N starts from revision N (history kept: the last 10,000
                            changes). A watch that loses its node goes on on the next one, from
                            where it was

Writes are exactly once: each runs in a client session (POST /session) with a sequence number, and
a write retried on another node after a lost answer is applied once and answered as the first time.

Options:
  --node LIST        nodes' HTTP addresses, HOST:PORT, comma-separated (default: $PAXOS_NODES)
  --timeout-ms N     keep trying the nodes for this long (default 20000)
  --session S --seq N
                     put, del, cas: write as command N of client session S (from POST /session)
                     instead of in a new session; run the same command again after exit 3 to learn
                     its outcome (it is applied at most once)
  --json             get: print {"key", "value", "createRevision", "modRevision"} instead of the value
  -h, --help         this text

Exit status: 0 done; 1 refused or failed (nothing was applied; for get: no such key; for cas: the
condition did not hold); 2 usage error; 3 outcome unknown (a write may or may not have been applied:
no node could say which before --timeout-ms).`;

const SUBCOMMANDS = ["get", "put", "del", "cas", "list", "watch"] as const;

export async function kvCommand(args: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs("kv", args, {
    node: { type: "string" },
    "timeout-ms": { type: "string" },
    json: { type: "boolean", default: false },
    "prev-value": { type: "string" },
    "prev-revision": { type: "string" },
    "prev-exist": { type: "string" },
    delete: { type: "boolean", default: false },
    limit: { type: "string" },
    revision: { type: "string" },
    session: { type: "string" },
    seq: { type: "string" },
    help: { type: "boolean", short: "h", default: false },
  });
  if (values.help) {
    process.stdout.write(`${KV_HELP}\n`);
    return 0;
  }
  const [sub, ...rest] = positionals;
  if (sub === undefined) throw new UsageError(`missing a subcommand: ${SUBCOMMANDS.join(", ")}`);
  if (!(SUBCOMMANDS as readonly string[]).includes(sub))
    throw new UsageError(`unknown subcommand "${sub}" (known: ${SUBCOMMANDS.join(", ")})`);
  const arity: Record<string, [number, number]> = {
    get: [1, 1],
    put: [2, 2],
    del: [1, 1],
    cas: values.delete ? [1, 1] : [2, 2],
    list: [0, 1],
    watch: [0, 1],
  };
  const [least, most] = arity[sub] as [number, number];
  if (rest.length < least)
    throw new UsageError(`${sub}: missing ${least === 2 && rest.length === 1 ? "VALUE" : "KEY"}`);
  if (rest.length > most) throw new UsageError(`${sub}: unexpected argument "${rest[most]}"`);
  const flagsOf: Record<string, readonly string[]> = {
    get: ["json"],
    put: ["session", "seq"],
    del: ["session", "seq"],
    cas: ["prev-value", "prev-revision", "prev-exist", "delete", "session", "seq"],
    list: ["limit"],
    watch: ["revision"],
  };
  for (const flag of [
    "json",
    "prev-value",
    "prev-revision",
    "prev-exist",
    "delete",
    "limit",
    "revision",
    "session",
    "seq",
  ] as const) {
    const given = flag === "json" || flag === "delete" ? values[flag] === true : values[flag] !== undefined;
    if (given && !(flagsOf[sub] as readonly string[]).includes(flag))
      throw new UsageError(`${sub} takes no --${flag}`);
  }
  const nodes = parseNodeList(values.node);
  const deadlineMs = parsePositiveInt(values["timeout-ms"], "--timeout-ms", 20_000);
  const key = rest[0] ?? "";
  if ((sub === "get" || sub === "put" || sub === "del" || sub === "cas") && key === "")
    throw new UsageError(`${sub}: KEY must not be empty`);
  if ((values.session === undefined) !== (values.seq === undefined))
    throw new UsageError("--session and --seq go together");
  const given =
    values.session === undefined
      ? null
      : { session: parseId(values.session, "session"), seq: parseId(values.seq, "seq") };
  const client = new NodeClient(nodes, { deadlineMs });
  const write = (method: "PUT" | "DELETE", path: string, body?: string) =>
    writeOnce(new SessionWriter(client, given), sub, method, path, body);
  try {
    switch (sub) {
      case "get":
        return await get(client, key, values.json);
      case "put":
        return await write("PUT", `/kv/${encodeURIComponent(key)}`, await valueArgument(rest[1] as string));
      case "del":
        return await write("DELETE", `/kv/${encodeURIComponent(key)}`);
      case "cas": {
        const query = casQuery(values["prev-value"], values["prev-revision"], values["prev-exist"]);
        const path = `/kv/${encodeURIComponent(key)}?${query}`;
        return values.delete
          ? await write("DELETE", path)
          : await write("PUT", path, await valueArgument(rest[1] as string));
      }
      case "list":
        return await list(client, rest[0] ?? "", values.limit);
      default:
        return await watch(client, rest[0] ?? "", values.revision, deadlineMs);
    }
  } finally {
    client.close();
  }
}

/** A command's error: one line on stderr, exit 1. */
function failed(sub: string, message: string, status = 1): number {
  process.stderr.write(`paxos kv ${sub}: ${message}\n`);
  return status;
}

async function valueArgument(value: string): Promise<string> {
  if (value !== "-") return value;
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}

function casQuery(
  value: string | undefined,
  revision: string | undefined,
  exist: string | undefined,
): string {
  const query = new URLSearchParams();
  if (value !== undefined) query.set("prev-value", value);
  if (revision !== undefined) {
    if (!/^\d+$/.test(revision))
      throw new UsageError(`--prev-revision wants a revision (0 or more), got "${revision}"`);
    query.set("prev-revision", revision);
  }
  if (exist !== undefined) {
    if (exist !== "false") throw new UsageError(`--prev-exist takes only "false", got "${exist}"`);
    query.set("prev-exist", "false");
  }
  if ([...query.keys()].length === 0)
    throw new UsageError("cas needs a condition: --prev-value OLD, --prev-revision N or --prev-exist false");
  return query.toString();
}

/** Reports an answer that is not a success: the no-answer cases are the caller's. */
function refused(sub: string, answer: HttpAnswer): number {
  if (answer.json.code === "cas-failed") {
    const current = answer.json.current as { value?: string; modRevision?: number } | null | undefined;
    const now =
      current === null || current === undefined
        ? "the key is absent"
        : `the key is at revision ${current.modRevision} with value ${JSON.stringify(current.value)}`;
    return failed(sub, `the condition does not hold: ${now}`);
  }
  return failed(sub, answerMessage(answer));
}

async function get(client: NodeClient, key: string, json: boolean): Promise<number> {
  let answer: HttpAnswer;
  try {
    answer = await client.request("GET", `/kv/${encodeURIComponent(key)}`);
  } catch (error) {
    return failed("get", `no node answered (last: ${(error as Error).message})`);
  }
  if (answer.status === 404 && answer.json.code === "not-found")
    return failed("get", `no key ${JSON.stringify(key)}`);
  if (answer.status !== 200) return refused("get", answer);
  if (json)
    process.stdout.write(
      `${JSON.stringify({
        key,
        value: answer.body,
        createRevision: Number(answer.headers["paxos-create-revision"]),
        modRevision: Number(answer.headers["paxos-revision"]),
      })}\n`,
    );
  else process.stdout.write(`${answer.body}\n`);
  return 0;
}

async function writeOnce(
  writer: SessionWriter,
  sub: string,
  method: "PUT" | "DELETE",
  path: string,
  body?: string,
): Promise<number> {
  const outcome: WriteOutcome = await writer.write(method, path, body);
  switch (outcome.kind) {
    case "done":
      process.stdout.write(`${JSON.stringify(outcome.answer.json)}\n`);
      return 0;
    case "unknown":
      return failed(sub, `outcome unknown: ${outcome.message}`, EXIT_UNKNOWN);
    case "failed":
      return outcome.answer === null ? failed(sub, outcome.message) : refused(sub, outcome.answer);
  }
}

async function list(client: NodeClient, prefix: string, limitText: string | undefined): Promise<number> {
  const limit = limitText === undefined ? null : parsePositiveInt(limitText, "--limit", 1);
  const query = new URLSearchParams({ prefix });
  if (limit !== null) query.set("limit", String(limit));
  let answer: HttpAnswer;
  try {
    answer = await client.request("GET", `/kv?${query}`);
  } catch (error) {
    return failed("list", `no node answered (last: ${(error as Error).message})`);
  }
  if (answer.status !== 200) return refused("list", answer);
  const entries = Array.isArray(answer.json.entries) ? answer.json.entries : [];
  process.stdout.write(entries.map((entry) => `${JSON.stringify(entry)}\n`).join(""));
  if (answer.json.more === true)
    process.stderr.write(
      `paxos kv list: more keys have the prefix than --limit ${limit ?? "(default)"} shows\n`,
    );
  return 0;
}

async function watch(
  client: NodeClient,
  prefix: string,
  revisionText: string | undefined,
  outageMs: number,
): Promise<number> {
  if (revisionText !== undefined && !/^\d+$/.test(revisionText))
    throw new UsageError(`--revision wants a revision (0 or more), got "${revisionText}"`);
  const controller = new AbortController();
  const stop = () => controller.abort();
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
  try {
    await watchChanges(client, prefix, {
      fromRevision: revisionText === undefined ? null : Number(revisionText),
      signal: controller.signal,
      outageMs,
      onChange: (change) => process.stdout.write(`${JSON.stringify(change)}\n`),
    });
    return 0;
  } catch (error) {
    return failed("watch", (error as Error).message);
  } finally {
    process.off("SIGINT", stop);
    process.off("SIGTERM", stop);
  }
}
