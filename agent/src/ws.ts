// The `ws` package, required rather than imported. Imported from an ES module, ws's ES wrapper
// loads each of its CommonJS files through Node's ES module loader (and its CommonJS export
// lexer), and the agent then holds ≈ 6 MB more resident memory for its whole life than when the
// same package is required (measured with the bundle: idle 78–80 vs 73–74 MB).
import { createRequire } from "node:module";
import type WsWebSocket from "ws";

export const WebSocket: typeof WsWebSocket = createRequire(import.meta.url)("ws");
export type WebSocket = WsWebSocket;
