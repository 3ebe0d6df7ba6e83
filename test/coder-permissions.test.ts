// The Telegram side of the coding agent's approvals: the message shows the exact command escaped
// and fits 4096 characters whatever the preview; the buttons' callback data fits 64 bytes and
// only well-formed data is read.
import { describe, expect, it } from "vitest";
import { parsePermissionCallback, permissionCallback, renderPermission } from "../src/coder/permissions.ts";

const base = {
  jobId: "job_0123456789abcdef",
  tool: "Bash",
  kind: "command",
  expiresAt: Date.UTC(2026, 0, 1, 12, 0, 0),
};

describe("permission requests in Telegram", () => {
  it("shows the exact command, HTML-escaped", () => {
    const text = renderPermission({ ...base, target: `rm -rf "$HOME" && echo <b>hi</b> & true`, preview: null });
    expect(text).toContain("<pre>rm -rf &quot;$HOME&quot; &amp;&amp; echo &lt;b&gt;hi&lt;/b&gt; &amp; true</pre>");
    expect(text).toContain("12:00:00 UTC");
  });

  it("fits 4096 characters with the longest target and a preview full of characters to escape", () => {
    const text = renderPermission({
      ...base,
      tool: "Edit",
      kind: "edit",
      target: `src/${"a".repeat(1990)}.ts`,
      preview: "<&>".repeat(1000),
    });
    expect(text.length).toBeLessThanOrEqual(4096);
    expect(text).toContain(`src/${"a".repeat(1990)}.ts`);
    expect(text).toContain("(preview cut)");
  });

  it("callback data fits 64 bytes and round-trips; anything else is refused", () => {
    const id = "A".repeat(40);
    for (const d of ["allow", "deny"] as const) {
      const data = permissionCallback(d, id);
      expect(Buffer.byteLength(data)).toBeLessThanOrEqual(64);
      expect(parsePermissionCallback(data)).toEqual({ decision: d, id });
    }
    for (const bad of ["pm:x:AAAAAAAAAA", "pm:a:short", "pm:a:AAAAAAAA/AAA", "a:job_1", "", undefined]) {
      expect(parsePermissionCallback(bad)).toBeNull();
    }
  });
});
