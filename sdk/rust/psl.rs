//! psl guest API for Rust functions: a crate-free binding of the wasm imports of module "psl"
//! (abi/psl_abi.h, ABI version 1). Build it as an rlib for wasm32-wasi with Debian's rustc:
//!
//!     /usr/bin/rustc --edition 2021 --target wasm32-wasi -O --crate-type rlib --crate-name psl \
//!         sdk/rust/psl.rs -o libpsl.rlib
//!     /usr/bin/rustc --edition 2021 --target wasm32-wasi -O --extern psl=libpsl.rlib main.rs
//!
//! A psl function is a WASI command: `psl::request()` is the request body (stdin), stdout is the
//! response, and exit status 0 (returning from main) is success. Errors are the negative PSL_E*
//! codes of psl_abi.h, carried by `psl::Error`. Nothing here panics.

use std::fmt;
use std::io::Read;

// The numbers below are those of abi/psl_abi.h (stable across ABI versions).
pub const ENOTFOUND: i32 = -1;
pub const EFAULT: i32 = -2;
pub const ETOOBIG: i32 = -3;
pub const ELOCK: i32 = -4;
pub const ENOFUNC: i32 = -5;
pub const EFAILED: i32 = -6;
pub const EUNAVAIL: i32 = -7;
pub const EDEPTH: i32 = -8;

pub const MAX_KEY: usize = 4096;
pub const MAX_VALUE: usize = 1 << 20;
pub const MAX_LOCK_NAME: usize = 256;

#[link(wasm_import_module = "psl")]
extern "C" {
    #[link_name = "get"]
    fn psl_get(key: *const u8, klen: usize, buf: *mut u8, cap: usize) -> i32;
    #[link_name = "put"]
    fn psl_put(key: *const u8, klen: usize, val: *const u8, vlen: usize) -> i32;
    #[link_name = "delete"]
    fn psl_delete(key: *const u8, klen: usize) -> i32;
    #[link_name = "lock"]
    fn psl_lock(name: *const u8, nlen: usize) -> i32;
    #[link_name = "unlock"]
    fn psl_unlock(name: *const u8, nlen: usize) -> i32;
    #[link_name = "invoke"]
    fn psl_invoke(
        func: *const u8,
        flen: usize,
        input: *const u8,
        inlen: usize,
        out: *mut u8,
        cap: usize,
    ) -> i32;
    #[link_name = "invoke_async"]
    fn psl_invoke_async(func: *const u8, flen: usize, input: *const u8, inlen: usize) -> i32;
    #[link_name = "log"]
    fn psl_log(msg: *const u8, len: usize);
    #[link_name = "publish"]
    fn psl_publish() -> i32;
}

/// A PSL_E* error code (always negative).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Error(pub i32);

impl Error {
    pub fn code(self) -> i32 {
        self.0
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self.0 {
            ENOTFOUND => "not found",
            EFAULT => "bad guest pointer",
            ETOOBIG => "too big",
            ELOCK => "lock not held or already held",
            ENOFUNC => "no such function",
            EFAILED => "callee failed",
            EUNAVAIL => "service unavailable",
            EDEPTH => "invocations nested too deep",
            _ => "unknown error",
        };
        write!(f, "{} ({})", s, self.0)
    }
}

impl std::error::Error for Error {}

pub type Result<T> = std::result::Result<T, Error>;

fn check(rc: i32) -> Result<()> {
    if rc < 0 {
        Err(Error(rc))
    } else {
        Ok(())
    }
}

/// The value of `key`, `Ok(None)` when it is absent. A value that grows between the two host calls
/// is read again, so the result is never truncated.
pub fn get(key: &[u8]) -> Result<Option<Vec<u8>>> {
    let mut buf = vec![0u8; 256];
    loop {
        let n = unsafe { psl_get(key.as_ptr(), key.len(), buf.as_mut_ptr(), buf.len()) };
        if n == ENOTFOUND {
            return Ok(None);
        }
        check(n)?;
        let n = n as usize;
        if n <= buf.len() {
            buf.truncate(n);
            return Ok(Some(buf));
        }
        buf.resize(n, 0);
    }
}

/// `get` for UTF-8 values: a value that is not valid UTF-8 is converted lossily.
pub fn get_string(key: &str) -> Result<Option<String>> {
    Ok(get(key.as_bytes())?.map(|v| String::from_utf8_lossy(&v).into_owned()))
}

pub fn put(key: &[u8], val: &[u8]) -> Result<()> {
    check(unsafe { psl_put(key.as_ptr(), key.len(), val.as_ptr(), val.len()) })
}

/// Delete `key` (a tombstone; deleting an absent key succeeds).
pub fn delete(key: &[u8]) -> Result<()> {
    check(unsafe { psl_delete(key.as_ptr(), key.len()) })
}

/// A held lock, released when dropped (or earlier with `unlock`). Release-consistent: once
/// `lock` returns, every write an earlier holder made before its release is visible.
pub struct LockGuard {
    name: String,
    held: bool,
}

impl LockGuard {
    /// Release now and report the host's answer.
    pub fn unlock(mut self) -> Result<()> {
        self.held = false;
        check(unsafe { psl_unlock(self.name.as_ptr(), self.name.len()) })
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        if self.held {
            unsafe { psl_unlock(self.name.as_ptr(), self.name.len()) };
        }
    }
}

/// Acquire the lock called `name`.
pub fn lock(name: &str) -> Result<LockGuard> {
    check(unsafe { psl_lock(name.as_ptr(), name.len()) })?;
    Ok(LockGuard { name: name.to_string(), held: true })
}

/// Call function `func` synchronously with `input` as its request and return its response. The
/// response is received into a buffer of `cap` bytes: a longer one answers `Err(ETOOBIG)` (the
/// callee did run; it is never called twice).
pub fn invoke(func: &str, input: &[u8], cap: usize) -> Result<Vec<u8>> {
    let mut out = vec![0u8; cap];
    let n = unsafe {
        psl_invoke(func.as_ptr(), func.len(), input.as_ptr(), input.len(), out.as_mut_ptr(), cap)
    };
    check(n)?;
    if n as usize > cap {
        return Err(Error(ETOOBIG));
    }
    out.truncate(n as usize);
    Ok(out)
}

/// Queue a call of `func` and do not wait for it.
pub fn invoke_async(func: &str, input: &[u8]) -> Result<()> {
    check(unsafe { psl_invoke_async(func.as_ptr(), func.len(), input.as_ptr(), input.len()) })
}

/// One line to the function's log.
pub fn log(msg: &str) {
    unsafe { psl_log(msg.as_ptr(), msg.len()) }
}

/// Send this invocation's writes so far on their way to the other workers now, without waiting
/// (eventual consistency, no lock; `psl_publish` in sdk/c/psl.h).
pub fn publish() -> Result<()> {
    check(unsafe { psl_publish() })
}

/// The whole request body (stdin); empty when it cannot be read.
pub fn request() -> Vec<u8> {
    let mut v = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut v);
    v
}
