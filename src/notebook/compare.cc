// The reproducibility report: fresh outputs against stored ones, after
// normalisations in the spirit of nbval (addresses, timings, trailing
// whitespace, ANSI colour), images by decoded pixels or by hash.
#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "common/text.h"
#include "egg/hash.h"
#include "egg/notebook.h"

namespace egg {
namespace {

using nlohmann::json;

constexpr size_t kDiffLines = 4;

// Field access that never throws on hostile or unnormalised JSON.
std::string Str(const json& object, const char* key,
                const char* fallback = "") {
  if (!object.is_object()) return fallback;
  auto it = object.find(key);
  if (it == object.end() || !it->is_string()) return fallback;
  return it->get<std::string>();
}

const json& Data(const json& output) {
  static const json kEmpty = json::object();
  if (!output.is_object()) return kEmpty;
  auto it = output.find("data");
  if (it == output.end() || !it->is_object()) return kEmpty;
  return *it;
}
constexpr size_t kDiffLineWidth = 100;

std::string StripAnsi(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '\x1b') {
      out += text[i];
      continue;
    }
    if (i + 1 < text.size() && text[i + 1] == '[') {
      // CSI: parameters and intermediates, then one final byte.
      size_t j = i + 2;
      while (j < text.size() &&
             !(static_cast<unsigned char>(text[j]) >= 0x40 &&
               static_cast<unsigned char>(text[j]) <= 0x7E)) {
        ++j;
      }
      i = j;
    } else if (i + 1 < text.size() && text[i + 1] == ']') {
      // OSC: up to BEL or ESC backslash.
      size_t j = i + 2;
      while (j < text.size() && text[j] != '\a' && text[j] != '\x1b') ++j;
      if (j < text.size() && text[j] == '\x1b') ++j;
      i = j;
    } else {
      ++i;
    }
  }
  return out;
}

bool IsHex(char c) { return std::isxdigit(static_cast<unsigned char>(c)); }
bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsWordChar(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '_';
}

std::string MaskAddresses(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size();) {
    bool boundary = i == 0 || !IsWordChar(text[i - 1]);
    if (boundary && i + 2 < text.size() && text[i] == '0' &&
        (text[i + 1] == 'x' || text[i + 1] == 'X')) {
      size_t j = i + 2;
      while (j < text.size() && IsHex(text[j])) ++j;
      if (j - (i + 2) >= 6) {
        out += "0xADDR";
        i = j;
        continue;
      }
    }
    out += text[i++];
  }
  return out;
}

// Length of a time unit at text[i] ("ns", "µs", "ms", "s", "sec", ...)
// followed by a word boundary, or 0.
size_t TimeUnitLength(std::string_view text, size_t i) {
  static const char* kUnits[] = {"seconds",   "second", "secs", "sec", "ns",
                                 "\xc2\xb5s", "us",     "ms",   "min", "s"};
  for (const char* unit : kUnits) {
    std::string_view u(unit);
    if (text.substr(i, u.size()) == u) {
      size_t end = i + u.size();
      if (end == text.size() || !IsWordChar(text[end])) return u.size();
    }
  }
  return 0;
}

std::string MaskTimings(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size();) {
    bool boundary = i == 0 || !IsWordChar(text[i - 1]);
    if (boundary && IsDigit(text[i])) {
      size_t j = i;
      while (j < text.size() && IsDigit(text[j])) ++j;
      if (j + 1 < text.size() && text[j] == '.' && IsDigit(text[j + 1])) {
        ++j;
        while (j < text.size() && IsDigit(text[j])) ++j;
      }
      size_t k = j;
      if (k < text.size() && text[k] == ' ') ++k;
      size_t unit = TimeUnitLength(text, k);
      if (unit > 0) {
        out += "TIME";
        i = k + unit;
        continue;
      }
      out.append(text.substr(i, j - i));
      i = j;
      continue;
    }
    out += text[i++];
  }
  return out;
}

// Extent of a decimal number at text[i] ("-1.5e-3"), 0 if none; sets
// *is_float when it has a fraction or an exponent.
size_t NumberLength(std::string_view text, size_t i, bool* is_float) {
  if (i > 0 && (IsWordChar(text[i - 1]) || text[i - 1] == '.')) return 0;
  size_t j = i;
  if (j < text.size() && text[j] == '-') ++j;
  size_t digits = j;
  while (j < text.size() && IsDigit(text[j])) ++j;
  if (j == digits) return 0;
  *is_float = false;
  if (j + 1 < text.size() && text[j] == '.' && IsDigit(text[j + 1])) {
    *is_float = true;
    ++j;
    while (j < text.size() && IsDigit(text[j])) ++j;
  }
  if (j < text.size() && (text[j] == 'e' || text[j] == 'E')) {
    size_t k = j + 1;
    if (k < text.size() && (text[k] == '+' || text[k] == '-')) ++k;
    if (k < text.size() && IsDigit(text[k])) {
      *is_float = true;
      j = k;
      while (j < text.size() && IsDigit(text[j])) ++j;
    }
  }
  return j - i;
}

// Equal text, or equal but for decimal numbers within `tolerance`.
bool TextsMatch(std::string_view a, std::string_view b, double tolerance) {
  if (a == b) return true;
  if (tolerance <= 0) return false;
  size_t i = 0, j = 0;
  while (i < a.size() && j < b.size()) {
    bool fa = false, fb = false;
    size_t na = NumberLength(a, i, &fa);
    size_t nb = NumberLength(b, j, &fb);
    if (na > 0 && nb > 0) {
      std::string sa(a.substr(i, na)), sb(b.substr(j, nb));
      if (sa != sb) {
        if (!fa && !fb) return false;
        double x = std::strtod(sa.c_str(), nullptr);
        double y = std::strtod(sb.c_str(), nullptr);
        double scale = std::max(std::fabs(x), std::fabs(y));
        if (std::fabs(x - y) > tolerance * scale) return false;
      }
      i += na;
      j += nb;
      continue;
    }
    if (a[i] != b[j]) return false;
    ++i;
    ++j;
  }
  return i == a.size() && j == b.size();
}

std::string TrimTrailingWhitespace(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  size_t start = 0;
  while (start <= text.size()) {
    size_t end = text.find('\n', start);
    bool last = end == std::string_view::npos;
    std::string_view line =
        text.substr(start, last ? std::string_view::npos : end - start);
    size_t keep = line.size();
    while (keep > 0 && (line[keep - 1] == ' ' || line[keep - 1] == '\t' ||
                        line[keep - 1] == '\r')) {
      --keep;
    }
    out.append(line.substr(0, keep));
    if (last) break;
    out += '\n';
    start = end + 1;
  }
  while (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

std::vector<std::string_view> SplitLines(std::string_view text) {
  std::vector<std::string_view> lines;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    lines.push_back(text.substr(start, end - start));
    start = end + 1;
  }
  return lines;
}

std::string ClipLine(std::string_view line) {
  if (line.size() <= kDiffLineWidth) return EscapeForTerminal(line);
  // Cut on a UTF-8 boundary so the cut does not show as escapes.
  size_t cut = kDiffLineWidth;
  while (cut > 0 && (static_cast<uint8_t>(line[cut]) & 0xC0) == 0x80) --cut;
  return EscapeForTerminal(line.substr(0, cut)) + "...";
}

// A short line diff: the common head and tail are dropped and at most
// kDiffLines lines of each side shown.
std::string TextDiff(std::string_view stored, std::string_view fresh) {
  auto a = SplitLines(stored);
  auto b = SplitLines(fresh);
  size_t head = 0;
  while (head < a.size() && head < b.size() && a[head] == b[head]) ++head;
  size_t tail = 0;
  while (tail + head < a.size() && tail + head < b.size() &&
         a[a.size() - 1 - tail] == b[b.size() - 1 - tail]) {
    ++tail;
  }
  std::string out;
  auto side = [&](const std::vector<std::string_view>& lines, char mark) {
    size_t end = lines.size() - tail;
    for (size_t i = head; i < end && i < head + kDiffLines; ++i) {
      out += "  ";
      out += mark;
      out += ' ';
      out += ClipLine(lines[i]);
      out += '\n';
    }
    if (end - head > kDiffLines) {
      out += "  ";
      out += mark;
      out +=
          " ... " + std::to_string(end - head - kDiffLines) + " more lines\n";
    }
  };
  out += "  @ line " + std::to_string(head + 1) + "\n";
  side(a, '-');
  side(b, '+');
  return out;
}

// One thing to compare: a joined stream, an error, or a mime bundle.
struct Item {
  std::string kind;  // "stdout", "stderr", "error", "data"
  std::string text;  // stream text
  json output;       // error or data output
};

std::vector<Item> Items(const json& outputs, const CompareOptions& options) {
  std::vector<Item> items;
  if (!outputs.is_array()) return items;
  for (const auto& output : outputs) {
    if (!output.is_object()) continue;
    std::string type = Str(output, "output_type");
    if (type == "stream") {
      std::string name = Str(output, "name", "stdout");
      if (name != "stderr") name = "stdout";
      if (name == "stderr" && !options.compare_stderr) continue;
      std::string text = Str(output, "text");
      if (!items.empty() && items.back().kind == name) {
        items.back().text += text;
      } else {
        items.push_back({name, text, json()});
      }
    } else if (type == "error") {
      items.push_back({"error", "", output});
    } else if (type == "display_data" || type == "execute_result") {
      items.push_back({"data", "", output});
    }
  }
  // Streams that only held whitespace vanish, as they do on screen.
  std::erase_if(items, [&](const Item& item) {
    return (item.kind == "stdout" || item.kind == "stderr") &&
           NormalizeText(item.text, options).empty();
  });
  return items;
}

std::string StringOf(const json& value) {
  if (value.is_string()) return value.get<std::string>();
  return value.dump(1);
}

OutputComparison CompareImages(const std::string& mime, const json& a,
                               const json& b, const CompareOptions& options) {
  if (options.images == ImageCompare::kIgnore) return {true, ""};
  auto bytes_a = DecodeBase64(StringOf(a));
  auto bytes_b = DecodeBase64(StringOf(b));
  if (!bytes_a || !bytes_b) {
    return {false, "  " + mime + ": not valid base64\n"};
  }
  if (*bytes_a == *bytes_b) return {true, ""};
  if (options.images == ImageCompare::kHash || mime != "image/png") {
    return {false, "  " + mime + ": bytes differ (sha256 " +
                       DigestHex(Sha256Of(*bytes_a)).substr(0, 12) + " vs " +
                       DigestHex(Sha256Of(*bytes_b)).substr(0, 12) + ")\n"};
  }
  auto img_a = DecodePng(*bytes_a);
  auto img_b = DecodePng(*bytes_b);
  if (!img_a || !img_b) {
    return {false, "  " + mime + ": cannot decode: " +
                       (img_a ? img_b.error() : img_a.error()).message() +
                       "\n"};
  }
  if (img_a->width != img_b->width || img_a->height != img_b->height) {
    return {false, "  " + mime + ": size " + std::to_string(img_a->width) +
                       "x" + std::to_string(img_a->height) + " vs " +
                       std::to_string(img_b->width) + "x" +
                       std::to_string(img_b->height) + "\n"};
  }
  uint64_t pixels = uint64_t{img_a->width} * img_a->height;
  uint64_t differing = 0;
  for (uint64_t p = 0; p < pixels; ++p) {
    for (int c = 0; c < 4; ++c) {
      int d =
          std::abs(int{img_a->rgba[p * 4 + c]} - int{img_b->rgba[p * 4 + c]});
      if (d > options.pixel_tolerance) {
        ++differing;
        break;
      }
    }
  }
  double fraction =
      static_cast<double>(differing) / static_cast<double>(pixels);
  if (fraction <= options.max_differing_pixels) return {true, ""};
  char buf[96];
  std::snprintf(buf, sizeof buf, "%.2f%% of pixels differ", 100 * fraction);
  return {false, "  " + mime + ": " + buf + "\n"};
}

bool IsImageMime(const std::string& mime) {
  return mime == "image/png" || mime == "image/jpeg" || mime == "image/gif";
}

OutputComparison CompareData(const json& a, const json& b,
                             const CompareOptions& options) {
  const json& da = Data(a);
  const json& db = Data(b);
  std::vector<std::string> common;
  std::string only_a, only_b;
  for (const auto& [mime, value] : da.items()) {
    if (std::find(options.ignore_mime_types.begin(),
                  options.ignore_mime_types.end(),
                  mime) != options.ignore_mime_types.end()) {
      continue;
    }
    if (db.contains(mime)) {
      common.push_back(mime);
    } else {
      only_a += " " + mime;
    }
  }
  for (const auto& [mime, value] : db.items()) {
    if (!da.contains(mime)) only_b += " " + mime;
  }
  if (common.empty()) {
    return {false,
            "  no MIME type in common (stored:" + EscapeForTerminal(only_a) +
                "; fresh:" + EscapeForTerminal(only_b) + ")\n"};
  }
  OutputComparison result{true, ""};
  for (const auto& mime : common) {
    OutputComparison one;
    if (IsImageMime(mime)) {
      one = CompareImages(mime, da[mime], db[mime], options);
    } else {
      std::string ta = NormalizeText(StringOf(da[mime]), options);
      std::string tb = NormalizeText(StringOf(db[mime]), options);
      bool same = TextsMatch(ta, tb, options.float_relative_tolerance);
      one = {same, same ? "" : "  " + mime + ":\n" + TextDiff(ta, tb)};
    }
    if (!one.equal) {
      result.equal = false;
      result.diff += one.diff;
    }
  }
  return result;
}

OutputComparison CompareError(const json& a, const json& b,
                              const CompareOptions& options) {
  std::string ea = Str(a, "ename"), eb = Str(b, "ename");
  std::string va = NormalizeText(Str(a, "evalue"), options);
  std::string vb = NormalizeText(Str(b, "evalue"), options);
  if (ea != eb || va != vb) {
    return {false, "  - " + ClipLine(ea + ": " + va) + "\n  + " +
                       ClipLine(eb + ": " + vb) + "\n"};
  }
  if (options.compare_tracebacks) {
    auto joined = [&](const json& o) {
      std::string s;
      auto tb = o.find("traceback");
      if (tb == o.end() || !tb->is_array()) return std::string();
      for (const auto& line : *tb) {
        if (line.is_string()) s += line.get<std::string>() + "\n";
      }
      return NormalizeText(s, options);
    };
    std::string ta = joined(a), tb = joined(b);
    if (ta != tb) return {false, "  traceback:\n" + TextDiff(ta, tb)};
  }
  return {true, ""};
}

std::string Describe(const Item& item) {
  if (item.kind == "stdout" || item.kind == "stderr") return item.kind;
  if (item.kind == "error") {
    return "error " + EscapeForTerminal(Str(item.output, "ename"));
  }
  std::string mimes;
  for (const auto& [mime, v] : Data(item.output).items()) {
    mimes += (mimes.empty() ? "" : ",") + mime;
  }
  return Str(item.output, "output_type", "data") + " (" +
         EscapeForTerminal(mimes) + ")";
}

}  // namespace

std::string NormalizeText(std::string_view text,
                          const CompareOptions& options) {
  std::string out(text);
  if (options.strip_ansi) out = StripAnsi(out);
  if (options.ignore_addresses) out = MaskAddresses(out);
  if (options.ignore_timings) out = MaskTimings(out);
  if (options.ignore_trailing_whitespace) out = TrimTrailingWhitespace(out);
  return out;
}

OutputComparison CompareOutputs(const json& stored, const json& fresh,
                                const CompareOptions& options) {
  auto a = Items(stored, options);
  auto b = Items(fresh, options);
  OutputComparison result{true, ""};
  size_t n = std::max(a.size(), b.size());
  for (size_t i = 0; i < n; ++i) {
    std::string label = "output " + std::to_string(i + 1);
    if (i >= a.size()) {
      result.equal = false;
      result.diff += label + ": only in fresh: " + Describe(b[i]) + "\n";
      if (b[i].kind == "stdout" || b[i].kind == "stderr") {
        result.diff += TextDiff("", NormalizeText(b[i].text, options));
      }
      continue;
    }
    if (i >= b.size()) {
      result.equal = false;
      result.diff += label + ": only in stored: " + Describe(a[i]) + "\n";
      continue;
    }
    if (a[i].kind != b[i].kind) {
      result.equal = false;
      result.diff += label + ": stored " + Describe(a[i]) + ", fresh " +
                     Describe(b[i]) + "\n";
      continue;
    }
    OutputComparison one;
    if (a[i].kind == "error") {
      one = CompareError(a[i].output, b[i].output, options);
    } else if (a[i].kind == "data") {
      one = CompareData(a[i].output, b[i].output, options);
    } else {
      std::string ta = NormalizeText(a[i].text, options);
      std::string tb = NormalizeText(b[i].text, options);
      bool same = TextsMatch(ta, tb, options.float_relative_tolerance);
      one = {same, same ? "" : TextDiff(ta, tb)};
    }
    if (!one.equal) {
      result.equal = false;
      result.diff += label + ": " + Describe(a[i]) + " differs\n" + one.diff;
    }
  }
  return result;
}

const char* CellVerdictName(CellVerdict verdict) {
  switch (verdict) {
    case CellVerdict::kReproduced:
      return "reproduced";
    case CellVerdict::kDiffers:
      return "differs";
    case CellVerdict::kFailed:
      return "failed";
    case CellVerdict::kNotRun:
      return "not_run";
    case CellVerdict::kNoStored:
      return "no_stored_output";
    case CellVerdict::kNotCode:
      return "not_code";
  }
  return "differs";
}

std::string CellVerdictText(const CellReport& report) {
  std::string text = CellVerdictName(report.verdict);
  if (report.verdict != CellVerdict::kReproduced || report.normalised.empty()) {
    return text;
  }
  text += " (after normalising: ";
  for (size_t i = 0; i < report.normalised.size(); ++i) {
    text += (i == 0 ? "" : ", ") + report.normalised[i];
  }
  return text + ")";
}

CompareOptions StrictCompareOptions() {
  CompareOptions options;
  options.ignore_addresses = false;
  options.ignore_timings = false;
  options.float_relative_tolerance = 0;
  return options;
}

namespace {

// Which of the options' normalisations a match depended on: each is
// turned off in turn, and the outputs compared again.
std::vector<std::string> NormalisationsNeeded(const json& stored,
                                              const json& fresh,
                                              const CompareOptions& options) {
  std::vector<std::string> needed;
  auto needs = [&](const char* name, auto turn_off) {
    CompareOptions without = options;
    turn_off(without);
    if (!CompareOutputs(stored, fresh, without).equal) needed.push_back(name);
  };
  if (options.ignore_addresses) {
    needs("addresses", [](CompareOptions& o) { o.ignore_addresses = false; });
  }
  if (options.ignore_timings) {
    needs("timings", [](CompareOptions& o) { o.ignore_timings = false; });
  }
  if (options.float_relative_tolerance > 0) {
    needs("floats", [](CompareOptions& o) { o.float_relative_tolerance = 0; });
  }
  return needed;
}

}  // namespace

const CellReport* ReproReport::Find(std::string_view id) const {
  for (const auto& cell : cells) {
    if (cell.id == id) return &cell;
  }
  return nullptr;
}

ReproReport CompareNotebook(const Notebook& notebook, const NotebookRun& run,
                            const CompareOptions& options) {
  ReproReport report;
  for (size_t i = 0; i < notebook.cells.size(); ++i) {
    const NotebookCell& cell = notebook.cells[i];
    CellReport r;
    r.index = i;
    r.id = cell.id;
    if (cell.type != CellType::kCode) {
      r.verdict = CellVerdict::kNotCode;
      report.cells.push_back(std::move(r));
      continue;
    }
    ++report.code_cells;
    const CellRun* fresh = run.Find(cell.id);
    if (fresh == nullptr || !fresh->ran) {
      r.verdict = CellVerdict::kNotRun;
    } else if (fresh->failed) {
      r.verdict = CellVerdict::kFailed;
      r.diff = "  " + EscapeForTerminal(fresh->failure) + "\n";
    } else if (!cell.execution_count &&
               (!cell.outputs.is_array() || cell.outputs.empty())) {
      // Never run where the egg was made (no execution count, no output):
      // an empty fresh run reproduces nothing.
      r.verdict = CellVerdict::kNoStored;
    } else {
      auto cmp = CompareOutputs(cell.outputs, fresh->outputs, options);
      if (cmp.equal) {
        r.verdict = CellVerdict::kReproduced;
        ++report.reproduced;
        r.normalised =
            NormalisationsNeeded(cell.outputs, fresh->outputs, options);
        if (!r.normalised.empty()) ++report.reproduced_after_normalising;
      } else if (Items(cell.outputs, options).empty()) {
        r.verdict = CellVerdict::kNoStored;
        r.diff = cmp.diff;
      } else {
        r.verdict = CellVerdict::kDiffers;
        r.diff = cmp.diff;
      }
    }
    report.cells.push_back(std::move(r));
  }
  return report;
}

std::string FormatReport(const ReproReport& report) {
  size_t stored = 0;
  for (const auto& cell : report.cells) {
    if (cell.verdict != CellVerdict::kNotCode &&
        cell.verdict != CellVerdict::kNoStored) {
      ++stored;
    }
  }
  if (stored == 0) {
    return "no stored outputs to compare with (egg build --precompute "
           "stores them)\n";
  }
  std::string out;
  std::vector<std::string> kinds;  // every normalisation any cell needed
  for (const auto& cell : report.cells) {
    for (const std::string& k : cell.normalised) {
      if (std::find(kinds.begin(), kinds.end(), k) == kinds.end()) {
        kinds.push_back(k);
      }
    }
    if (cell.verdict == CellVerdict::kNotCode ||
        (cell.verdict == CellVerdict::kReproduced && cell.normalised.empty())) {
      continue;
    }
    // A cell with nothing stored has nothing to differ from: its fresh
    // output is in the results, not repeated here.
    out += "cell " + std::to_string(cell.index + 1) + " (id " +
           EscapeForTerminal(cell.id) + "): " + CellVerdictText(cell) + "\n" +
           (cell.verdict == CellVerdict::kNoStored ? "" : cell.diff);
  }
  out += "reproduced " + std::to_string(report.reproduced) + " of " +
         std::to_string(report.code_cells) + " code cells";
  if (report.reproduced_after_normalising > 0) {
    out += " (" + std::to_string(report.reproduced_after_normalising) +
           " after normalising: ";
    for (size_t i = 0; i < kinds.size(); ++i) {
      out += (i == 0 ? "" : ", ") + kinds[i];
    }
    out += "; --strict compares without)";
  }
  return out + "\n";
}

json ReportToJson(const ReproReport& report) {
  json cells = json::array();
  for (const auto& cell : report.cells) {
    if (cell.verdict == CellVerdict::kNotCode) continue;
    json c = {{"index", cell.index},
              {"id", cell.id},
              {"verdict", CellVerdictName(cell.verdict)}};
    if (!cell.diff.empty()) c["diff"] = cell.diff;
    if (!cell.normalised.empty()) {
      c["normalised"] = cell.normalised;
      c["verdict_text"] = CellVerdictText(cell);
    }
    cells.push_back(std::move(c));
  }
  return {{"code_cells", report.code_cells},
          {"reproduced", report.reproduced},
          {"reproduced_after_normalising", report.reproduced_after_normalising},
          {"cells", std::move(cells)}};
}

}  // namespace egg
