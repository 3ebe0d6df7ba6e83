#!/usr/bin/env -S MALLOC_MMAP_THRESHOLD_=131072 node --max-old-space-size=256 --max-semi-space-size=2
// Entry for `skynet-agent`. Installed from the package it runs the bundled JavaScript (any Node
// the package's engines name); inside a clone of the repository, where the sources are, it runs
// them directly (Node ≥ 22.18 strips the types), so a stale bundle is never what runs there.
// The heap flags keep a long-running agent small: a young generation of 2 MB semi-spaces lets a
// log's transient copies die young (bench: a 50 MB log streams at a peak under 100 MB RSS), and
// a fixed malloc mmap threshold (glibc) hands freed socket buffers back (see service-files.ts).
import { existsSync } from "node:fs";

const source = new URL("../src/cli.ts", import.meta.url);
await import(existsSync(source) ? source.href : "../dist/skynet-agent.js");
