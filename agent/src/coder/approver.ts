// The approver a code_task step puts its asked tool calls to (the agent relays them to the job's
// requester); kept apart so the step types can name it without importing the coder.
import type { PermissionDecision } from "../../../protocol/index.ts";
import type { ToolAsk } from "./policy.ts";

/** Puts one tool call to the requester; resolves with the decision (a timeout is a deny). */
export type Approver = (
  ask: ToolAsk,
  signal: AbortSignal,
) => Promise<{ decision: PermissionDecision; reason?: string }>;
