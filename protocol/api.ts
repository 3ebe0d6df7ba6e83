// JSON API schemas: request bodies and queries the Worker validates, and the shapes it returns.
import { z } from "zod";
import {
  ArtifactRefSchema,
  ExecutionSpecSchema,
  JobIdSchema,
  JobStatusSchema,
  JsonParamsSchema,
  PlanSpecSchema,
  ProjectIdSchema,
  RiskLevelSchema,
} from "./jobs.ts";

export const MAX_INTENT_CHARS = 2000;
/** Lines of log a job view carries in `logTail` (the chat summary shows what fits of them). */
export const LOG_TAIL_LINES = 40;

/**
 * Control characters (other than tab and newlines) in a task make what a person reads differ
 * from what was asked (a NUL cuts it, an escape sequence rewrites a terminal). Bidi and
 * zero-width characters are allowed (people write right-to-left, emoji use joiners) and shown
 * as ⟨U+XXXX⟩ markers wherever a task is displayed.
 */
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching them is the point
const UNREADABLE_IN_INTENT = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f]/;

/** Why an intent cannot be taken as it is, or null; one rule for the API and the bot. */
export function intentProblem(intent: string): string | null {
  if (intent.trim().length === 0) return "intent must not be empty";
  if (intent.length > MAX_INTENT_CHARS) return `intent must be at most ${MAX_INTENT_CHARS} characters`;
  if (UNREADABLE_IN_INTENT.test(intent)) {
    return "intent may not contain control characters (other than tab and newline)";
  }
  return null;
}

export const CreateTaskRequestSchema = z.strictObject({
  // The same rule (and wording) the bot applies, after trimming as the API always has.
  intent: z
    .string()
    .trim()
    .superRefine((intent, ctx) => {
      const problem = intentProblem(intent);
      if (problem) ctx.addIssue({ code: "custom", message: problem });
    }),
  projectId: ProjectIdSchema.default("default"),
});
export type CreateTaskRequest = z.infer<typeof CreateTaskRequestSchema>;

export const JobListQuerySchema = z.strictObject({
  status: JobStatusSchema.optional(),
  limit: z.coerce.number().int().min(1).max(100).default(20),
  cursor: z.string().max(200).optional(),
});
export type JobListQuery = z.infer<typeof JobListQuerySchema>;

export const JobIdParamSchema = z.strictObject({ id: JobIdSchema });

export const DecisionRequestSchema = z.strictObject({ reason: z.string().max(500).optional() }).default({});

export const WaitQuerySchema = z.strictObject({
  timeoutS: z.coerce.number().int().min(0).max(300).default(30),
  /**
   * /wait only: the statuses to wait while, comma-separated (e.g. `QUEUED`, to hear when the job
   * starts); without it, until the job ends.
   */
  while: z
    .string()
    .max(100)
    .transform((s) => s.split(","))
    .pipe(z.array(JobStatusSchema).min(1))
    .optional(),
});

export const LogQuerySchema = z.strictObject({
  tail: z.coerce.number().int().min(1).max(10000).optional(),
  grep: z.string().min(1).max(200).optional(),
});

export const StepStateSchema = z.enum(["pending", "running", "succeeded", "failed", "cancelled", "skipped"]);
export type StepState = z.infer<typeof StepStateSchema>;

export const StepViewSchema = z.object({
  stepId: z.string(),
  action: z.string(),
  description: z.string(),
  risk: RiskLevelSchema,
  state: StepStateSchema,
  exitCode: z.number().int().nullable(),
  startedAt: z.string().nullable(),
  durationMs: z.number().int().nullable(),
  error: z.string().nullable(),
});
export type StepView = z.infer<typeof StepViewSchema>;

/** One param of a step as shown for approval; `omitted` counts characters left out of `value`. */
export const ReviewFieldSchema = z.object({
  name: z.string(),
  value: z.string(),
  block: z.boolean().optional(),
  omitted: z.number().int().min(0).optional(),
});
export type ReviewField = z.infer<typeof ReviewFieldSchema>;

/** A step as it will run: action and params (the authority), the planner's description as a label. */
export const StepReviewSchema = z.object({
  n: z.number().int().min(1),
  action: z.string(),
  risk: RiskLevelSchema,
  label: z.string(),
  params: JsonParamsSchema,
  fields: z.array(ReviewFieldSchema),
});
export type StepReview = z.infer<typeof StepReviewSchema>;

export const PlanReviewSchema = z.object({
  steps: z.array(StepReviewSchema),
  /** Set when the plan cannot be turned into runnable steps (the steps then show the plan as given). */
  error: z.string().nullable(),
});
export type PlanReview = z.infer<typeof PlanReviewSchema>;

/** Tokens spent by a job's model calls; `cachedInput` were read from the prompt cache. */
export const TokenTallySchema = z.object({
  calls: z.number().int().min(0),
  input: z.number().int().min(0),
  cachedInput: z.number().int().min(0),
  cacheWrite: z.number().int().min(0),
  output: z.number().int().min(0),
});
export type TokenTally = z.infer<typeof TokenTallySchema>;

/** The short answer to what was asked, written when the job ended: by Claude, or by rules from the results. */
export const JobAnswerSchema = z.object({
  text: z.string(),
  by: z.enum(["claude", "rules"]),
  at: z.string(),
});
export type JobAnswer = z.infer<typeof JobAnswerSchema>;

export const JobViewSchema = z.object({
  id: JobIdSchema,
  projectId: ProjectIdSchema,
  status: JobStatusSchema,
  intent: z.string(),
  risk: RiskLevelSchema.nullable(),
  attempt: z.number().int(),
  plan: PlanSpecSchema.nullable(),
  spec: ExecutionSpecSchema.nullable(),
  steps: z.array(StepViewSchema),
  artifacts: z.array(ArtifactRefSchema),
  /** Artifacts the agent made but could finally not store, and why (a job never hides a lost file). */
  artifactsNotStored: z.array(z.object({ name: z.string(), reason: z.string() })).optional(),
  logTail: z.string(),
  error: z.string().nullable(),
  /** What the job is waiting for, when the requester should know (no agent can serve it, agent unreachable). */
  notice: z.string().nullable().optional(),
  /** How the plan was made, when the person should know ("Claude is unavailable, planned offline"). */
  planNotice: z.string().nullable().optional(),
  /** What the person asked to be told ("which failed"); the answer answers it. */
  question: z.string().nullable().optional(),
  /** The short answer to the task once it ended (null before, or when none could be written). */
  answer: JobAnswerSchema.nullable().optional(),
  /** Tokens the job's model calls used (planning and the answer); null when no model was called. */
  tokens: TokenTallySchema.nullable().optional(),
  /** The job this one follows up (a Telegram reply to that job's message); null otherwise. */
  parentJobId: z.string().nullable().optional(),
  /** Set while the agent holding a started WRITE/ADMIN step is unreachable; the job is not failed for it yet. */
  agentUnreachableSince: z.string().nullable().optional(),
  agentId: z.string().nullable(),
  userId: z.string().nullable(),
  chatId: z.string().nullable(),
  messageId: z.number().int().nullable(),
  needsApproval: z.boolean(),
  decidedBy: z.string().nullable(),
  approvalDeadline: z.string().nullable(),
  createdAt: z.string(),
  updatedAt: z.string(),
  startedAt: z.string().nullable(),
  finishedAt: z.string().nullable(),
  /** Added by the API's job view: every step's action and params, for the person approving. */
  review: PlanReviewSchema.optional(),
});
export type JobView = z.infer<typeof JobViewSchema>;

export const JobSummarySchema = z.object({
  id: JobIdSchema,
  projectId: z.string(),
  status: JobStatusSchema,
  intent: z.string(),
  risk: RiskLevelSchema.nullable(),
  createdAt: z.string(),
  updatedAt: z.string(),
});
export type JobSummary = z.infer<typeof JobSummarySchema>;

export const JobListResponseSchema = z.object({
  jobs: z.array(JobSummarySchema),
  nextCursor: z.string().nullable(),
});

/** The gateway (docs/design.md §6): submit an already-built execution spec. */
export const GatewayExecuteRequestSchema = z.strictObject({ executionSpec: ExecutionSpecSchema });

export const PairRequestSchema = z.strictObject({
  code: z.string().regex(/^[A-Z0-9]{8}$/, "pairing codes are 8 letters or digits"),
  name: z.string().trim().min(1).max(100),
});
export const PairResponseSchema = z.object({ agentId: z.string(), token: z.string() });

export const ErrorCodeSchema = z.enum([
  "bad_request",
  "unauthorized",
  "forbidden",
  "not_found",
  "conflict",
  "payload_too_large",
  "unsupported_media_type",
  "rate_limited",
  "unavailable",
  "internal",
]);
export type ErrorCode = z.infer<typeof ErrorCodeSchema>;

export const ErrorBodySchema = z.object({
  error: z.object({ code: ErrorCodeSchema, message: z.string() }),
});
export type ErrorBody = z.infer<typeof ErrorBodySchema>;

/** GET /agent/me (agent token): this agent as the server sees it. */
export const AgentSelfSchema = z.object({
  agentId: z.string(),
  name: z.string(),
  connected: z.boolean(),
  draining: z.boolean(),
  lastHeartbeatAt: z.string().nullable(),
  jobs: z.array(z.object({ jobId: z.string(), attempt: z.number().int(), state: z.enum(["offered", "running"]) })),
  /** The server's clock when it answered (for the agent's clock-skew check; ms, unlike a Date header). */
  serverTime: z.string().optional(),
});
export type AgentSelf = z.infer<typeof AgentSelfSchema>;
