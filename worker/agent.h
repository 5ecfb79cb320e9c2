// Agent: the worker's control thread. It owns the DEALER socket to the broker and runs the protocol
// (docs/protocol.md): READY/WELCOME, heartbeats both ways, TASK -> executor -> RESULT, CANCEL,
// DRAIN and DISCONNECT, and reconnects with exponential back-off and jitter when the broker goes
// quiet. Results that finish while it is disconnected are kept and delivered after it registers
// again. Handlers run on the Executor's threads; the socket never leaves the control thread.
#pragma once

#include <zmq.hpp>

#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/signals.h"
#include "common/status.h"
#include "schemas/frames.h"
#include "worker/executor.h"
#include "worker/handler.h"

namespace rma::worker {

struct ServiceBinding {
  std::string name;
  std::string spec;  // as given on the command line, for logs
  std::shared_ptr<Handler> handler;
  bool healthy = true;  // advertised only while healthy
};

struct AgentOptions {
  std::string broker = "tcp://127.0.0.1:5555";
  std::string worker_id;
  std::string name;
  std::string token;
  uint32_t slots = 1;
  bool simulated = false;
  proto::Capabilities capabilities;
  // Used until WELCOME carries the broker's interval and liveness.
  Duration heartbeat = Seconds(5);
  uint32_t liveness = 3;
  Duration reconnect_min = Ms(250);
  Duration reconnect_max = Seconds(30);
  // After a SIGTERM/SIGINT, in-flight tasks get this long to finish before they are cancelled.
  Duration drain_grace = Seconds(30);
  // Handler for generic services (gpu-worker, cpu-worker, processing) the worker did not list
  // itself.
  std::shared_ptr<Handler> generic_handler;
  proto::Limits limits;
};

class Agent {
 public:
  Agent(AgentOptions options, std::vector<ServiceBinding> services, const Clock* clock);
  ~Agent();

  // Runs until the agent has drained after a signal (Ok), or the broker refused it for good (an
  // error). A second signal while draining cancels what is left and returns at once.
  Status Run(SignalWatcher& signals);

 private:
  struct InFlight {
    uint32_t attempt = 0;
    std::shared_ptr<CancelToken> cancel;
    bool finished = false;  // result waiting to be delivered
  };

  void Connect(Time now);
  void SendReady(Time now);
  void Send(Time now, proto::OutMessage& message);
  void OnMessage(Time now, const proto::InMessage& msg);
  void OnTask(Time now, proto::TaskAssignment task);
  void OnResults(Time now, std::vector<proto::TaskResult> results);
  void FlushResults(Time now);
  void StartDrain(Time now);
  void CancelAll(const std::string& reason);
  void ScheduleReconnect(Time now, std::string_view why);
  std::vector<proto::ServiceInfo> Manifest() const;
  Duration DeadAfter() const { return heartbeat_ * liveness_; }

  AgentOptions options_;
  std::vector<ServiceBinding> services_;
  const Clock* clock_;
  zmq::context_t context_;
  std::unique_ptr<zmq::socket_t> socket_;
  Executor executor_;
  proto::Decoder decoder_;
  std::mt19937_64 rng_;

  bool registered_ = false;  // WELCOME received on the current connection
  bool draining_ = false;    // a signal or the broker asked us to stop taking work
  Duration heartbeat_;
  uint32_t liveness_;
  Time last_heard_{};
  Time last_sent_{};
  Time registering_since_{};
  std::optional<Time> reconnect_at_;
  Duration backoff_;
  uint32_t reconnects_ = 0;
  std::optional<Time> drain_deadline_;
  bool fatal_ = false;
  std::string fatal_reason_;

  std::map<TaskId, InFlight> in_flight_;
  std::vector<proto::TaskResult> undelivered_;
};

}  // namespace rma::worker
