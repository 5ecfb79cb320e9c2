// Verification: comparing two workers' results (result_compare.h).
#include "broker/result_compare.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <string>

namespace rma::broker {

namespace {

using nlohmann::json;

bool IsInteger(const json& v) { return v.is_number_integer(); }  // signed or unsigned

// Integers compare exactly (a double cannot hold every 64-bit value); an integer and a float, or
// two floats, compare as doubles.
bool NumbersEqual(const json& x, const json& y) {
  if (IsInteger(x) && IsInteger(y)) {
    if (x.is_number_unsigned() && y.is_number_unsigned()) {
      return x.get<uint64_t>() == y.get<uint64_t>();
    }
    if (!x.is_number_unsigned() && !y.is_number_unsigned()) {
      return x.get<int64_t>() == y.get<int64_t>();
    }
    // One unsigned, one signed: nlohmann stores non-negative integers as unsigned, so the signed
    // one is negative here and they differ.
    const json& s = x.is_number_unsigned() ? y : x;
    const json& u = x.is_number_unsigned() ? x : y;
    return s.get<int64_t>() >= 0 && static_cast<uint64_t>(s.get<int64_t>()) == u.get<uint64_t>();
  }
  return x.get<double>() == y.get<double>();
}

bool NumbersClose(const json& x, const json& y, double tolerance) {
  if (NumbersEqual(x, y)) return true;
  const double a = x.get<double>();
  const double b = y.get<double>();
  // nlohmann refuses literals out of a double's range (1e999), but should an infinity come, it
  // would be within any relative tolerance of anything: it agrees only with itself, caught above.
  if (!std::isfinite(a) || !std::isfinite(b)) return false;
  return std::fabs(a - b) <= tolerance * std::max({1.0, std::fabs(a), std::fabs(b)});
}

// Recursion is bounded by kMaxCompareDepth: both values passed NestedDeeperThan before parsing.
bool ValuesAgree(const json& x, const json& y, bool numeric, double tolerance) {
  if (x.is_number() && y.is_number()) {
    return numeric ? NumbersClose(x, y, tolerance) : NumbersEqual(x, y);
  }
  if (x.type() != y.type()) return false;
  if (x.is_array()) {
    if (x.size() != y.size()) return false;
    for (size_t i = 0; i < x.size(); ++i) {
      if (!ValuesAgree(x[i], y[i], numeric, tolerance)) return false;
    }
    return true;
  }
  if (x.is_object()) {
    if (x.size() != y.size()) return false;
    for (auto it = x.begin(); it != x.end(); ++it) {
      auto other = y.find(it.key());
      if (other == y.end() || !ValuesAgree(it.value(), *other, numeric, tolerance)) return false;
    }
    return true;
  }
  return x == y;  // string, boolean, null
}

}  // namespace

std::string_view CompareName(VerifySpec::Compare compare) {
  switch (compare) {
    case VerifySpec::Compare::kExact:
      return "exact";
    case VerifySpec::Compare::kJson:
      return "json";
    case VerifySpec::Compare::kNumeric:
      return "numeric";
  }
  return "exact";
}

Result<VerifySpec::Compare> ParseCompare(std::string_view text) {
  for (auto c :
       {VerifySpec::Compare::kExact, VerifySpec::Compare::kJson, VerifySpec::Compare::kNumeric}) {
    if (text == CompareName(c)) return c;
  }
  return Status::InvalidArgument("verify 'compare' must be exact, json or numeric, not '" +
                                 std::string(text) + "'");
}

bool NestedDeeperThan(std::string_view text, size_t max_depth) {
  size_t depth = 0;
  bool in_string = false;
  bool escaped = false;
  for (char c : text) {
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    switch (c) {
      case '"':
        in_string = true;
        break;
      case '[':
      case '{':
        if (++depth > max_depth) return true;
        break;
      case ']':
      case '}':
        // Unbalanced closers make invalid JSON, which the parser refuses; they must not make the
        // count wrap.
        if (depth > 0) --depth;
        break;
      default:
        break;
    }
  }
  return false;
}

Result<bool> ResultsAgree(std::string_view a, std::string_view b, const VerifySpec& spec,
                          size_t max_bytes) {
  if (spec.compare == VerifySpec::Compare::kExact) return a == b;
  if (a.size() > max_bytes || b.size() > max_bytes) {
    return Status::ResourceExhausted("a result of " + std::to_string(std::max(a.size(), b.size())) +
                                     " bytes is over the " + std::to_string(max_bytes) +
                                     " bytes a comparison parses");
  }
  if (NestedDeeperThan(a, kMaxCompareDepth) || NestedDeeperThan(b, kMaxCompareDepth)) {
    return Status::InvalidArgument("a result nests deeper than " +
                                   std::to_string(kMaxCompareDepth) + " levels");
  }
  // No exceptions: an invalid document parses to a `discarded` value.
  const json x = json::parse(a.begin(), a.end(), nullptr, /*allow_exceptions=*/false);
  const json y = json::parse(b.begin(), b.end(), nullptr, /*allow_exceptions=*/false);
  const bool x_ok = !x.is_discarded();
  const bool y_ok = !y.is_discarded();
  if (!x_ok || !y_ok) return !x_ok && !y_ok && a == b;
  return ValuesAgree(x, y, spec.compare == VerifySpec::Compare::kNumeric, spec.tolerance);
}

}  // namespace rma::broker
