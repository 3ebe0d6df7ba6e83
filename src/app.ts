// The Hono app: health, the JSON API, the gateway, agent endpoints; errors mapped once. Every body
// a route reads is bounded while it is read (the route's jsonInput), and every JSON/text response
// has the deployment's secrets redacted.
import { Hono } from "hono";
import { HTTPException } from "hono/http-exception";
import { permissionRoutes } from "./coder/routes.ts";
import { ConfigError, loadConfig } from "./config.ts";
import { ApiError } from "./http/errors.ts";
import { redactOutput } from "./http/redact-output.ts";
import { errorMessage, log } from "./lib/log.ts";
import { agentAdminRoutes, agentRoutes } from "./routes/agents.ts";
import { archiveApiRoutes } from "./routes/archive.ts";
import { gatewayRoutes } from "./routes/gateway.ts";
import { healthRoutes } from "./routes/health.ts";
import { jobRoutes } from "./routes/jobs.ts";
import { metricsRoutes } from "./routes/metrics.ts";
import { telegramRoutes } from "./routes/telegram.ts";
import { webRoutes } from "./web/routes.ts";

// One chained app, so its type carries every route (AppType, for the typed client hc<AppType>).
// Auth, validation and body limits are each route's own middleware: nothing here depends on
// mount order, and a path no route matches is a 404 with or without a token.
const routes = new Hono<{ Bindings: Env }>()
  .use(redactOutput())
  .use(async (c, next) => {
    // A bad variable fails every request at once with its name (503), not one feature later;
    // /health still answers and reports it as its failing `config` check.
    if (c.req.path !== "/health") loadConfig(c.env);
    await next();
  })
  .route("/", healthRoutes)
  .route("/", metricsRoutes)
  .route("/telegram", telegramRoutes)
  .route("/agent", agentRoutes)
  .route("/api/agents", agentAdminRoutes)
  .route("/api", jobRoutes)
  .route("/api", permissionRoutes)
  .route("/api", archiveApiRoutes)
  .route("/web", webRoutes)
  .route("/", gatewayRoutes);

export type AppType = typeof routes;
export const app = routes;

app.notFound((c) =>
  c.json({ error: { code: "not_found", message: `no route for ${c.req.method} ${c.req.path}` } }, 404),
);

app.onError((err, c) => {
  if (err instanceof ConfigError) {
    log("error", "configuration error", { error: err.message });
    return c.json({ error: { code: "unavailable", message: err.message } }, 503);
  }
  if (err instanceof ApiError) return c.json({ error: { code: err.code, message: err.message } }, err.status);
  if (err instanceof HTTPException) {
    const status = err.status;
    return c.json({ error: { code: status === 401 ? "unauthorized" : "bad_request", message: err.message } }, status);
  }
  log("error", "unhandled error", { path: c.req.path, error: errorMessage(err) });
  return c.json({ error: { code: "internal", message: "internal error" } }, 500);
});
