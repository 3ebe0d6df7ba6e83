// Agents (admins only): who is online, their projects and capabilities, running jobs, last
// heartbeat; revoke a token; create a pairing code (shown once, on the page that created it).
import { Hono } from "hono";
import { html } from "hono/html";
import { registryStub } from "../agents/registry-stub.ts";
import { issuePairingCode } from "../agents/tokens.ts";
import { listTokens, listWorkers, revokeToken } from "../ledger/agent-store.ts";
import { getDb } from "../ledger/store.ts";
import { errorPageFor } from "./errors.ts";
import { fmtTime, page, postButton } from "./layout.ts";
import type { WebEnv } from "./session.ts";

export const agentPages = new Hono<WebEnv>();

agentPages.use("/agents/*", async (c, next) => {
  if (!c.get("session").actor.isAdmin) return errorPageFor(c, 403, "Agents are for admins.");
  await next();
});
agentPages.use("/agents", async (c, next) => {
  if (!c.get("session").actor.isAdmin) return errorPageFor(c, 403, "Agents are for admins.");
  await next();
});

agentPages.get("/agents", async (c) => {
  const s = c.get("session");
  const db = getDb(c.env.DB);
  const [online, known, tokens, running] = await Promise.all([
    registryStub(c.env).listAgents(),
    listWorkers(db, {}),
    listTokens(db),
    c.env.DB.prepare("SELECT id, agent_id FROM jobs WHERE status = 'RUNNING' LIMIT 200").all<{
      id: string;
      agent_id: string | null;
    }>(),
  ]);
  const rows = tokens.map((t) => {
    const live = online.find((a) => a.agentId === t.agentId);
    const seen = known.find((w) => w.id === t.agentId);
    const jobs = running.results.filter((j) => j.agent_id === t.agentId);
    const state = t.revokedAt ? "revoked" : !t.pairedAt ? "pairing code not used" : live ? "online" : "offline";
    return html`<tr data-agent="${t.agentId}" data-token="${t.id}"><td>${t.name}<br><span class="muted">${t.agentId}</span></td>
<td class="status">${state}${live?.draining ? " (draining)" : ""}</td>
<td>${(live?.workspaces ?? seen?.workspaces ?? []).join(", ") || "—"}</td>
<td>${(live?.capabilities ?? seen?.capabilities ?? []).join(", ") || "—"}${live?.allowShell ? " · shell" : ""}</td>
<td>${jobs.length ? jobs.map((j) => html`<a href="/web/jobs/${j.id}">${j.id}</a> `) : live ? `${live.running}/${live.maxConcurrency}` : "—"}</td>
<td>${fmtTime(seen?.lastHeartbeatAt)}</td>
<td>${t.revokedAt ? fmtTime(t.revokedAt) : postButton(s, `/web/agents/tokens/${t.id}/revoke`, "Revoke", "revoke")}</td></tr>`;
  });
  const body = html`<h1>Agents</h1>
<table class="scroll"><thead><tr><th>Agent</th><th>State</th><th>Projects</th><th>Capabilities</th><th>Running</th><th>Last heartbeat</th><th></th></tr></thead>
<tbody>${rows}</tbody></table>${tokens.length === 0 ? html`<p class="muted">No agent paired yet.</p>` : ""}
<h2>Pair a laptop</h2><form method="post" action="/web/agents/pairing"><input type="hidden" name="_csrf" value="${s.csrf}">
<input name="name" placeholder="name (optional)" maxlength="100"><button type="submit">Create pairing code</button></form>`;
  return c.html(page({ title: "Agents", session: s, body, pageKind: "agents" }));
});

agentPages.post("/agents/tokens/:id/revoke", async (c) => {
  const id = c.req.param("id");
  if (!/^tok_[0-9a-f]{16}$/.test(id)) return errorPageFor(c, 400, "Bad token id.");
  const revoked = await revokeToken(getDb(c.env.DB), id, Date.now());
  if (!revoked) return errorPageFor(c, 404, "No active token with that id.");
  await registryStub(c.env).disconnectAgent(revoked.agentId, "token revoked");
  return c.redirect("/web/agents", 303);
});

agentPages.post("/agents/pairing", async (c) => {
  const form = await c.req.parseBody();
  const name = typeof form.name === "string" && form.name.trim() ? form.name.trim().slice(0, 100) : undefined;
  const s = c.get("session");
  const issued = await issuePairingCode(c.env, { name, createdBy: `web:${s.actor.id}` });
  const origin = new URL(c.req.url).origin;
  const body = html`<h1>Pairing code</h1><p>Code <code id="pairing-code">${issued.code}</code> (single use, valid until ${fmtTime(issued.expiresAt)}).</p>
<pre>npx skynet-agent pair ${origin} ${issued.code}
npx skynet-agent connect --workspace default=/path/to/project</pre><p><a href="/web/agents">Back to agents</a></p>`;
  return c.html(page({ title: "Pairing code", session: s, body }), 201);
});
