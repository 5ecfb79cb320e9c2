// Gateway: the HTTP front of the pool. Pistache accepts connections and frames requests; the
// gateway routes them (router.h), checks keys, rate limits and CORS, turns them into broker
// requests through one BrokerClient and writes the answers itself (socket_writer.h explains why not
// through Pistache). A request that waits for the broker never holds a reactor thread: its answer
// is written from the BrokerClient thread through a duplicate of the connection's socket. The
// gateway keeps no task state, so several gateways can serve one broker and a restart loses
// nothing.
//
// Threads: Pistache's reactor threads parse and route requests and answer the immediate ones; the
// BrokerClient thread runs answer callbacks and writes deferred answers; the SocketWriter thread
// finishes answers slow readers could not take at once. Shared state (keys, CORS, options) is
// immutable; metrics are atomics; rate-limit buckets sit behind their own mutex.
#pragma once

#include <memory>
#include <string>
#include <thread>

#include "common/clock.h"
#include "common/mutex.h"
#include "common/status.h"
#include "gateway/broker_client.h"
#include "gateway/options.h"

namespace Pistache::Http {
class Endpoint;
}

namespace rma::gateway {

struct ApiContext;

class Gateway {
 public:
  Gateway(GatewayOptions options, BrokerClientOptions broker);
  ~Gateway();
  Gateway(const Gateway&) = delete;
  Gateway& operator=(const Gateway&) = delete;

  // Validates the options, connects to the broker and starts serving HTTP.
  Status Start();
  uint16_t port() const;
  // Stops taking requests, answers what is still waiting (503) and joins every thread.
  void Stop();

 private:
  // How often the broker's API keys are asked for (broker_keys.h): a revoked key stops working
  // on this gateway about this long after the broker revoked it (SPEC: at most 5 s).
  static constexpr Duration kKeyPollInterval = Seconds(1);
  void PollBrokerKeys();

  GatewayOptions options_;
  BrokerClientOptions broker_options_;
  std::thread key_poller_;
  Mutex poll_mu_;
  CondVar poll_cv_;
  bool stopping_ RMA_GUARDED_BY(poll_mu_) = false;
  std::shared_ptr<ApiContext> context_;
  std::unique_ptr<Pistache::Http::Endpoint> endpoint_;
  bool started_ = false;
};

}  // namespace rma::gateway
