// Export to ipynb (nbformat 4.5), one self-contained HTML page, and
// Markdown. The HTML page is built so that nothing from the egg runs:
//  - a Content-Security-Policy with no script-src (default-src 'none'),
//  - every string escaped; markdown through cmark-gfm with raw HTML off,
//  - images only as <img src="data:..."> with re-encoded base64, SVG
//    included (an SVG in <img> cannot run script),
//  - text/html outputs inside <iframe sandbox srcdoc> without
//    allow-scripts, and the CSP applies there too,
//  - outputs over a size cap cut with a marker.
#include <algorithm>

#include "common/text.h"
#include "egg/notebook.h"

namespace egg {
namespace {

using nlohmann::json;

std::string Dump(const json& value, int indent = -1) {
  return value.dump(indent, ' ', false, json::error_handler_t::replace);
}

std::string Str(const json& object, const char* key) {
  if (!object.is_object()) return "";
  auto it = object.find(key);
  if (it == object.end() || !it->is_string()) return "";
  return it->get<std::string>();
}

std::string StringOf(const json& value) {
  return value.is_string() ? value.get<std::string>() : Dump(value, 2);
}

// Cuts text to `cap` bytes on a UTF-8 boundary, with a marker.
std::string Cap(std::string text, size_t cap) {
  if (text.size() <= cap) return text;
  size_t cut = cap;
  while (cut > 0 && (static_cast<uint8_t>(text[cut]) & 0xC0) == 0x80) --cut;
  size_t dropped = text.size() - cut;
  text.resize(cut);
  text += "\n[output cut: " + std::to_string(dropped) +
          " more bytes over the size cap]\n";
  return text;
}

// ANSI escape sequences removed; the result is for HTML escaping.
std::string StripControl(std::string_view text) {
  CompareOptions options;
  options.ignore_addresses = false;
  options.ignore_timings = false;
  options.ignore_trailing_whitespace = false;
  return NormalizeText(text, options);
}

const json& OutputsFor(const NotebookCell& cell, const ExportOptions& opt) {
  if (opt.run != nullptr) {
    const CellRun* fresh = opt.run->Find(cell.id);
    if (fresh != nullptr && fresh->ran) return fresh->outputs;
  }
  return cell.outputs;
}

const CellReport* ReportFor(const NotebookCell& cell,
                            const ExportOptions& opt) {
  return opt.report != nullptr ? opt.report->Find(cell.id) : nullptr;
}

// --- ipynb -----------------------------------------------------------------

std::string ToIpynb(const Notebook& nb, const ExportOptions& opt) {
  json cells = json::array();
  for (const auto& cell : nb.cells) {
    json c = {{"cell_type", CellTypeName(cell.type)},
              {"id", cell.id},
              {"metadata", json::object()},
              {"source", cell.source}};
    if (cell.type == CellType::kCode) {
      std::optional<int64_t> count = cell.execution_count;
      if (opt.run != nullptr) {
        const CellRun* fresh = opt.run->Find(cell.id);
        if (fresh != nullptr && fresh->ran) count = fresh->execution_count;
      }
      c["execution_count"] = count ? json(*count) : json(nullptr);
      c["outputs"] = OutputsFor(cell, opt);
    } else if (!cell.attachments.empty()) {
      c["attachments"] = cell.attachments;
    }
    cells.push_back(std::move(c));
  }
  json kernelspec = {
      {"name", nb.kernel_name.empty() ? nb.language : nb.kernel_name},
      {"display_name",
       nb.kernel_display_name.empty() ? nb.language : nb.kernel_display_name},
      {"language", nb.language}};
  json doc = {{"nbformat", 4},
              {"nbformat_minor", 5},
              {"metadata",
               {{"kernelspec", kernelspec},
                {"language_info", {{"name", nb.language}}}}},
              {"cells", std::move(cells)}};
  return Dump(doc, 1) + "\n";
}

// --- HTML ------------------------------------------------------------------

constexpr const char* kStyle = R"(
body{font-family:sans-serif;max-width:60em;margin:1em auto;padding:0 1em;
color:#222}
.cell{margin:1em 0;border-left:4px solid #ddd;padding-left:.8em}
.cell.reproduced{border-left-color:#2a2}.cell.differs,.cell.failed{
border-left-color:#c33}.cell.no_stored_output,.cell.not_run{
border-left-color:#cc3}
.badge{font-size:.8em;color:#555}
pre{background:#f6f6f6;padding:.5em;overflow-x:auto;white-space:pre-wrap;
margin:.3em 0}
pre.stderr{background:#fee}pre.error{background:#fdd}
pre.diff{background:#ffe}
.k{color:#008;font-weight:bold}.s{color:#a11}.c{color:#777;
font-style:italic}.n{color:#085}
img{max-width:100%}
iframe{width:100%;height:20em;border:1px solid #ccc;resize:vertical}
.cut{color:#a50}
)";

std::string CutMarker(const std::string& what, size_t size) {
  return "<p class=\"cut\">[" + EscapeHtml(what) + " of " +
         std::to_string(size) + " bytes not shown: over the size cap]</p>\n";
}

std::string HtmlImage(const std::string& mime, const json& value, size_t cap) {
  std::string bytes;
  if (mime == "image/svg+xml") {
    bytes = StringOf(value);
  } else {
    auto decoded = DecodeBase64(StringOf(value));
    if (!decoded) return "<pre class=\"error\">[bad base64 image]</pre>\n";
    bytes = std::move(*decoded);
  }
  if (bytes.size() > cap) return CutMarker(mime, bytes.size());
  // Re-encoding guarantees the attribute holds only base64 characters.
  return "<img alt=\"" + EscapeHtml(mime) + " output\" src=\"data:" + mime +
         ";base64," + EncodeBase64(bytes) + "\">\n";
}

std::string HtmlPre(const char* cls, const std::string& text, size_t cap) {
  return std::string("<pre class=\"") + cls + "\">" +
         EscapeHtml(Cap(StripControl(text), cap)) + "</pre>\n";
}

std::string HtmlData(const json& output, size_t cap) {
  static const char* kOrder[] = {
      "image/png",     "image/jpeg",       "image/gif",
      "image/svg+xml", "text/html",        "text/markdown",
      "text/latex",    "application/json", "text/plain"};
  const json empty = json::object();
  auto it = output.find("data");
  const json& data = it != output.end() && it->is_object() ? *it : empty;
  for (const char* mime : kOrder) {
    auto d = data.find(mime);
    if (d == data.end()) continue;
    std::string m = mime;
    if (m.rfind("image/", 0) == 0) return HtmlImage(m, *d, cap);
    std::string text = StringOf(*d);
    if (m == "text/html") {
      if (text.size() > cap) return CutMarker(m, text.size());
      // No allow-scripts, no allow-same-origin: the frame is inert.
      return "<iframe sandbox=\"\" title=\"HTML output\" srcdoc=\"" +
             EscapeHtml(text) + "\"></iframe>\n";
    }
    if (m == "text/markdown") {
      return "<div class=\"md-output\">" + RenderMarkdown(Cap(text, cap)) +
             "</div>\n";
    }
    return HtmlPre("output", text, cap);
  }
  return "<pre class=\"output\">[no output type egg can show]</pre>\n";
}

std::string HtmlOutputs(const json& outputs, size_t cap) {
  std::string out;
  for (const auto& o : outputs) {
    std::string type = Str(o, "output_type");
    if (type == "stream") {
      out += HtmlPre(Str(o, "name") == "stderr" ? "stderr" : "stdout",
                     Str(o, "text"), cap);
    } else if (type == "error") {
      std::string text = Str(o, "ename") + ": " + Str(o, "evalue");
      auto tb = o.find("traceback");
      if (tb != o.end() && tb->is_array() && !tb->empty()) {
        text.clear();
        for (const auto& line : *tb) {
          if (line.is_string()) text += line.get<std::string>() + "\n";
        }
      }
      out += HtmlPre("error", text, cap);
    } else {
      out += HtmlData(o, cap);
    }
  }
  return out;
}

// Markdown with "attachment:NAME" image links turned into data: URIs.
std::string InlineAttachments(std::string source, const json& attachments) {
  for (const auto& [name, bundle] : attachments.items()) {
    for (const char* mime : {"image/png", "image/jpeg", "image/gif"}) {
      auto it = bundle.find(mime);
      if (it == bundle.end()) continue;
      auto bytes = DecodeBase64(StringOf(*it));
      if (!bytes) continue;
      std::string from = "attachment:" + name;
      std::string to =
          std::string("data:") + mime + ";base64," + EncodeBase64(*bytes);
      for (size_t pos = source.find(from); pos != std::string::npos;
           pos = source.find(from, pos + to.size())) {
        source.replace(pos, from.size(), to);
      }
      break;
    }
  }
  return source;
}

// " (N after normalising)" for a summary line, or "".
std::string AfterNormalising(const ReproReport& report) {
  if (report.reproduced_after_normalising == 0) return "";
  return " (" + std::to_string(report.reproduced_after_normalising) +
         " after normalising)";
}

// The src attribute cmark writes for an image link to `url` (escaped as
// cmark escapes it), or "" if it writes none.
std::string RenderedImageSrc(const std::string& url) {
  std::string html = RenderMarkdown("![](" + url + ")");
  size_t a = html.find("src=\"");
  if (a == std::string::npos) return "";
  a += 5;
  size_t b = html.find('"', a);
  return b == std::string::npos ? "" : html.substr(a, b - a);
}

// SVG attachments, put in after rendering: cmark drops data: links other
// than raster images, so the src of the <img> it wrote for
// "attachment:NAME" becomes a base64 data: URI. An SVG shown through <img>
// cannot run script or load anything (and the page's policy allows only
// data: images). nbformat keeps SVG as text; base64 is accepted too.
std::string InlineSvgAttachments(std::string html, const json& attachments) {
  for (const auto& [name, bundle] : attachments.items()) {
    if (!bundle.is_object()) continue;
    auto it = bundle.find("image/svg+xml");
    if (it == bundle.end()) continue;
    std::string text = StringOf(*it);
    size_t first = text.find_first_not_of(" \t\r\n");
    std::string svg;
    if (first != std::string::npos && text[first] == '<') {
      svg = text;
    } else {
      auto bytes = DecodeBase64(text);
      if (!bytes) continue;
      svg = std::move(*bytes);
    }
    std::string src = RenderedImageSrc("attachment:" + name);
    if (src.rfind("attachment:", 0) != 0) continue;
    std::string from = "src=\"" + src + "\"";
    std::string to =
        "src=\"data:image/svg+xml;base64," + EncodeBase64(svg) + "\"";
    for (size_t pos = html.find(from); pos != std::string::npos;
         pos = html.find(from, pos + to.size())) {
      html.replace(pos, from.size(), to);
    }
  }
  return html;
}

std::string ToHtml(const Notebook& nb, const ExportOptions& opt) {
  std::string out =
      "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta "
      "charset=\"utf-8\">\n"
      "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src "
      "'none'; img-src data:; style-src 'unsafe-inline'; form-action "
      "'none'; base-uri 'none'\">\n"
      "<meta name=\"referrer\" content=\"no-referrer\">\n"
      "<title>" +
      EscapeHtml(opt.title) + "</title>\n<style>" + kStyle +
      "</style>\n</head>\n<body>\n<header><h1>" + EscapeHtml(opt.title) +
      "</h1>\n";
  if (opt.report != nullptr) {
    out += "<p class=\"summary\">reproduced " +
           std::to_string(opt.report->reproduced) + " of " +
           std::to_string(opt.report->code_cells) + " code cells" +
           AfterNormalising(*opt.report) + "</p>\n";
  }
  out += "</header>\n<main>\n";
  for (size_t i = 0; i < nb.cells.size(); ++i) {
    const auto& cell = nb.cells[i];
    std::string id = EscapeHtml(cell.id);
    if (cell.type == CellType::kMarkdown) {
      out +=
          "<section class=\"cell markdown\" id=\"cell-" + id + "\">\n" +
          InlineSvgAttachments(
              RenderMarkdown(InlineAttachments(cell.source, cell.attachments)),
              cell.attachments) +
          "</section>\n";
      continue;
    }
    if (cell.type == CellType::kRaw) {
      out += "<section class=\"cell raw\" id=\"cell-" + id + "\">\n" +
             HtmlPre("raw", cell.source, opt.max_output_bytes) + "</section>\n";
      continue;
    }
    const CellReport* report = ReportFor(cell, opt);
    std::string verdict =
        report != nullptr ? CellVerdictName(report->verdict) : "stored";
    std::string verdict_text =
        report != nullptr ? CellVerdictText(*report) : verdict;
    out += "<section class=\"cell code " + verdict + "\" id=\"cell-" + id +
           "\">\n<div class=\"badge\">cell " + std::to_string(i + 1) +
           " &middot; " + EscapeHtml(cell.language) +
           " &middot; <span "
           "class=\"verdict\">" +
           EscapeHtml(verdict_text) + "</span></div>\n" +
           "<pre class=\"source\"><code>" +
           HighlightCode(cell.source, cell.language) + "</code></pre>\n" +
           HtmlOutputs(OutputsFor(cell, opt), opt.max_output_bytes);
    if (report != nullptr && !report->diff.empty()) {
      out += HtmlPre("diff", report->diff, opt.max_output_bytes);
    }
    out += "</section>\n";
  }
  out += "</main>\n</body>\n</html>\n";
  return out;
}

// --- Markdown --------------------------------------------------------------

// Text for a terminal: ANSI removed, other control characters escaped,
// newlines and tabs kept.
std::string TerminalText(std::string_view text) {
  std::string clean = StripControl(text);
  std::string out;
  size_t start = 0;
  while (true) {
    size_t tab = clean.find('\t', start);
    out += EscapeForTerminal(std::string_view(clean).substr(start, tab - start),
                             true);
    if (tab == std::string::npos) break;
    out += '\t';
    start = tab + 1;
  }
  return out;
}

std::string Fence(std::string_view text) {
  size_t longest = 0, run = 0;
  for (char c : text) {
    run = c == '`' ? run + 1 : 0;
    longest = std::max(longest, run);
  }
  return std::string(std::max<size_t>(3, longest + 1), '`');
}

std::string MdBlock(const std::string& info, std::string text) {
  if (!text.empty() && text.back() != '\n') text += '\n';
  std::string fence = Fence(text);
  return fence + info + "\n" + text + fence + "\n";
}

std::string MdOutputs(const json& outputs, size_t cap) {
  std::string out;
  for (const auto& o : outputs) {
    std::string type = Str(o, "output_type");
    if (type == "stream") {
      std::string name = Str(o, "name") == "stderr" ? "stderr" : "stdout";
      out += MdBlock("text " + name, TerminalText(Cap(Str(o, "text"), cap)));
    } else if (type == "error") {
      out += MdBlock(
          "text error",
          TerminalText(Cap(Str(o, "ename") + ": " + Str(o, "evalue"), cap)));
    } else if (type == "display_data" || type == "execute_result") {
      auto it = o.find("data");
      if (it == o.end() || !it->is_object()) continue;
      const json& data = *it;
      if (data.contains("text/plain")) {
        out += MdBlock("text",
                       TerminalText(Cap(StringOf(data["text/plain"]), cap)));
      }
      for (const auto& [mime, value] : data.items()) {
        if (mime == "text/plain") continue;
        out += "*[" + TerminalText(mime) + " output, " +
               std::to_string(StringOf(value).size()) + " bytes]*\n\n";
      }
    }
  }
  return out;
}

std::string ToMarkdown(const Notebook& nb, const ExportOptions& opt) {
  std::string out = "# " + TerminalText(opt.title) + "\n\n";
  if (opt.report != nullptr) {
    out += "reproduced " + std::to_string(opt.report->reproduced) + " of " +
           std::to_string(opt.report->code_cells) + " code cells" +
           AfterNormalising(*opt.report) + "\n\n";
  }
  for (size_t i = 0; i < nb.cells.size(); ++i) {
    const auto& cell = nb.cells[i];
    if (cell.type == CellType::kMarkdown) {
      out += TerminalText(cell.source) + "\n\n";
      continue;
    }
    if (cell.type == CellType::kRaw) {
      out += MdBlock("", TerminalText(cell.source)) + "\n";
      continue;
    }
    const CellReport* report = ReportFor(cell, opt);
    out += "<!-- cell " + std::to_string(i + 1) + " id " +
           TerminalText(cell.id) +
           (report != nullptr ? std::string(": ") + CellVerdictText(*report)
                              : std::string()) +
           " -->\n";
    out += MdBlock(TerminalText(cell.language), TerminalText(cell.source));
    out += MdOutputs(OutputsFor(cell, opt), opt.max_output_bytes);
    if (report != nullptr && !report->diff.empty()) {
      out += MdBlock("diff", TerminalText(report->diff));
    }
    out += "\n";
  }
  return out;
}

}  // namespace

Result<ExportFormat> ParseExportFormat(std::string_view name) {
  if (name == "ipynb") return ExportFormat::kIpynb;
  if (name == "html") return ExportFormat::kHtml;
  if (name == "md" || name == "markdown") return ExportFormat::kMarkdown;
  return Fail(Code::kInvalidArgument,
              "export format must be ipynb, html or md, not '" +
                  std::string(name) + "'");
}

Result<std::string> ExportNotebook(const Notebook& notebook,
                                   ExportFormat format,
                                   const ExportOptions& options) {
  switch (format) {
    case ExportFormat::kIpynb:
      return ToIpynb(notebook, options);
    case ExportFormat::kHtml:
      return ToHtml(notebook, options);
    case ExportFormat::kMarkdown:
      return ToMarkdown(notebook, options);
  }
  return Fail(Code::kInternal, "export: unknown format");
}

}  // namespace egg
