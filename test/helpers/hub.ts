/**
 * A stubbed `fetch` serving fixture checkpoints in the Hugging Face Hub layout
 * (`https://huggingface.co/{id}/resolve/{revision}/{file}`), recording every request; no network.
 */

import { existsSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { FIXTURES } from "./oracle.js";

export interface HubStub {
  fetch: typeof globalThis.fetch;
  /** `METHOD url` of every request, in order. */
  asked: string[];
  /** Requests whose URL contains `part`. */
  count(part?: string): number;
}

/**
 * `repos` maps a repository prefix (`https://host/owner/name/resolve/main/`) to a fixture directory, or to a
 * record of file name → bytes; anything else is a 404.
 */
export function hubStub(repos: Record<string, string | Record<string, Uint8Array>>): HubStub {
  const asked: string[] = [];
  const fetchFn = (async (input: URL | RequestInfo, init?: RequestInit) => {
    const url = input instanceof URL ? input.href : typeof input === "string" ? input : input.url;
    const method = init?.method ?? "GET";
    asked.push(`${method} ${url}`);
    for (const [prefix, repo] of Object.entries(repos)) {
      if (!url.startsWith(prefix)) continue;
      const name = decodeURIComponent(url.slice(prefix.length));
      let bytes: Uint8Array | undefined;
      if (typeof repo === "string") {
        const file = join(FIXTURES, repo, name);
        if (existsSync(file) && statSync(file).isFile()) bytes = readFileSync(file);
      } else {
        bytes = repo[name];
      }
      if (bytes === undefined) break;
      const headers = { "content-length": String(bytes.byteLength) };
      return new Response(method === "HEAD" ? null : (bytes as Uint8Array<ArrayBuffer>), { status: 200, headers });
    }
    return new Response("Entry not found", { status: 404, statusText: "Not Found" });
  }) as typeof globalThis.fetch;
  return { fetch: fetchFn, asked, count: (part = "") => asked.filter((a) => a.includes(part)).length };
}
