// A shared library loaded on first use instead of at egg's start.
//
// egg links libraries that only one or two commands need (libcurl for the
// registry, libzmq for Jupyter kernels, libarchive for tarball runtimes).
// Loaded at start they and what they pull in (Kerberos, GnuTLS, ICU, ...)
// cost every command several milliseconds of the dynamic loader's time.
// Each such component defines the few functions it calls as small
// forwarders (EGG_LAZY_FUNCTION) that find the real function here on the
// first call. The library is found by its soname through the ordinary
// search path, as the loader would have found it at start.
#ifndef EGG_COMMON_LAZY_LIBRARY_H_
#define EGG_COMMON_LAZY_LIBRARY_H_

#include <mutex>

namespace egg {

class LazyLibrary {
 public:
  explicit constexpr LazyLibrary(const char* soname) : soname_(soname) {}
  LazyLibrary(const LazyLibrary&) = delete;
  LazyLibrary& operator=(const LazyLibrary&) = delete;

  // The address of `symbol`, loading the library on the first call (from
  // any thread). nullptr if the library or the symbol is missing; a
  // one-line message naming it goes to stderr once, and the forwarder
  // returns its function's failure value, which the caller checks.
  void* Find(const char* symbol);

 private:
  const char* soname_;
  std::once_flag once_;
  void* handle_ = nullptr;
};

}  // namespace egg

// Defines the C function NAME(PARAMS) -> RET as a forwarder to the same
// function of LIB (a LazyLibrary), returning FAILURE when it is missing.
// PARAMS and ARGS are parenthesised lists; leave FAILURE empty for void.
#define EGG_LAZY_FUNCTION(LIB, RET, NAME, PARAMS, ARGS, FAILURE)     \
  extern "C" RET NAME PARAMS {                                        \
    using Fn = RET(*) PARAMS;                                         \
    static const Fn fn = reinterpret_cast<Fn>((LIB).Find(#NAME));     \
    if (fn == nullptr) return FAILURE;                                \
    return fn ARGS;                                                   \
  }

#endif  // EGG_COMMON_LAZY_LIBRARY_H_
