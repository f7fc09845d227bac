import { describe, expect, it } from "vitest";
import { DEFAULT_MODEL, main } from "../ts/src/cli-main.js";
import { pipeline } from "../ts/src/index.js";
import { modelDir } from "./helpers/oracle.js";

async function run(argv: string[], stdin: string[] = []) {
  let out = "";
  let err = "";
  const code = await main(argv, {
    stdin: (async function* () {
      yield* stdin;
    })(),
    stdout: (t) => (out += t),
    stderr: (t) => (err += t),
  });
  return { code, out, err };
}

describe("t5-web CLI", () => {
  it("--help", async () => {
    const r = await run(["--help"]);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/Usage: t5-web run/);
    expect(r.out).toContain(DEFAULT_MODEL);
  });

  it("run --input uses the default model", async () => {
    const pipe = await pipeline("text2text-generation", modelDir("tiny-t5"));
    const [expected] = await pipe("translate English to German: Hello", { max_new_tokens: 5 });
    pipe.dispose();
    const r = await run(["run", "--max-new-tokens", "5", "--input", "translate English to German: Hello"]);
    expect(r.err).toBe("");
    expect(r.code).toBe(0);
    expect(r.out).toBe(`${expected!.generated_text}\n`);
  });

  it("reads one input per stdin line", async () => {
    const r = await run(["run", "--model", modelDir("tiny-t5-v1_1"), "--max-new-tokens=3"], ["first line\nsecond", " line\r\nthird"]);
    expect(r.code).toBe(0);
    expect(r.out.split("\n")).toHaveLength(4); // three lines + trailing newline
  });

  it("bad usage exits 2", async () => {
    expect((await run(["serve"])).code).toBe(2);
    const r = await run(["run", "--max-new-tokens", "many"]);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/--max-new-tokens needs a non-negative integer/);
    expect((await run(["run", "--model"])).err).toMatch(/needs a value/);
  });

  it("a missing model exits 1 with the typed error", async () => {
    const r = await run(["run", "--model", "/nonexistent/model", "--input", "x"]);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/MissingFileError: model directory not found/);
  });

  it("an over-long input exits 1 unless --truncate", async () => {
    const long = Array.from({ length: 600 }, (_, i) => `w${i}`).join(" ");
    const r = await run(["run", "--max-new-tokens", "1", "--input", long]);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/InputTooLongError/);
    expect((await run(["run", "--max-new-tokens", "1", "--truncate", "--input", long])).code).toBe(0);
  });
});
