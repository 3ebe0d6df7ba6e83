// The coding agent's tool policy, decided here and never left to the model: file tools stay inside
// the workspace and off secret files (the same rules as the catalog's file actions), reading
// inside the workspace needs nobody, and every shell command, write or edit is put to the job's
// requester with the exact command or a diff preview. Anything else is denied.
import { realpath, stat } from "node:fs/promises";
import { isAbsolute, relative, resolve } from "node:path";
import { MAX_PERMISSION_PREVIEW, MAX_PERMISSION_TARGET, type PermissionKind } from "../../../protocol/index.ts";
import { confine, confineForWrite, SandboxError } from "../sandbox.ts";
import { EMPTY_POLICY, type PathPolicy, protectedFiles, secretReason } from "../secrets.ts";

/** The only tools the coding agent is given (no web access, no sub-agents, no notebooks). */
export const CODER_TOOLS = ["Read", "Glob", "Grep", "Edit", "Write", "Bash"] as const;

export interface ToolAsk {
  tool: string;
  kind: PermissionKind;
  target: string;
  preview?: string;
}

export type ToolVerdict = { kind: "allow" } | { kind: "deny"; reason: string } | { kind: "ask"; ask: ToolAsk };

export interface PolicyContext {
  workspace: string;
  pathPolicy?: PathPolicy;
  agentConfigPath?: string;
}

const str = (v: unknown): string | undefined => (typeof v === "string" ? v : undefined);
const deny = (reason: string): ToolVerdict => ({ kind: "deny", reason });

/**
 * The workspace-relative form of a path the SDK hands over (absolute, or relative to the
 * workspace), or an error when it is outside, secret or protected, as written and as resolved.
 */
async function checkedPath(ctx: PolicyContext, raw: string, write: boolean): Promise<string> {
  const root = await realpath(ctx.workspace);
  const rel = isAbsolute(raw) ? relative(root, raw) : raw;
  if (rel === "") return ".";
  if (rel.startsWith("..") || isAbsolute(rel)) throw new SandboxError(`refused path "${raw}": outside the workspace`);
  const abs = write ? await confineForWrite(ctx.workspace, rel, false) : await confine(ctx.workspace, rel);
  const real = await realpath(abs).catch(() => abs);
  const policy = ctx.pathPolicy ?? EMPTY_POLICY;
  for (const candidate of [rel, relative(root, real)]) {
    const why = secretReason(candidate, policy);
    if (why) throw new SandboxError(`refused: ${why}`);
  }
  for (const p of protectedFiles(ctx.agentConfigPath).map((f) => resolve(f))) {
    if (real === (await realpath(p).catch(() => p))) throw new SandboxError(`refused: "${raw}" is a protected file`);
  }
  return rel;
}

/** A unified-diff-like preview of an edit, bounded. */
export function editPreview(oldText: string, newText: string): string {
  const lines = [...oldText.split("\n").map((l) => `- ${l}`), ...newText.split("\n").map((l) => `+ ${l}`)].join("\n");
  return bound(lines, MAX_PERMISSION_PREVIEW);
}

function bound(text: string, max: number): string {
  if (text.length <= max) return text;
  const marker = "\n… (preview cut)";
  return text.slice(0, max - marker.length) + marker;
}

/** A Glob pattern or Grep glob may not climb out of the workspace or name an absolute place. */
function patternOutside(pattern: string | undefined): boolean {
  if (!pattern) return false;
  return isAbsolute(pattern) || pattern.startsWith("~") || pattern.split(/[\\/]+/).includes("..");
}

export async function decideTool(
  ctx: PolicyContext,
  tool: string,
  input: Record<string, unknown>,
): Promise<ToolVerdict> {
  try {
    switch (tool) {
      case "Read": {
        const path = str(input.file_path);
        if (!path) return deny("Read needs a file_path");
        await checkedPath(ctx, path, false);
        return { kind: "allow" };
      }
      case "Glob": {
        // Names only, as list_files shows them: allowed inside the workspace.
        if (patternOutside(str(input.pattern))) return deny("Glob patterns stay inside the workspace");
        const path = str(input.path);
        if (path) await checkedPath(ctx, path, false);
        return { kind: "allow" };
      }
      case "Grep": {
        if (patternOutside(str(input.glob))) return deny("Grep globs stay inside the workspace");
        const path = str(input.path) ?? ctx.workspace;
        const rel = await checkedPath(ctx, path, false);
        // Searching a directory reads every file under it, secret ones included: that is asked.
        const st = await stat(resolve(ctx.workspace, rel)).catch(() => null);
        if (st?.isFile()) return { kind: "allow" };
        const pattern = str(input.pattern) ?? "";
        return {
          kind: "ask",
          ask: {
            tool,
            kind: "search",
            target: bound(`grep ${JSON.stringify(pattern)} in ${rel}`, MAX_PERMISSION_TARGET),
          },
        };
      }
      case "Write": {
        const path = str(input.file_path);
        if (!path) return deny("Write needs a file_path");
        const rel = await checkedPath(ctx, path, true);
        const content = str(input.content) ?? "";
        return {
          kind: "ask",
          ask: { tool, kind: "write", target: rel, preview: editPreview("", content).replace(/^- \n/, "") },
        };
      }
      case "Edit": {
        const path = str(input.file_path);
        if (!path) return deny("Edit needs a file_path");
        const rel = await checkedPath(ctx, path, true);
        return {
          kind: "ask",
          ask: {
            tool,
            kind: "edit",
            target: rel,
            preview: editPreview(str(input.old_string) ?? "", str(input.new_string) ?? ""),
          },
        };
      }
      case "Bash": {
        const command = str(input.command);
        if (!command || command.trim() === "") return deny("Bash needs a command");
        // Shown exactly or not at all: a command too long to show is refused, never cut.
        if (command.length > MAX_PERMISSION_TARGET) {
          return deny(`commands over ${MAX_PERMISSION_TARGET} characters are refused (they cannot be shown whole)`);
        }
        if (input.run_in_background === true) return deny("background commands are refused: nothing could stop them");
        return { kind: "ask", ask: { tool, kind: "command", target: command } };
      }
      default:
        return deny(`the tool ${tool} is not available to the coding agent`);
    }
  } catch (e) {
    if (e instanceof SandboxError) return deny(e.message);
    return deny(`refused: ${(e as Error).message}`);
  }
}
