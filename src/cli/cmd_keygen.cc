// egg keygen: makes an Ed25519 key pair in OpenSSH's formats.
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <memory>

#include "cli/cli.h"
#include "common/atomic_file.h"
#include "egg/crypto.h"

namespace egg::cli {
namespace {

struct KeygenArgs {
  std::string out;
  std::string comment;
  bool force = false;
};

// $XDG_CONFIG_HOME/egg/id_ed25519 (or ~/.config/egg/id_ed25519), creating
// the folder 0700.
Result<std::string> DefaultKeyPath() {
  std::string base;
  const char* xdg = std::getenv("XDG_CONFIG_HOME");
  const char* home = std::getenv("HOME");
  if (xdg != nullptr && xdg[0] == '/') {
    base = xdg;
  } else if (home != nullptr && home[0] == '/') {
    base = std::string(home) + "/.config";
  } else {
    return Fail(Code::kInvalidArgument,
                "no HOME or XDG_CONFIG_HOME; give the key path with -o");
  }
  for (const std::string& dir : {base, base + "/egg"}) {
    if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
      return Fail(Code::kIo, "cannot create '" + dir + "'");
    }
  }
  return base + "/egg/id_ed25519";
}

std::string DefaultComment() {
  const char* user = std::getenv("USER");
  char host[256] = {0};
  if (::gethostname(host, sizeof host - 1) != 0) host[0] = '\0';
  std::string c = user ? user : "egg";
  if (host[0] != '\0') c += std::string("@") + host;
  return c;
}

int RunKeygen(const KeygenArgs& args) {
  std::string path = args.out;
  if (path.empty()) {
    auto p = DefaultKeyPath();
    if (!p) return Report(p.error());
    path = *p;
  }
  // Both files are checked first: a .pub that cannot be written must not
  // leave a private key without it.
  for (const std::string& target : {path, path + ".pub"}) {
    if (auto s = CheckWritableTarget(target); !s) return Report(s.error());
  }
  std::string comment = args.comment.empty() ? DefaultComment()
                                             : args.comment;
  auto key = crypto::SecretKey::Generate();
  if (!key) return Report(key.error());
  if (auto s = crypto::WriteKeyPair(path, *key, comment, args.force); !s) {
    return Report(s.error());
  }
  std::string fp = crypto::Fingerprint(key->public_key());
  std::fprintf(stderr, "egg: wrote '%s' and '%s.pub'\n", path.c_str(),
               path.c_str());
  std::fprintf(stderr,
               "egg: to trust it, add a line to an allowed_signers file:\n"
               "  %s %s\n",
               comment.c_str(),
               crypto::PublicKeyLine(key->public_key(), "").c_str());
  std::printf("%s %s (ED25519)\n", fp.c_str(), comment.c_str());
  return kExitOk;
}

Registration reg(20, "keygen", [](CLI::App& app) {
  auto args = std::make_shared<KeygenArgs>();
  CLI::App* sub = app.add_subcommand(
      "keygen", "Make an Ed25519 signing key (OpenSSH format)");
  sub->add_option("-o,--output", args->out,
                  "Private key path (default "
                  "$XDG_CONFIG_HOME/egg/id_ed25519); PATH.pub is written "
                  "too");
  sub->add_option("--comment", args->comment, "Key comment");
  sub->add_flag("--force", args->force, "Replace existing key files");
  return std::pair<CLI::App*, Runner>(sub, [args] {
    return RunKeygen(*args);
  });
});

}  // namespace
}  // namespace egg::cli
