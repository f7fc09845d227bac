#!/usr/bin/env node
// Entry point of the `t5-web` command; the logic is in cli-main.ts.
import { describe, main } from "./cli-main.js";

try {
  process.exitCode = await main(process.argv.slice(2), {
    stdin: process.stdin,
    stdout: (t) => process.stdout.write(t),
    stderr: (t) => process.stderr.write(t),
    stderrIsTTY: process.stderr.isTTY === true,
    stdoutIsTTY: process.stdout.isTTY === true,
    stdinIsTTY: process.stdin.isTTY === true,
  });
} catch (e) {
  // main() answers every expected failure itself; anything else still gets one line, not a stack trace
  process.stderr.write(`t5-web: ${describe(e)}\n`);
  process.exitCode = 1;
}
