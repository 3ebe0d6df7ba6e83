// Picks the command for run_tests / build_project / lint / install_deps from what the
// workspace contains: npm/pnpm/yarn, pytest, go, cargo or make. Always an argv array.
import { access, readFile } from "node:fs/promises";
import { join } from "node:path";
import { err, ok, type Result, type Runner } from "../../protocol/index.ts";

export type RunnerAction = "run_tests" | "build_project" | "lint" | "install_deps";

const exists = (path: string) =>
  access(path).then(
    () => true,
    () => false,
  );

async function packageScripts(dir: string): Promise<Record<string, string> | null> {
  try {
    const pkg = JSON.parse(await readFile(join(dir, "package.json"), "utf8")) as { scripts?: Record<string, string> };
    return pkg.scripts ?? {};
  } catch {
    return null;
  }
}

export async function detectRunner(dir: string): Promise<Runner | null> {
  if (await exists(join(dir, "package.json"))) {
    if (await exists(join(dir, "pnpm-lock.yaml"))) return "pnpm";
    if (await exists(join(dir, "yarn.lock"))) return "yarn";
    return "npm";
  }
  for (const f of ["pytest.ini", "pyproject.toml", "setup.py", "tox.ini"])
    if (await exists(join(dir, f))) return "pytest";
  if (await exists(join(dir, "go.mod"))) return "go";
  if (await exists(join(dir, "Cargo.toml"))) return "cargo";
  if (await exists(join(dir, "Makefile"))) return "make";
  return null;
}

/** The argv for an action, or an error that says why there is nothing to run. */
export async function runnerCommand(
  dir: string,
  action: RunnerAction,
  explicit: Runner | undefined,
  args: string[],
): Promise<Result<string[]>> {
  const runner = explicit ?? (await detectRunner(dir));
  if (!runner) {
    return err("no runner detected (package.json, pyproject.toml/pytest.ini, go.mod, Cargo.toml or Makefile)");
  }
  const script = { run_tests: "test", build_project: "build", lint: "lint", install_deps: "install" }[action];
  switch (runner) {
    case "npm":
    case "pnpm":
    case "yarn": {
      if (action === "install_deps") {
        const ci = runner === "npm" && (await exists(join(dir, "package-lock.json")));
        return ok([runner, ci ? "ci" : "install"]);
      }
      const scripts = (await packageScripts(dir)) ?? {};
      if (!scripts[script]) return err(`package.json has no "${script}" script`);
      return ok([runner, "run", script, ...(args.length ? ["--", ...args] : [])]);
    }
    case "pytest":
      if (action === "run_tests") return ok(["python3", "-m", "pytest", ...args]);
      if (action === "lint") return ok(["python3", "-m", "ruff", "check", ".", ...args]);
      if (action === "install_deps") return ok(["python3", "-m", "pip", "install", "-e", "."]);
      return ok(["python3", "-m", "build", ...args]);
    case "go":
      if (action === "install_deps") return ok(["go", "mod", "download"]);
      return ok(
        action === "run_tests"
          ? ["go", "test", "./...", ...args]
          : action === "lint"
            ? ["go", "vet", "./..."]
            : ["go", "build", "./...", ...args],
      );
    case "cargo":
      if (action === "install_deps") return ok(["cargo", "fetch"]);
      return ok(["cargo", action === "run_tests" ? "test" : action === "lint" ? "clippy" : "build", ...args]);
    case "make":
      if (action === "install_deps") return ok(["make", "install"]);
      return ok(["make", ...(action === "build_project" ? [] : [script]), ...args]);
  }
}
