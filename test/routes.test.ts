// Routing: each route carries its own auth and validators, so an unknown path is a 404 whether or
// not it has a token, a known path without one is a 401, and every validator's refusal is the
// API's error body. Also: the typed client (hc<AppType>) reaches the same routes.
import { describe, expect, it } from "vitest";
import { api, countLedgerJobs, json, typedClient } from "./helpers/worker.ts";

type ErrorBody = { error: { code: string; message: string } };

async function refusal(res: Response, status: number, code: string): Promise<string> {
  expect(res.status).toBe(status);
  expect(res.headers.get("content-type")).toContain("application/json");
  const body = await json<ErrorBody>(res);
  expect(body.error.code).toBe(code);
  return body.error.message;
}

const UNKNOWN: [string, string][] = [
  ["GET", "/api/nope"],
  ["GET", "/api/agents/nope"],
  ["POST", "/api/jobs/job_0000000000000000/nope"],
  ["GET", "/nope"],
  ["POST", "/execute/again"],
  ["GET", "/status"],
];

describe("unknown paths", () => {
  for (const [method, path] of UNKNOWN) {
    it(`${method} ${path} is a 404 with and without a token`, async () => {
      for (const token of [undefined, null, "wrong"]) {
        const message = await refusal(await api(path, { method, token }), 404, "not_found");
        expect(message).toBe(`no route for ${method} ${path}`);
      }
    });
  }

  it("known paths still need the token", async () => {
    for (const [method, path] of [
      ["GET", "/api/jobs"],
      ["GET", "/api/jobs/job_0000000000000000/artifacts"],
      ["GET", "/api/agents/tokens"],
      ["POST", "/execute"],
      ["GET", "/status/job_0000000000000000"],
      ["POST", "/cancel/job_0000000000000000"],
      ["GET", "/metrics"],
    ] as const) {
      await refusal(await api(path, { method, token: null }), 401, "unauthorized");
    }
  });
});

describe("validators", () => {
  it("refuses each bad part of a request with 400/413/415 and creates nothing", async () => {
    const before = await countLedgerJobs();
    const post = (path: string, body: string, type = "application/json") =>
      api(path, { method: "POST", body, headers: { "Content-Type": type } });
    expect(await refusal(await post("/api/tasks", '{"intent":""}'), 400, "bad_request")).toMatch(
      /^invalid request body: intent/,
    );
    expect(await refusal(await post("/api/tasks", "{nope"), 400, "bad_request")).toContain("JSON");
    expect(
      await refusal(await post("/api/tasks", '{"intent":"x"}', "text/plain"), 415, "unsupported_media_type"),
    ).toContain("text/plain");
    await refusal(
      await post("/api/tasks", JSON.stringify({ intent: "x".repeat(300 * 1024) })),
      413,
      "payload_too_large",
    );
    expect(await refusal(await api("/api/jobs/not-a-job"), 400, "bad_request")).toMatch(/^invalid job id: /);
    expect(await refusal(await api("/api/jobs?limit=0"), 400, "bad_request")).toMatch(/^invalid query: limit/);
    expect(await refusal(await api("/api/jobs/job_0000000000000000/wait?timeoutS=999"), 400, "bad_request")).toMatch(
      /^invalid query: timeoutS/,
    );
    await refusal(await post("/api/jobs/job_0000000000000000/deny", '{"reason":1}'), 400, "bad_request");
    await refusal(await post("/execute", '{"executionSpec":{}}'), 400, "bad_request");
    expect(await refusal(await api("/status/../etc", { method: "GET" }), 404, "not_found")).toContain("no route");
    expect(await refusal(await api("/status/bad-id"), 400, "bad_request")).toMatch(/^invalid job id: /);
    expect(await refusal(await api("/api/agents/tokens/tok_nope", { method: "DELETE" }), 400, "bad_request")).toMatch(
      /^invalid token id: /,
    );
    const pair = await api("/agent/pair", { method: "POST", json: { code: "short", name: "x" }, token: null });
    expect(await refusal(pair, 400, "bad_request")).toContain("8 letters or digits");
    expect(await countLedgerJobs()).toBe(before);
  });

  it("takes an empty decision body without a Content-Type (a bare cancel)", async () => {
    const created = await json<{ jobId: string }>(
      await api("/api/tasks", { method: "POST", json: { intent: "check git status" } }),
    );
    const res = await api(`/api/jobs/${created.jobId}/cancel`, { method: "POST" });
    expect(res.status).toBe(200);
    expect((await json<{ status: string }>(res)).status).toBe("CANCELLED");
  });
});

describe("typed client (hc<AppType>)", () => {
  it("creates, reads and lists a job, and its refusals keep the error body", async () => {
    const client = typedClient();
    const res = await client.api.tasks.$post({ json: { intent: "list files typed" } });
    expect(res.status).toBe(202);
    const { jobId } = await res.json();
    const job = await (await client.api.jobs[":id"].$get({ param: { id: jobId } })).json();
    expect(job.intent).toBe("list files typed");
    const events = await (await client.api.jobs[":id"].events.$get({ param: { id: jobId } })).json();
    expect(events.jobId).toBe(jobId);
    const anonymous = await typedClient(null).api.jobs.$get({ query: {} });
    expect(anonymous.status).toBe(401);
  });
});
