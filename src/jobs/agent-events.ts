// How a JobDO applies fenced agent messages: accept, step events, log chunks, artifacts, finish.
// Every message must carry the current attempt and lease token; anything else is stale, and once
// the job is final its lease has ended: nothing carrying it changes the job any more.
import { type FencedAgentMessage, isTerminal } from "../../protocol/index.ts";
import { err, ok, type Result } from "../../protocol/result.ts";
import { answerAtCommit } from "../answers/index.ts";
import { accepted, type FenceRefusal, type FenceResult, leaseEnded, refused } from "./job-api.ts";
import type { JobContext } from "./job-context.ts";
import type { JobState } from "./job-state.ts";
import type { OutboxItem } from "./outbox-items.ts";
import { finish } from "./transitions.ts";
import { reachableAgain } from "./unreachable.ts";

/** The attempt header's place in the log: before the agent's own chunks, which start at 0. */
export const ATTEMPT_HEADER_SEQ = -1;

export async function handleAgentMessage(
  job: JobContext,
  state: JobState,
  agentId: string,
  msg: FencedAgentMessage,
  agentName: string,
  /** For a log frame: the log frames right after it in its batch, under the same fence. */
  moreLogs: readonly Extract<FencedAgentMessage, { type: "log" }>[] = [],
): Promise<FenceResult> {
  if (isTerminal(state.status)) return leaseEnded(state);
  if (msg.attempt !== state.attempt || msg.leaseToken !== state.leaseToken) {
    return refused("stale_lease", `attempt ${msg.attempt} of ${state.id} is no longer current`);
  }
  const now = job.now();
  if (msg.type === "job_accept") {
    if (state.status === "RUNNING") {
      // A replayed accept of the holder; anyone else presenting the token lost the race.
      return state.lease?.agentId === agentId
        ? accepted()
        : refused("stale_lease", "this attempt's lease is held by another agent");
    }
    if (state.status !== "QUEUED") {
      return refused("stale_lease", `attempt ${msg.attempt} of ${state.id} was not offered (${state.status})`);
    }
    // The offer carried the token minted with the attempt (transitions.ts), which no one but the
    // registry learns, and only from the hand-over: it is the proof of the offer (the hand-over's
    // own mark is stored lazily, dispatch.ts). The first accept under it takes the lease, and the
    // registry asks for a new token before it offers the attempt to anyone else (lease.ts).
    state.lease = {
      attempt: msg.attempt,
      agentId,
      leaseToken: msg.leaseToken,
      expiresAt: now + job.config.leaseS * 1000,
      lastSeenAt: now,
    };
    // The lease and the run limit count from the arrival, which the server saw (startedAt);
    // RUNNING is dated when the agent took the attempt, as far as the server can check (runningAt).
    state.startedAt = now;
    const at = runningAt(state, now, msg.heldMs);
    state.runningAt = at;
    // Each attempt's output starts with a header, so re-runs never blur together in one log.
    const who = agentName === agentId ? agentId : `${agentName} (${agentId})`;
    job.logs.append({
      attempt: msg.attempt,
      seq: ATTEMPT_HEADER_SEQ,
      stepId: null,
      stream: "system",
      data: `── attempt ${msg.attempt} on agent ${who} at ${new Date(at).toISOString()} ──\n`,
    });
    const detail = { attempt: msg.attempt, agentId, ...(at < now ? { heldMs: now - at } : {}) };
    job.commit(state, job.move(state, "start", detail, at));
    return accepted();
  }
  if (msg.type === "job_reject") return accepted(); // the registry re-offers; nothing changes here
  if (!state.lease || state.lease.agentId !== agentId) {
    return refused("stale_lease", "this agent does not hold the job's lease");
  }
  // Offered but not yet confirmed: the agent's frames follow its accept on one ordered socket,
  // so a frame before it is out of order; it is refused rather than run ahead of the ledger.
  if (state.status === "QUEUED") return refused("stale_lease", "the offer of this attempt was not accepted yet");
  // Any message from the holder proves it is alive (and, if it was unreachable, reachable again).
  state.lease.expiresAt = now + job.config.leaseS * 1000;
  state.lease.lastSeenAt = now;
  const effects: OutboxItem[] = state.unreachableSince ? reachableAgain(job, state) : [];
  switch (msg.type) {
    case "log":
      job.logs.appendMany(
        [msg, ...moreLogs].map((m) => ({
          attempt: m.attempt,
          seq: m.seq,
          stepId: m.stepId ?? null,
          stream: m.stream,
          data: m.data,
        })),
      );
      if (effects.length > 0) job.commit(state, effects);
      else job.saveLiveness({ lease: state.lease });
      return accepted();
    case "step_started": {
      const step = state.steps.find((s) => s.stepId === msg.stepId);
      if (!step) return refused("stale_lease", `no step ${msg.stepId} in this job`);
      step.state = isTerminal(state.status) ? step.state : "running";
      step.startedAt = Date.parse(msg.startedAt) || now;
      if (step.risk !== "READ_ONLY") state.writeStarted = true;
      effects.push({ kind: "notify" });
      break;
    }
    case "step_finished": {
      const step = state.steps.find((s) => s.stepId === msg.stepId);
      if (!step) return refused("stale_lease", `no step ${msg.stepId} in this job`);
      step.state = msg.outcome;
      step.exitCode = msg.exitCode;
      step.durationMs = msg.durationMs;
      step.error = msg.error ?? null;
      effects.push({ kind: "notify" });
      break;
    }
    case "artifact_ready": {
      const head = await job.env.ARCHIVE.head(`artifacts/jobs/${state.id}/${msg.artifact.name}`);
      if (!head || head.size !== msg.artifact.size) {
        return refused("stale_lease", `artifact ${msg.artifact.name} was not uploaded`);
      }
      const fresh = job.load() ?? state;
      if (isTerminal(fresh.status)) return leaseEnded(fresh); // finished while we looked at R2
      fresh.artifacts = [...fresh.artifacts.filter((a) => a.name !== msg.artifact.name), msg.artifact];
      if (fresh.lease) {
        fresh.lease.expiresAt = now + job.config.leaseS * 1000;
        fresh.lease.lastSeenAt = now;
      }
      const reach = fresh.unreachableSince ? reachableAgain(job, fresh) : [];
      job.commit(fresh, reach);
      return accepted();
    }
    case "job_finished": {
      if (msg.result.jobId !== msg.jobId || msg.result.attempt !== msg.attempt || msg.result.status !== msg.status) {
        return refused("bad_message", "the result does not match the job, attempt or status it claims");
      }
      for (const r of msg.result.steps) {
        const step = state.steps.find((s) => s.stepId === r.stepId);
        if (step && (step.state === "pending" || step.state === "running")) step.state = r.outcome;
      }
      const ended = finish(job, state, msg.result);
      // A rule answer (no model call) is ready now: the finishing commit carries it, and the
      // outbox's "answer" item (for Claude's answers) is not queued, saving a commit of its own.
      const answer = answerAtCommit(state, job.logs, job.config);
      if (answer) state.answer = answer;
      effects.push(...(answer ? ended.filter((e) => e.kind !== "answer") : ended));
      break;
    }
  }
  job.commit(state, effects);
  return accepted();
}

/**
 * When the attempt started, by the server's clock: the accept's arrival less how long the agent
 * says it held it (`heldMs`, measured on its monotonic clock, so its wall clock's skew does not
 * matter). The agent is trusted with no more than that: never before the latest event into
 * QUEUED (the attempt's queuing, or a later `waiting`), so a lying agent can at most date it
 * back to when it was queued and the ledger's times keep their order; never after the arrival.
 */
export function runningAt(state: Pick<JobState, "queuedAt" | "lastAtByStatus">, arrival: number, heldMs = 0): number {
  const held = Number.isFinite(heldMs) ? Math.max(0, heldMs) : 0;
  const floor = Math.max(state.queuedAt ?? -Infinity, state.lastAtByStatus?.QUEUED ?? -Infinity);
  return Math.min(arrival, Math.max(floor, arrival - held));
}

/** A batch refused at `index`: the frames before it were applied, none from it on. */
export type BatchRefusal = FenceRefusal & { index: number };

/**
 * A batch of one attempt's frames, in order, each fenced and applied as if it came alone (state
 * read afresh, so an artifact check or a finish sees what the frame before it did); the first
 * refused stops the rest. The caller drains the effects once, after the whole batch.
 */
export async function handleAgentBatch(
  job: JobContext,
  agentId: string,
  msgs: readonly FencedAgentMessage[],
  agentName: string,
): Promise<Result<number, BatchRefusal>> {
  for (let index = 0; index < msgs.length; index++) {
    const msg = msgs[index] as FencedAgentMessage;
    const state = job.load();
    if (!state) return err({ code: "not_found", message: "no such job", index });
    // The log frames right after a log frame pass the same fence (a batch is one attempt's, and
    // storing a chunk changes nothing the fence reads): they are stored with it, as one row
    // where their seqs follow on, without reading and saving the job's state again for each.
    const more: Extract<FencedAgentMessage, { type: "log" }>[] = [];
    if (msg.type === "log") {
      const sameFence = (f: FencedAgentMessage | undefined): f is typeof msg =>
        f?.type === "log" && f.jobId === msg.jobId && f.attempt === msg.attempt && f.leaseToken === msg.leaseToken;
      for (let next = msgs[index + 1 + more.length]; sameFence(next); next = msgs[index + 1 + more.length]) {
        more.push(next);
      }
    }
    const res = await handleAgentMessage(job, state, agentId, msg, agentName, more);
    if (!res.ok) return err({ ...res.error, index });
    index += more.length;
  }
  return ok(msgs.length);
}
