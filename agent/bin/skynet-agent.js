#!/usr/bin/env -S node --max-old-space-size=256 --max-semi-space-size=4
// Entry for `npx skynet-agent`: Node ≥ 22.18 runs the TypeScript sources directly. The heap
// flags keep a long-running agent small: with them a 200 MB log streams at a flat ~130 MB RSS.
import "../src/cli.ts";
