// The operator CLI against wrangler dev and a real agent: every verb, the approval view with the
// plan's params, --json, `logs -f` over the server-sent event stream past 10,000 lines.
import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { JobListResponseSchema, JobViewSchema } from "../../protocol/index.ts";
import { type AgentProcess, startAgent } from "../helpers/node/agent-process.ts";
import { type GitRepo, makeGitRepo } from "../helpers/node/git-repo.ts";
import { type CliResult, runCli } from "../helpers/node/skynet-cli.ts";
import { waitFor } from "../helpers/node/wait.ts";
import { type RunningWorker, startWorker } from "../helpers/node/wrangler-dev.ts";

let worker: RunningWorker;
let agent: AgentProcess;
let repo: GitRepo;
let cwd: string;

const cli = (...args: string[]): Promise<CliResult> =>
  runCli(args, { cwd, env: { SKYNET_URL: worker.url, SKYNET_API_TOKEN: worker.apiToken } });

async function ok(...args: string[]): Promise<string> {
  const res = await cli(...args);
  expect(res.stderr, `skynet ${args.join(" ")}`).toBe("");
  expect(res.code, `skynet ${args.join(" ")}: ${res.stderr}`).toBe(0);
  return res.stdout;
}

beforeAll(async () => {
  cwd = await mkdtemp(join(tmpdir(), "skynet-cli-"));
  repo = await makeGitRepo({
    "README.md": "# cli\n",
    "package.json": JSON.stringify({
      name: "cli-e2e",
      private: true,
      scripts: { test: "node -e \"console.log('tests ok')\"" },
    }),
  });
  worker = await startWorker();
  const pair = JSON.parse(await ok("agents", "pair", "--name", "cli-e2e", "--json")) as { code: string };
  const paired = (await (
    await fetch(`${worker.url}/agent/pair`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ code: pair.code, name: "cli-e2e" }),
    })
  ).json()) as { token: string };
  agent = await startAgent({ url: worker.url, token: paired.token, workspace: repo.dir, allowShell: true });
  await waitFor(
    async () => ((await (await fetch(`${worker.url}/health`)).json()) as { agentsOnline: number }).agentsOnline === 1,
    { timeoutMs: 30_000, what: "the agent to come online" },
  );
});

afterAll(async () => {
  await agent?.stop();
  await worker?.stop();
  await repo?.cleanup();
  if (cwd) await rm(cwd, { recursive: true, force: true });
});

describe("skynet CLI verbs", () => {
  it("task --follow runs a READ_ONLY task and shows its project, steps and real output", async () => {
    const out = await ok("task", "check git status", "--follow");
    expect(out).toMatch(/job_\w+ {2}SUCCEEDED {2}project default {2}risk READ_ONLY/);
    expect(out).toContain("s1 git_status     succeeded exit 0");
    expect(out).toContain("  | On branch main");
    expect(out).not.toMatch(/\b0 min\b/);
  });

  it("a WRITE plan shows each step's params while it waits; approve --follow runs it", async () => {
    const id = (await ok("task", "create a new file notes.txt with hello from the cli", "-q")).trim();
    expect(id).toMatch(/^job_[0-9a-z]+$/);
    const shown = await ok("status", id);
    expect(shown).toContain("PLANNED  project default  risk WRITE");
    expect(shown).toContain("to approve, check what each step will do:");
    expect(shown).toContain("1. write_file · WRITE");
    expect(shown).toContain("   path: notes.txt");
    expect(shown).toContain("     | hello from the cli");
    expect(shown).toContain(`npx skynet approve ${id}`);
    const json = JobViewSchema.parse(JSON.parse(await ok("status", id, "--json")));
    expect(json.review?.steps[0]?.params).toMatchObject({ path: "notes.txt" });

    const run = await ok("approve", id, "--follow");
    expect(run).toMatch(new RegExp(`${id} {2}SUCCEEDED`));
    expect(await readFile(join(repo.dir, "notes.txt"), "utf8")).toContain("hello from the cli");
  });

  it("jobs lists the project; --json is the API's page", async () => {
    expect(await ok("jobs")).toMatch(/job_\w+ {2}SUCCEEDED {2}default {7}/);
    const page = JobListResponseSchema.parse(JSON.parse(await ok("jobs", "--json", "--limit", "1")));
    expect(page.jobs).toHaveLength(1);
    expect(page.nextCursor).not.toBeNull();
    const newest = page.jobs[0]?.id ?? "";
    expect(await ok("wait", newest, "--timeout", "5")).toContain(`${newest}  SUCCEEDED`);
    expect(JSON.parse(await ok("health", "--json"))).toMatchObject({ agentsOnline: 1 });
  });

  it("cancel and deny say who decided once; retry runs the task again as a new job", async () => {
    const id = (await ok("task", "create a new file other.txt with x", "-q")).trim();
    const denied = JobViewSchema.parse(JSON.parse(await ok("deny", id, "--json", "--reason", "not now")));
    expect(denied.status).toBe("CANCELLED");
    expect(denied.error).toBe("denied by api: not now");
    const again = (await ok("retry", id, "-q")).trim().split("\n").at(-1) ?? "";
    expect(again).not.toBe(id);
    const retried = JobViewSchema.parse(JSON.parse(await ok("status", again, "--json")));
    expect(retried.intent).toBe("create a new file other.txt with x");
    expect(retried.status).toBe("PLANNED");
    const cancelled = JobViewSchema.parse(JSON.parse(await ok("cancel", again, "--json")));
    expect(cancelled.status).toBe("CANCELLED");
    expect(cancelled.error).toBe("cancelled by api");
    expect(await ok("status", again)).toContain("error: cancelled by api\n");
    // A finished job cannot be redispatched: the server's conflict is an error (1), not usage (2).
    const redo = await cli("redispatch", again);
    expect(redo.code).toBe(1);
    expect(redo.stderr).toContain("skynet: 409");
  });

  it("logs -f streams the whole log of a long job over SSE, past 10,000 lines", async () => {
    const id = (await ok("task", "run command seq 1 15000", "-q")).trim();
    await ok("approve", id);
    const res = await cli("logs", id, "-f");
    expect(res.code).toBe(0);
    const numbers = res.stdout.split("\n").filter((l) => /^\d+$/.test(l));
    expect(numbers).toHaveLength(15000);
    expect(numbers.at(-1)).toBe("15000");
    // The status view marks that it shows only the tail.
    expect(await ok("status", id)).toContain(`… earlier lines not shown: npx skynet logs ${id}`);
    const json = (await ok("logs", id, "-f", "--json")).trim().split("\n");
    expect(JSON.parse(json.at(-1) ?? "")).toEqual({ end: { status: "SUCCEEDED" } });
    expect(json.filter((l) => /^\{"line":"\d+"\}$/.test(l))).toHaveLength(15000);
    expect((await ok("logs", id, "--tail", "2")).trim().split("\n")).toEqual(["14999", "15000"]);
  });

  it("events, ops, artifacts list and get (sha256 checked, never overwriting)", async () => {
    const id = (await ok("task", "run the tests", "--json", "-q")).trim();
    expect(id).toMatch(/^job_/);
    await ok("approve", id, "--follow");
    const events = JSON.parse(await ok("events", id, "--json")) as { events: { to: string }[] };
    expect(events.events.map((e) => e.to)).toContain("SUCCEEDED");
    expect(await ok("ops", id)).toMatch(/operation\s+count/);
    const list = JSON.parse(await ok("artifacts", "list", id, "--json")) as { artifacts: { name: string }[] };
    const name = list.artifacts[0]?.name ?? "";
    expect(name).not.toBe("");
    const target = join(cwd, "artifact.log");
    expect(await ok("artifacts", "get", id, name, "-o", target)).toContain("sha256 verified");
    expect(existsSync(target)).toBe(true);
    const again = await cli("artifacts", "get", id, name, "-o", target);
    expect(again.code).toBe(2);
    expect(again.stderr).toContain("exists");
  });

  it("agents list, tokens and revoke", async () => {
    expect(await ok("agents")).toMatch(/agent_\w+\s+e2e-agent\s+online\s+\d\/2\s+default/);
    const code = JSON.parse(await ok("agents", "pair", "--json")) as { code: string };
    expect(code.code).toMatch(/^[A-Z0-9]{8}$/);
    const tokens = JSON.parse(await ok("agents", "tokens", "--json")) as {
      tokens: { id: string; pairedAt: number | null; revokedAt: number | null }[];
    };
    const unpaired = tokens.tokens.find((t) => t.pairedAt === null && t.revokedAt === null);
    expect(unpaired).toBeDefined();
    expect(await ok("agents", "revoke", unpaired?.id ?? "")).toContain(`revoked ${unpaired?.id}`);
    const after = JSON.parse(await ok("agents", "tokens", "--json")) as typeof tokens;
    expect(after.tokens.find((t) => t.id === unpaired?.id)?.revokedAt).not.toBeNull();
  });
});
