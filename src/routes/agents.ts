// Agent-facing endpoints (pair, WebSocket connect, artifact upload) and the owner's agent admin
// API (pairing codes, agents online, tokens, revoke).
import { Hono } from "hono";
import { z } from "zod";
import {
  type AgentSelf,
  ArtifactNameSchema,
  JobIdSchema,
  PairRequestSchema,
  Sha256HexSchema,
} from "../../protocol/index.ts";
import { jobStub, registryStub } from "../agents/registry-stub.ts";
import { authenticateAgent, issuePairingCode, redeemCode } from "../agents/tokens.ts";
import { ArtifactError, ArtifactStore, artifactKey } from "../archive/artifacts.ts";
import { apiAuth, bearerToken } from "../http/auth.ts";
import { pairFailureBucket } from "../http/client-address.ts";
import { ApiError, parseOr400 } from "../http/errors.ts";
import { jsonInput, valid } from "../http/validate.ts";
import { MAX_ARTIFACT_BYTES } from "../jobs/limits.ts";
import { listTokens, listWorkers, revokeToken } from "../ledger/agent-store.ts";
import { getDb, incrementCounter, readCounters } from "../ledger/store.ts";

const MAX_PAIR_FAILURES_PER_MINUTE = 20;

async function agentFromRequest(env: Env, header: string | undefined) {
  const token = bearerToken(header);
  const agent = token ? await authenticateAgent(env, token) : null;
  if (!agent) throw new ApiError("unauthorized", "missing, unknown or revoked agent token");
  return agent;
}

/** Mounted at /agent: used by the laptop agent. */
export const agentRoutes = new Hono<{ Bindings: Env }>()
  .post("/pair", jsonInput(), valid("json", PairRequestSchema, "request body"), async (c) => {
    const body = c.req.valid("json");
    // Guessing codes is slowed down per client address: past the limit of failures this minute,
    // that client waits for the next minute; other clients' pairing is not affected.
    const db = getDb(c.env.DB);
    const bucket = pairFailureBucket(c);
    if (((await readCounters(db, bucket))[bucket] ?? 0) >= MAX_PAIR_FAILURES_PER_MINUTE) {
      throw new ApiError("rate_limited", "too many failed pairing attempts; try again in a minute");
    }
    const paired = await redeemCode(c.env, body.code, body.name);
    if (!paired) {
      await incrementCounter(db, bucket);
      throw new ApiError(
        "unauthorized",
        "pairing code is unknown, expired or already used; ask for a new one with /pair",
      );
    }
    return c.json(paired, 201);
  })
  // The agent as the server sees it, for `skynet-agent status` and `doctor` (token check included).
  .get("/me", async (c) => {
    const agent = await agentFromRequest(c.env, c.req.header("Authorization"));
    const seen = await registryStub(c.env).agentSelf(agent.agentId);
    return c.json({
      agentId: agent.agentId,
      name: agent.name,
      ...seen,
      serverTime: new Date().toISOString(),
    } satisfies AgentSelf);
  })
  .get("/connect", async (c) => {
    if (c.req.header("Upgrade")?.toLowerCase() !== "websocket") {
      throw new ApiError("bad_request", "this endpoint expects a WebSocket upgrade");
    }
    const agent = await agentFromRequest(c.env, c.req.header("Authorization"));
    const headers = new Headers(c.req.raw.headers);
    headers.delete("Authorization");
    headers.set("X-Skynet-Agent-Id", agent.agentId);
    headers.set("X-Skynet-Agent-Name", agent.name);
    return registryStub(c.env).fetch(new Request(c.req.url, { headers }));
  })
  .put("/jobs/:jobId/artifacts/:name", async (c) => {
    const agent = await agentFromRequest(c.env, c.req.header("Authorization"));
    const jobId = parseOr400(JobIdSchema, c.req.param("jobId"), "job id");
    const name = parseOr400(ArtifactNameSchema, c.req.param("name"), "artifact name");
    const attempt = parseOr400(z.coerce.number().int().min(1), c.req.header("X-Skynet-Attempt"), "X-Skynet-Attempt");
    const lease = c.req.header("X-Skynet-Lease") ?? "";
    const sha256 = parseOr400(Sha256HexSchema, c.req.header("X-Skynet-Sha256"), "X-Skynet-Sha256");
    const length = Number(c.req.header("Content-Length") ?? "NaN");
    if (!Number.isFinite(length)) throw new ApiError("bad_request", "Content-Length is required for artifact uploads");
    if (length > MAX_ARTIFACT_BYTES)
      throw new ApiError("payload_too_large", `artifacts are limited to ${MAX_ARTIFACT_BYTES} bytes`);
    const job = jobStub(c.env, jobId);
    const checkLease = async () => {
      const valid = await job.leaseValid(attempt, lease, agent.agentId);
      if (valid === "ended") throw new ApiError("conflict", `job ${jobId} is final: its lease has ended`);
      if (!valid) throw new ApiError("forbidden", "this agent does not hold the job's current lease");
    };
    await checkLease();
    const contentType = c.req.header("Content-Type") ?? "application/octet-stream";
    const body = c.req.raw.body;
    if (!body) throw new ApiError("bad_request", "empty upload");
    const stored = await new ArtifactStore(c.env.ARCHIVE)
      .put(jobId, name, body, {
        size: length,
        sha256,
        contentType,
        extra: { attempt: String(attempt), agentId: agent.agentId },
      })
      .catch((err: unknown) => {
        if (err instanceof ArtifactError) throw new ApiError(err.code, err.message);
        throw err;
      });
    // The job may have ended while the body streamed in: then the upload must leave nothing behind.
    try {
      await checkLease();
    } catch (err) {
      await c.env.ARCHIVE.delete(artifactKey(jobId, name)).catch(() => undefined);
      throw err;
    }
    return c.json({ name, size: stored.size, sha256, contentType }, 201);
  });

/** Mounted at /api/agents: the owner's view (API token, checked by each route). */
const auth = apiAuth();
export const agentAdminRoutes = new Hono<{ Bindings: Env }>()
  .post(
    "/pairing-codes",
    auth,
    jsonInput({ allowEmpty: true }),
    valid("json", z.strictObject({ name: z.string().trim().min(1).max(100).optional() }).default({}), "request body"),
    async (c) => {
      const body = c.req.valid("json");
      const issued = await issuePairingCode(c.env, { name: body.name, createdBy: "api" });
      return c.json({ code: issued.code, expiresAt: new Date(issued.expiresAt).toISOString() }, 201);
    },
  )
  .get("/", auth, async (c) => {
    const [online, known] = await Promise.all([registryStub(c.env).listAgents(), listWorkers(getDb(c.env.DB), {})]);
    return c.json({ online, known });
  })
  .get("/tokens", auth, async (c) => c.json({ tokens: await listTokens(getDb(c.env.DB)) }))
  .delete(
    "/tokens/:id",
    auth,
    valid("param", z.object({ id: z.string().regex(/^tok_[0-9a-f]{16}$/) }), "token id"),
    async (c) => {
      const id = c.req.valid("param").id;
      const revoked = await revokeToken(getDb(c.env.DB), id, Date.now());
      if (!revoked) throw new ApiError("not_found", `no active token ${id}`);
      const closed = await registryStub(c.env).disconnectAgent(revoked.agentId, "token revoked");
      return c.json({ revoked: id, agentId: revoked.agentId, socketsClosed: closed });
    },
  );
