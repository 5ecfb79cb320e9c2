// The worker's monitor: which services may be advertised, and the machine readings heartbeats
// carry.
//
// ManifestTracker is the pure part: it turns health-probe results into the manifest (services
// without a probe are always in it; a probed service joins after one good probe and leaves after
// `failures_to_withdraw` failed probes in a row) and says what changed, for the log. It also keeps
// each service's models: the configured ones, or, for a service configured without models whose
// handler can list them (http), what the backend's model list said at its last good probe; a change
// in that list changes the manifest, which the session sends the broker again (MANIFEST).
//
// Monitor runs the probes and the Sampler on a thread of its own, so a slow backend or a slow
// nvidia-smi never delays the control thread. After each round it publishes a snapshot and makes
// wake_fd() readable; the control thread (Agent) takes the snapshot and sends MANIFEST when the
// manifest differs from what the broker has.
#pragma once

#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "common/mutex.h"
#include "common/status.h"
#include "protocol/messages.h"
#include "worker/detect.h"
#include "worker/handler.h"

namespace rma::worker {

// A configured service: its name, how it runs, the spec it came from (for logs), and the models
// it serves as configured (empty: asked of the backend when the handler can list them).
struct ServiceBinding {
  std::string name;
  std::string spec;
  std::shared_ptr<Handler> handler;
  std::vector<std::string> models;
};

class ManifestTracker {
 public:
  ManifestTracker(const std::vector<ServiceBinding>& services, uint32_t failures_to_withdraw);

  // Records probe `result` of service `index`; returns a line for the log when the service joins
  // or leaves the manifest, or on its first failed probe (so a backend that is down at start-up
  // is reported once, not every interval).
  std::optional<std::string> Observe(size_t index, const Status& result);
  // Records what the backend's model list said (after a good health probe); returns a line for the
  // log when the advertised models change, or on the first failure of a kind (not every round).
  // An answer without a list (NotFound, InvalidArgument) means no models; other errors keep the
  // models last seen.
  std::optional<std::string> ObserveModels(size_t index,
                                           const Result<std::vector<std::string>>& result);
  // Whether service `index` asks its backend for its models.
  bool discovers_models(size_t index) const { return entries_[index].discover; }
  // The services to advertise now, in configuration order.
  std::vector<proto::ServiceInfo> Advertised() const;
  size_t size() const { return entries_.size(); }
  bool probed(size_t index) const { return entries_[index].probed; }

 private:
  struct Entry {
    std::string name;
    std::string kind;
    bool probed = false;
    bool up = false;
    bool reported = false;  // a failure was logged since the last change
    uint32_t failures = 0;
    std::vector<std::string> models;  // configured, or discovered
    bool discover = false;
    StatusCode models_error = StatusCode::kOk;  // of the last model list asked for (logged once)
  };
  std::vector<Entry> entries_;
  uint32_t failures_to_withdraw_;
};

struct MonitorOptions {
  Duration interval = Seconds(5);
  uint32_t failures_to_withdraw = 2;
};

struct MonitorSnapshot {
  std::vector<proto::ServiceInfo> manifest;
  Readings readings;
  bool probed = false;  // at least one probe round has finished
};

class Monitor {
 public:
  Monitor(std::vector<ServiceBinding> services, MonitorOptions options,
          std::unique_ptr<Sampler> sampler);
  ~Monitor();
  Monitor(const Monitor&) = delete;
  Monitor& operator=(const Monitor&) = delete;

  // Starts the thread; its first round begins at once.
  void Start();
  void Stop();

  // Whether any service waits for a probe before it can be advertised.
  bool has_probes() const { return has_probes_; }
  // Readable after each round; Take() clears it.
  int wake_fd() const { return wake_fd_; }
  MonitorSnapshot Take();

  // One round on the calling thread: probe every probed service, sample the machine, publish.
  // The thread calls it every interval; tests call it directly.
  void RunRound();

 private:
  void Loop();

  const std::vector<ServiceBinding> services_;
  const MonitorOptions options_;
  std::unique_ptr<Sampler> sampler_;  // monitor thread only
  ManifestTracker tracker_;           // monitor thread only
  bool has_probes_ = false;
  int wake_fd_ = -1;

  Mutex mu_;
  CondVar cv_;
  bool stopping_ RMA_GUARDED_BY(mu_) = false;
  MonitorSnapshot snapshot_ RMA_GUARDED_BY(mu_);
  std::thread thread_;
};

}  // namespace rma::worker
