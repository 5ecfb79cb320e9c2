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
#include "protocol/messages.h"

namespace rma::broker {

struct BrokerInfo {
  std::string store;  // "memory" or "postgresql"
  Time started_at{};
  std::string version;
  // High availability (--ha): the epoch this broker leads with; 0 without --ha. (A standby answers
  // no admin query: it answers not_leader.)
  int64_t ha_epoch = 0;
};

// The "ha" member of the health and metrics documents: {"role": "leader", "epoch": N} with --ha,
// {"role": "single"} without.
nlohmann::json HaJson(const BrokerInfo& info);

// Replaces the `today` and `history` of a StatsDocument with the record's (source "postgresql").
void ApplyStoredStats(const StoredStats& stored, nlohmann::json* doc);
// Notes in a StatsDocument that the record could not be read, so today and history are this
// broker process's own.
void MarkStatsFromMemory(const std::string& why, nlohmann::json* doc);

// query: workers | services | models | stats | queues | health | metrics | retry | discard | drain.
Result<nlohmann::json> AnswerAdmin(Scheduler& scheduler, Time now, const proto::Admin& request,
                                   const BrokerInfo& info);

// An account's reputation, rolled up over its worker credentials (GET /api/account "reputation").
nlohmann::json AccountReputationJson(const Scheduler& s, Time now, const std::string& account);
nlohmann::json WorkersDocument(const Scheduler& s, Time now);
nlohmann::json ServicesDocument(const Scheduler& s, Time now);
// {"models": [{"id", "services", "providers", "created"}]}: the models a live worker serves, by id
// (docs/protocol.md §6.5; the gateway's GET /v1/models).
nlohmann::json ModelsDocument(const Scheduler& s);
nlohmann::json QueuesDocument(const Scheduler& s, Time now);
nlohmann::json StatsDocument(const Scheduler& s, Time now, const BrokerInfo& info);
nlohmann::json HealthDocument(const Scheduler& s, Time now, const BrokerInfo& info);
nlohmann::json MetricsDocument(const Scheduler& s, Time now);

}  // namespace rma::broker
