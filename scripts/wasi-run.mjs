// Runs a wasm32-wasip1 test binary in Node's WASI (scripts/test-wasm-kernels.sh): node scripts/wasi-run.mjs FILE.wasm [ARGS...]
import { WASI } from 'node:wasi';
import { readFileSync } from 'node:fs';
const [file, ...args] = process.argv.slice(2);
const wasi = new WASI({ version: 'preview1', args: [file, ...args], env: {}, preopens: {} });
const mod = await WebAssembly.compile(readFileSync(file));
const inst = await WebAssembly.instantiate(mod, wasi.getImportObject());
process.exitCode = wasi.start(inst);
