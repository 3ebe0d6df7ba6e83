// Agents (list, pairing codes, tokens, revoke), artifacts (list, download) and server health.
import { createHash } from "node:crypto";
import { createWriteStream, existsSync } from "node:fs";
import { rename, rm } from "node:fs/promises";
import { z } from "zod";
import { ArtifactNameSchema } from "../../protocol/index.ts";
import { EXIT, ServerError, UsageError } from "./errors.ts";
import { type Ctx, jobIdArg } from "./jobs.ts";
import { CMD, table } from "./render.ts";

const out = (text: string) => console.log(text);
/** Prints JSON and returns the success exit code, for `if (ctx.json) return printJson(res);`. */
const printJson = (value: unknown): number => {
  out(JSON.stringify(value, null, 2));
  return EXIT.ok;
};
const when = (ms: number | null | undefined) => (typeof ms === "number" ? new Date(ms).toISOString() : "-");

const AgentsSchema = z.object({
  online: z.array(
    z.looseObject({
      agentId: z.string(),
      name: z.string(),
      workspaces: z.array(z.string()),
      running: z.number(),
      maxConcurrency: z.number(),
      version: z.string(),
    }),
  ),
  known: z.array(
    z.looseObject({
      id: z.string(),
      name: z.string(),
      status: z.string(),
      workspaces: z.array(z.string()),
      lastHeartbeatAt: z.number(),
    }),
  ),
});
const TokensSchema = z.object({
  tokens: z.array(
    z.looseObject({
      id: z.string(),
      agentId: z.string().nullable(),
      name: z.string().nullable(),
      createdAt: z.number().nullable(),
      pairedAt: z.number().nullable(),
      lastUsedAt: z.number().nullable(),
      revokedAt: z.number().nullable(),
    }),
  ),
});

export async function agents(ctx: Ctx): Promise<number> {
  const [sub = "list", ...rest] = ctx.args;
  switch (sub) {
    case "list": {
      const res = await ctx.api.read(AgentsSchema, ctx.api.client.api.agents.$get());
      if (ctx.json) return printJson(res);
      const online = new Map(res.online.map((a) => [a.agentId, a]));
      const rows = res.known.map((w) => {
        const live = online.get(w.id);
        return [
          w.id,
          w.name,
          live ? "online" : w.status.toLowerCase(),
          live ? `${live.running}/${live.maxConcurrency}` : "-",
          (live?.workspaces ?? w.workspaces).join(","),
          live?.version ?? "-",
          when(w.lastHeartbeatAt),
        ];
      });
      out(
        rows.length
          ? table([["agent", "name", "state", "running", "projects", "version", "last heartbeat"], ...rows])
          : "no agents have connected yet",
      );
      return EXIT.ok;
    }
    case "pair": {
      if (rest.length > 0) throw new UsageError("agents pair takes no arguments (name the agent with --name)");
      const res = await ctx.api.read(
        z.object({ code: z.string(), expiresAt: z.string() }),
        ctx.api.client.api.agents["pairing-codes"].$post({ json: ctx.name ? { name: ctx.name } : {} }),
      );
      if (ctx.json) return printJson(res);
      out(
        `pairing code ${res.code} (single use, valid until ${res.expiresAt})\non the laptop:\n  npx skynet-agent pair ${ctx.api.base} ${res.code}\n  npx skynet-agent connect --workspace default=/path/to/project`,
      );
      return EXIT.ok;
    }
    case "tokens": {
      const res = await ctx.api.read(TokensSchema, ctx.api.client.api.agents.tokens.$get());
      if (ctx.json) return printJson(res);
      const rows = res.tokens.map((t) => [
        t.id,
        t.name ?? "-",
        t.pairedAt ? (t.agentId ?? "-") : "(pairing code not used yet)",
        t.revokedAt ? `revoked ${when(t.revokedAt)}` : "active",
        when(t.lastUsedAt),
      ]);
      out(rows.length ? table([["token", "name", "agent", "state", "last used"], ...rows]) : "no agent tokens");
      return EXIT.ok;
    }
    case "revoke": {
      const id = rest[0];
      if (!id || rest.length > 1 || !/^tok_[0-9a-f]{16}$/.test(id)) {
        throw new UsageError(`agents revoke needs one token id (tok_ and 16 hex digits): see ${CMD} agents tokens`);
      }
      const res = await ctx.api.read(
        z.object({ revoked: z.string(), agentId: z.string().nullable(), socketsClosed: z.number() }),
        ctx.api.client.api.agents.tokens[":id"].$delete({ param: { id } }),
      );
      if (ctx.json) printJson(res);
      else
        out(
          `revoked ${res.revoked}${res.agentId ? ` (agent ${res.agentId}, ${res.socketsClosed} connection(s) closed)` : ""}`,
        );
      return EXIT.ok;
    }
    default:
      throw new UsageError(`unknown agents command "${sub}": list, pair, tokens or revoke`);
  }
}

const ArtifactsSchema = z.object({
  jobId: z.string(),
  artifacts: z.array(
    z.looseObject({
      name: z.string(),
      size: z.number(),
      sha256: z.string().optional(),
      contentType: z.string().optional(),
    }),
  ),
});

export async function artifacts(ctx: Ctx): Promise<number> {
  const [sub, ...rest] = ctx.args;
  if (sub === "list" || sub?.startsWith("job_")) {
    const id = jobIdArg({ ...ctx, args: sub === "list" ? rest : ctx.args }, "artifacts list");
    const res = await ctx.api.read(ArtifactsSchema, ctx.api.client.api.jobs[":id"].artifacts.$get({ param: { id } }));
    if (ctx.json) return printJson(res);
    const rows = res.artifacts.map((a) => [a.name, `${a.size} B`, a.sha256 ?? "-"]);
    out(rows.length ? table([["name", "size", "sha256"], ...rows]) : `${id} has no artifacts`);
    return EXIT.ok;
  }
  if (sub === "get" || sub === "download") {
    const [id, name] = rest;
    const jobId = jobIdArg({ ...ctx, args: id ? [id] : [] }, `artifacts ${sub}`);
    const parsedName = ArtifactNameSchema.safeParse(name);
    if (!parsedName.success || rest.length > 2)
      throw new UsageError(
        `artifacts ${sub} <jobId> <name> [-o FILE]: give an artifact name from \`${CMD} artifacts list ${jobId}\``,
      );
    return download(ctx, jobId, parsedName.data);
  }
  throw new UsageError(`artifacts list <jobId> | artifacts get <jobId> <name> [-o FILE]`);
}

/** Downloads to a temporary name, checks the server's sha256, then renames; never overwrites. */
async function download(ctx: Ctx, jobId: string, name: string): Promise<number> {
  const target = ctx.output ?? name;
  if (target !== "-" && existsSync(target)) throw new UsageError(`${target} exists; choose another with -o FILE`);
  const res = await ctx.api.fetch(`/api/jobs/${jobId}/artifacts/${encodeURIComponent(name)}`);
  const expected = res.headers.get("X-Skynet-Sha256");
  const hash = createHash("sha256");
  const tmp = `${target}.part-${process.pid}`;
  const sink = target === "-" ? process.stdout : createWriteStream(tmp, { flags: "wx" });
  let size = 0;
  try {
    for await (const chunk of res.body ?? []) {
      hash.update(chunk);
      size += chunk.byteLength;
      if (!sink.write(chunk)) await new Promise<void>((r) => sink.once("drain", () => r()));
    }
    if (sink !== process.stdout)
      await new Promise<void>((r, j) => sink.end((err?: Error | null) => (err ? j(err) : r())));
    const got = hash.digest("hex");
    if (expected && got !== expected)
      throw new ServerError(`${name}: sha256 ${got} does not match the server's ${expected}; nothing was saved`);
    if (sink !== process.stdout) await rename(tmp, target);
  } catch (err) {
    if (sink !== process.stdout) await rm(tmp, { force: true });
    throw err;
  }
  if (target !== "-") {
    if (ctx.json) printJson({ jobId, name, path: target, size, sha256: expected });
    else out(`saved ${name} (${size} B, sha256 verified) to ${target}`);
  }
  return EXIT.ok;
}

export async function health(ctx: Ctx): Promise<number> {
  let res: Response;
  try {
    res = await fetch(`${ctx.api.base}/health`);
  } catch {
    return ctx.api.fetch("/health").then(() => EXIT.failed);
  }
  const body: unknown = await res.json().catch(() => null);
  out(
    ctx.json
      ? JSON.stringify(body, null, 2)
      : `${res.status === 200 ? "healthy" : `unhealthy (${res.status})`}: ${JSON.stringify(body)}`,
  );
  return res.status === 200 ? EXIT.ok : EXIT.failed;
}
