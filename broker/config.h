// BrokerConfig: every tunable of the broker's scheduling, with the defaults documented in
// docs/configuration.md. Filled by main.cc from flags, RMA_* environment variables and an optional
// JSON config file; read (never written) by the scheduler on the broker loop thread.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "broker/credits.h"
#include "broker/reputation.h"
#include "broker/result_compare.h"
#include "common/clock.h"
#include "common/status.h"
#include "protocol/limits.h"

namespace rma::broker {

// One entry of the service catalog: what the pool would like somebody to run, and on what.
struct CatalogEntry {
  std::string service;           // "vllm"
  uint32_t tier = 2;             // the tier it is meant for (1 GPU, 2 CPU, 3 storage)
  std::string image;             // container image a volunteer can start
  uint32_t port = 0;             // port the image listens on
  double min_gpu_memory_gb = 0;  // requirement on the worker
  double min_ram_gb = 0;         // requirement on the worker
  bool trusted_only = false;     // its tasks run only on workers an admin marked trusted
  // Verification by replication ("verify": {...}; docs/architecture.md, "Verification"): a sampled
  // result returns only once a worker of another account returned the same. Deterministic
  // services only: a service whose answers differ from run to run (LLM generation) has none.
  std::optional<VerifySpec> verify;
};

// Back-pressure for a backend that must not be flooded.
struct ServiceLimit {
  uint32_t max_concurrency = 0;  // tasks running at once across the pool (0 = unlimited)
  double rate_per_s = 0;         // tasks started per second (0 = unlimited)
  uint32_t burst = 0;            // token bucket size (0 = max(1, rate_per_s))
};

struct TierThresholds {
  uint32_t cpu_min_cores = 4;  // tier 2 needs at least this many cores...
  double cpu_min_ram_gb = 8;   // ...and this much RAM; otherwise tier 3
};

struct BrokerConfig {
  // The tier weight of a worker of `tier` (1..3; anything else weighs as storage).
  double TierWeight(uint32_t tier) const {
    return tier_weights[tier >= 1 && tier <= 3 ? tier - 1 : 2];
  }

  // Liveness, both directions: a killed worker's tasks run again within heartbeat x liveness
  // (9-10 s at the defaults).
  Duration heartbeat_interval = Seconds(3);
  uint32_t liveness = 3;  // missed intervals before a peer is dead
  // How long an offline worker stays listed (red on the dashboard) before it is forgotten.
  Duration offline_retention = Seconds(300);
  // After a restart or an HA takeover, a task that was running stays out of its queue this long, so
  // the worker still running it can register again and keep its lease (READY.running) before
  // another worker is given it: without it, the first worker back takes the task and it runs
  // twice. 0: requeued at once. Unset: heartbeat x liveness, the time a worker is given to show
  // it is alive anyway (9 s at the defaults).
  std::optional<Duration> reattach_grace;
  Duration ReattachGrace() const {
    return reattach_grace.value_or(heartbeat_interval * static_cast<int64_t>(liveness));
  }

  // Task defaults and bounds.
  uint32_t default_max_attempts = 3;
  Duration default_timeout = Seconds(300);
  Duration max_timeout = Seconds(24 * 3600);
  Duration max_queue_time = Seconds(3600);   // queued without being started: expired after this
  Duration retry_backoff_base = Seconds(1);  // first retry waits about this long
  Duration retry_backoff_max = Seconds(300);
  uint32_t max_requeues = 10;               // worker lost this often with the task: dead-lettered
  Duration result_ttl = Seconds(3600);      // finished tasks kept in memory this long...
  size_t max_finished_in_memory = 200000;   // ...and at most this many
  size_t max_queued_per_service = 1000000;  // more submissions are refused (back-pressure)
  Duration max_wait = Seconds(300);         // longest GET ?wait / synchronous wait

  // Budgets (docs/configuration.md, "Budgets"): the most one broker holds, so no peer can make it
  // grow without end. The defaults fit a broker in 1 GiB of memory. Over a budget a request gets a
  // clear error (queue_full, resource_exhausted) and nothing else changes.
  size_t max_unfinished_tasks = 100000;            // queued, delayed and running, all services
  size_t max_unfinished_bytes = 256u << 20;        // their payloads
  size_t max_result_bytes_in_memory = 128u << 20;  // results of finished tasks kept for GET
  size_t max_waiters_per_task = 1000;              // GET ?wait on one task
  size_t max_waiters_per_client = 10000;           // GET ?wait and synchronous calls of one client
  size_t max_services = 1000;  // distinct service names (idle ones are forgotten)
  size_t max_services_per_worker = 64;
  size_t max_running_per_ready = 1024;  // attempts a READY may list as still running

  // Donor priority (docs/configuration.md, "Donor priority and fairness"). At equal task priority
  // an account's queued tasks go before those of accounts that contributed less recently, but no
  // task waits much more than `aging` behind them (0: no donor priority, round-robin only).
  Duration aging = Seconds(60);
  // What a second of an accepted result is worth, by the tier of the worker that ran it:
  // [0] GPU (tier 1), [1] CPU (tier 2), [2] storage (tier 3). Contributions (and credits) use it.
  std::array<double, 3> tier_weights = {3.0, 1.5, 1.0};
  // A contribution counts half as much after this long.
  Duration contribution_half_life = Seconds(3600);

  TierThresholds tiers;
  bool allow_simulated = false;
  std::vector<CatalogEntry> catalog;
  size_t max_recommendations = 3;
  std::map<std::string, ServiceLimit> service_limits;
  // Credits (--credits, catalog credit_multiplier / min_credits; docs/accounts.md).
  CreditConfig credits;
  // Reputation (config file "reputation"; docs/architecture.md, "Reputation").
  ReputationConfig reputation;
  // Tasks a worker on probation may run at once, whatever its slots: the capped share of work a
  // newcomer gets until its first results have shown what it is worth (0: no cap).
  uint32_t probation_slots = 2;
  // How long a sampled task waits for a worker of another account to run its replica before its
  // first result is returned unverified (a pool with one contributor cannot verify anything).
  Duration verify_wait = Seconds(30);
  proto::Limits limits;
};

// The built-in catalog: the services of the pool's design, by tier.
std::vector<CatalogEntry> DefaultCatalog();

// Reads a JSON config file (keys as in docs/configuration.md) over `config`. Unknown keys are
// errors so typos do not pass silently.
Status LoadConfigFile(const std::string& path, BrokerConfig* config);

// Checks values that would make the broker misbehave (zero intervals, liveness 0, ...).
Status Validate(const BrokerConfig& config);

}  // namespace rma::broker
