// The agent wire protocol: JSON text frames over one WebSocket, discriminated on `type`.
// Every frame received on either side is safeParse'd; a bad one gets an `error` reply.
import { z } from "zod";
import { CapabilitySchema } from "./actions.ts";
import { PermissionDecisionFrameSchema, PermissionExpiredFrameSchema, PermissionRequestFrameSchema } from "./coder.ts";
import { describeIssues } from "./issues.ts";
import {
  ArtifactRefSchema,
  ExecutionResultSchema,
  ExecutionSpecSchema,
  FinalStatusSchema,
  IsoDateSchema,
  JobIdSchema,
  ProjectIdSchema,
  StepIdSchema,
  StepOutcomeSchema,
} from "./jobs.ts";

export const PROTOCOL_VERSION = 1;
/** Largest log chunk in one frame (the agent flushes every 250 ms or at this size). */
export const MAX_LOG_CHUNK_BYTES = 64 * 1024;
/** Most job frames one `batch` frame may carry (each still counts against the frame budget). */
export const MAX_BATCH_FRAMES = 64;

const Fence = {
  jobId: JobIdSchema,
  attempt: z.number().int().min(1),
  leaseToken: z.string().min(16).max(128),
};

export const HelloSchema = z.strictObject({
  type: z.literal("hello"),
  protocolVersion: z.number().int(),
  agentName: z.string().min(1).max(100),
  agentVersion: z.string().min(1).max(50),
  capabilities: z.array(CapabilitySchema).max(16),
  workspaces: z.array(ProjectIdSchema).min(1).max(32),
  maxConcurrency: z.number().int().min(1).max(16),
  allowShell: z.boolean().default(false),
});

/** The lease an offer carries (besides its token): who holds it and until when. */
export const OfferLeaseSchema = z.strictObject({
  agentId: z.string().min(1).max(100),
  expiresAt: z.number().int().min(0),
});

export const RunningJobSchema = z.strictObject({ ...Fence, lastSeq: z.number().int().min(-1) });

/** Most an accept may say it waited on the agent before going out (its linger is 50 ms). */
export const MAX_ACCEPT_HELD_MS = 60_000;
/**
 * `heldMs`: how long the accept waited on the agent (its monotonic clock) between being made and
 * its batch going out, so the server can date RUNNING when the attempt really started without
 * trusting the agent's wall clock. Absent (older agents, replays) counts as 0.
 */
const JobAcceptSchema = z.strictObject({
  type: z.literal("job_accept"),
  ...Fence,
  heldMs: z.number().int().min(0).max(MAX_ACCEPT_HELD_MS).optional(),
});
const JobRejectSchema = z.strictObject({ type: z.literal("job_reject"), ...Fence, reason: z.string().max(1000) });
/** The frames about one attempt that may travel inside a `batch` (all but job_reject). */
const BatchableSchemas = [
  JobAcceptSchema,
  z.strictObject({ type: z.literal("step_started"), ...Fence, stepId: StepIdSchema, startedAt: IsoDateSchema }),
  z.strictObject({
    type: z.literal("log"),
    ...Fence,
    stepId: StepIdSchema.optional(),
    seq: z.number().int().min(0),
    stream: z.enum(["stdout", "stderr", "system"]),
    data: z.string().max(MAX_LOG_CHUNK_BYTES),
  }),
  z.strictObject({
    type: z.literal("step_finished"),
    ...Fence,
    stepId: StepIdSchema,
    outcome: StepOutcomeSchema,
    exitCode: z.number().int().nullable(),
    durationMs: z.number().int().min(0),
    error: z.string().max(4000).optional(),
  }),
  z.strictObject({ type: z.literal("artifact_ready"), ...Fence, artifact: ArtifactRefSchema }),
  z.strictObject({
    type: z.literal("job_finished"),
    ...Fence,
    status: FinalStatusSchema,
    result: ExecutionResultSchema,
  }),
] as const;
export const BatchableSchema = z.discriminatedUnion("type", [...BatchableSchemas]);
export type BatchableMessage = z.infer<typeof BatchableSchema>;

/**
 * Several frames of ONE attempt in one WebSocket frame, applied in order by one JobDO call: the
 * first refused stops the rest (the error names its index). Sent while a step is short, so a
 * quick job's start, output, finish and result cost one frame and one RPC.
 */
export const BatchSchema = z
  .strictObject({ type: z.literal("batch"), frames: z.array(BatchableSchema).min(1).max(MAX_BATCH_FRAMES) })
  .superRefine((b, ctx) => {
    const [first] = b.frames;
    if (!first) return;
    b.frames.forEach((f, i) => {
      if (f.jobId !== first.jobId || f.attempt !== first.attempt || f.leaseToken !== first.leaseToken)
        ctx.addIssue({ code: "custom", path: ["frames", i], message: "every frame of a batch is about one attempt" });
    });
  });

export const AgentToServerSchema = z.discriminatedUnion("type", [
  HelloSchema,
  z.strictObject({ type: z.literal("heartbeat"), running: z.array(RunningJobSchema).max(32).default([]) }),
  JobRejectSchema,
  ...BatchableSchemas,
  BatchSchema,
  z.strictObject({ type: z.literal("resume"), running: z.array(RunningJobSchema).max(32) }),
  /** The agent is stopping: it takes no new offers and finishes what it runs (sent again after a reconnect). */
  z.strictObject({ type: z.literal("draining") }),
  /** A coding agent's tool call for the requester to decide (code_task; protocol/coder.ts). */
  PermissionRequestFrameSchema,
  PermissionExpiredFrameSchema,
]);
export type AgentToServer = z.infer<typeof AgentToServerSchema>;
export type AgentMessageOf<T extends AgentToServer["type"]> = Extract<AgentToServer, { type: T }>;
export type FencedAgentMessage = Exclude<
  AgentToServer,
  { type: "hello" | "heartbeat" | "resume" | "draining" | "permission_request" | "permission_expired" | "batch" }
>;

export const ServerToAgentSchema = z.discriminatedUnion("type", [
  z.strictObject({
    type: z.literal("welcome"),
    agentId: z.string().min(1).max(100),
    protocolVersion: z.number().int(),
    heartbeatIntervalS: z.number().int().min(1),
    leaseS: z.number().int().min(1),
  }),
  /**
   * The offer carries the attempt's token, minted by its job when it queued the attempt:
   * `leaseToken` fences the agent's frames from the first one, `lease` names the agent offered
   * and when the lease would end unless renewed (ms since the epoch). The first accept under the
   * token takes the lease; a refused or unanswered offer has the job mint a new token.
   */
  z.strictObject({ type: z.literal("job_offer"), ...Fence, lease: OfferLeaseSchema, spec: ExecutionSpecSchema }),
  z.strictObject({
    type: z.literal("job_cancel"),
    jobId: JobIdSchema,
    attempt: z.number().int().min(1),
    reason: z.string().max(500),
  }),
  /**
   * Codes the registry sends: bad_message, hello_first, protocol_version, frame_too_large,
   * internal, not_found, stale_lease (this attempt is no longer current: another attempt or agent
   * holds the job) and lease_ended (the job is final: stop the attempt, drop its journal; nothing
   * carrying this lease is accepted any more). A flood of frames closes the socket with 1008.
   */
  z.strictObject({
    type: z.literal("error"),
    code: z.string().min(1).max(64),
    message: z.string().max(2000),
    jobId: JobIdSchema.optional(),
    /** The attempt the refused frame was about: an error never applies to another attempt. */
    attempt: z.number().int().min(1).optional(),
    /** In a batch: the index of the refused frame (those before it were applied, none after). */
    frameIndex: z.number().int().min(0).optional(),
  }),
  PermissionDecisionFrameSchema,
]);
export type ServerToAgent = z.infer<typeof ServerToAgentSchema>;
export type ServerMessageOf<T extends ServerToAgent["type"]> = Extract<ServerToAgent, { type: T }>;

/** Parses one text frame; returns a readable error instead of throwing. */
export function parseFrame<S extends z.ZodType>(
  schema: S,
  raw: string | ArrayBuffer,
): { ok: true; message: z.infer<S> } | { ok: false; error: string } {
  if (typeof raw !== "string") return { ok: false, error: "binary frames are not part of the protocol" };
  let json: unknown;
  try {
    json = JSON.parse(raw);
  } catch {
    return { ok: false, error: "frame is not valid JSON" };
  }
  const parsed = schema.safeParse(json);
  if (!parsed.success) {
    return { ok: false, error: `invalid message: ${describeIssues(parsed.error, { root: "frame" })}` };
  }
  return { ok: true, message: parsed.data };
}
