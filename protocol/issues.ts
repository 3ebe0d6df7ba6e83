// One readable line from a zod error, used wherever outside input is refused.
import type { z } from "zod";

export function describeIssues(
  error: z.ZodError,
  opts: { root?: string; max?: number; separator?: string } = {},
): string {
  return error.issues
    .slice(0, opts.max ?? 5)
    .map((i) =>
      i.path.length ? `${i.path.join(".")}: ${i.message}` : `${opts.root ? `${opts.root}: ` : ""}${i.message}`,
    )
    .join(opts.separator ?? "; ");
}
