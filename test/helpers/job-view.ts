// A JobView built in a test (for rendering and notifying without a job behind it): a job just
// created, nothing decided or run yet, with what the test is about put over it.
import type { JobView } from "../../protocol/index.ts";

export function jobView(over: Partial<JobView> = {}): JobView {
  const now = new Date().toISOString();
  return {
    id: "job_0000000000000000",
    projectId: "default",
    status: "CREATED",
    intent: "check git status",
    risk: null,
    attempt: 1,
    plan: null,
    spec: null,
    steps: [],
    artifacts: [],
    logTail: "",
    error: null,
    agentId: null,
    userId: "42",
    chatId: "42",
    messageId: null,
    needsApproval: false,
    decidedBy: null,
    approvalDeadline: null,
    createdAt: now,
    updatedAt: now,
    startedAt: null,
    finishedAt: null,
    ...over,
  };
}
