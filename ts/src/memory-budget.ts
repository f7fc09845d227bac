/**
 * The default memory budget of a load ("what the runtime can give", issue 15 item 2): the bytes a model may take
 * while it loads and, after, the limit its calls' working memory is checked against (crates/t5-core/src/budget.rs).
 * `max_memory` overrides it. It is the smallest of:
 * - the WebAssembly address space left: a wasm32 memory grows to at most 4 GiB, and the engine instance's memory
 *   already holds `memory.buffer.byteLength` bytes (its code, other models, free heap it may reuse: counted as taken,
 *   so the figure is on the safe side);
 * - the host's memory, where the runtime says it without a permission or a prompt:
 *   Node and Bun: `process.availableMemory()` (Node ≥ 20.13: the available memory, within the process's cgroup
 *   limit when it has one), else `os.freemem()` (the system's available memory); Deno: `Deno.systemMemoryInfo().available` (only when `--allow-sys` grants it);
 *   browsers: `navigator.deviceMemory` (GiB of device RAM, rounded and capped at 8 by the browser).
 *   `performance.memory.jsHeapSizeLimit` (Chromium) is not used: it bounds the JavaScript heap, and a WebAssembly
 *   memory is not allocated from that heap.
 * Where the host says nothing (workerd, most browsers other than Chromium), the address space alone counts.
 */

/** Where the host's figure came from. */
export type MemorySource = "process.availableMemory" | "os.freemem" | "Deno.systemMemoryInfo" | "navigator.deviceMemory";

/** A wasm32 memory's largest size (65,536 pages of 64 KiB). */
export const WASM32_MAX_BYTES = 2 ** 32;

/** What a load's default budget is made of. */
export interface MemoryFacts {
  /** Bytes the engine instance's memory holds now (`WebAssembly.Memory.buffer.byteLength`). */
  wasmBytes: number;
  /** Bytes the host can still give, where the runtime says (see the module docs). */
  host?: { bytes: number; source: MemorySource };
}

/** The default budget from `facts`: the smallest of the address space left and the host's memory (bytes, ≥ 0). */
export function memoryBudget(facts: MemoryFacts): { bytes: number; source: MemorySource | "wasm32" } {
  const space = Math.max(0, WASM32_MAX_BYTES - facts.wasmBytes);
  const host = facts.host;
  if (host !== undefined && Number.isFinite(host.bytes) && host.bytes >= 0 && host.bytes < space) {
    return { bytes: Math.floor(host.bytes), source: host.source };
  }
  return { bytes: space, source: "wasm32" };
}

interface NodeOs {
  freemem(): number;
}

interface NodeProcess {
  versions?: { node?: string };
  availableMemory?: () => number;
}

/** The globals {@link hostMemory} reads. */
export interface HostGlobals {
  process?: NodeProcess;
  Deno?: { systemMemoryInfo?: () => { available: number }; permissions?: { querySync?: (d: { name: "sys"; kind: string }) => { state: string } } };
  navigator?: { deviceMemory?: number };
}

/** What the host says about its memory (never throws, never prompts); `g`: the globals to read (tests). */
export async function hostMemory(g: HostGlobals = globalThis as HostGlobals): Promise<MemoryFacts["host"]> {
  try {
    if (g.Deno !== undefined) {
      const state = g.Deno.permissions?.querySync?.({ name: "sys", kind: "systemMemoryInfo" }).state;
      if (state !== "granted" || typeof g.Deno.systemMemoryInfo !== "function") return undefined;
      return { bytes: g.Deno.systemMemoryInfo().available, source: "Deno.systemMemoryInfo" };
    }
    const p = g.process;
    if (typeof p?.versions?.node === "string") {
      // Node ≥ 20.13: the free memory under the process's cgroup limit too; else the system's available memory
      const avail = p.availableMemory?.();
      if (typeof avail === "number" && Number.isFinite(avail)) return { bytes: avail, source: "process.availableMemory" };
      const os = (await import("node:os")) as NodeOs;
      return { bytes: os.freemem(), source: "os.freemem" };
    }
    const dm = g.navigator?.deviceMemory;
    if (typeof dm === "number" && dm > 0) return { bytes: dm * 2 ** 30, source: "navigator.deviceMemory" };
  } catch {
    // a runtime that refuses: the address space alone counts
  }
  return undefined;
}

/** The default budget of a load on an engine instance whose memory holds `wasmBytes` now. */
export async function defaultMemoryBudget(wasmBytes: number): Promise<number> {
  return memoryBudget({ wasmBytes, host: await hostMemory() }).bytes;
}
