#!/usr/bin/env node
// Entry point of the `t5-web` command; the logic is in cli-main.ts.
import { main } from "./cli-main.js";

process.exitCode = await main(process.argv.slice(2), {
  stdin: process.stdin,
  stdout: (t) => process.stdout.write(t),
  stderr: (t) => process.stderr.write(t),
  stderrIsTTY: process.stderr.isTTY === true,
  stdoutIsTTY: process.stdout.isTTY === true,
  stdinIsTTY: process.stdin.isTTY === true,
});
