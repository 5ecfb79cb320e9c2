// The default catalog and the validation of settings (no I/O: config_file.cc reads the JSON file);
// see config.h and docs/configuration.md.
#include "broker/config.h"

namespace rma::broker {

std::vector<CatalogEntry> DefaultCatalog() {
  // The services of the pool's design. Images are the upstream ones a volunteer would run next to
  // the agent.
  return {
      {"vllm", 1, "vllm/vllm-openai:latest", 8000, 16, 0},
      {"rag", 1, "rma/rag:latest", 8102, 8, 0},
      {"vision", 1, "rma/vision:latest", 8104, 8, 0},
      {"embeddings", 2, "rma/embeddings:latest", 8103, 0, 4},
      {"ocr", 2, "rma/ocr:latest", 8105, 0, 4},
      {"ner", 2, "rma/ner:latest", 8106, 0, 4},
      {"chromadb", 3, "chromadb/chroma:latest", 8000, 0, 1},
      {"redis", 3, "redis:7", 6379, 0, 0.5},
      {"postgres", 3, "postgres:15", 5432, 0, 1},
      {"upload", 3, "rma/upload:latest", 8107, 0, 0.5},
  };
}

Status Validate(const BrokerConfig& c) {
  if (c.heartbeat_interval < Ms(1))
    return Status::InvalidArgument("heartbeat interval must be at least 1 ms");
  if (c.liveness < 1) return Status::InvalidArgument("liveness must be at least 1");
  if (c.default_max_attempts < 1)
    return Status::InvalidArgument("default max attempts must be at least 1");
  if (c.default_timeout < Ms(1))
    return Status::InvalidArgument("default timeout must be at least 1 ms");
  if (c.max_timeout < c.default_timeout)
    return Status::InvalidArgument("max timeout is below the default timeout");
  if (c.max_queue_time < Ms(1))
    return Status::InvalidArgument("max queue time must be at least 1 ms");
  if (c.verify_wait < Ms(1)) return Status::InvalidArgument("verify wait must be at least 1 ms");
  if (c.retry_backoff_max < c.retry_backoff_base) {
    return Status::InvalidArgument("retry back-off max is below its base");
  }
  if (c.tiers.cpu_min_cores < 1) return Status::InvalidArgument("tier 2 needs at least 1 core");
  if (c.max_unfinished_tasks < 1 || c.max_unfinished_bytes < 1 || c.max_waiters_per_task < 1 ||
      c.max_waiters_per_client < 1 || c.max_services < 16 || c.max_services_per_worker < 1) {
    return Status::InvalidArgument(
        "budgets must be at least 1 (max_services at least 16, for the built-in ones)");
  }
  if (c.aging < Duration(0)) return Status::InvalidArgument("aging must not be negative");
  if (c.contribution_half_life < Seconds(1))
    return Status::InvalidArgument("contribution half-life must be at least 1 s");
  for (double w : c.tier_weights) {
    if (!(w >= 0)) return Status::InvalidArgument("tier weights must be non-negative numbers");
  }
  if (c.max_queued_per_service < 1)
    return Status::InvalidArgument("max queued per service must be at least 1");
  return Status::Ok();
}

}  // namespace rma::broker
