// See monitor.h.
#include "worker/monitor.h"

#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>

namespace rma::worker {

ManifestTracker::ManifestTracker(const std::vector<ServiceBinding>& services,
                                 uint32_t failures_to_withdraw)
    : failures_to_withdraw_(std::max<uint32_t>(1, failures_to_withdraw)) {
  for (const ServiceBinding& s : services) {
    Entry e;
    e.name = s.name;
    e.kind = std::string(s.handler->kind());
    e.probed = s.handler->probed();
    e.models = s.models;
    std::sort(e.models.begin(), e.models.end());
    e.models.erase(std::unique(e.models.begin(), e.models.end()), e.models.end());
    e.discover = s.models.empty() && s.handler->lists_models();
    entries_.push_back(std::move(e));
  }
}

std::optional<std::string> ManifestTracker::Observe(size_t index, const Status& result) {
  Entry& e = entries_[index];
  if (!e.probed) return std::nullopt;
  if (result.ok()) {
    e.failures = 0;
    if (e.up) return std::nullopt;
    e.up = true;
    e.reported = false;
    return "service '" + e.name + "' answers its health probe: advertised";
  }
  ++e.failures;
  if (e.up && e.failures >= failures_to_withdraw_) {
    e.up = false;
    e.reported = true;
    return "service '" + e.name + "' failed " + std::to_string(e.failures) +
           " health probe(s) in a row (" + result.message() + "): withdrawn";
  }
  if (!e.up && !e.reported) {
    e.reported = true;
    return "service '" + e.name + "' does not answer its health probe (" + result.message() +
           "): not advertised until it does";
  }
  return std::nullopt;
}

std::optional<std::string> ManifestTracker::ObserveModels(
    size_t index, const Result<std::vector<std::string>>& result) {
  Entry& e = entries_[index];
  if (!e.discover) return std::nullopt;
  if (result.ok()) {
    e.models_error = StatusCode::kOk;
    if (*result == e.models) return std::nullopt;
    e.models = *result;
    std::string names;
    for (const std::string& m : e.models) names += (names.empty() ? "" : ", ") + m;
    return "service '" + e.name + "' serves " + std::to_string(e.models.size()) + " model(s): [" +
           names + "]";
  }
  const StatusCode code = result.status().code();
  const bool no_list = code == StatusCode::kNotFound || code == StatusCode::kInvalidArgument;
  const bool changed = no_list && !e.models.empty();
  if (no_list) e.models.clear();
  if (code == e.models_error && !changed) return std::nullopt;  // said already
  e.models_error = code;
  return "service '" + e.name + "': " + result.status().message() +
         (no_list ? ": advertised without models"
                  : ": its models stay as last seen (" + std::to_string(e.models.size()) + ")");
}

std::vector<proto::ServiceInfo> ManifestTracker::Advertised() const {
  std::vector<proto::ServiceInfo> out;
  for (const Entry& e : entries_) {
    if (!e.probed || e.up) out.push_back({e.name, e.kind, e.models});
  }
  return out;
}

Monitor::Monitor(std::vector<ServiceBinding> services, MonitorOptions options,
                 std::unique_ptr<Sampler> sampler)
    : services_(std::move(services)),
      options_(options),
      sampler_(std::move(sampler)),
      tracker_(services_, options_.failures_to_withdraw),
      wake_fd_(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {
  RMA_CHECK(wake_fd_ >= 0) << "eventfd failed";
  for (size_t i = 0; i < tracker_.size(); ++i) has_probes_ = has_probes_ || tracker_.probed(i);
  snapshot_.manifest = tracker_.Advertised();
  snapshot_.probed = !has_probes_;
}

Monitor::~Monitor() {
  Stop();
  close(wake_fd_);
}

void Monitor::Start() {
  RMA_CHECK(!thread_.joinable()) << "Monitor started twice";
  thread_ = std::thread([this] { Loop(); });
}

void Monitor::Stop() {
  {
    MutexLock lock(&mu_);
    stopping_ = true;
  }
  cv_.SignalAll();
  if (thread_.joinable()) thread_.join();
}

MonitorSnapshot Monitor::Take() {
  uint64_t drained = 0;
  (void)!read(wake_fd_, &drained, sizeof drained);
  MutexLock lock(&mu_);
  return snapshot_;
}

void Monitor::RunRound() {
  for (size_t i = 0; i < services_.size(); ++i) {
    if (!tracker_.probed(i)) continue;
    {
      // Each probe may take its timeout: do not make Stop() wait for the rest of the round.
      MutexLock lock(&mu_);
      if (stopping_) return;
    }
    Status health = services_[i].handler->CheckHealth();
    if (auto change = tracker_.Observe(i, health)) {
      if (health.ok()) {
        spdlog::info("{}", *change);
      } else {
        spdlog::warn("{}", *change);
      }
    }
    // The model list of a backend that answers, each round: a model loaded or unloaded since shows
    // in the next manifest.
    if (health.ok() && tracker_.discovers_models(i)) {
      auto models = services_[i].handler->ListModels();
      if (auto change = tracker_.ObserveModels(i, models)) {
        if (models.ok()) {
          spdlog::info("{}", *change);
        } else {
          spdlog::warn("{}", *change);
        }
      }
    }
  }
  Readings readings = sampler_ ? sampler_->Sample() : Readings{};
  {
    MutexLock lock(&mu_);
    snapshot_.manifest = tracker_.Advertised();
    snapshot_.readings = readings;
    snapshot_.probed = true;
  }
  uint64_t one = 1;
  (void)!write(wake_fd_, &one, sizeof one);
}

void Monitor::Loop() {
  for (;;) {
    RunRound();
    const auto deadline = std::chrono::steady_clock::now() + options_.interval;
    MutexLock lock(&mu_);
    while (!stopping_ && cv_.WaitUntil(mu_, deadline)) {
    }
    if (stopping_) return;
  }
}

}  // namespace rma::worker
