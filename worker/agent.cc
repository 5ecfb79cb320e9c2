// See agent.h.
#include "worker/agent.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstring>
#include <random>

#include "protocol/handshake.h"

namespace rma::worker {

namespace {
// Messages read from the socket per wake-up before timers and other events get their turn.
constexpr int kReadBudget = 256;
// Inline handlers run on the control thread only for payloads up to this size: copying and
// encoding a large result there would delay heartbeats, and a batch of large results answered at
// once would reach the broker (and the callers) as one burst.
constexpr size_t kMaxInlinePayloadBytes = 64 * 1024;
}  // namespace

Agent::Agent(AgentOptions options, const std::vector<ServiceBinding>& services, const Clock* clock)
    : broker_(options.broker),
      token_(options.session.token),
      curve_(options.curve),
      broker_key_(options.broker_key),
      limits_(options.session.limits),
      decoder_(limits_),
      goodbye_linger_(options.goodbye_linger),
      clock_(clock),
      context_(1),
      executor_(options.session.slots),
      monitor_(services, options.monitor, std::move(options.sampler)),
      session_(
          [&] {
            SessionOptions s = std::move(options.session);
            s.broker = broker_;
            if (curve_) s.public_key = curve_->public_key;
            return s;
          }(),
          services, this, std::random_device{}()) {}

Agent::~Agent() = default;

Status Agent::Connect() {
  Close(Duration(0));
  try {
    auto socket = std::make_unique<zmq::socket_t>(context_, zmq::socket_type::dealer);
    proto::ConfigureSocket(*socket, limits_, /*is_router=*/false);
    // The credential goes in the handshake: a broker that does not accept it never sees a message.
    // With CURVE the link is encrypted too, and this worker's key is its identity.
    if (curve_) {
      proto::UseCurveClient(*socket, *curve_, broker_key_);
    } else {
      proto::UsePlainCredential(*socket, "worker", token_);
    }
    // Handshake failures (a refused token) are only visible as socket events.
    // With several brokers, a closed connection (a killed leader) means moving on at once.
    monitor_socket_ = proto::MonitorHandshakes(
        context_, *socket, "worker-" + std::to_string(++monitor_generation_),
        /*disconnects=*/broker_.find(',') != std::string::npos);
    socket->connect(session_.broker());
    socket_ = std::move(socket);
    return Status::Ok();
  } catch (const zmq::error_t& e) {
    if (e.num() == EINVAL || e.num() == EPROTONOSUPPORT || e.num() == ENOCOMPATPROTO) {
      return Status::InvalidArgument(e.what());
    }
    return Status::Unavailable(e.what());
  }
}

void Agent::Close(Duration linger) {
  if (socket_ && monitor_socket_) proto::StopMonitor(*socket_);
  monitor_socket_.reset();
  if (!socket_) return;
  try {
    socket_->set(zmq::sockopt::linger, static_cast<int>(ToMs(linger)));
  } catch (const zmq::error_t&) {
    // Closing anyway; the queued messages are lost, which the session already accounts for.
  }
  socket_.reset();
}

Status Agent::Send(const std::vector<proto::ToBrokerMessage>& batch) {
  if (!socket_) return Status::Unavailable("not connected");
  if (batch.empty()) return Status::Ok();
  proto::OutMessage out(proto::CommandOf(batch.front()));
  out.set_packed(session_.broker_reads_packed());
  for (const proto::ToBrokerMessage& m : batch) {
    std::string body;
    (void)proto::EncodeMessage(m, &body);
    if (!body.empty()) out.AddBody(std::move(body));
  }
  return std::move(out).Send(*socket_);
}

void Agent::Execute(proto::TaskAssignment task, std::shared_ptr<Handler> handler,
                    std::shared_ptr<CancelToken> cancel) {
  // Output streams (PARTIAL) whenever the backend streams it: a synchronous caller, or whoever
  // watches an asynchronous task (GET /api/tasks/{id}/events), sees it as it comes; the broker
  // drops chunks nobody waits for.
  Executor::Job job{std::move(task), std::move(handler), std::move(cancel), /*stream=*/true};
  if (job.handler->runs_inline() && job.task.payload.size() <= kMaxInlinePayloadBytes) {
    // Called from the session, which must not be re-entered: the result is delivered by
    // DeliverInline once the current batch of messages is handled.
    inline_results_.push_back(Executor::RunOne(job));
    return;
  }
  executor_.Submit(std::move(job));
}

void Agent::DeliverInline(Time now) {
  if (inline_results_.empty()) return;
  session_.OnResults(now, std::exchange(inline_results_, {}));
}

void Agent::ReadSocket(Time now) {
  proto::InMessage msg;
  for (int i = 0; i < kReadBudget && socket_ && !session_.finished(); ++i) {
    auto got = proto::ReceiveMessage(*socket_, /*has_identity=*/false, limits_, &msg);
    if (!got.ok()) {
      session_.OnUnreadable(now, got.status());
      continue;
    }
    if (!*got) return;
    // Bodyless commands and a DISCONNECT without a reason are one message with no body.
    const size_t bodies = std::max<size_t>(msg.body_count(), 1);
    for (size_t b = 0; b < bodies && !session_.finished(); ++b) {
      proto::ToWorkerMessage m;
      Status s = decoder_.DecodeToWorker(
          msg.command(), b < msg.body_count() ? msg.body(b) : std::string_view(), &m);
      if (!s.ok()) {
        session_.OnUnreadable(now, s.WithContext(proto::CommandName(msg.command())));
        continue;
      }
      session_.OnMessage(now, std::move(m));
    }
  }
}

void Agent::ReadMonitor(Time now) {
  for (int i = 0; i < 16 && monitor_socket_; ++i) {
    std::optional<proto::HandshakeEvent> event = proto::NextHandshakeEvent(*monitor_socket_);
    if (!event) return;
    using Kind = proto::HandshakeEvent::Kind;
    if (event->kind == Kind::kSucceeded) {
      broken_handshakes_ = 0;
    } else if (event->kind == Kind::kDisconnected) {
      session_.OnDisconnected(now);
    } else if (event->kind == Kind::kBroken) {
      // A broker stopping mid-handshake looks the same once; a wrong --broker-key every time.
      if (curve_ && ++broken_handshakes_ >= kBrokenHandshakesToGiveUp) {
        session_.OnHandshakeRefused(
            now,
            "the broker ends every CURVE handshake: check --broker-key (the broker's public key, "
            "its .pub file) and that the broker runs with --curve-secret-file",
            /*permanent=*/true);
      }
    } else if (event->kind == Kind::kRefused) {
      // The ZAP status: 400 refused (for good), 300 come back later.
      std::string why;
      if (!event->permanent()) {
        why = "the broker is busy authenticating; retrying";
      } else if (curve_) {
        why = "the broker refused this worker's key " + curve_->public_key +
              ": enrol it with `rma-worker --enrol TOKEN` (a revoked key needs `--new-key` too), "
              "or ask the pool's operator to admit it (the broker's --worker-keys-file)";
      } else {
        why =
            "the broker refused this worker's token: check --token/--token-file (the "
            "broker's --worker-token)";
      }
      session_.OnHandshakeRefused(now, why, event->permanent());
    } else {
      // A mismatch of mechanisms: settings, not luck: retrying cannot help.
      std::string why;
      if (curve_) {
        why =
            "the broker does not take CURVE on this endpoint (it has no --curve-secret-file), "
            "but this worker has --broker-key";
      } else if (token_.empty()) {
        why =
            "the broker wants a credential: a worker token (--token or --token-file) or, on a "
            "CURVE broker, its public key (--broker-key)";
      } else {
        why = "the broker does not expect a worker token, but this worker sends one";
      }
      session_.OnHandshakeRefused(now, why, /*permanent=*/true);
    }
  }
}

Status Agent::Run(SignalWatcher& signals) {
  monitor_.Start();
  session_.Start(clock_->Now(), monitor_.Take());
  while (!session_.finished()) {
    Time now = clock_->Now();
    int64_t wait_ms = std::clamp<int64_t>(ToMs(session_.NextWakeup(now) - now) + 1, 0, 1000);
    zmq::pollitem_t items[5] = {
        {nullptr, signals.fd(), ZMQ_POLLIN, 0},
        {nullptr, executor_.wake_fd(), ZMQ_POLLIN, 0},
        {nullptr, monitor_.wake_fd(), ZMQ_POLLIN, 0},
        {socket_ ? socket_->handle() : nullptr, 0, ZMQ_POLLIN, 0},
        {monitor_socket_ ? monitor_socket_->handle() : nullptr, 0, ZMQ_POLLIN, 0}};
    const int count = socket_ ? (monitor_socket_ ? 5 : 4) : 3;
    try {
      zmq::poll(items, static_cast<size_t>(count), std::chrono::milliseconds(wait_ms));
    } catch (const zmq::error_t& e) {
      if (e.num() == EINTR) continue;
      monitor_.Stop();
      return Status::Internal(std::string("poll failed: ") + e.what());
    }
    now = clock_->Now();
    if (items[0].revents & ZMQ_POLLIN) {
      while (auto sig = signals.Take()) session_.OnSignal(now, *sig);
    }
    if (items[1].revents & ZMQ_POLLIN) {
      Executor::Taken taken = executor_.TakeAll();
      session_.OnPartials(now, std::move(taken.partials));  // each stream before its RESULT
      session_.OnResults(now, std::move(taken.finished));
    }
    if (items[2].revents & ZMQ_POLLIN) session_.OnMonitor(now, monitor_.Take());
    // The socket may have been replaced meanwhile: its readiness is re-checked by reading.
    if (socket_ && (items[3].revents & ZMQ_POLLIN)) ReadSocket(now);
    if (count == 5 && (items[4].revents & ZMQ_POLLIN)) ReadMonitor(now);
    DeliverInline(now);
    session_.OnTick(now);
  }
  monitor_.Stop();
  Status result = *session_.finished();
  // Results and the goodbye are queued in the socket: give them a moment to leave.
  Close(result.ok() ? goodbye_linger_ : Duration(0));
  context_.close();
  return result;
}

}  // namespace rma::worker
