// What the CLI shows an approver must be the exact command: a command with escape or control
// characters is shown JSON-quoted (every character there, visibly), never cleaned into a
// harmless-looking different command or passed raw to the terminal.
import { describe, expect, it } from "vitest";
import { exactly } from "../scripts/cli/permissions.ts";

describe("skynet permissions: exact commands", () => {
  it("shows a plain command as it is", () => {
    expect(exactly("npm test -- --grep 'a b' > out.txt")).toBe("npm test -- --grep 'a b' > out.txt");
  });

  it("quotes a command with terminal escapes or a carriage return instead of cleaning it", () => {
    const sneaky = "rm -rf ~ \u001b[2K\recho hello";
    const shown = exactly(sneaky);
    expect(shown).toBe(JSON.stringify(sneaky));
    expect(shown).not.toContain("\u001b");
    expect(JSON.parse(shown)).toBe(sneaky);
  });
});
