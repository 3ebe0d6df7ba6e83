#!/usr/bin/env node
// Entry for `npx skynet` in this repository: the `node` devDependency (first on npm's PATH) is
// Node 22, which runs the TypeScript sources directly. Started by an older Node, say so plainly.
const [major, minor] = process.versions.node.split(".").map(Number);
if (major < 22 || (major === 22 && minor < 18)) {
  console.error(
    `skynet: needs Node >= 22.18 (this is ${process.versions.node}); run it as \`npx skynet\` or \`npm run skynet --\` inside the repository, which use the node devDependency`,
  );
  process.exit(2);
}
await import("../skynet.ts");
