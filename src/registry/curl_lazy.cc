// libcurl, loaded when the registry client first needs it (see
// common/lazy_library.h): the functions client.cc calls, as forwarders.
#define CURL_DISABLE_TYPECHECK  // curl_easy_setopt is defined here
#include <curl/curl.h>
#include <stdarg.h>

#include "common/lazy_library.h"

namespace {
egg::LazyLibrary g_curl(EGG_CURL_SONAME);
}  // namespace

EGG_LAZY_FUNCTION(g_curl, CURLcode, curl_global_init, (long flags), (flags),
                  CURLE_FAILED_INIT)
EGG_LAZY_FUNCTION(g_curl, CURL*, curl_easy_init, (void), (), nullptr)
EGG_LAZY_FUNCTION(g_curl, CURLcode, curl_easy_perform, (CURL * curl), (curl),
                  CURLE_FAILED_INIT)
EGG_LAZY_FUNCTION(g_curl, void, curl_easy_reset, (CURL * curl), (curl), )
EGG_LAZY_FUNCTION(g_curl, void, curl_easy_cleanup, (CURL * curl), (curl), )
EGG_LAZY_FUNCTION(g_curl, const char*, curl_easy_strerror, (CURLcode code),
                  (code), "libcurl could not be loaded")
EGG_LAZY_FUNCTION(g_curl, curl_slist*, curl_slist_append,
                  (curl_slist * list, const char* text), (list, text), nullptr)
EGG_LAZY_FUNCTION(g_curl, void, curl_slist_free_all, (curl_slist * list),
                  (list), )

// The variadic two take exactly one argument after the option, whose
// type the option's number range names (curl.h, CURLOPTTYPE_*); it is
// passed on as that type.
extern "C" CURLcode curl_easy_setopt(CURL* curl, CURLoption option, ...) {
  static const auto fn = reinterpret_cast<CURLcode (*)(CURL*, CURLoption, ...)>(
      g_curl.Find("curl_easy_setopt"));
  if (fn == nullptr) return CURLE_FAILED_INIT;
  va_list ap;
  va_start(ap, option);
  CURLcode rc;
  if (option < CURLOPTTYPE_OBJECTPOINT) {
    rc = fn(curl, option, va_arg(ap, long));
  } else if (option < CURLOPTTYPE_OFF_T) {
    rc = fn(curl, option, va_arg(ap, void*));  // data and function pointers
  } else if (option < CURLOPTTYPE_BLOB) {
    rc = fn(curl, option, va_arg(ap, curl_off_t));
  } else {
    rc = fn(curl, option, va_arg(ap, void*));
  }
  va_end(ap);
  return rc;
}

// Every CURLINFO_* takes a pointer to where the answer goes.
extern "C" CURLcode curl_easy_getinfo(CURL* curl, CURLINFO info, ...) {
  static const auto fn = reinterpret_cast<CURLcode (*)(CURL*, CURLINFO, ...)>(
      g_curl.Find("curl_easy_getinfo"));
  if (fn == nullptr) return CURLE_FAILED_INIT;
  va_list ap;
  va_start(ap, info);
  CURLcode rc = fn(curl, info, va_arg(ap, void*));
  va_end(ap);
  return rc;
}
