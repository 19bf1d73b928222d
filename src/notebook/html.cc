// HTML pieces: escaping, markdown through cmark-gfm in safe mode, and a
// small keyword highlighter for Python, R and shell.
#include <cmark-gfm-core-extensions.h>
#include <cmark-gfm.h>

#include <cctype>
#include <cstdlib>
#include <mutex>
#include <set>

#include "egg/notebook.h"

namespace egg {
namespace {

const std::set<std::string_view>& Keywords(std::string_view language) {
  static const std::set<std::string_view> kPython = {
      "False",  "None",     "True",  "and",    "as",       "assert",
      "async",  "await",    "break", "class",  "continue", "def",
      "del",    "elif",     "else",  "except", "finally",  "for",
      "from",   "global",   "if",    "import", "in",       "is",
      "lambda", "nonlocal", "not",   "or",     "pass",     "raise",
      "return", "try",      "while", "with",   "yield",    "print"};
  static const std::set<std::string_view> kR = {
      "if",  "else", "repeat", "while",   "function", "for",
      "in",  "next", "break",  "TRUE",    "FALSE",    "NULL",
      "Inf", "NaN",  "NA",     "library", "return",   "require"};
  static const std::set<std::string_view> kShell = {
      "if",     "then",  "else",   "elif",  "fi",     "case", "esac",
      "for",    "while", "until",  "do",    "done",   "in",   "function",
      "echo",   "cd",    "export", "local", "return", "exit", "set",
      "source", "mkdir", "cat",    "rm",    "ls"};
  static const std::set<std::string_view> kNone;
  if (language == "python" || language == "python3") return kPython;
  if (language == "r") return kR;
  if (language == "bash" || language == "sh" || language == "shell") {
    return kShell;
  }
  return kNone;
}

bool IsIdentStart(char c) {
  return std::isalpha(static_cast<unsigned char>(c)) || c == '_' ||
         static_cast<unsigned char>(c) >= 0x80;
}
bool IsIdent(char c) {
  return IsIdentStart(c) || std::isdigit(static_cast<unsigned char>(c)) ||
         c == '.';
}

void Span(std::string& out, const char* cls, std::string_view text) {
  out += "<span class=\"";
  out += cls;
  out += "\">";
  out += EscapeHtml(text);
  out += "</span>";
}

// The end of a string literal starting at code[i] (a quote), or
// code.size() if it is not closed.
size_t StringEnd(std::string_view code, size_t i, bool python) {
  char quote = code[i];
  if (python && code.substr(i, 3) == std::string(3, quote)) {
    size_t end = code.find(std::string(3, quote), i + 3);
    return end == std::string_view::npos ? code.size() : end + 3;
  }
  for (size_t j = i + 1; j < code.size(); ++j) {
    if (code[j] == '\\') {
      ++j;
    } else if (code[j] == quote) {
      return j + 1;
    } else if (code[j] == '\n' && python) {
      return j;
    }
  }
  return code.size();
}

}  // namespace

std::string EscapeHtml(std::string_view text) {
  std::string out;
  out.reserve(text.size() + text.size() / 8);
  for (char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      case '\0':
        out += "&#xFFFD;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string RenderMarkdown(std::string_view markdown) {
  static std::once_flag once;
  std::call_once(once, [] { cmark_gfm_core_extensions_ensure_registered(); });

  // CMARK_OPT_DEFAULT leaves CMARK_OPT_UNSAFE off: raw HTML becomes a
  // comment and javascript:/vbscript:/file:/data: (bar images) links are
  // dropped.
  const int options = CMARK_OPT_DEFAULT;
  cmark_parser* parser = cmark_parser_new(options);
  for (const char* name : {"table", "strikethrough", "autolink", "tasklist"}) {
    cmark_syntax_extension* ext = cmark_find_syntax_extension(name);
    if (ext != nullptr) cmark_parser_attach_syntax_extension(parser, ext);
  }
  cmark_parser_feed(parser, markdown.data(), markdown.size());
  cmark_node* doc = cmark_parser_finish(parser);
  char* html = cmark_render_html(doc, options,
                                 cmark_parser_get_syntax_extensions(parser));
  std::string out = html != nullptr ? html : "";
  cmark_get_default_mem_allocator()->free(html);
  cmark_node_free(doc);
  cmark_parser_free(parser);
  return out;
}

std::string HighlightCode(std::string_view code, std::string_view language) {
  const auto& keywords = Keywords(language);
  bool python = language == "python" || language == "python3";
  bool known = !keywords.empty();
  std::string out;
  out.reserve(code.size() * 2);
  size_t plain_start = 0;
  auto flush = [&](size_t end) {
    out += EscapeHtml(code.substr(plain_start, end - plain_start));
  };
  size_t i = 0;
  while (known && i < code.size()) {
    char c = code[i];
    size_t end = i;
    const char* cls = nullptr;
    if (c == '#') {
      end = code.find('\n', i);
      if (end == std::string_view::npos) end = code.size();
      cls = "c";
    } else if (c == '"' || c == '\'') {
      end = StringEnd(code, i, python);
      cls = "s";
    } else if (std::isdigit(static_cast<unsigned char>(c)) &&
               (i == 0 || !IsIdent(code[i - 1]))) {
      end = i;
      while (end < code.size() &&
             (std::isalnum(static_cast<unsigned char>(code[end])) ||
              code[end] == '.')) {
        ++end;
      }
      cls = "n";
    } else if (IsIdentStart(c) && (i == 0 || !IsIdent(code[i - 1]))) {
      end = i;
      while (end < code.size() && IsIdent(code[end]) && code[end] != '.') {
        ++end;
      }
      if (keywords.count(code.substr(i, end - i))) {
        cls = "k";
      } else {
        i = end;
        continue;
      }
    }
    if (cls == nullptr) {
      ++i;
      continue;
    }
    flush(i);
    Span(out, cls, code.substr(i, end - i));
    i = plain_start = end;
  }
  flush(code.size());
  return out;
}

}  // namespace egg
