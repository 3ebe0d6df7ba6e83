#!/usr/bin/env node
// Entry for `npx skynet` in this repository: Node ≥ 22.18 (the `node` devDependency, first on
// npm's PATH) runs the TypeScript sources directly.
import "../skynet.ts";
