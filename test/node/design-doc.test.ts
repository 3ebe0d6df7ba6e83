// docs/design.md stays true to the code: its state table is the job machine's own, every
// "docs/design.md §N" a comment cites exists, no comment cites the old out-of-repo "seed §", and
// the README links the document.
import { readdir, readFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { allowedTransitions } from "../../src/core/job-machine.ts";

const ROOT = resolve(import.meta.dirname, "../..");
const doc = () => readFile(join(ROOT, "docs/design.md"), "utf8");

async function sources(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(join(ROOT, dir), { withFileTypes: true, recursive: true })) {
    if (entry.isFile() && /\.(ts|mjs)$/.test(entry.name)) out.push(join(entry.parentPath, entry.name));
  }
  return out;
}

describe("docs/design.md", () => {
  it("shows the job machine's transitions exactly as the code has them", async () => {
    const table = /<!-- state-table:begin -->\n([\s\S]*?)\n<!-- state-table:end -->/.exec(await doc())?.[1];
    const fromCode = [
      "| from | event | to |",
      "| --- | --- | --- |",
      ...allowedTransitions().map((t) => `| ${t.from} | \`${t.event}\` | ${t.to} |`),
    ].join("\n");
    expect(table, "paste this table between the state-table markers").toBe(fromCode);
  });

  it("has every section the code cites, and the code cites no seed section any more", async () => {
    const text = await doc();
    const sections = new Set([...text.matchAll(/^## (§\d+) /gm)].map((m) => m[1]));
    const files = (await Promise.all(["src", "protocol", "agent/src", "scripts"].map(sources))).flat();
    const cited: string[] = [];
    for (const file of files) {
      const code = await readFile(file, "utf8");
      expect(code, `${file} still cites the seed`).not.toMatch(/seed(?:'s)?[^\n]{0,30}§/i);
      for (const m of code.matchAll(/design\.md (§\d+)/g)) {
        cited.push(m[1] ?? "");
        expect(sections.has(m[1] ?? ""), `${file} cites design.md ${m[1]}`).toBe(true);
      }
    }
    expect(cited.length).toBeGreaterThan(0);
  });

  it("is linked from the README", async () => {
    expect(await readFile(join(ROOT, "README.md"), "utf8")).toMatch(/\]\(docs\/design\.md\)/);
  });
});
