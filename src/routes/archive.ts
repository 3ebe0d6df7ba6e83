// Archive API (bearer API_TOKEN): a job's artifacts (list, download, delete) and its live log
// as server-sent events.
import { Hono, type MiddlewareHandler } from "hono";
import { streamSSE } from "hono/streaming";
import { z } from "zod";
import { ArtifactNameSchema, isTerminal, JobIdSchema, type JobStatus } from "../../protocol/index.ts";
import { jobStub } from "../agents/registry-stub.ts";
import { ArtifactError, ArtifactStore } from "../archive/artifacts.ts";
import { apiAuth } from "../http/auth.ts";
import { ApiError } from "../http/errors.ts";
import { valid } from "../http/validate.ts";
import { logKey } from "../jobs/archive-log.ts";
import type { LogPosition } from "../jobs/log-buffer.ts";
import { getDb, getJob, readJobLog } from "../ledger/store.ts";

const jobParam = valid("param", z.object({ id: JobIdSchema }), "job id");
const artifactParam = valid(
  "param",
  z.object({ id: JobIdSchema, name: ArtifactNameSchema }),
  "job id or artifact name",
);

async function existingJob(env: Env, jobId: string): Promise<void> {
  if (await jobStub(env, jobId).get()) return;
  // A job whose live record was deleted after retention keeps its ledger row and archive.
  if (await getJob(getDb(env.DB), jobId)) return;
  throw new ApiError("not_found", `no job ${jobId}`);
}

function mapArtifactError(err: unknown): never {
  if (err instanceof ArtifactError) throw new ApiError(err.code, err.message);
  throw err;
}

const POLL_MS = 500;
/** How long one wait for more log lasts before the stream asks again. */
const STREAM_WAIT_MS = 25_000;

const archivedHeaders = (length: number) => ({
  "Content-Type": "text/plain; charset=utf-8",
  "Content-Length": String(length),
  "X-Skynet-Log": "archived",
});

/** The archive routes behind `guard`, which each route runs first (so unknown paths stay 404s). */
function archiveRoutesBehind(guard: MiddlewareHandler<{ Bindings: Env }>) {
  return new Hono<{ Bindings: Env }>()
    .get("/jobs/:id/artifacts", guard, jobParam, async (c) => {
      const id = c.req.valid("param").id;
      await existingJob(c.env, id);
      return c.json({ jobId: id, artifacts: await new ArtifactStore(c.env.ARCHIVE).list(id) });
    })
    .get("/jobs/:id/artifacts/:name", guard, artifactParam, async (c) => {
      const { id, name } = c.req.valid("param");
      const obj = await new ArtifactStore(c.env.ARCHIVE).get(id, name).catch(mapArtifactError);
      if (!obj) throw new ApiError("not_found", `job ${id} has no artifact ${name}`);
      const headers = new Headers({
        "Content-Type": obj.httpMetadata?.contentType ?? "application/octet-stream",
        "Content-Length": String(obj.size),
        "Content-Disposition": `attachment; filename="${name}"`,
        "X-Content-Type-Options": "nosniff",
        ETag: obj.httpEtag,
      });
      if (obj.customMetadata?.sha256) headers.set("X-Skynet-Sha256", obj.customMetadata.sha256);
      return new Response(obj.body, { headers });
    })
    .delete("/jobs/:id/artifacts", guard, jobParam, async (c) => {
      const id = c.req.valid("param").id;
      const deleted = await new ArtifactStore(c.env.ARCHIVE).deleteJob(id).catch(mapArtifactError);
      return c.json({ jobId: id, deleted });
    })
    .get("/jobs/:id/ops", guard, jobParam, async (c) => {
      const id = c.req.valid("param").id;
      await existingJob(c.env, id);
      return c.json({ jobId: id, ops: await jobStub(c.env, id).opCounts() });
    })
    .get("/jobs/:id/log", guard, jobParam, async (c) => {
      // The whole log once archived: on the ledger row when small, else in R2 (archive-log.ts);
      // before that, what the JobDO holds so far.
      const id = c.req.valid("param").id;
      const row = await readJobLog(c.env.DB, id);
      if (typeof row?.log === "string") {
        const bytes = new TextEncoder().encode(row.log);
        return new Response(bytes, { headers: archivedHeaders(bytes.length) });
      }
      const obj = await c.env.ARCHIVE.get(logKey(id));
      if (obj) return new Response(obj.body, { headers: archivedHeaders(obj.size) });
      const stub = jobStub(c.env, id);
      const first = await stub.readLogChunks(null);
      if (!first) {
        // A final job's live record goes after JOB_STATE_RETENTION_DAYS, its log after LOG_RETENTION_DAYS.
        if (row) throw new ApiError("not_found", `job ${id} has no log any more (deleted after the retention period)`);
        throw new ApiError("not_found", `no job ${id}`);
      }
      const { readable, writable } = new TransformStream<Uint8Array, Uint8Array>();
      const writer = writable.getWriter();
      const enc = new TextEncoder();
      c.executionCtx.waitUntil(
        (async () => {
          let batch: { text: string; next: LogPosition | null } | null = first;
          while (batch?.text) {
            await writer.write(enc.encode(batch.text));
            batch = batch.next ? await stub.readLogChunks(batch.next) : null;
          }
          await writer.close();
        })(),
      );
      return new Response(readable, {
        headers: { "Content-Type": "text/plain; charset=utf-8", "X-Skynet-Log": "live" },
      });
    })
    .get("/jobs/:id/logs/stream", guard, jobParam, async (c) => {
      const id = c.req.valid("param").id;
      const stub = jobStub(c.env, id);
      const first = await stub.readLogChunks(null);
      if (!first) throw new ApiError("not_found", `no job ${id}`);
      // Server-sent events: `log` events carry new text, one `end` event carries the final status.
      return streamSSE(c, async (stream) => {
        let aborted = false;
        stream.onAbort(() => {
          aborted = true;
        });
        let batch: { text: string; next: LogPosition | null; status: JobStatus } | null = first;
        let pos: LogPosition | null = null;
        let id = 0;
        while (batch && !aborted) {
          if (batch.text) await stream.writeSSE({ event: "log", data: batch.text, id: String(++id) });
          const moved: boolean = JSON.stringify(batch.next) !== JSON.stringify(pos);
          pos = batch.next;
          const done = isTerminal(batch.status);
          if (done && !moved) {
            await stream.writeSSE({ event: "end", data: JSON.stringify({ status: batch.status }) });
            break;
          }
          batch = moved ? await stub.readLogChunks(pos) : await nextLog(stub, pos, batch.status);
        }
      });
    });
}

/**
 * The log after `pos` once the job's object has more of it or the job moved on (it answers at
 * once then, or after STREAM_WAIT_MS with nothing). Should the object restart under the wait,
 * it is asked again after POLL_MS, plainly.
 */
async function nextLog(stub: ReturnType<typeof jobStub>, pos: LogPosition | null, status: JobStatus) {
  try {
    return await stub.readLogChunksWhenMoved(pos, status, STREAM_WAIT_MS);
  } catch {
    await new Promise((r) => setTimeout(r, POLL_MS));
    return stub.readLogChunks(pos);
  }
}

/** Mounted at /api: the JSON API's archive routes, behind the API token. */
export const archiveApiRoutes = archiveRoutesBehind(apiAuth());
/** The same routes unguarded, only for the web console, which runs them after its session check. */
export const archiveRoutes = archiveRoutesBehind((_c, next) => next());
