// The coding agent's approvals from the terminal: `permissions` lists what waits for a decision
// (id, job, tool, the exact command or path, the preview, when it lapses) and `allow <id>` /
// `deny <id>` decide one, once. A decided or expired request, or an unknown id, fails clearly.
import { z } from "zod";
import { PermissionIdSchema } from "../../protocol/index.ts";
import { safeForTerminal } from "../../src/lib/text-safety.ts";
import { EXIT, ServerError, UsageError } from "./errors.ts";
import type { Ctx } from "./jobs.ts";
import { CMD } from "./render.ts";

const out = (text: string) => console.log(text);

const PendingSchema = z.object({
  permissions: z.array(
    z.object({
      id: z.string(),
      jobId: z.string(),
      tool: z.string(),
      kind: z.string(),
      target: z.string(),
      preview: z.string().nullable(),
      expiresAt: z.string(),
    }),
  ),
});
const DecidedSchema = z.object({ id: z.string(), jobId: z.string(), status: z.string() });

/**
 * Exact, yet harmless in a terminal: text with escape or control characters is shown JSON-quoted
 * (every character still there, visibly) rather than cleaned, so what is approved is what runs.
 */
export const exactly = (text: string): string => (safeForTerminal(text) === text ? text : JSON.stringify(text));

const indent = (text: string) =>
  text
    .split("\n")
    .map((l) => `    ${l}`)
    .join("\n");

function lapses(iso: string, now = Date.now()): string {
  const left = Math.round((Date.parse(iso) - now) / 1000);
  return left > 0 ? `${iso} (in ${left} s)` : `${iso} (now)`;
}

export async function permissions(ctx: Ctx): Promise<number> {
  const [sub, ...rest] = ctx.args;
  if (sub === "allow" || sub === "deny") return decide({ ...ctx, args: rest }, sub);
  if (sub !== undefined && sub !== "list")
    throw new UsageError(`unknown permissions command "${sub}": list, allow <id> or deny <id>`);
  if (rest.length > 0) throw new UsageError("permissions list takes no arguments");
  const res = await ctx.api.read(PendingSchema, ctx.api.client.api.permissions.$get());
  if (ctx.json) {
    out(JSON.stringify(res, null, 2));
    return EXIT.ok;
  }
  if (res.permissions.length === 0) {
    out("no permission requests are waiting for a decision");
    return EXIT.ok;
  }
  const blocks = res.permissions.map((p) => {
    const what = p.kind === "command" ? "command" : p.kind === "search" ? "search" : `${p.kind} file`;
    const lines = [
      `${p.id}  job ${p.jobId}  ${safeForTerminal(p.tool)}  expires ${lapses(p.expiresAt)}`,
      `  ${what}:`,
      indent(exactly(p.target)),
    ];
    if (p.preview) lines.push("  preview:", indent(exactly(p.preview)));
    return lines.join("\n");
  });
  out(`${blocks.join("\n\n")}\n\nto decide: ${CMD} allow <id>  ·  ${CMD} deny <id>`);
  return EXIT.ok;
}

/** A permission request id as the agent makes them (never a job id: those start with job_). */
export function permissionIdArg(ctx: Ctx, cmd: string): string {
  const id = ctx.args[0];
  if (!id) throw new UsageError(`${cmd} needs a permission request id; see ${CMD} permissions`);
  if (!PermissionIdSchema.safeParse(id).success)
    throw new UsageError(`"${id}" is not a permission request id (8 to 40 of A-Z a-z 0-9 _ -); see ${CMD} permissions`);
  if (ctx.args.length > 1) throw new UsageError(`${cmd} takes one permission request id; got ${ctx.args.length}`);
  return id;
}

export async function decide(ctx: Ctx, decision: "allow" | "deny"): Promise<number> {
  const id = permissionIdArg(ctx, decision);
  let res: z.infer<typeof DecidedSchema>;
  try {
    res = await ctx.api.read(
      DecidedSchema,
      ctx.api.client.api.permissions[":id"].$post({ param: { id }, json: { decision } }),
    );
  } catch (err) {
    if (err instanceof ServerError && err.status === 404)
      throw new ServerError(`no permission request ${id} (see ${CMD} permissions for the pending ones)`, 404);
    if (err instanceof ServerError && err.status === 409)
      throw new ServerError(`${err.message.replace(/^409: /, "")}: request ${id} was not changed`, 409);
    throw err;
  }
  if (ctx.json) out(JSON.stringify(res, null, 2));
  else out(`${res.id}  job ${res.jobId}  ${res.status === "allowed" ? "allowed once" : res.status}`);
  return EXIT.ok;
}
