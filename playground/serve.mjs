#!/usr/bin/env node
// Serves the playground from this checkout on http://127.0.0.1:8080/playground/ (after `npm run build`):
// /node_modules/t5-web/… is this package (its dist/npm build), everything else the repository
// (/models/t5-numbers/, the model the page opens on, or /test/fixtures/tiny-t5-v1_1/ as model URLs). Pages are cross-origin isolated
// (COOP/COEP headers), so the playground runs the threaded engine build on every hardware thread (at most 8).
import { createReadStream, existsSync, statSync } from "node:fs";
import { createServer } from "node:http";
import { extname, join, normalize, resolve } from "node:path";

const root = resolve(import.meta.dirname, "..");
const port = Number(process.env.PORT ?? 8080);
const types = { ".html": "text/html", ".js": "text/javascript", ".wasm": "application/wasm", ".json": "application/json", ".css": "text/css" };
createServer((req, res) => {
  let path = decodeURIComponent(new URL(req.url ?? "/", "http://x").pathname);
  if (path === "/" || path === "/playground") return res.writeHead(302, { location: "/playground/" }).end();
  if (path.endsWith("/")) path += "index.html";
  path = path.replace(/^\/node_modules\/t5-web\//, "/");
  const file = normalize(join(root, path));
  if (!file.startsWith(root) || !existsSync(file) || !statSync(file).isFile()) return res.writeHead(404).end("not found");
  // cross-origin isolated (COOP + COEP): SharedArrayBuffer, so the page runs the threaded engine build
  res.writeHead(200, {
    "content-type": types[extname(file)] ?? "application/octet-stream",
    "cross-origin-opener-policy": "same-origin",
    "cross-origin-embedder-policy": "require-corp",
  });
  createReadStream(file).pipe(res);
}).listen(port, "127.0.0.1", () => console.log(`playground: http://127.0.0.1:${port}/playground/ (the default model, models/t5-numbers; ?model=<hub id|url> for another)`));
