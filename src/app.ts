// The Hono app: health, the JSON API, the gateway, agent endpoints; errors mapped once. Every body
// is bounded while it is read, and every JSON/text response has the deployment's secrets redacted.
import { Hono } from "hono";
import { HTTPException } from "hono/http-exception";
import { permissionRoutes } from "./coder/routes.ts";
import { apiAuth } from "./http/auth.ts";
import { ApiError } from "./http/errors.ts";
import { boundedBody, MAX_JSON_BYTES } from "./http/limits.ts";
import { redactOutput } from "./http/redact-output.ts";
import { errorMessage, log } from "./lib/log.ts";
import { agentAdminRoutes, agentRoutes } from "./routes/agents.ts";
import { archiveRoutes } from "./routes/archive.ts";
import { gatewayRoutes } from "./routes/gateway.ts";
import { healthRoutes } from "./routes/health.ts";
import { jobRoutes } from "./routes/jobs.ts";
import { metricsRoutes } from "./routes/metrics.ts";
import { telegramRoutes } from "./routes/telegram.ts";
import { webRoutes } from "./web/routes.ts";

export const app = new Hono<{ Bindings: Env }>();

app.use("*", redactOutput());
// The webhook bounds its own body (updates may be larger); artifact uploads need Content-Length.
for (const path of ["/api/*", "/execute", "/cancel/*", "/agent/pair"]) app.use(path, boundedBody(MAX_JSON_BYTES));

app.route("/", healthRoutes);
app.route("/", metricsRoutes);
app.route("/telegram", telegramRoutes);
app.route("/agent", agentRoutes);
app.route("/api/agents", agentAdminRoutes);
app.use("/api/*", apiAuth());
app.route("/api", jobRoutes);
app.route("/api", permissionRoutes);
app.route("/api", archiveRoutes);
app.route("/web", webRoutes);
app.route("/", gatewayRoutes);

app.notFound((c) =>
  c.json({ error: { code: "not_found", message: `no route for ${c.req.method} ${c.req.path}` } }, 404),
);

app.onError((err, c) => {
  if (err instanceof ApiError) return c.json({ error: { code: err.code, message: err.message } }, err.status);
  if (err instanceof HTTPException) {
    const status = err.status;
    return c.json({ error: { code: status === 401 ? "unauthorized" : "bad_request", message: err.message } }, status);
  }
  log("error", "unhandled error", { path: c.req.path, error: errorMessage(err) });
  return c.json({ error: { code: "internal", message: "internal error" } }, 500);
});
