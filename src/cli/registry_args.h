// Flags shared by the registry commands (push, pull): the trust config and
// credentials. Passwords are read from stdin, never from argv.
#ifndef EGG_CLI_REGISTRY_ARGS_H_
#define EGG_CLI_REGISTRY_ARGS_H_

#include <iostream>
#include <string>

#include "egg/registry.h"

namespace egg::cli {

// The trust config (explicit path, or the default one if present) and
// credentials from --username/--password-stdin.
inline Result<ClientOptions> ClientOptionsFrom(const std::string& trust_path,
                                               const std::string& username,
                                               bool password_stdin) {
  ClientOptions options;
  bool explicit_trust = !trust_path.empty();
  auto trust = LoadTrustConfig(
      explicit_trust ? trust_path : DefaultTrustConfigPath(), explicit_trust);
  if (!trust) return Fail(trust.error());
  options.trust = *trust;
  if (password_stdin && username.empty()) {
    return Fail(Code::kInvalidArgument, "--password-stdin needs --username");
  }
  if (!username.empty()) {
    if (!password_stdin) {
      return Fail(Code::kInvalidArgument,
                  "--username needs --password-stdin (passwords are never "
                  "taken from the command line)");
    }
    std::string password;
    std::getline(std::cin, password);
    if (!password.empty() && password.back() == '\r') password.pop_back();
    options.credentials = Credentials{username, password};
  }
  return options;
}

}  // namespace egg::cli

#endif  // EGG_CLI_REGISTRY_ARGS_H_
