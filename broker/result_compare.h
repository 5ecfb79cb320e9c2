// Verification (issue 17): whether two workers' results for one sampled task agree, under the
// service's catalog rule `verify: {sample_rate, compare, tolerance}`.
//
//   exact    the same bytes;
//   json     the same JSON value: object key order, whitespace and number spelling do not matter
//            (1, 1.0 and 1e0 are equal); strings, booleans and null compare exactly;
//   numeric  the same JSON structure with every pair of numbers within `tolerance`, absolutely or
//            relatively: |x - y| <= tolerance * max(1, |x|, |y|). For results of floating-point
//            work that differ in the last bits between CPUs, compilers or thread counts.
// Under json and numeric a result that is not valid JSON disagrees with one that is; two invalid
// ones are compared as bytes (a service whose output is sometimes not JSON still verifies).
//
// Both results come from untrusted workers, so the work is bounded before any parsing: a result
// over `max_bytes` (json and numeric only: exact is one memcmp) or nested deeper than
// kMaxCompareDepth (found by a scan of brackets outside strings, before parsing) is refused with an
// error, which the caller counts as a disagreement. The depth bound is what keeps the stack safe:
// nlohmann 3.11 parses and destroys with stacks of its own, but comparing a value recurses once per
// level (as does ValuesAgree here), and a million-deep `[[[...` overflows the stack. Pure
// functions, any thread. The catalog's JSON is parsed in reputation_config.h, so that scheduler
// files may include this header.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "common/status.h"

namespace rma::broker {

inline constexpr size_t kMaxCompareDepth = 64;
inline constexpr size_t kDefaultMaxCompareBytes = size_t{16} << 20;
inline constexpr double kDefaultNumericTolerance = 1e-9;

struct VerifySpec {
  enum class Compare : uint8_t { kExact, kJson, kNumeric };
  // The share of a service's tasks to run twice, in [0, 1]: the base rate that
  // ReputationBook::SampleRate adapts per worker.
  double sample_rate = 0;
  Compare compare = Compare::kExact;
  // Numeric only.
  double tolerance = kDefaultNumericTolerance;
};

// "exact", "json", "numeric".
std::string_view CompareName(VerifySpec::Compare compare);
Result<VerifySpec::Compare> ParseCompare(std::string_view text);

// Whether results `a` and `b` agree under `spec`. kResourceExhausted for a result over `max_bytes`,
// kInvalidArgument for one nested deeper than kMaxCompareDepth.
Result<bool> ResultsAgree(std::string_view a, std::string_view b, const VerifySpec& spec,
                          size_t max_bytes = kDefaultMaxCompareBytes);

// Whether `text`'s brackets ('[' and '{' outside JSON strings) nest deeper than `max_depth`.
// Linear, no allocation; valid JSON or not.
bool NestedDeeperThan(std::string_view text, size_t max_depth);

}  // namespace rma::broker
