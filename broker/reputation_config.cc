// Parsing issue 17's config sections (reputation_config.h).
#include "broker/reputation_config.h"

#include <cmath>
#include <limits>
#include <string>

namespace rma::broker {

namespace {

using nlohmann::json;

Status ReputationKeyError(const std::string& where, const std::string& key, const char* what) {
  return Status::InvalidArgument(where + " '" + key + "' must be " + what);
}

Status ReadReputationDouble(const json& j, const std::string& where, const std::string& key,
                            double* out) {
  if (!j.is_number()) return ReputationKeyError(where, key, "a number");
  *out = j.get<double>();
  return Status::Ok();
}

Status ReadReputationCount(const json& j, const std::string& where, const std::string& key,
                           uint64_t max, uint64_t* out) {
  if (!j.is_number_unsigned() || j.get<uint64_t>() > max) {
    return ReputationKeyError(where, key,
                              ("a whole number from 0 to " + std::to_string(max)).c_str());
  }
  *out = j.get<uint64_t>();
  return Status::Ok();
}

}  // namespace

Result<ReputationConfig> ParseReputationConfig(const json& section) {
  const std::string where = "reputation";
  if (!section.is_object()) return Status::InvalidArgument("'reputation' must be an object");
  ReputationConfig c;
  const std::pair<const char*, double*> doubles[] = {
      {"prior_good", &c.prior_good},
      {"agreement_weight", &c.agreement_weight},
      {"error_weight", &c.error_weight},
      {"timeout_weight", &c.timeout_weight},
      {"abandoned_weight", &c.abandoned_weight},
      {"disagreement_weight", &c.disagreement_weight},
      {"suspect_below", &c.suspect_below},
      {"good_above", &c.good_above},
      {"quarantine_below", &c.quarantine_below},
      {"min_evidence", &c.min_evidence},
      {"watch_sample_factor", &c.watch_sample_factor},
      {"streak_scale", &c.streak_scale},
      {"min_sample_factor", &c.min_sample_factor},
  };
  for (auto it = section.begin(); it != section.end(); ++it) {
    const std::string& key = it.key();
    const json& v = it.value();
    if (key == "probation_tasks") {
      uint64_t n = 0;
      RMA_RETURN_IF_ERROR(
          ReadReputationCount(v, where, key, std::numeric_limits<uint32_t>::max(), &n));
      c.probation_tasks = static_cast<uint32_t>(n);
      continue;
    }
    if (key == "max_entries") {
      uint64_t n = 0;
      // Far above any pool; keeps a typo from promising more memory than the machine has.
      RMA_RETURN_IF_ERROR(ReadReputationCount(v, where, key, 100'000'000, &n));
      c.max_entries = static_cast<size_t>(n);
      continue;
    }
    if (key == "half_life_s") {
      // Up to ~31 years, so the microseconds fit an int64 with room to spare.
      if (!v.is_number() || !(v.get<double>() >= 1) || v.get<double>() > 1e9) {
        return ReputationKeyError(where, key, "a number of seconds from 1 to 1e9");
      }
      c.half_life = Duration(static_cast<int64_t>(std::llround(v.get<double>() * 1e6)));
      continue;
    }
    bool known = false;
    for (const auto& [name, field] : doubles) {
      if (key != name) continue;
      known = true;
      RMA_RETURN_IF_ERROR(ReadReputationDouble(v, where, key, field));
    }
    if (!known) return Status::InvalidArgument("unknown key '" + key + "' in reputation");
  }
  RMA_RETURN_IF_ERROR(c.Validate());
  return c;
}

Result<VerifySpec> ParseVerifySpec(const json& verify) {
  const std::string where = "verify";
  if (!verify.is_object()) {
    return Status::InvalidArgument(
        "'verify' must be an object like {\"sample_rate\": 0.05, \"compare\": \"json\"}");
  }
  VerifySpec spec;
  bool has_rate = false;
  bool has_tolerance = false;
  for (auto it = verify.begin(); it != verify.end(); ++it) {
    const std::string& key = it.key();
    const json& v = it.value();
    if (key == "sample_rate") {
      if (!v.is_number() || !(v.get<double>() >= 0 && v.get<double>() <= 1)) {
        return ReputationKeyError(where, key, "a number from 0 to 1");
      }
      spec.sample_rate = v.get<double>();
      has_rate = true;
    } else if (key == "compare") {
      if (!v.is_string()) return ReputationKeyError(where, key, "exact, json or numeric");
      RMA_ASSIGN_OR_RETURN(spec.compare, ParseCompare(v.get<std::string>()));
    } else if (key == "tolerance") {
      if (!v.is_number() || !(v.get<double>() >= 0) || !std::isfinite(v.get<double>())) {
        return ReputationKeyError(where, key, "a finite number >= 0");
      }
      spec.tolerance = v.get<double>();
      has_tolerance = true;
    } else {
      return Status::InvalidArgument("unknown key '" + key + "' in verify");
    }
  }
  if (!has_rate) return Status::InvalidArgument("verify needs 'sample_rate' (0 to 1)");
  if (has_tolerance && spec.compare != VerifySpec::Compare::kNumeric) {
    return Status::InvalidArgument(
        "verify 'tolerance' applies only to compare \"numeric\", not \"" +
        std::string(CompareName(spec.compare)) + "\"");
  }
  return spec;
}

}  // namespace rma::broker
