/**
 * @internal Test-only hooks, not exported from the package's entry points (index.ts) nor part of its types.
 *
 * {@link armDebugTrap}: the next `startGeneration` (the first engine call of a CPU `generate` / `generateSync` /
 * `generateStream`, or of a pipeline's generation) on the current engine instance traps with a genuine WebAssembly
 * `unreachable` (crates/t5-wasm `__t5_debug_arm_trap`), inside the call and with its model borrowed, as a Rust panic
 * or an allocation failure would. The tests of a failed call (test/trap.test.ts) and the CLI's `T5_WEB_DEBUG_TRAP=1`
 * use it; see docs/hardening.md.
 */

import { armInstanceTrap, initWasm } from "./wasm.js";

/** Arm a trap in the current engine instance's next `startGeneration` (see the module docs). */
export async function armDebugTrap(): Promise<void> {
  await initWasm();
  armInstanceTrap();
}
