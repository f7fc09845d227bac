/**
 * The WebGPU backend in headless Debian Chromium (playwright-core, SwiftShader's Vulkan on machines
 * without a GPU): the page (page.mjs) loads the wasm engine from a server on 127.0.0.1, runs the
 * fixtures on the CPU and on `navigator.gpu`, and reports; logits within 1e-3, greedy ids identical.
 */

import { createServer, type Server } from "node:http";
import { readFile } from "node:fs/promises";
import { extname, join, normalize } from "node:path";
import { existsSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { chromium, type Browser } from "playwright-core";
import { ROOT } from "../helpers/oracle.js";

const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const TYPES: Record<string, string> = { ".js": "text/javascript", ".mjs": "text/javascript", ".wasm": "application/wasm", ".json": "application/json", ".html": "text/html" };

let server: Server;
let browser: Browser;
let base: string;

describe.skipIf(process.env.T5_WEBGPU_BROWSER === "skip")("webgpu in headless Chromium", () => {
  beforeAll(async () => {
    expect(existsSync(CHROMIUM), `${CHROMIUM} (apt-get install chromium; scripts/setup.sh does)`).toBe(true);
    server = createServer(async (req, res) => {
      const path = normalize(decodeURIComponent(new URL(req.url ?? "/", "http://x").pathname));
      if (!/^\/(pkg|test\/fixtures|test\/webgpu)\//.test(path) && path !== "/") {
        res.writeHead(404).end();
        return;
      }
      try {
        const body = path === "/" ? Buffer.from("<!doctype html><title>t5-web webgpu</title>") : await readFile(join(ROOT, path));
        res.writeHead(200, { "content-type": TYPES[extname(path)] ?? (path === "/" ? "text/html" : "application/octet-stream") }).end(body);
      } catch {
        res.writeHead(404).end();
      }
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: [
        "--no-sandbox",
        "--enable-unsafe-webgpu",
        "--enable-unsafe-swiftshader",
        "--enable-features=Vulkan",
        "--use-angle=swiftshader",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
      ],
    });
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    await new Promise((r) => server?.close(r));
  });

  it.each(["tiny-t5", "tiny-t5-v1_1"])("%s: GPU vs CPU in the page", async (name) => {
    const page = await browser.newPage();
    const logs: string[] = [];
    page.on("console", (m) => logs.push(m.text()));
    page.on("pageerror", (e) => logs.push(String(e)));
    await page.goto(`${base}/`);
    expect(await page.evaluate(() => "gpu" in navigator), "navigator.gpu in headless Chromium").toBe(true);
    type R = { adapter: string; logits: number; encoder: number; decoder: number; loss: number; cpu_ids: number[][]; gpu_ids: number[][]; oracle_ids: number[][]; stats: { submits_per_step: number }; live_after_dispose: number;
      searches: Record<string, { cpu_ids: number[][]; gpu_ids: number[][]; scores: number; read_back_per_step: number; logits_bytes: number }> };
    const r = await (page.evaluate(`import("/test/webgpu/page.mjs").then((m) => m.run(${JSON.stringify(name)}))`) as Promise<R>).catch((e: unknown) => {
      throw new Error(`${String(e)}\n${logs.join("\n")}`);
    });
    console.log(`${name} in Chromium on ${r.adapter}: logits ${r.logits.toExponential(2)}, encoder ${r.encoder.toExponential(2)}, stats ${JSON.stringify(r.stats)}`);
    expect(r.logits).toBeLessThanOrEqual(1e-3);
    expect(r.encoder).toBeLessThanOrEqual(1e-3);
    expect(r.decoder).toBeLessThanOrEqual(1e-3);
    expect(r.loss).toBeLessThanOrEqual(1e-3);
    expect(r.gpu_ids).toEqual(r.cpu_ids);
    expect(r.gpu_ids).toEqual(r.oracle_ids);
    expect(r.stats.submits_per_step).toBe(1);
    expect(r.live_after_dispose).toBe(0);
    for (const [what, x] of Object.entries(r.searches)) {
      expect(x.gpu_ids, what).toEqual(x.cpu_ids);
      expect(x.scores, what).toBeLessThanOrEqual(1e-3);
      expect(x.read_back_per_step * 100, `${what}: read back per step vs the logits`).toBeLessThan(x.logits_bytes);
    }
    await page.close();
  }, 180_000);

  it("dtype fp16: transformers' float16 logits and greedy ids on the overflow fixture", async () => {
    const page = await browser.newPage();
    const logs: string[] = [];
    page.on("console", (m) => logs.push(m.text()));
    page.on("pageerror", (e) => logs.push(String(e)));
    await page.goto(`${base}/`);
    type R = { adapter: string; shader_f16: boolean; n: number; want_n: number; worst: number; over: number; nonfinite: number; ids: number[][]; oracle_ids: number[][] };
    const r = await (page.evaluate(`import("/test/webgpu/page.mjs").then((m) => m.runFp16())`) as Promise<R>).catch((e: unknown) => {
      throw new Error(`${String(e)}\n${logs.join("\n")}`);
    });
    console.log(`fp16 overflow fixture in Chromium on ${r.adapter} (shader-f16 ${r.shader_f16}): max |logits - transformers fp16| = ${r.worst}`);
    expect(r.n).toBe(r.want_n);
    expect(r.nonfinite).toBe(0);
    expect(r.over).toBe(0);
    expect(r.ids).toEqual(r.oracle_ids);
    await page.close();
  }, 120_000);

  it.each(["q8", "q4"])("dtype %s: packed weights on the GPU, logits within 1e-3 of the CPU's, same greedy ids", async (dtype) => {
    const page = await browser.newPage();
    const logs: string[] = [];
    page.on("console", (m) => logs.push(m.text()));
    page.on("pageerror", (e) => logs.push(String(e)));
    await page.goto(`${base}/`);
    type R = { adapter: string; logits: number; encoder: number; cpu_ids: number[][]; gpu_ids: number[][]; stats: { submits_per_step: number }; live_after_dispose: number };
    const r = await (page.evaluate(`import("/test/webgpu/page.mjs").then((m) => m.runQuant(${JSON.stringify(dtype)}))`) as Promise<R>).catch((e: unknown) => {
      throw new Error(`${String(e)}\n${logs.join("\n")}`);
    });
    console.log(`tiny-t5-q128 ${dtype} in Chromium on ${r.adapter}: logits ${r.logits.toExponential(2)}, encoder ${r.encoder.toExponential(2)}, stats ${JSON.stringify(r.stats)}`);
    expect(r.logits).toBeLessThanOrEqual(1e-3);
    expect(r.encoder).toBeLessThanOrEqual(1e-3);
    expect(r.gpu_ids).toEqual(r.cpu_ids);
    expect(r.stats.submits_per_step).toBe(1);
    expect(r.live_after_dispose).toBe(0);
    await page.close();
  }, 120_000);
});
