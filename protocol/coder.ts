// The coding agent's approval frames: a tool the coding agent (code_task) wants to use beyond
// reading goes up as `permission_request`, fenced by the job's lease; the requester's decision comes
// down as `permission_decision`. The agent is authoritative on the timeout: when it passes, the tool
// is denied there whatever arrives later; the Worker only marks the request expired.
import { z } from "zod";
import { JobIdSchema, StepIdSchema } from "./jobs.ts";

/** The log line after which a code_task step's output is the coding agent's final message. */
export const CODER_ANSWER_MARKER = "[coder] final message:";

/** Longest exact command or path shown to the approver (a longer one is refused, never cut). */
export const MAX_PERMISSION_TARGET = 2000;
/** Longest diff preview sent up; the Telegram message cuts it further to fit. */
export const MAX_PERMISSION_PREVIEW = 3000;
/** How long a request waits for a decision before the agent denies it. */
export const PERMISSION_TIMEOUT_S = { default: 300, min: 5, max: 3600 } as const;

export const PermissionIdSchema = z.string().regex(/^[A-Za-z0-9_-]{8,40}$/, "a permission request id");

/** What the approver is asked about: a shell command, a file write or edit (with a preview), or a search. */
export const PermissionKindSchema = z.enum(["command", "write", "edit", "search"]);
export type PermissionKind = z.infer<typeof PermissionKindSchema>;

/** Which request, of which attempt of which job, a permission frame is about. */
const PermissionRef = {
  jobId: JobIdSchema,
  attempt: z.number().int().min(1),
  requestId: PermissionIdSchema,
};

export const PermissionRequestFrameSchema = z.strictObject({
  type: z.literal("permission_request"),
  ...PermissionRef,
  leaseToken: z.string().min(16).max(128),
  stepId: StepIdSchema,
  /** The SDK's tool name (Bash, Write, Edit, Grep…). */
  tool: z.string().regex(/^[A-Za-z][A-Za-z0-9_]{0,63}$/),
  kind: PermissionKindSchema,
  /** The exact command, or the workspace-relative path. */
  target: z.string().min(1).max(MAX_PERMISSION_TARGET),
  preview: z.string().max(MAX_PERMISSION_PREVIEW).optional(),
  timeoutS: z.number().int().min(PERMISSION_TIMEOUT_S.min).max(PERMISSION_TIMEOUT_S.max),
});
export type PermissionRequestFrame = z.infer<typeof PermissionRequestFrameSchema>;

export const PermissionDecisionSchema = z.enum(["allow", "deny"]);
export type PermissionDecision = z.infer<typeof PermissionDecisionSchema>;

export const PermissionDecisionFrameSchema = z.strictObject({
  type: z.literal("permission_decision"),
  ...PermissionRef,
  decision: PermissionDecisionSchema,
  /** Who decided or why (shown to the coding agent on a deny). */
  reason: z.string().max(500).optional(),
});
export type PermissionDecisionFrame = z.infer<typeof PermissionDecisionFrameSchema>;

/**
 * The agent's own timeout passed and it denied the tool (authoritative): reported up so the
 * request reads `expired` at that moment rather than when someone next looks.
 */
export const PermissionExpiredFrameSchema = z.strictObject({
  type: z.literal("permission_expired"),
  ...PermissionRef,
});
export type PermissionExpiredFrame = z.infer<typeof PermissionExpiredFrameSchema>;
