// The jobs list and a job's page. Every field goes through `html` (escaped); the log is filled in
// by the static script with textContent.

import { html } from "hono/html";
import { isTerminal, type JobView } from "../../protocol/index.ts";
import { reviewJob } from "../lib/step-review.ts";
import { fmtTime, type Html, page, postButton } from "./layout.ts";
import type { JobFilter, JobListRow, JobThread } from "./queries.ts";
import type { WebSession } from "./session.ts";

const STATUSES = ["", "CREATED", "PLANNED", "QUEUED", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED"];

export function jobsPage(s: WebSession, f: JobFilter, jobs: JobListRow[], nextCursor: string | null): Html {
  const qs = (extra: Record<string, string>) =>
    new URLSearchParams({ ...(f.status ? { status: f.status } : {}), ...(f.q ? { q: f.q } : {}), ...extra }).toString();
  const rows = jobs.map(
    (j) => html`<tr data-job="${j.id}"><td class="id"><a href="/web/jobs/${j.id}">${j.id}</a></td>
      <td class="status">${j.status}</td><td class="wide risk-${j.risk ?? ""}">${j.risk ?? "—"}</td>
      <td class="wide">${j.projectId}</td><td>${j.intent}</td><td class="wide">${j.createdAt}</td></tr>`,
  );
  const body = html`<h1>Jobs</h1>
<form class="filters" method="get" action="/web">
  <select name="status">${STATUSES.map(
    (st) => html`<option value="${st}"${st === (f.status ?? "") ? " selected" : ""}>${st || "any status"}</option>`,
  )}</select>
  <input name="q" type="search" placeholder="search intent" value="${f.q ?? ""}"><button type="submit">Filter</button>
</form>
<table><thead><tr><th>Job</th><th>Status</th><th class="wide">Risk</th><th class="wide">Project</th><th>Intent</th><th class="wide">Created</th></tr></thead>
<tbody id="jobs-body">${rows}</tbody></table>
${jobs.length === 0 ? html`<p class="muted">No jobs.</p>` : ""}
${nextCursor ? html`<p><a id="next-page" href="/web?${qs({ cursor: nextCursor })}">Older jobs →</a></p>` : ""}`;
  // Live updates only on the first page: later pages are history and stay put while read.
  const data: Record<string, string> = f.cursor ? {} : { poll: `/web/jobs.json?${qs({})}` };
  return page({ title: "Jobs", session: s, body, pageKind: "jobs", data });
}

export interface TimelineEvent {
  from: string | null;
  to: string;
  event: string;
  at: number;
}

export function jobPage(
  s: WebSession,
  job: JobView,
  events: TimelineEvent[],
  thread: JobThread = { parentId: null, followUps: [] },
): Html {
  const review = reviewJob(job);
  const steps = review
    ? review.steps.map((st) => {
        const view = job.steps[st.n - 1];
        return html`<div class="step" data-step="${st.n}"><b>${st.n}. ${st.action}</b>
  <span class="risk-${st.risk}">${st.risk}</span> <span class="muted">${st.label}</span>
  ${view ? html` · <span class="status">${view.state}</span>${view.exitCode !== null ? html` exit ${view.exitCode}` : ""}` : ""}
  <table>${st.fields.map(
    (fd) =>
      html`<tr><th>${fd.name}</th><td>${fd.block ? html`<pre>${fd.value}</pre>` : fd.value}${
        fd.omitted ? html`<span class="muted"> (${fd.omitted} more characters not shown)</span>` : ""
      }</td></tr>`,
  )}</table></div>`;
      })
    : [html`<p class="muted">No plan yet.</p>`];
  const mine = job.userId === s.actor.id || s.actor.isAdmin;
  const act = (verb: string, label: string) => postButton(s, `/web/jobs/${job.id}/${verb}`, label, verb);
  const actions = mine
    ? html`${job.status === "PLANNED" && job.needsApproval ? html`${act("approve", "Approve")}${act("deny", "Deny")}` : ""}
      ${isTerminal(job.status) ? act("retry", "Retry") : act("cancel", "Cancel")}`
    : "";
  const body = html`<h1>${job.id}</h1>
<p><span class="status" id="job-status">${job.status}</span> · risk <span class="risk-${job.risk ?? ""}">${job.risk ?? "unknown"}</span>
 · project ${job.projectId} · agent ${job.agentId ?? "—"} · requested by ${job.userId ?? "unknown"}</p>
<h2>Intent</h2><p id="intent">${job.intent}</p>${
    thread.parentId
      ? html`<p id="parent-job">↪ Follow-up of <a href="/web/jobs/${thread.parentId}">${thread.parentId}</a></p>`
      : ""
  }${
    thread.followUps.length
      ? html`<p id="follow-ups">Follow-ups: ${thread.followUps.map((id) => html`<a href="/web/jobs/${id}">${id}</a> `)}</p>`
      : ""
  }
${job.error ? html`<p class="err">${job.error}</p>` : ""}${job.notice ? html`<p class="muted">${job.notice}</p>` : ""}
<div class="actions">${actions}</div>
<h2>Plan</h2>${review?.error ? html`<p class="err">${review.error}</p>` : ""}${steps}
<h2>Timeline</h2><table id="timeline">${events.map(
    (e) => html`<tr><td>${fmtTime(e.at)}</td><td>${e.from ?? "—"} → ${e.to}</td><td>${e.event}</td></tr>`,
  )}</table>
<h2>Log</h2>
<div class="actions"><label><input type="checkbox" id="log-follow" checked> follow</label>
<button type="button" id="log-pause">Pause</button><input id="log-search" type="search" placeholder="search log">
<a href="/web/jobs/${job.id}/log" download="${job.id}.log">Download whole log</a> <span id="log-state" class="muted"></span></div>
<pre id="log"></pre>
<h2>Artifacts</h2>${
    job.artifacts.length
      ? html`<ul>${job.artifacts.map(
          (a) => html`<li><a href="/web/jobs/${job.id}/artifacts/${encodeURIComponent(a.name)}">${a.name}</a></li>`,
        )}</ul>`
      : html`<p class="muted">None.</p>`
  }`;
  return page({ title: job.id, session: s, body, pageKind: "job", data: { job: job.id, status: job.status } });
}
