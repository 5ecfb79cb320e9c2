// See admin.h.
#include "broker/admin.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <set>

namespace rma::broker {

using nlohmann::json;

namespace {

double Round(double x, int digits = 3) {
  double f = std::pow(10.0, digits);
  return std::round(x * f) / f;
}

double MsOf(Duration d) { return Round(static_cast<double>(d.count()) / 1000.0); }

std::string_view WorkerStatus(const Scheduler::Worker& w) {
  if (!w.alive) return "offline";
  if (w.withdrawn()) return "draining";
  if (w.in_flight() == 0) return "idle";
  if (w.in_flight() >= w.slots) return "full";
  return "busy";
}

json CapabilitiesJson(const proto::Capabilities& c) {
  json labels = json::object();
  for (const auto& [k, v] : c.labels) labels[k] = v;
  return {{"cpu_cores", c.cpu_cores},
          {"cpu_model", c.cpu_model},
          {"ram_gb", Round(c.ram_gb, 2)},
          {"ram_available_gb", Round(c.ram_available_gb, 2)},
          {"disk_gb", Round(c.disk_gb, 2)},
          {"disk_free_gb", Round(c.disk_free_gb, 2)},
          {"has_gpu", c.has_gpu},
          {"gpu_type", c.gpu_type},
          {"gpu_memory_gb", Round(c.gpu_memory_gb, 2)},
          {"gpu_count", c.gpu_count},
          {"os", c.os},
          {"arch", c.arch},
          {"worker_type", c.worker_type},
          {"labels", labels}};
}

json LatencyJson(const LatencyHistogram& h) {
  return {{"count", h.count()},
          {"p50", MsOf(h.Percentile(0.50))},
          {"p90", MsOf(h.Percentile(0.90))},
          {"p99", MsOf(h.Percentile(0.99))}};
}

json HistogramJson(const LatencyHistogram& h) {
  return {{"bounds_s", LatencyHistogram::PrometheusBounds()},
          {"cumulative", h.CumulativeCounts()},
          {"count", h.count()},
          {"sum_s", h.sum_seconds()}};
}

json OutcomeCountsJson(const OutcomeCounts& c) {
  return {{"accepted", Round(c.accepted, 2)},     {"errors", Round(c.errors, 2)},
          {"timeouts", Round(c.timeouts, 2)},     {"abandoned", Round(c.abandoned, 2)},
          {"agreements", Round(c.agreements, 2)}, {"disagreements", Round(c.disagreements, 2)}};
}

// A worker's reputation as the admin API shows it (docs/http-api.md, the worker's "reputation").
json ReputationJson(const Scheduler& s, Time now, const Scheduler::Worker& w) {
  auto snap = s.reputation().Snapshot(now, w.reputation_key);
  if (!snap) {
    // Not tracked (yet, or the book is full of pinned entries): a newcomer.
    return {{"state", StateName(s.reputation().State(w.reputation_key))},
            {"trusted", false},
            {"tasks", 0}};
  }
  return {{"state", StateName(snap->state)},
          {"trusted", snap->trusted},
          {"score", Round(snap->score)},
          {"reliability", Round(snap->reliability)},
          {"honesty", Round(snap->honesty)},
          {"tasks", snap->tasks},
          {"streak", snap->streak},
          {"since", FormatTime(snap->since)},
          {"counts", OutcomeCountsJson(snap->counts)}};
}

json CountersJson(const Counters& c) {
  return {{"submitted", c.submitted}, {"completed", c.completed}, {"failed", c.failed},
          {"retried", c.retried},     {"dead", c.dead},           {"cancelled", c.cancelled},
          {"expired", c.expired},     {"requeued", c.requeued},   {"rejected", c.rejected}};
}

}  // namespace

json AccountReputationJson(const Scheduler& s, Time now, const std::string& account) {
  const AccountReputation r = s.reputation().AccountSummary(now, account);
  json per_state = json::object();
  for (size_t i = 0; i < kWorkerStates; ++i) {
    if (r.per_state[i] > 0)
      per_state[std::string(StateName(static_cast<WorkerState>(i)))] = r.per_state[i];
  }
  return {{"credentials", r.credentials},
          {"trusted", r.trusted},
          {"worst", StateName(r.worst)},
          {"states", per_state},
          {"counts", OutcomeCountsJson(r.counts)}};
}

// One worker of GET /api/admin/workers (and the base of GET /api/admin/workers/{id}).
json WorkerJson(const Scheduler& s, Time now, const Scheduler::Worker& w) {
  json services = json::array();
  // The models of each service that lists any (the "services" list stays names only).
  json models = json::object();
  for (const proto::ServiceInfo& info : w.manifest) {
    services.push_back(info.name);
    if (!info.models.empty()) models[info.name] = info.models;
  }
  return {{"worker_id", w.worker_id},
          {"name", w.name},
          {"tier", w.tier},
          {"simulated", w.simulated},
          {"capabilities", CapabilitiesJson(w.caps)},
          {"services", services},
          {"models", models},
          {"status", WorkerStatus(w)},
          {"health", s.Health(now, w)},
          {"load", Round(w.report.load)},
          {"gpu_util", Round(w.report.gpu_util)},
          {"ram_available_gb", Round(w.report.ram_available_gb, 2)},
          {"in_flight", w.in_flight()},
          {"slots", w.slots},
          {"last_heartbeat", FormatTime(w.last_heard)},
          {"last_heartbeat_age_s", Round(ToSecondsF(now - w.last_heard))},
          {"registered_at", FormatTime(w.registered_at)},
          {"first_seen", FormatTime(w.first_seen)},
          {"tasks_done", w.tasks_done},
          {"tasks_failed", w.tasks_failed},
          {"busy_seconds", Round(ToSecondsF(w.busy))},
          {"agent_version", w.agent_version},
          {"key", w.curve_key},
          {"key_fingerprint", w.curve_key.substr(0, 8)},
          {"account", w.account},
          {"reputation", ReputationJson(s, now, w)}};
}

json WorkersDocument(const Scheduler& s, Time now) {
  json list = json::array();
  json by_tier = {{"1", 0}, {"2", 0}, {"3", 0}};
  for (const Scheduler::Worker& w : s.workers()) {
    if (!w.in_use) continue;
    if (w.alive) by_tier[std::to_string(w.tier)] = by_tier[std::to_string(w.tier)].get<int>() + 1;
    list.push_back(WorkerJson(s, now, w));
  }
  return {{"workers", list}, {"total", list.size()}, {"live_by_tier", by_tier}};
}

// GET /api/admin/workers/{id}: the worker object, what it runs now and its connection history.
Result<json> WorkerDocument(const Scheduler& s, Time now, const std::string& worker_id) {
  for (const Scheduler::Worker& w : s.workers()) {
    if (!w.in_use || w.worker_id != worker_id) continue;
    json doc = WorkerJson(s, now, w);
    // The agent advertises only the services whose health checks answer (it re-advertises when
    // that changes): each service in the manifest is one it reports healthy.
    json health = json::array();
    for (const proto::ServiceInfo& info : w.manifest) {
      health.push_back({{"service", info.name}, {"healthy", true}, {"detail", "advertised"}});
    }
    doc["service_health"] = std::move(health);
    json attempts = json::array();
    for (const proto::RunningTask& r : w.running) {
      json a = {{"task_id", ToString(r.task_id)},
                {"attempt", r.attempt},
                {"service", nullptr},
                {"started_at", nullptr},
                {"progress", nullptr}};
      const Scheduler::Task* t = s.FindTask(r.task_id);
      if (t != nullptr) {
        a["service"] = t->service;
        if (t->running_attempt == r.attempt && t->status == proto::TaskStatus::kRunning) {
          a["started_at"] = FormatTime(t->started_at);
          if (t->progress >= 0) a["progress"] = Round(t->progress, 3);
        }
      }
      attempts.push_back(std::move(a));
    }
    doc["current_attempts"] = std::move(attempts);
    json connections = json::array();
    for (auto it = w.connections.rbegin(); it != w.connections.rend(); ++it) {
      connections.push_back(
          {{"at", FormatTime(it->at)}, {"event", it->event}, {"detail", it->detail}});
    }
    doc["connections"] = std::move(connections);
    return doc;
  }
  return Status::NotFound("no worker '" + worker_id + "'");
}

// GET /api/admin/dead-letters from memory (a broker without a database; with one, the record
// answers): dead tasks grouped by service and error code, largest group first.
json DeadLettersDocument(const Scheduler& s) {
  struct Group {
    uint64_t count = 0;
    Time oldest = Time::max();
    Time newest = Time::min();
  };
  std::map<std::pair<std::string, std::string>, Group> groups;
  uint64_t total = 0;
  s.ForEachTask([&](const Scheduler::Task& t) {
    if (t.status != proto::TaskStatus::kDead) return;
    Group& g = groups[{t.service, t.error_code}];
    ++g.count;
    ++total;
    const Time at = t.completed_at.time_since_epoch().count() > 0 ? t.completed_at : t.created_at;
    g.oldest = std::min(g.oldest, at);
    g.newest = std::max(g.newest, at);
  });
  std::vector<std::pair<std::pair<std::string, std::string>, Group>> sorted(groups.begin(),
                                                                            groups.end());
  std::stable_sort(sorted.begin(), sorted.end(),
                   [](const auto& a, const auto& b) { return a.second.count > b.second.count; });
  json list = json::array();
  for (const auto& [key, g] : sorted) {
    list.push_back({{"service", key.first},
                    {"error_code", key.second},
                    {"count", g.count},
                    {"oldest", FormatTime(g.oldest)},
                    {"newest", FormatTime(g.newest)}});
  }
  return {{"total", total}, {"groups", std::move(list)}};
}

json ServicesDocument(const Scheduler& s, Time now) {
  json list = json::array();
  for (uint32_t i = 0; i < s.services().size(); ++i) {
    const Scheduler::Service& svc = s.services()[i];
    // A generic service is provided by the workers listing it and by every worker of a tier allowed
    // to take it.
    uint32_t providers = 0;
    uint32_t healthy = 0;
    for (const Scheduler::Worker& w : s.workers()) {
      if (!w.alive) continue;
      bool lists = std::binary_search(w.services.begin(), w.services.end(), i);
      bool by_tier = svc.generic_max_tier > 0 && w.tier <= svc.generic_max_tier && !w.withdrawn();
      if (!lists && !by_tier) continue;
      ++providers;
      if (!w.withdrawn() && s.Health(now, w) == "healthy") ++healthy;
    }
    json entry = {{"name", svc.name},
                  {"generic", svc.generic_max_tier > 0},
                  {"available", s.HasProvider(i)},
                  {"providers", providers},
                  {"healthy_providers", healthy},
                  {"queue_depth", svc.queued() + svc.delayed},
                  {"in_flight", svc.in_flight},
                  {"oldest_wait_s", Round(ToSecondsF(s.OldestWait(now, i)))},
                  {"counters", CountersJson(svc.counters)},
                  {"queue_wait_ms", LatencyJson(svc.queue_wait)},
                  {"run_time_ms", LatencyJson(svc.run_time)}};
    if (svc.generic_max_tier > 0) entry["max_tier"] = svc.generic_max_tier;
    if (svc.limit.max_concurrency > 0 || svc.limit.rate_per_s > 0) {
      entry["limit"] = {{"max_concurrency", svc.limit.max_concurrency},
                        {"rate_per_s", svc.limit.rate_per_s}};
    }
    list.push_back(std::move(entry));
  }
  return {{"services", list}, {"available_services", s.AvailableServices()}};
}

json ModelsDocument(const Scheduler& s) {
  // Only models a live worker taking new work lists (what a caller can use now), counted once per
  // worker even when it lists a model under two services. A scan of the workers: admin queries are
  // rare, dispatch keeps its own index.
  std::map<std::string, std::pair<std::set<std::string>, std::set<uint32_t>>> live;
  for (uint32_t i = 0; i < s.workers().size(); ++i) {
    const Scheduler::Worker& w = s.workers()[i];
    if (!w.alive || w.withdrawn()) continue;
    for (const proto::ServiceInfo& info : w.manifest) {
      for (const std::string& model : info.models) {
        auto& [services, workers] = live[model];
        services.insert(info.name);
        workers.insert(i);
      }
    }
  }
  json list = json::array();
  for (const auto& [id, entry] : live) {
    const Scheduler::Model* m = s.FindModel(id);
    const int64_t created = m == nullptr ? 0 : ToUnixMs(m->first_seen) / 1000;
    list.push_back({{"id", id},
                    {"services", json(entry.first)},
                    {"providers", entry.second.size()},
                    {"created", created}});
  }
  return {{"models", list}};
}

json QueuesDocument(const Scheduler& s, Time now) {
  json queues = json::object();
  size_t total = 0;
  for (uint32_t i = 0; i < s.services().size(); ++i) {
    const Scheduler::Service& svc = s.services()[i];
    if (svc.queued() + svc.delayed + svc.in_flight == 0 && svc.counters.submitted == 0) continue;
    total += svc.queued() + svc.delayed;
    queues[svc.name] = {
        {"queued", svc.queued()},
        {"delayed", svc.delayed},
        {"depth", svc.queued() + svc.delayed},
        {"in_flight", svc.in_flight},
        {"oldest_wait_s", Round(ToSecondsF(s.OldestWait(now, i)))},
        {"waiting_for_provider", svc.queued() + svc.delayed > 0 && !s.HasProvider(i)}};
  }
  return {{"total", total}, {"in_flight", s.total_in_flight()}, {"queues", queues}};
}

json StatsDocument(const Scheduler& s, Time now, const BrokerInfo& info) {
  json by_tier = {{"1", 0}, {"2", 0}, {"3", 0}};
  json by_health = {{"healthy", 0}, {"late", 0}, {"offline", 0}};
  size_t live = 0;
  for (const Scheduler::Worker& w : s.workers()) {
    if (!w.in_use) continue;
    std::string health(s.Health(now, w));
    by_health[health] = by_health[health].get<int>() + 1;
    if (!w.alive) continue;
    ++live;
    by_tier[std::to_string(w.tier)] = by_tier[std::to_string(w.tier)].get<int>() + 1;
  }
  LatencyHistogram recent_wait;
  LatencyHistogram recent_run;
  s.history().Recent(now, Seconds(300), &recent_wait, &recent_run);
  json history = json::array();
  for (const MinuteStats& m : s.history().minutes()) {
    history.push_back({{"minute", FormatTime(FromUnixMs(m.minute_start_ms))},
                       {"submitted", m.submitted},
                       {"completed", m.completed},
                       {"failed", m.failed},
                       {"queue_wait_p50_ms", MsOf(m.queue_wait.Percentile(0.5))},
                       {"run_time_p50_ms", MsOf(m.run_time.Percentile(0.5))},
                       {"run_time_p99_ms", MsOf(m.run_time.Percentile(0.99))}});
  }
  const Counters& today = s.today();
  return {{"workers", {{"live", live}, {"by_tier", by_tier}, {"by_health", by_health}}},
          {"queue_depth", s.total_queued()},
          {"in_flight", s.total_in_flight()},
          {"tasks", CountersJson(s.counters())},
          {"today",
           {{"date", FormatDate(now)},
            {"submitted", today.submitted},
            {"completed", today.completed},
            {"failed", today.failed},
            {"source", info.store}}},
          {"throughput_per_s",
           {{"completed_1m", Round(s.completions().PerSecond(now, 60))},
            {"submitted_1m", Round(s.submissions().PerSecond(now, 60))},
            {"completed_10s", Round(s.completions().PerSecond(now, 10))}}},
          {"latency_ms",
           {{"window_s", 300},
            {"queue_wait", LatencyJson(recent_wait)},
            {"run_time", LatencyJson(recent_run)}}},
          {"history", history},
          {"store", info.store},
          {"uptime_s", Round(ToSecondsF(now - info.started_at), 1)}};
}

void ApplyStoredStats(const StoredStats& stored, json* doc) {
  ServiceMinuteStats total;
  json by_service = json::object();
  for (const ServiceMinuteStats& r : stored.today) {
    total.Merge(r);
    by_service[r.service] = {{"submitted", r.submitted},
                             {"completed", r.completed},
                             {"failed", r.failed},
                             {"dead", r.dead}};
  }
  (*doc)["today"] = {{"date", FormatDate(stored.day_start)},
                     {"submitted", total.submitted},
                     {"completed", total.completed},
                     {"failed", total.failed},
                     {"dead", total.dead},
                     {"by_service", by_service},
                     {"source", "postgresql"}};
  json history = json::array();
  for (const ServiceMinuteStats& m : stored.history) {
    history.push_back({{"minute", FormatTime(m.minute)},
                       {"submitted", m.submitted},
                       {"completed", m.completed},
                       {"failed", m.failed},
                       {"queue_wait_p50_ms", Round(m.queue_wait_p50_ms)},
                       {"run_time_p50_ms", Round(m.run_time_p50_ms)},
                       {"run_time_p99_ms", Round(m.run_time_p99_ms)}});
  }
  (*doc)["history"] = std::move(history);
  (*doc)["history_source"] = "postgresql";
}

void MarkStatsFromMemory(const std::string& why, json* doc) {
  (*doc)["today"]["source"] = "memory";
  (*doc)["history_source"] = "memory";
  (*doc)["store_error"] = why;
}

json HaJson(const BrokerInfo& info) {
  if (info.ha_epoch == 0) return {{"role", "single"}};
  return {{"role", "leader"}, {"epoch", info.ha_epoch}};
}

json HealthDocument(const Scheduler& s, Time now, const BrokerInfo& info) {
  size_t live = 0;
  for (const Scheduler::Worker& w : s.workers()) live += w.alive ? 1 : 0;
  return {{"status", s.store_available() ? "ok" : "degraded"},
          {"broker", "up"},
          {"store", info.store},
          {"store_available", s.store_available()},
          {"workers_live", live},
          {"queue_depth", s.total_queued()},
          {"version", info.version},
          {"ha", HaJson(info)},
          {"uptime_s", Round(ToSecondsF(now - info.started_at), 1)}};
}

json MetricsDocument(const Scheduler& s, Time now) {
  json services = json::array();
  for (uint32_t i = 0; i < s.services().size(); ++i) {
    const Scheduler::Service& svc = s.services()[i];
    services.push_back({{"name", svc.name},
                        {"providers", svc.providers},
                        {"queue_depth", svc.queued() + svc.delayed},
                        {"in_flight", svc.in_flight},
                        {"oldest_wait_s", ToSecondsF(s.OldestWait(now, i))},
                        {"counters", CountersJson(svc.counters)},
                        {"queue_wait", HistogramJson(svc.queue_wait)},
                        {"run_time", HistogramJson(svc.run_time)}});
  }
  json tiers = {{"1", 0}, {"2", 0}, {"3", 0}};
  json health = {{"healthy", 0}, {"late", 0}, {"offline", 0}};
  json reputation = {
      {"good", 0}, {"probation", 0}, {"suspect", 0}, {"quarantined", 0}, {"banned", 0}};
  // Every known worker, offline ones too until --offline-retention-ms: "which worker has been
  // offline for how long" is what an alert needs, and only the broker knows it.
  json workers = json::array();
  for (const Scheduler::Worker& w : s.workers()) {
    if (!w.in_use) continue;
    std::string h(s.Health(now, w));
    health[h] = health[h].get<int>() + 1;
    if (w.alive) tiers[std::to_string(w.tier)] = tiers[std::to_string(w.tier)].get<int>() + 1;
    const std::string_view state = StateName(s.reputation().State(w.reputation_key));
    reputation[std::string(state)] = reputation[std::string(state)].get<int>() + 1;
    workers.push_back({{"worker_id", w.worker_id},
                       {"name", w.name},
                       {"tier", w.tier},
                       {"alive", w.alive},
                       {"reputation", state},
                       {"heartbeat_age_s", Round(ToSecondsF(now - w.last_heard))}});
  }
  json transitions = json::object();
  for (size_t i = 0; i < kWorkerStates; ++i) {
    transitions[std::string(StateName(static_cast<WorkerState>(i)))] =
        s.reputation_transitions()[i];
  }
  json verifications = json::object();
  for (size_t i = 0; i < static_cast<size_t>(Scheduler::VerifyOutcome::kCount); ++i) {
    const auto outcome = static_cast<Scheduler::VerifyOutcome>(i);
    verifications[std::string(Scheduler::VerifyOutcomeName(outcome))] = s.verifications(outcome);
  }
  // What peers were refused, by reason, and what the budgets hold against their limits
  // (docs/security.md). The loop adds the refusals it makes itself (handshakes, READY rate).
  json refusals = json::object();
  for (size_t r = 0; r < static_cast<size_t>(Scheduler::Refusal::kCount); ++r) {
    auto reason = static_cast<Scheduler::Refusal>(r);
    refusals[std::string(Scheduler::RefusalName(reason))] = s.refusals(reason);
  }
  const BrokerConfig& c = s.config();
  auto budget = [](size_t used, size_t limit) { return json{{"used", used}, {"limit", limit}}; };
  json budgets = {
      {"unfinished_tasks", budget(s.unfinished_tasks(), c.max_unfinished_tasks)},
      {"unfinished_bytes", budget(s.unfinished_bytes(), c.max_unfinished_bytes)},
      {"result_bytes_in_memory", budget(s.finished_result_bytes(), c.max_result_bytes_in_memory)},
      {"waiters", budget(s.waiters(), c.max_waiters_per_client)},
      {"services", budget(s.services_in_use(), c.max_services)}};
  return {{"services", services},
          {"refusals", refusals},
          {"budgets", budgets},
          {"workers_by_tier", tiers},
          {"workers_by_health", health},
          {"workers_by_reputation", reputation},
          {"reputation_transitions", transitions},
          {"verifications", verifications},
          {"workers", workers},
          {"tasks", CountersJson(s.counters())},
          {"tasks_in_memory", s.task_count()},
          {"store_available", s.store_available()}};
}

Result<json> AnswerAdmin(Scheduler& scheduler, Time now, const proto::Admin& request,
                         const BrokerInfo& info) {
  const std::string& q = request.query;
  if (q == "workers") return WorkersDocument(scheduler, now);
  if (q == "services") return ServicesDocument(scheduler, now);
  if (q == "models") return ModelsDocument(scheduler);
  if (q == "queues") return QueuesDocument(scheduler, now);
  if (q == "stats") return StatsDocument(scheduler, now, info);
  if (q == "health") return HealthDocument(scheduler, now, info);
  if (q == "metrics") {
    json doc = MetricsDocument(scheduler, now);
    doc["ha"] = HaJson(info);
    return doc;
  }
  if (q == "retry" || q == "discard") {
    auto id = ParseTaskId(request.task_id);
    if (!id) return Status::InvalidArgument("'" + request.task_id + "' is not a task id");
    Status s = q == "retry" ? scheduler.RetryDead(now, *id) : scheduler.DiscardDead(now, *id);
    if (!s.ok()) return s;
    return json{{"task_id", request.task_id}, {"action", q}, {"ok", true}};
  }
  if (q == "worker") return WorkerDocument(scheduler, now, request.worker_id);
  if (q == "purge") {
    auto service = request.args.find("service");
    if (service == request.args.end() || service->second.empty()) {
      return Status::InvalidArgument("'service' is required");
    }
    RMA_ASSIGN_OR_RETURN(size_t purged, scheduler.PurgeService(now, service->second));
    return json{
        {"service", service->second}, {"action", "purge"}, {"purged", purged}, {"ok", true}};
  }
  if (q == "dead_letters") return DeadLettersDocument(scheduler);
  if (q == "drain" || q == "undrain") {
    Status s = q == "drain" ? scheduler.DrainWorker(now, request.worker_id)
                            : scheduler.UndrainWorker(now, request.worker_id);
    if (!s.ok()) return s;
    return json{{"worker_id", request.worker_id}, {"action", q}, {"ok", true}};
  }
  if (q == "trust") {
    auto state = request.args.find("state");
    if (state == request.args.end()) {
      return Status::InvalidArgument("'state' is required: trusted, normal, quarantined or banned");
    }
    RMA_ASSIGN_OR_RETURN(Trust trust, ParseTrust(state->second));
    RMA_ASSIGN_OR_RETURN(ReputationTransition change,
                         scheduler.SetWorkerTrust(now, request.worker_id, trust));
    return json{{"worker_id", request.worker_id}, {"action", "trust"},
                {"trust", TrustName(trust)},      {"from", StateName(change.from)},
                {"state", StateName(change.to)},  {"ok", true}};
  }
  return Status::InvalidArgument(
      "unknown admin query '" + q +
      "' (workers, worker, services, models, stats, queues, health, metrics, retry, discard, "
      "bulk_retry, bulk_discard, dead_letters, purge, history, drain, undrain, trust)");
}

}  // namespace rma::broker
