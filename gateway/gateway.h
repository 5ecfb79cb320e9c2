// Gateway: the HTTP front of the pool (Pistache). It turns requests into broker requests through
// one BrokerClient and answers when the broker does, without ever blocking a reactor thread: a
// waiting request parks its ResponseWriter and the answer is written from the BrokerClient's
// thread. It keeps no task state of its own, so several gateways can serve one broker and a restart
// loses nothing.
//
// Threads: Pistache's reactor threads run onRequest; the BrokerClient thread runs answer callbacks.
// Writers are never touched by two threads at once (a reactor thread hands a writer over and
// forgets it).
#pragma once

#include <pistache/endpoint.h>

#include <atomic>
#include <memory>
#include <string>

#include "common/clock.h"
#include "common/status.h"
#include "gateway/broker_client.h"

namespace rma::gateway {

struct GatewayOptions {
  std::string listen =
      "0.0.0.0:8080";  // HOST:PORT; port 0 picks a free one (read it back with port())
  size_t threads = 2;
  size_t max_body_bytes = 16u << 20;
  Duration submit_timeout = Seconds(10);        // how long to wait for ACCEPTED
  Duration default_call_timeout = Seconds(30);  // synchronous service calls
  Duration max_call_timeout = Seconds(300);
  Duration max_wait = Seconds(300);  // GET ?wait=S upper bound
};

struct ApiContext;

class Gateway {
 public:
  Gateway(GatewayOptions options, BrokerClientOptions broker);
  ~Gateway();
  Gateway(const Gateway&) = delete;
  Gateway& operator=(const Gateway&) = delete;

  // Connects to the broker and starts serving HTTP.
  Status Start();
  uint16_t port() const;
  // Stops taking requests, fails what is still waiting, and joins every thread.
  void Stop();

 private:
  GatewayOptions options_;
  std::shared_ptr<ApiContext> context_;
  std::unique_ptr<Pistache::Http::Endpoint> endpoint_;
  bool started_ = false;
};

}  // namespace rma::gateway
