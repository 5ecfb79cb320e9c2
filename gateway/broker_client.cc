// See broker_client.h.
#include "gateway/broker_client.h"

#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <utility>

#include "common/check.h"
#include "protocol/handshake.h"

namespace rma::gateway {

using proto::Command;

namespace {
constexpr size_t kMaxBatch = 256;
// Messages, and bodies of packed messages, handled per loop iteration before pings, deadlines and
// the outbox get their turn: a flood of streamed chunks (a packed message holds up to 256) must
// not keep the loop from pinging the broker or giving up on requests for seconds.
constexpr int kReadBudget = 1024;
constexpr size_t kBodyBudget = 1024;
// How long after a refused handshake the gateway tries a new connection (ZeroMQ will not).
constexpr Duration kReopenAfterRefusal = Seconds(5);
}  // namespace

BrokerClient::BrokerClient(BrokerClientOptions options)
    : options_(std::move(options)),
      clock_(options_.clock != nullptr ? *options_.clock : system_clock_),
      context_(1),
      decoder_([&] {
        // Answers come from the broker, which we trust more than HTTP clients, but they are still
        // bounded: admin documents of a large pool have long arrays.
        proto::Limits l = options_.limits;
        l.max_array = 1u << 20;
        l.max_map = 1u << 16;
        l.max_objects = 1u << 24;
        l.max_depth = 16;
        return l;
      }()),
      brokers_(proto::BrokerList::FromText(options_.endpoint)) {
  MutexLock lock(&mu_);
  current_endpoint_ = brokers_.current();
}

BrokerClient::~BrokerClient() { Stop(); }

Status BrokerClient::Start() {
  wake_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (wake_fd_ < 0) return Status::Internal("eventfd failed");
  thread_ = std::thread([this] { Loop(); });
  return Status::Ok();
}

void BrokerClient::Stop() {
  if (!thread_.joinable()) return;
  stop_.store(true);
  uint64_t one = 1;
  (void)!write(wake_fd_, &one, sizeof one);
  thread_.join();
  close(wake_fd_);
  wake_fd_ = -1;
}

void BrokerClient::Enqueue(Command command, uint64_t ref, std::string body, Duration timeout,
                           Callbacks cb, bool until_end) {
  if (stop_.load()) {
    cb.answer(Status::Unavailable("the gateway is stopping"));
    return;
  }
  {
    MutexLock lock(&mu_);
    queue_.push_back({command, ref, std::move(body), timeout, std::move(cb), until_end});
  }
  pending_count_.fetch_add(1, std::memory_order_relaxed);
  // One wake-up per batch, not per request: under load most requests find one already pending
  // (a system call saved per request, which is most of a request's cost on a VM).
  if (wake_pending_.exchange(true, std::memory_order_acq_rel)) return;
  uint64_t one = 1;
  (void)!write(wake_fd_, &one, sizeof one);
}

void BrokerClient::Deliver(uint64_t ref, Result<BrokerAnswer> answer) {
  auto it = pending_.find(ref);
  if (it == pending_.end()) return;  // already expired
  Pending& p = it->second;
  if (p.callbacks.stream && answer.ok() && std::holds_alternative<proto::Accepted>(*answer)) {
    // An announced call: its task id, not its end.
    return DeliverEvent(ref, StreamEvent(std::get<proto::Accepted>(std::move(*answer))));
  }
  if (p.callbacks.watch && p.callbacks.stream && answer.ok()) {
    auto* info = std::get_if<proto::TaskInfo>(&*answer);
    // A watched task's change; its end (or the end of the watch) is the answer.
    if (info != nullptr && !proto::IsTerminal(info->task.status)) {
      return DeliverEvent(ref, StreamEvent(std::move(*info)));
    }
  }
  if (p.until_end) {
    const bool accepted = answer.ok() && std::holds_alternative<proto::Accepted>(*answer);
    if (accepted && !p.accepted) {
      p.accepted = std::get<proto::Accepted>(std::move(*answer));
      return;  // its TASK_INFO follows
    }
    // Anything but the end after the acceptance (a deadline, an ERROR about the wait, the broker
    // lost): what is known is that the task was accepted.
    const bool end = answer.ok() && std::holds_alternative<proto::TaskInfo>(*answer);
    if (p.accepted && !end) answer = BrokerAnswer(*p.accepted);
  }
  AnswerCallback cb = std::move(p.callbacks.answer);
  pending_.erase(it);
  pending_count_.fetch_sub(1, std::memory_order_relaxed);
  try {
    cb(std::move(answer));
  } catch (const std::exception& e) {
    spdlog::error("answer callback threw: {}", e.what());
  }
}

void BrokerClient::DeliverEvent(uint64_t ref, StreamEvent event) {
  auto it = pending_.find(ref);
  if (it == pending_.end() || !it->second.callbacks.stream) return;  // ended, or does not stream
  try {
    it->second.callbacks.stream(std::move(event));
  } catch (const std::exception& e) {
    spdlog::error("stream callback threw: {}", e.what());
  }
}

void BrokerClient::FailAll(const std::string& why_unsent, const std::string& why_sent) {
  outbox_.clear();  // never sent, and now never will be: their requests are answered below
  std::vector<std::pair<uint64_t, bool>> refs;
  for (const auto& [ref, p] : pending_) refs.emplace_back(ref, p.sent);
  for (auto [ref, sent] : refs) {
    Deliver(ref, sent ? Status::DeadlineExceeded(why_sent) : Status::Unavailable(why_unsent));
  }
  deadlines_.clear();
}

void BrokerClient::ExpireDue(Time now) {
  while (!deadlines_.empty() && deadlines_.begin()->first <= now) {
    uint64_t ref = deadlines_.begin()->second;
    deadlines_.erase(deadlines_.begin());
    auto it = pending_.find(ref);
    if (it == pending_.end()) continue;
    // An unsent request's batch gives up no later than its deadline (GiveUp runs first), so every
    // request still here was sent.
    RMA_CHECK(it->second.sent) << "an unsent request reached its deadline";
    Deliver(ref, Status::DeadlineExceeded(
                     "the broker did not answer in time; the request was sent and its outcome is "
                     "unknown"));
  }
}

void BrokerClient::SendQueued(Time now) {
  std::vector<Outgoing> queued;
  {
    MutexLock lock(&mu_);
    queued.swap(queue_);
  }
  // Consecutive requests of one command become one multi-body message (a Batch), which goes to the
  // socket whole or not at all.
  for (Outgoing& o : queued) {
    if (!reachable_.load()) {
      pending_[o.ref] = Pending{now, std::move(o.callbacks), false, false, std::nullopt};
      Deliver(o.ref, Status::Unavailable("the broker is unreachable; the request was not sent"));
      continue;
    }
    const Time deadline = now + o.timeout;
    pending_[o.ref] = Pending{deadline, std::move(o.callbacks), false, o.until_end, std::nullopt};
    deadlines_.emplace(deadline, o.ref);
    if (outbox_.empty() || outbox_.back().closed || outbox_.back().message.command() != o.command ||
        outbox_.back().message.body_count() >= kMaxBatch) {
      if (!outbox_.empty()) outbox_.back().closed = true;
      outbox_.push_back(Batch{proto::OutMessage(o.command), {}, now + options_.send_grace, false});
      outbox_.back().message.set_packed(broker_reads_packed_);
    }
    Batch& b = outbox_.back();
    b.message.AddBody(std::move(o.body));
    b.refs.push_back(o.ref);
    b.give_up = std::min(b.give_up, deadline);
  }
  if (!outbox_.empty()) outbox_.back().closed = true;
  FlushOutbox();
}

void BrokerClient::FlushOutbox() {
  while (!outbox_.empty()) {
    Batch& b = outbox_.front();
    // On failure nothing left and the bodies are still in the message (frames.h).
    Status s = std::move(b.message).Send(*socket_);
    if (!s.ok()) {
      // Once per change, not per request: clients decide how often a down broker is tried.
      if (!send_failing_) spdlog::warn("cannot send to the broker yet: {}", s.message());
      send_failing_ = true;
      return;
    }
    if (send_failing_) spdlog::info("sending to the broker again");
    send_failing_ = false;
    for (uint64_t ref : b.refs) {
      auto it = pending_.find(ref);
      if (it != pending_.end()) it->second.sent = true;
    }
    outbox_.pop_front();
  }
}

void BrokerClient::GiveUp(Time now) {
  while (!outbox_.empty() && outbox_.front().give_up <= now) {
    std::vector<uint64_t> refs = std::move(outbox_.front().refs);
    outbox_.pop_front();
    for (uint64_t ref : refs) {
      Deliver(ref, Status::Unavailable("the broker is not connected; the request was not sent"));
    }
  }
  // A later batch may give up sooner (a shorter deadline): it is dropped, and its requests
  // answered, wherever it is in the queue — it was never sent.
  for (auto it = outbox_.begin(); it != outbox_.end();) {
    if (it->give_up > now) {
      ++it;
      continue;
    }
    std::vector<uint64_t> refs = std::move(it->refs);
    it = outbox_.erase(it);
    for (uint64_t ref : refs) {
      Deliver(ref, Status::Unavailable("the broker is not connected; the request was not sent"));
    }
  }
}

void BrokerClient::OnAnswer(const proto::InMessage& msg) {
  for (size_t i = 0; i < msg.body_count(); ++i) {
    std::string_view body = msg.body(i);
    auto decode = [&](auto message) {
      Status s = decoder_.Decode(body, &message);
      if (!s.ok()) {
        spdlog::warn("undecodable {} from the broker: {}", proto::CommandName(msg.command()),
                     s.message());
        return;
      }
      uint64_t ref = message.ref;
      Deliver(ref, BrokerAnswer(std::move(message)));
    };
    switch (msg.command()) {
      case Command::kAccepted:
        decode(proto::Accepted{});
        break;
      case Command::kTaskInfo:
        decode(proto::TaskInfo{});
        break;
      case Command::kTaskList:
        decode(proto::TaskList{});
        break;
      case Command::kAdminReply:
        decode(proto::AdminReply{});
        break;
      case Command::kError: {
        proto::Error e;
        if (Status st = decoder_.Decode(body, &e); !st.ok()) {
          spdlog::warn("undecodable ERROR from the broker: {}", st.message());
          break;
        }
        if (e.code == proto::kNotLeaderCode) {
          // A standby did nothing with the request: provably not done, so 503, and move on.
          not_leader_ = e.message;
          if (e.ref != 0) {
            Deliver(e.ref, Status::Unavailable("broker " + brokers_.current() +
                                               " is a standby; the pool is changing leader"));
          }
          break;
        }
        const uint64_t ref = e.ref;
        Deliver(ref, BrokerAnswer(std::move(e)));
        break;
      }
      case Command::kCallPartial: {
        proto::CallPartial partial;
        if (Status st = decoder_.Decode(body, &partial); !st.ok()) {
          spdlog::warn("undecodable PARTIAL from the broker: {}", st.message());
          break;
        }
        const uint64_t ref = partial.ref;
        DeliverEvent(ref, StreamEvent(std::move(partial)));
        break;
      }
      case Command::kHeartbeat: {
        proto::Heartbeat hb;
        if (decoder_.Decode(body, &hb).ok() && hb.packed && !broker_reads_packed_) {
          broker_reads_packed_ = true;
          spdlog::debug("the broker reads packed body frames");
        }
        break;
      }
      default:
        spdlog::debug("ignoring {} from the broker", proto::CommandName(msg.command()));
    }
  }
}

void BrokerClient::ReportHandshakeFailures() {
  while (std::optional<proto::HandshakeEvent> f = proto::NextHandshakeEvent(*handshakes_)) {
    using Kind = proto::HandshakeEvent::Kind;
    if (f->kind == Kind::kSucceeded) {
      broken_handshakes_ = 0;
      continue;
    }
    if (f->kind == Kind::kDisconnected) {
      disconnected_ = true;
      continue;
    }
    // A broker stopping mid-handshake ends one handshake; a wrong --broker-key ends them all.
    if (f->kind == Kind::kBroken && (!options_.curve || ++broken_handshakes_ < 3)) continue;
    // Refused for good: this socket will not connect again; try a new one in a while.
    if (f->kind != Kind::kRefused || f->status == 400) {
      reopen_at_ = std::min(reopen_at_, clock_.Now() + kReopenAfterRefusal);
    }
    // Say why once per kind of failure, not on every attempt.
    const int kind = f->kind == Kind::kMismatch ? 1
                     : f->kind == Kind::kBroken ? 4
                     : f->status == 400         ? 2
                                                : 3;
    if (kind == last_handshake_failure_) continue;
    last_handshake_failure_ = kind;
    if (kind == 4) {
      spdlog::error(
          "broker {} ends every CURVE handshake: check --broker-key (the broker's public key) and "
          "that the broker runs with --curve-secret-file and --client-keys-file",
          options_.endpoint);
    } else if (kind == 1 && options_.curve) {
      spdlog::error(
          "broker {} does not take CURVE on its client endpoint (it needs --curve-secret-file and "
          "--client-keys-file), but this gateway has --broker-key",
          options_.endpoint);
    } else if (kind == 2 && options_.curve) {
      spdlog::error(
          "broker {} refused this gateway's key {}: add it to the broker's --client-keys-file "
          "and SIGHUP the broker (this gateway tries again every 5 s)",
          options_.endpoint, options_.curve->public_key);
    } else if (kind == 1) {
      spdlog::error("broker {}: {}", options_.endpoint,
                    options_.secret.empty()
                        ? "it wants a client secret (--broker-secret-file; the broker's "
                          "--client-secret)"
                        : "it does not expect a client secret, but this gateway sends one");
    } else if (kind == 2) {
      spdlog::error(
          "broker {} refused this gateway's client secret: check --broker-secret-file "
          "(the broker's --client-secret)",
          options_.endpoint);
    } else {
      spdlog::warn("broker {} is busy authenticating; retrying", options_.endpoint);
    }
  }
}

void BrokerClient::OpenSocket() {
  if (socket_ && handshakes_) proto::StopMonitor(*socket_);
  handshakes_.reset();
  broker_reads_packed_ = false;  // a new connection may reach another broker
  socket_ = std::make_unique<zmq::socket_t>(context_, zmq::socket_type::dealer);
  proto::ConfigureSocket(*socket_, options_.limits, /*is_router=*/false);
  // Queue nothing for a broker that is not connected: a send then fails at once, so a request that
  // was not sent is known not to have been sent (503), instead of waiting in the socket to reach a
  // restarted broker after its client was told it failed.
  socket_->set(zmq::sockopt::immediate, true);
  if (options_.curve) {
    proto::UseCurveClient(*socket_, *options_.curve, options_.broker_key);
  } else {
    proto::UsePlainCredential(*socket_, "client", options_.secret);
  }
  handshakes_ =
      proto::MonitorHandshakes(context_, *socket_,
                               "gateway-" + std::to_string(reinterpret_cast<uintptr_t>(this)) +
                                   "-" + std::to_string(++socket_generation_),
                               /*disconnects=*/brokers_.several());
  socket_->connect(brokers_.current());
  opened_at_ = clock_.Now();
  MutexLock lock(&mu_);
  current_endpoint_ = brokers_.current();
}

void BrokerClient::SwitchBroker(Time now, const std::string& why, std::string_view hint) {
  const std::string left = brokers_.current();
  if (not_leader_) standby_in_round_ = true;
  if (brokers_.Next(hint)) {
    // A whole round without a leader: slow down. While standbys answer, a takeover is under way
    // and a leader is due within the lease: look again soon. With every broker down, back off.
    if (standby_in_round_) {
      hold_until_ = now + kStandbyRoundBackoff;
    } else {
      hold_until_ = now + round_backoff_;
      round_backoff_ = std::min<Duration>(round_backoff_ * 2, Seconds(2));
    }
    standby_in_round_ = false;
  }
  not_leader_.reset();
  disconnected_ = false;
  switches_.fetch_add(1, std::memory_order_relaxed);
  reachable_.store(false, std::memory_order_release);
  standby_.store(false, std::memory_order_release);
  spdlog::warn("broker {} {}; trying {}", left, why, brokers_.current());
  FailAll("broker " + left + " " + why + "; the request was not sent",
          "broker " + left + " " + why + " after the request was sent; its outcome is unknown");
  OpenSocket();
}

void BrokerClient::Loop() {
  OpenSocket();
  Time now = clock_.Now();
  Time last_heard = now;
  Time last_ping{};
  bool heard_once = false;
  proto::InMessage msg;
  const Duration dead_after = options_.heartbeat * options_.liveness;
  while (!stop_.load()) {
    now = clock_.Now();
    Time next = now + options_.heartbeat;
    if (!deadlines_.empty()) next = std::min(next, deadlines_.begin()->first);
    // Until the broker first answers, ping it often: that answer opens the gateway for requests.
    const Duration ping_every =
        heard_once ? options_.heartbeat : std::min<Duration>(options_.heartbeat, Ms(50));
    next = std::min(next, last_ping + ping_every);
    next = std::min(next, reopen_at_);
    int64_t wait_ms = std::clamp<int64_t>(ToMs(next - now) + 1, 0, 1000);
    if (!outbox_.empty()) next = std::min(next, outbox_.front().give_up);
    // While batches wait for the socket, wake when it can take one (ZMQ_IMMEDIATE: once connected).
    const short socket_events = outbox_.empty() ? ZMQ_POLLIN : ZMQ_POLLIN | ZMQ_POLLOUT;
    zmq::pollitem_t items[3] = {{socket_->handle(), 0, socket_events, 0},
                                {nullptr, wake_fd_, ZMQ_POLLIN, 0},
                                {handshakes_ ? handshakes_->handle() : nullptr, 0, ZMQ_POLLIN, 0}};
    try {
      zmq::poll(items, handshakes_ ? 3 : 2, std::chrono::milliseconds(wait_ms));
    } catch (const zmq::error_t& e) {
      if (e.num() == EINTR) continue;
      spdlog::error("broker client poll failed: {}", e.what());
      break;
    }
    now = clock_.Now();
    if (handshakes_ && (items[2].revents & ZMQ_POLLIN)) ReportHandshakeFailures();
    if (now >= reopen_at_) {
      reopen_at_ = Time::max();
      OpenSocket();
    }
    if (items[1].revents & ZMQ_POLLIN) {
      uint64_t drained = 0;
      (void)!read(wake_fd_, &drained, sizeof drained);
      // Cleared before the queue is taken: a request queued from here on wakes the loop again.
      wake_pending_.store(false, std::memory_order_release);
      SendQueued(now);
    }
    if (items[0].revents & ZMQ_POLLIN) {
      size_t bodies = 0;
      bool heard = false;
      for (int i = 0; i < kReadBudget && bodies < kBodyBudget; ++i) {
        auto got = proto::ReceiveMessage(*socket_, /*has_identity=*/false, options_.limits, &msg);
        if (!got.ok()) {
          spdlog::warn("malformed message from the broker: {}", got.status().message());
          continue;
        }
        if (!*got) break;
        bodies += std::max<size_t>(1, msg.body_count());
        OnAnswer(msg);
        if (not_leader_) {
          // A standby: not the broker this gateway is looking for. With one endpoint there is
          // nowhere else to go: /health says so, and the next answer may be the leader's.
          standby_.store(true, std::memory_order_release);
          if (!brokers_.several()) not_leader_.reset();
          continue;
        }
        standby_.store(false, std::memory_order_release);
        heard = true;
        if (!reachable_.exchange(true)) {
          spdlog::info("broker {} reachable", brokers_.current());
          brokers_.Reset();
          round_backoff_ = Ms(100);
        }
      }
      if (heard) {
        // Stamped after the answers were handled, not when the poll returned: handing a flood of
        // streamed chunks to their callers takes time, and the broker was heard until the end of
        // it.
        now = clock_.Now();
        last_heard = now;
        heard_once = true;
      }
    }
    if (now - last_ping >= ping_every) {
      // The ping says this client reads packed frames; a broker that does answers so.
      proto::Heartbeat hello;
      hello.packed = true;
      (void)proto::SendOne(*socket_, {}, Command::kHeartbeat, hello);
      last_ping = now;
    }
    if (brokers_.several() && now >= hold_until_) {
      // High availability: find the leader.
      std::string why;
      if (not_leader_) {
        why = "is a standby (" + *not_leader_ + ")";
      } else if (disconnected_) {
        why = "closed the connection";
      } else if (!heard_once && now - opened_at_ > options_.heartbeat) {
        why = "did not answer";
      } else if (heard_once && now - last_heard > dead_after) {
        why = "stopped answering";
      }
      if (!why.empty()) {
        SwitchBroker(now, why, not_leader_.value_or(""));
        last_heard = now;
        heard_once = false;
        last_ping = Time{};
        continue;
      }
    }
    if (!outbox_.empty() && (items[0].revents & ZMQ_POLLOUT)) FlushOutbox();
    GiveUp(now);
    if (now - last_heard > dead_after && reachable_.exchange(false)) {
      spdlog::warn("broker {} unreachable: no answer for {} ms", brokers_.current(),
                   ToMs(now - last_heard));
      FailAll("the broker is unreachable",
              "the broker stopped answering after the request was sent; its outcome is unknown");
    }
    ExpireDue(now);
  }
  // Requests still queued (never sent) fail like the ones waiting for an answer.
  std::vector<Outgoing> unsent;
  {
    MutexLock lock(&mu_);
    unsent.swap(queue_);
  }
  for (Outgoing& o : unsent) pending_[o.ref] = Pending{now, std::move(o.callbacks)};
  outbox_.clear();
  FailAll("the gateway is stopping",
          "the gateway is stopping; the request was sent and its outcome is unknown");
  if (socket_ && handshakes_) proto::StopMonitor(*socket_);
  handshakes_.reset();
  socket_.reset();
}

}  // namespace rma::gateway
