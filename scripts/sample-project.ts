// The project `npm run dev` serves when no --workspace is given: a tiny Node package in its own
// git repository (outside this one's version control, under .skynet/), with real tests
// (`npm test` runs `node --test`) and a build (`npm run build` writes dist/), so that the
// README's examples run in seconds. Created when missing; an existing one is left as it is.
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";

const FILES: Record<string, string> = {
  "package.json": `${JSON.stringify(
    {
      name: "skynet-sample-project",
      version: "1.0.0",
      private: true,
      type: "module",
      description: "A small project for trying SKYNET: npm test and npm run build work in a second",
      scripts: { test: "node --test", build: "node build.js" },
    },
    null,
    2,
  )}\n`,
  ".gitignore": "dist/\nnode_modules/\n",
  "README.md": "# sample project\n\nCreated by SKYNET's `npm run dev` to try tasks on. `npm test`, `npm run build`.\n",
  "src/greet.js": `export function greet(name) {
  const who = String(name ?? "").trim() || "world";
  return \`hello, \${who}\`;
}
`,
  "test/greet.test.js": `import assert from "node:assert/strict";
import { test } from "node:test";
import { greet } from "../src/greet.js";

test("greets by name", () => {
  assert.equal(greet("Ada"), "hello, Ada");
});

test("greets the world when no name is given", () => {
  assert.equal(greet(""), "hello, world");
  assert.equal(greet(undefined), "hello, world");
});
`,
  "build.js": `// Copies src/ to dist/ with a banner: a build that really writes files.
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";

mkdirSync("dist", { recursive: true });
for (const name of readdirSync("src")) {
  writeFileSync(\`dist/\${name}\`, \`// built from src/\${name}\\n\${readFileSync(\`src/\${name}\`, "utf8")}\`);
  console.log(\`built dist/\${name}\`);
}
`,
};

/** Creates the sample project in `dir` unless something is there already; true if created. */
export function ensureSampleProject(dir: string): boolean {
  if (existsSync(dir)) return false;
  // Built next to its place and moved in whole, so an interrupted run leaves no half project.
  const tmp = `${dir}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  for (const [path, text] of Object.entries(FILES)) {
    mkdirSync(dirname(join(tmp, path)), { recursive: true });
    writeFileSync(join(tmp, path), text);
  }
  // A fixed identity and no signing: the commit must not depend on the user's git config.
  const git = (...args: string[]) =>
    execFileSync(
      "git",
      ["-c", "user.name=SKYNET", "-c", "user.email=skynet@localhost", "-c", "commit.gpgsign=false", ...args],
      { cwd: tmp, stdio: "ignore" },
    );
  try {
    git("init", "-q", "-b", "main");
    git("add", "-A");
    git("commit", "-q", "-m", "sample project");
    renameSync(tmp, dir);
  } catch (err) {
    rmSync(tmp, { recursive: true, force: true });
    throw err;
  }
  return true;
}
