/* psl guest API for C++ functions: a header-only layer over sdk/c/psl.h (the wasm imports of
 * module "psl", abi/psl_abi.h) with std::string / std::string_view / std::optional helpers and an
 * RAII lock guard. Build with clang++-19 --target=wasm32-wasi --sysroot=/usr -std=c++17
 * -fno-exceptions -fno-rtti (Debian's libc++ for wasm32-wasi has no exception runtime), and
 * -I sdk/c -I sdk/cpp -I abi.
 *
 * A psl function is a WASI command: psl::request() is the request body (stdin), psl::respond()
 * appends to the response (stdout), and returning 0 from main() is success. Errors are the
 * negative PSL_E* codes of psl_abi.h; psl::strerror() names them. Nothing here throws. */
#ifndef PSL_SDK_PSL_HPP
#define PSL_SDK_PSL_HPP

#include "psl.h"

#include <cstddef>
#include <cstdio>
#include <optional>
#include <string>
#include <string_view>
#include <unistd.h>

namespace psl {

/* A short name for a PSL_E* code (or "ok"). */
inline const char *strerror(int err) {
    switch (err) {
    case PSL_OK: return "ok";
    case PSL_ENOTFOUND: return "not found";
    case PSL_EFAULT: return "bad guest pointer";
    case PSL_ETOOBIG: return "too big";
    case PSL_ELOCK: return "lock not held or already held";
    case PSL_ENOFUNC: return "no such function";
    case PSL_EFAILED: return "callee failed";
    case PSL_EUNAVAIL: return "service unavailable";
    case PSL_EDEPTH: return "invocations nested too deep";
    default: return "unknown error";
    }
}

/* Read the value of key into out. Returns the value's length (out holds all of it), or a negative
 * error: PSL_ENOTFOUND when the key is absent (out is then empty). A value that grows between the
 * two host calls is read again, so out is never truncated. */
inline int get(std::string_view key, std::string &out) {
    out.resize(out.capacity() > 256 ? out.capacity() : 256);
    for (;;) {
        int n = __psl_get(key.data(), key.size(), out.data(), out.size());
        if (n < 0) {
            out.clear();
            return n;
        }
        if (static_cast<size_t>(n) <= out.size()) {
            out.resize(static_cast<size_t>(n));
            return n;
        }
        out.resize(static_cast<size_t>(n));
    }
}

/* The value of key, or std::nullopt when it is absent or the read failed (*err says which, if
 * given: PSL_ENOTFOUND or another PSL_E* code). */
inline std::optional<std::string> get(std::string_view key, int *err = nullptr) {
    std::string v;
    int n = get(key, v);
    if (err)
        *err = n < 0 ? n : PSL_OK;
    if (n < 0)
        return std::nullopt;
    return v;
}

/* 0 or a negative error. */
inline int put(std::string_view key, std::string_view val) {
    return __psl_put(key.data(), key.size(), val.data(), val.size());
}

/* Delete key (a tombstone; deleting an absent key is 0). 0 or a negative error. `delete` is a C++
 * keyword, hence the name. */
inline int erase(std::string_view key) {
    return __psl_delete(key.data(), key.size());
}

inline int lock(std::string_view name) {
    return __psl_lock(name.data(), name.size());
}

inline int unlock(std::string_view name) {
    return __psl_unlock(name.data(), name.size());
}

/* Send this invocation's writes so far on their way to the other workers now, without waiting
 * (psl_publish in sdk/c/psl.h). 0 or a negative PSL_E* code. */
inline int publish() {
    return __psl_publish();
}

/* Holds the named lock for its scope (release-consistent: after acquisition every write made by
 * earlier holders before their release is visible). Check ok() before touching guarded state: an
 * acquisition can fail (PSL_EUNAVAIL when the worker has no lock service, PSL_ELOCK). */
class lock_guard {
  public:
    explicit lock_guard(std::string_view name) : name_(name), status_(lock(name_)) {}
    ~lock_guard() {
        release();
    }
    lock_guard(const lock_guard &) = delete;
    lock_guard &operator=(const lock_guard &) = delete;

    bool ok() const {
        return status_ == PSL_OK && held_;
    }
    explicit operator bool() const {
        return ok();
    }
    int status() const {
        return status_;
    }
    /* Release early; returns unlock's result (0 when not held). */
    int release() {
        if (!held_ || status_ != PSL_OK)
            return 0;
        held_ = false;
        return unlock(name_);
    }

  private:
    std::string name_;
    int status_;
    bool held_ = true;
};

/* Call function fn synchronously with in as its request. On 0, out holds its response. The
 * response is received into a buffer of cap bytes: a longer one is cut to cap bytes and
 * PSL_ETOOBIG is returned (the callee did run; it is never called twice). */
inline int invoke(std::string_view fn, std::string_view in, std::string &out,
                  size_t cap = 64 * 1024) {
    out.resize(cap);
    int n = __psl_invoke(fn.data(), fn.size(), in.data(), in.size(), out.data(), cap);
    if (n < 0) {
        out.clear();
        return n;
    }
    if (static_cast<size_t>(n) > cap)
        return PSL_ETOOBIG;
    out.resize(static_cast<size_t>(n));
    return PSL_OK;
}

inline std::optional<std::string> invoke(std::string_view fn, std::string_view in,
                                         int *err = nullptr) {
    std::string out;
    int rc = invoke(fn, in, out);
    if (err)
        *err = rc;
    if (rc != PSL_OK)
        return std::nullopt;
    return out;
}

/* Queue a call and do not wait for it. 0 or a negative error. */
inline int invoke_async(std::string_view fn, std::string_view in) {
    return __psl_invoke_async(fn.data(), fn.size(), in.data(), in.size());
}

/* One line to the function's log. */
inline void log(std::string_view msg) {
    __psl_log(msg.data(), msg.size());
}

/* The whole request body (stdin). */
inline std::string request() {
    std::string in;
    char buf[4096];
    for (;;) {
        ssize_t n = ::read(0, buf, sizeof buf);
        if (n <= 0)
            break;
        in.append(buf, static_cast<size_t>(n));
    }
    return in;
}

/* Append to the response body (stdout). Returns false when the write failed (for example the
 * response limit was reached). */
inline bool respond(std::string_view s) {
    return std::fwrite(s.data(), 1, s.size(), stdout) == s.size();
}

} // namespace psl

#endif
