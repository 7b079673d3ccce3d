// Runs a wasm32-wasi command under node (V8) with node's built-in WASI, for the benchmark's
// reference column. Usage: node --no-warnings node_wasi.mjs FILE.wasm [ARGS...]
//
// Every WASI import is wrapped in a plain JS function. Node 20 calls WASI imports made directly
// from wasm through V8's fast-call path, which keeps using the linear memory's old backing store
// after memory.grow: a program that grows its heap and then prints crashes node (SIGSEGV) or
// loses its output. Calling through JS takes the slow path, which reads the current memory.
// The wrappers only cost time on system calls, which the kernels make a handful of.
import { readFile } from 'node:fs/promises';
import { WASI } from 'node:wasi';

const [file, ...rest] = process.argv.slice(2);
if (!file) {
    process.stderr.write('usage: node node_wasi.mjs FILE.wasm [ARGS...]\n');
    process.exit(2);
}

const wasi = new WASI({
    version: 'preview1',
    args: [file, ...rest],
    env: {},
    returnOnExit: true,
});

const direct = wasi.getImportObject().wasi_snapshot_preview1;
const wrapped = {};
for (const [name, fn] of Object.entries(direct)) {
    wrapped[name] = (...args) => fn(...args);
}

const module = await WebAssembly.compile(await readFile(file));
const instance = await WebAssembly.instantiate(module, { wasi_snapshot_preview1: wrapped });
process.exitCode = wasi.start(instance);
