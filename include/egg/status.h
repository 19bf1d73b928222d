// Error values used across libegg. Every fallible function returns
// egg::Result<T> (an expected value) or egg::Status; nothing in the public
// API throws.
#ifndef EGG_STATUS_H_
#define EGG_STATUS_H_

#include <string>
#include <utility>

#include <tl/expected.hpp>

namespace egg {

// A small closed set of failure kinds. Tests assert the code, not the text.
enum class Code {
  kInvalidArgument,     // malformed input: manifest, flag, key, egg
  kCorruption,          // an egg or store object is structurally damaged
  kVerificationFailed,  // a digest or signature does not match
  kPermissionDenied,    // a permission was not granted, or the OS refused
  kNotSupported,        // the host or build lacks a feature
  kNotFound,            // a named file, entry, key or object is missing
  kIo,                  // a read, write or network transfer failed
  kSandboxSetup,        // the sandbox could not be built
  kInternal,            // a bug in egg
};

const char* CodeName(Code code);

class Error {
 public:
  Error(Code code, std::string message)
      : code_(code), message_(std::move(message)) {}

  Code code() const { return code_; }
  const std::string& message() const { return message_; }

  // Returns a copy whose message is "context: message".
  Error Wrap(const std::string& context) const {
    return Error(code_, context + ": " + message_);
  }

 private:
  Code code_;
  std::string message_;
};

template <typename T>
using Result = tl::expected<T, Error>;
using Status = tl::expected<void, Error>;

inline tl::unexpected<Error> Fail(Code code, std::string message) {
  return tl::unexpected<Error>(Error(code, std::move(message)));
}
inline tl::unexpected<Error> Fail(const Error& error) {
  return tl::unexpected<Error>(error);
}

// Process exit codes of the egg command, documented in the README.
enum ExitCode : int {
  kExitOk = 0,
  kExitVerificationFailed = 1,  // digest/signature mismatch, untrusted
  kExitUsage = 2,               // usage, I/O, malformed input
  kExitSandbox = 3,             // sandbox could not be set up
  kExitCellFailed = 4,          // hatch: at least one cell failed
  kExitRefused = 5,             // hatch: the person did not grant a permission
  kExitInternal = 70,           // a bug in egg
  kExitInterrupted = 130,       // SIGINT / SIGTERM
};

// Maps an error code to the exit code the CLI uses for it.
int ExitCodeFor(Code code);

}  // namespace egg

#endif  // EGG_STATUS_H_
