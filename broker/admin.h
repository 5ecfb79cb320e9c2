// Admin queries and actions, answered from the scheduler's live state as JSON-shaped documents
// (sent to the gateway as msgpack, returned to HTTP clients as JSON; the shapes are documented in
// docs/http-api.md). Runs on the broker loop thread, reading the scheduler it is given.
#pragma once

#include <nlohmann/json.hpp>

#include <string>

#include "broker/scheduler.h"
#include "common/status.h"
#include "schemas/messages.h"

namespace rma::broker {

struct BrokerInfo {
  std::string store;  // "memory" or "postgresql"
  Time started_at{};
  std::string version;
};

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
