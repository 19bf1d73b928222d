#include "common/lazy_library.h"

#include <dlfcn.h>
#include <stdio.h>

namespace egg {

void* LazyLibrary::Find(const char* symbol) {
  std::call_once(once_, [this] {
    // RTLD_LOCAL: the library's symbols do not take part in resolving
    // anyone else's, as with a library linked at start that nobody
    // else names.
    handle_ = ::dlopen(soname_, RTLD_NOW | RTLD_LOCAL);
    if (handle_ == nullptr) {
      const char* why = ::dlerror();
      ::fprintf(stderr, "egg: cannot load %s: %s\n", soname_,
                why != nullptr ? why : "unknown error");
    }
  });
  if (handle_ == nullptr) return nullptr;
  void* address = ::dlsym(handle_, symbol);
  if (address == nullptr) {
    ::fprintf(stderr, "egg: %s has no function %s\n", soname_, symbol);
  }
  return address;
}

}  // namespace egg
