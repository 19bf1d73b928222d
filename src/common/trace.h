// Step timings for finding where time goes (EGG_TRACE=1).
//
// With EGG_TRACE set to a non-empty value other than "0", TraceStep()
// prints one line per step on stderr:
//
//   egg-trace:   12.345 ms (+  1.234) sandbox: cgroups created
//
// the first number counted from the first traced step of the process, the
// second since the previous traced step. Without it TraceStep() costs one
// cached branch. Step names are fixed strings from egg's code, never text
// from an egg. Thread-safe.
#ifndef EGG_COMMON_TRACE_H_
#define EGG_COMMON_TRACE_H_

#include <string_view>

namespace egg {

// True when EGG_TRACE asks for step timings (read once).
bool TraceEnabled();

// Prints `step` with the elapsed times when tracing is on.
void TraceStep(std::string_view step);

}  // namespace egg

#endif  // EGG_COMMON_TRACE_H_
