// Making text from an egg safe to show on a terminal; a nesting check
// for hostile JSON text.
#ifndef EGG_COMMON_TEXT_H_
#define EGG_COMMON_TEXT_H_

#include <string>
#include <string_view>

namespace egg {

// Escapes C0/C1 control characters, DEL and invalid UTF-8 as \xNN / \u{...}
// so that nothing from an egg can move the cursor or set a title. Newlines
// are escaped too unless keep_newlines.
std::string EscapeForTerminal(std::string_view text,
                              bool keep_newlines = false);

// True if text is valid UTF-8 with no C0/C1 control character.
bool IsPrintableUtf8(std::string_view text);

// True if the JSON text nests arrays and objects at most `max_depth`
// deep (brackets inside strings do not count). For hostile JSON, before
// a recursive parser sees it; the text need not be valid JSON.
bool JsonNestingWithin(std::string_view text, int max_depth);

}  // namespace egg

#endif  // EGG_COMMON_TEXT_H_
