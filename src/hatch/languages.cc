#include <algorithm>
#include <cctype>
#include <string>

#include "egg/hatch.h"

namespace egg {

Result<LanguageSession> SessionForLanguage(const std::string& language,
                                           const SessionSetup& setup) {
  std::string lang = language;
  std::transform(lang.begin(), lang.end(), lang.begin(),
                 [](unsigned char c) { return std::tolower(c); });
  const std::string& d = setup.drivers_dir;
  if (lang == "python" || lang == "python3" || lang == "py") {
    if (setup.rich_display) {
      return LanguageSession{false,
                             {"python3", "-u", d + "/python_session.py"},
                             "",
                             {"EGG_DISPLAY_FD=5"}};
    }
    return LanguageSession{false, {"python3", "-u", d + "/python.py"}, ""};
  }
  if (lang == "bash") {
    return LanguageSession{
        false, {"bash", "--noprofile", "--norc", d + "/bash.sh"}, ""};
  }
  if (lang == "sh" || lang == "shell") {
    return LanguageSession{false, {"sh", d + "/sh.sh"}, ""};
  }
  if (lang == "r") {
    std::vector<std::string> env;
    if (setup.rich_display) env.push_back("EGG_DISPLAY_FD=5");
    return LanguageSession{
        false, {"Rscript", "--vanilla", "--no-echo", d + "/r.R"}, "", env};
  }
  for (const auto& c : setup.commands) {
    std::string name = c.language;
    std::transform(name.begin(), name.end(), name.begin(),
                   [](unsigned char ch) { return std::tolower(ch); });
    if (name != lang) continue;
    bool has_file =
        std::any_of(c.argv.begin(), c.argv.end(), [](const std::string& a) {
          return a.find("{file}") != std::string::npos;
        });
    if (c.argv.empty() || !has_file) {
      return Fail(Code::kInvalidArgument,
                  "command for language '" + language +
                      "' must name the cell file as {file}");
    }
    return LanguageSession{true, c.argv, c.suffix};
  }
  return Fail(Code::kNotSupported,
              "no driver or command for language '" + language + "'");
}

}  // namespace egg
