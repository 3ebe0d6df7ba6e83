#!/usr/bin/env node
// Entry for `npx skynet-agent`: Node ≥ 22.18 runs the TypeScript sources directly.
import "../src/cli.ts";
