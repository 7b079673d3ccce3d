// psl guest API for AssemblyScript functions: the wasm imports of module "psl" (abi/psl_abi.h,
// ABI version 1) and the few WASI preview1 calls a function needs (stdin, stdout, stderr, exit),
// declared here so no other package than the compiler is needed. Build a function with
//
//   asc fn.ts --exportStart _start --use abort=psl_abort -O -o fn.wasm   (sdk/assemblyscript/build.sh)
//
// and import this file: `import * as psl from "<path to>/sdk/assemblyscript/psl";`. A psl function
// is a WASI command: psl.request() is the request body (stdin), psl.respond() appends to the
// response (stdout), and finishing the top-level code is success (psl.exit(n) ends with status
// n). Keys, values and names cross the ABI as UTF-8 (the ...Bytes variants take raw bytes). Errors
// are the negative PSL_E* codes of psl_abi.h; functions that return an object return null on
// error and leave the code in psl.lastError().

export const OK: i32 = 0;
export const ENOTFOUND: i32 = -1;
export const EFAULT: i32 = -2;
export const ETOOBIG: i32 = -3;
export const ELOCK: i32 = -4;
export const ENOFUNC: i32 = -5;
export const EFAILED: i32 = -6;
export const EUNAVAIL: i32 = -7;
export const EDEPTH: i32 = -8;

// @ts-ignore: decorator
@external("psl", "get")
declare function psl_get(key: usize, klen: usize, buf: usize, cap: usize): i32;
// @ts-ignore: decorator
@external("psl", "put")
declare function psl_put(key: usize, klen: usize, val: usize, vlen: usize): i32;
// @ts-ignore: decorator
@external("psl", "delete")
declare function psl_delete(key: usize, klen: usize): i32;
// @ts-ignore: decorator
@external("psl", "lock")
declare function psl_lock(name: usize, nlen: usize): i32;
// @ts-ignore: decorator
@external("psl", "unlock")
declare function psl_unlock(name: usize, nlen: usize): i32;
// @ts-ignore: decorator
@external("psl", "invoke")
declare function psl_invoke(fn: usize, fnlen: usize, inp: usize, inlen: usize, out: usize,
                            cap: usize): i32;
// @ts-ignore: decorator
@external("psl", "invoke_async")
declare function psl_invoke_async(fn: usize, fnlen: usize, inp: usize, inlen: usize): i32;
// @ts-ignore: decorator
@external("psl", "log")
declare function psl_log(msg: usize, len: usize): void;
// @ts-ignore: decorator
@external("psl", "publish")
declare function psl_publish(): i32;

// @ts-ignore: decorator
@external("wasi_snapshot_preview1", "fd_read")
declare function fd_read(fd: i32, iovs: usize, iovs_len: usize, nread: usize): i32;
// @ts-ignore: decorator
@external("wasi_snapshot_preview1", "fd_write")
declare function fd_write(fd: i32, iovs: usize, iovs_len: usize, nwritten: usize): i32;
// @ts-ignore: decorator
@external("wasi_snapshot_preview1", "proc_exit")
declare function proc_exit(code: i32): void;

let last: i32 = OK;

// The code of the last failed call (or OK after a successful one).
export function lastError(): i32 {
  return last;
}

export function errorName(err: i32): string {
  switch (err) {
    case OK: return "ok";
    case ENOTFOUND: return "not found";
    case EFAULT: return "bad guest pointer";
    case ETOOBIG: return "too big";
    case ELOCK: return "lock not held or already held";
    case ENOFUNC: return "no such function";
    case EFAILED: return "callee failed";
    case EUNAVAIL: return "service unavailable";
    case EDEPTH: return "invocations nested too deep";
  }
  return "unknown error";
}

function utf8(s: string): ArrayBuffer {
  return String.UTF8.encode(s, false);
}

function ptr(b: ArrayBuffer): usize {
  return changetype<usize>(b);
}

// ---- key-value store ----

// The value of key as bytes, or null when it is absent or the read failed (lastError() says
// which: ENOTFOUND, or another code). A value that grows between the two host calls is read
// again, so the result is never truncated.
export function getBytes(key: ArrayBuffer): ArrayBuffer | null {
  let buf = new ArrayBuffer(256);
  let n = psl_get(ptr(key), key.byteLength, ptr(buf), buf.byteLength);
  while (n > buf.byteLength) {
    buf = new ArrayBuffer(n);
    n = psl_get(ptr(key), key.byteLength, ptr(buf), buf.byteLength);
  }
  if (n < 0) {
    last = n;
    return null;
  }
  last = OK;
  return buf.slice(0, n);
}

// The value of key decoded as UTF-8, or null (see getBytes).
export function get(key: string): string | null {
  const v = getBytes(utf8(key));
  return v === null ? null : String.UTF8.decode(v, false);
}

export function putBytes(key: ArrayBuffer, val: ArrayBuffer): i32 {
  return (last = psl_put(ptr(key), key.byteLength, ptr(val), val.byteLength));
}

// 0 or a negative error.
export function put(key: string, val: string): i32 {
  return putBytes(utf8(key), utf8(val));
}

// Delete key (a tombstone; deleting an absent key is 0). `delete` is a keyword, hence the name.
export function del(key: string): i32 {
  const k = utf8(key);
  return (last = psl_delete(ptr(k), k.byteLength));
}

// ---- locks (release-consistent) ----

export function lock(name: string): i32 {
  const n = utf8(name);
  return (last = psl_lock(ptr(n), n.byteLength));
}

export function unlock(name: string): i32 {
  const n = utf8(name);
  return (last = psl_unlock(ptr(n), n.byteLength));
}

// ---- calling other functions ----

// Call fn synchronously; its response as bytes, or null (lastError(): ENOFUNC, EFAILED, EDEPTH,
// or ETOOBIG when the response exceeds cap bytes: the callee did run and is never called twice).
export function invokeBytes(fn: string, input: ArrayBuffer, cap: i32 = 65536): ArrayBuffer | null {
  const f = utf8(fn);
  const out = new ArrayBuffer(cap);
  const n = psl_invoke(ptr(f), f.byteLength, ptr(input), input.byteLength, ptr(out), cap);
  if (n < 0 || n > cap) {
    last = n < 0 ? n : ETOOBIG;
    return null;
  }
  last = OK;
  return out.slice(0, n);
}

export function invoke(fn: string, input: string, cap: i32 = 65536): string | null {
  const r = invokeBytes(fn, utf8(input), cap);
  return r === null ? null : String.UTF8.decode(r, false);
}

// Queue a call and do not wait for it. 0 or a negative error.
export function invokeAsync(fn: string, input: string): i32 {
  const f = utf8(fn);
  const i = utf8(input);
  return (last = psl_invoke_async(ptr(f), f.byteLength, ptr(i), i.byteLength));
}

// One line to the function's log.
export function log(msg: string): void {
  const m = utf8(msg);
  psl_log(ptr(m), m.byteLength);
}

// Send this invocation's writes so far on their way to the other workers now, without waiting
// (eventual consistency, no lock; psl_publish in sdk/c/psl.h). 0 or a negative error.
export function publish(): i32 {
  return (last = psl_publish());
}

// ---- request, response, exit ----

// The whole request body (stdin) as bytes.
export function requestBytes(): ArrayBuffer {
  let data = new ArrayBuffer(0);
  const chunk = new ArrayBuffer(4096);
  const iov = new ArrayBuffer(8);
  const nread = new ArrayBuffer(4);
  for (;;) {
    store<u32>(ptr(iov), <u32>ptr(chunk));
    store<u32>(ptr(iov), <u32>chunk.byteLength, 4);
    if (fd_read(0, ptr(iov), 1, ptr(nread)) != 0) break;
    const n = load<u32>(ptr(nread));
    if (n == 0) break;
    const grown = new ArrayBuffer(data.byteLength + <i32>n);
    memory.copy(ptr(grown), ptr(data), data.byteLength);
    memory.copy(ptr(grown) + data.byteLength, ptr(chunk), n);
    data = grown;
  }
  return data;
}

// The whole request body decoded as UTF-8.
export function request(): string {
  return String.UTF8.decode(requestBytes(), false);
}

function writeAll(fd: i32, b: ArrayBuffer): bool {
  const iov = new ArrayBuffer(8);
  const nw = new ArrayBuffer(4);
  let off: u32 = 0;
  const len = <u32>b.byteLength;
  while (off < len) {
    store<u32>(ptr(iov), <u32>ptr(b) + off);
    store<u32>(ptr(iov), len - off, 4);
    if (fd_write(fd, ptr(iov), 1, ptr(nw)) != 0) return false;
    const n = load<u32>(ptr(nw));
    if (n == 0) return false;
    off += n;
  }
  return true;
}

// Append bytes to the response (stdout); false when the write failed (e.g. the response limit).
export function respondBytes(b: ArrayBuffer): bool {
  return writeAll(1, b);
}

export function respond(s: string): bool {
  return writeAll(1, utf8(s));
}

// A line to stderr: the caller sees it in the error message when the function exits non-zero.
export function error(s: string): void {
  writeAll(2, utf8(s + "\n"));
}

// End the invocation now with exit status code (0 = success).
export function exit(code: i32): void {
  proc_exit(code);
}

// AssemblyScript's abort (failed assertions, out-of-bounds accesses, ...): the message goes to
// stderr, then the guest traps, so the invocation fails with a trap like any other guest's.
// Selected with `--use abort=psl_abort` (hence @global).
// @ts-ignore: decorator
@global export function psl_abort(msg: string | null, file: string | null, line: u32, col: u32): void {
  error("abort: " + (msg === null ? "" : msg) + " at " + (file === null ? "?" : file) + ":" +
        line.toString() + ":" + col.toString());
  unreachable();
}
