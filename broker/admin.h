// Admin queries and actions, answered from the scheduler's live state as JSON-shaped documents
// (sent to the gateway as msgpack, returned to HTTP clients as JSON; the shapes are documented in
// docs/http-api.md). Runs on the broker loop thread, reading the scheduler it is given.
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "broker/scheduler.h"
#include "broker/store_types.h"
#include "common/status.h"
#include "schemas/messages.h"

namespace rma::broker {

struct BrokerInfo {
  std::string store;  // "memory" or "postgresql"
  Time started_at{};
  std::string version;
};

// What PostgreSQL holds about the statistics (PostgreSQL mode): read by the store's thread and
// merged into a StatsDocument there (a plain function of its inputs, safe on any thread).
struct StoredStats {
  Time day_start{};
  std::vector<ServiceMinuteStats> today;    // per service, since day_start (`minute` unused)
  std::vector<ServiceMinuteStats> history;  // per minute, all services together, oldest first
};

// Replaces the `today` and `history` of a StatsDocument with the record's (source "postgresql").
void ApplyStoredStats(const StoredStats& stored, nlohmann::json* doc);
// Notes in a StatsDocument that the record could not be read, so today and history are this
// broker process's own.
void MarkStatsFromMemory(const std::string& why, nlohmann::json* doc);

// query: workers | services | stats | queues | health | metrics | retry | discard | drain.
Result<nlohmann::json> AnswerAdmin(Scheduler& scheduler, Time now, const proto::Admin& request,
                                   const BrokerInfo& info);

nlohmann::json WorkersDocument(const Scheduler& s, Time now);
nlohmann::json ServicesDocument(const Scheduler& s, Time now);
nlohmann::json QueuesDocument(const Scheduler& s, Time now);
nlohmann::json StatsDocument(const Scheduler& s, Time now, const BrokerInfo& info);
nlohmann::json HealthDocument(const Scheduler& s, Time now, const BrokerInfo& info);
nlohmann::json MetricsDocument(const Scheduler& s, Time now);

}  // namespace rma::broker
