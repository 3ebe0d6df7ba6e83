// Inline keyboards and their callback data: short typed strings ("a:<jobId>"), validated with
// zod when a button is pressed (callback data is input from outside like any other).
import { InlineKeyboard } from "grammy";
import { z } from "zod";
import { isTerminal, type JobView } from "../../protocol/index.ts";

export const CallbackSchema = z
  .string()
  .max(64)
  .regex(/^(?:[aclpr]:job_[0-9a-z]{10,40}|j:[A-Za-z0-9+/]{8,60})$/, "unknown button");

export type Callback =
  | { kind: "approve" | "cancel" | "logs" | "retry" | "plan"; jobId: string }
  | { kind: "jobs"; cursor: string };

const KINDS = { a: "approve", c: "cancel", l: "logs", r: "retry", p: "plan" } as const;

export function parseCallback(data: string | undefined): Callback | null {
  const parsed = CallbackSchema.safeParse(data);
  if (!parsed.success) return null;
  const [prefix, rest] = [parsed.data.slice(0, 1), parsed.data.slice(2)];
  if (prefix === "j") return { kind: "jobs", cursor: rest };
  return { kind: KINDS[prefix as keyof typeof KINDS], jobId: rest };
}

/** The buttons that fit the job's state. */
export function jobKeyboard(job: JobView): InlineKeyboard | undefined {
  if (job.status === "PLANNED" && job.needsApproval) {
    return new InlineKeyboard()
      .text("✅ Approve", `a:${job.id}`)
      .text("✖️ Cancel", `c:${job.id}`)
      .row()
      .text("📄 Full plan", `p:${job.id}`);
  }
  if (job.status === "QUEUED" || job.status === "RUNNING") return new InlineKeyboard().text("⛔ Cancel", `c:${job.id}`);
  if (isTerminal(job.status)) {
    return new InlineKeyboard().text("📜 Logs", `l:${job.id}`).text("🔁 Retry", `r:${job.id}`);
  }
  return undefined;
}
