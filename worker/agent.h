// Agent: the worker's control thread. It owns the DEALER socket to the broker, the Executor that
// runs tasks and the Monitor that probes services, and feeds everything that happens to the
// Session (session.h), which decides what to do: the Agent is only the I/O around it. One poll
// loop waits on the signal descriptor, the executor's and the monitor's wake-up descriptors and
// the socket; the socket never leaves this thread.
#pragma once

#include <zmq.hpp>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/signals.h"
#include "common/status.h"
#include "protocol/codec.h"
#include "protocol/curve_keys.h"
#include "protocol/frames.h"
#include "worker/executor.h"
#include "worker/monitor.h"
#include "worker/session.h"

namespace rma::worker {

struct AgentOptions {
  std::string broker = "tcp://127.0.0.1:5555";
  SessionOptions session;
  MonitorOptions monitor;
  // Readings for heartbeats (null: zeros).
  std::unique_ptr<Sampler> sampler;
  // When leaving after a drain, queued results and the goodbye get this long to reach the broker.
  Duration goodbye_linger = Seconds(2);
  // CURVE (--broker-key): this worker's keypair and the broker's public key it pins.
  std::optional<proto::CurveKeypair> curve;
  std::string broker_key;
};

class Agent final : private SessionIo {
 public:
  Agent(AgentOptions options, const std::vector<ServiceBinding>& services, const Clock* clock);
  ~Agent() override;

  // Runs until the agent has drained after a signal or a second signal came (Ok), or the broker
  // refused it for good (an error).
  Status Run(SignalWatcher& signals);

 private:
  Status Connect() override;
  void Close(Duration linger) override;
  // Encodes the session's typed messages here, at the socket.
  Status Send(const std::vector<proto::ToBrokerMessage>& batch) override;
  void Execute(proto::TaskAssignment task, std::shared_ptr<Handler> handler,
               std::shared_ptr<CancelToken> cancel) override;
  void ReadSocket(Time now);
  // Hands the results of inline tasks (Handler::runs_inline) to the session: once per batch of
  // messages read, so they leave in one RESULT message.
  void DeliverInline(Time now);
  // Handshake failures the socket's monitor reports (a wrong token): told to the session.
  void ReadMonitor(Time now);

  const std::string broker_;
  const std::string token_;
  const std::optional<proto::CurveKeypair> curve_;
  const std::string broker_key_;
  // Handshakes ended without a reason since the last that succeeded (see ReadMonitor).
  static constexpr int kBrokenHandshakesToGiveUp = 3;
  int broken_handshakes_ = 0;
  const proto::Limits limits_;
  proto::Decoder decoder_;
  const Duration goodbye_linger_;
  const Clock* clock_;
  zmq::context_t context_;
  std::unique_ptr<zmq::socket_t> socket_;
  std::unique_ptr<zmq::socket_t> monitor_socket_;  // events of socket_ (handshake failures)
  int monitor_generation_ = 0;
  Executor executor_;
  std::vector<proto::TaskResult> inline_results_;  // inline tasks run but not yet delivered
  Monitor monitor_;
  // Last: destroyed first, cancelling what runs, so the executor's threads can be joined.
  Session session_;
};

}  // namespace rma::worker
