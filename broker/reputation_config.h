// The JSON sections of issue 17's settings: the broker config file's `"reputation": {...}` and a
// catalog entry's `"verify": {...}`. Apart from reputation.h and result_compare.h because those are
// for the scheduler, whose files may not reach nlohmann (scripts/check_layers.py); these are for
// the config file reader. Unknown keys and wrong types are errors naming the key. Pure functions.
#pragma once

#include <nlohmann/json.hpp>

#include "broker/reputation.h"
#include "broker/result_compare.h"
#include "common/status.h"

namespace rma::broker {

// Keys (each optional, defaults in ReputationConfig): probation_tasks, half_life_s, prior_good,
// agreement_weight, error_weight, timeout_weight, abandoned_weight, disagreement_weight,
// suspect_below, good_above, quarantine_below, min_evidence, watch_sample_factor, streak_scale,
// min_sample_factor, max_entries. The result is Validate()d.
Result<ReputationConfig> ParseReputationConfig(const nlohmann::json& section);

// {"sample_rate": 0.05, "compare": "numeric", "tolerance": 1e-6}: sample_rate is required, in
// [0, 1]; compare defaults to exact; tolerance (>= 0, default kDefaultNumericTolerance) is refused
// with any compare but numeric, where it would silently mean nothing.
Result<VerifySpec> ParseVerifySpec(const nlohmann::json& verify);

}  // namespace rma::broker
