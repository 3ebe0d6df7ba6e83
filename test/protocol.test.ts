import { describe, expect, it } from "vitest";
import { checkActionParams, matchPhrase } from "../protocol/index.ts";

describe("smoke", () => {
  it("matches git status", () => {
    expect(matchPhrase("check git status in my project")?.action.name).toBe("git_status");
    expect(checkActionParams("read_file", { path: "../../etc/passwd" }).ok).toBe(false);
  });
});
