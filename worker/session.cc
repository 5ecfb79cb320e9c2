// See session.h.
#include "worker/session.h"

#include <signal.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstring>

#include "common/version.h"

namespace rma::worker {

using proto::Command;

namespace {

// Bodies per RESULT message (within every broker's max_bodies).
constexpr size_t kMaxBatch = 256;
// WELCOME values outside these bounds are ignored: a broker cannot make the worker spin or
// never notice it is gone.
constexpr int64_t kMinHeartbeatMs = 10;
constexpr int64_t kMaxHeartbeatMs = 3'600'000;
constexpr uint32_t kMaxLiveness = 100;
// After a failed send of results, try again this soon.
constexpr Duration kResendDelay = Ms(50);
// A sent result counts as delivered once the broker is heard this long after the send (or a
// heartbeat interval, if shorter): a message the broker sent before it lost our result cannot
// arrive that late on a connection that broke.
constexpr Duration kMaxConfirmDelay = Seconds(5);

bool IsGeneric(std::string_view service) {
  return service == "gpu-worker" || service == "cpu-worker" || service == "processing";
}

std::string Names(const std::vector<proto::ServiceInfo>& services) {
  if (services.empty()) return "(none)";
  std::string out;
  for (const proto::ServiceInfo& s : services) out += (out.empty() ? "" : ", ") + s.name;
  return out;
}

// While standbys answer not_leader a takeover is under way: look again at least this often.
constexpr Duration kNotLeaderBackoff = Ms(500);

}  // namespace

Session::Session(SessionOptions options, const std::vector<ServiceBinding>& services, SessionIo* io,
                 uint64_t seed)
    : options_(std::move(options)),
      brokers_(proto::BrokerList::FromText(options_.broker)),
      io_(io),
      rng_(seed),
      heartbeat_(options_.heartbeat),
      liveness_(std::max<uint32_t>(1, options_.liveness)),
      backoff_(options_.reconnect_min) {
  for (const ServiceBinding& s : services) handlers_[s.name] = s.handler;
}

Session::~Session() { CancelAll("worker stopping"); }

size_t Session::running() const {
  return static_cast<size_t>(std::count_if(in_flight_.begin(), in_flight_.end(),
                                           [](const auto& e) { return e.second.running; }));
}

void Session::Start(Time now, const MonitorSnapshot& snapshot) {
  manifest_ = snapshot.manifest;
  readings_ = snapshot.readings;
  std::string services;
  for (const auto& [name, handler] : handlers_) {
    services += (services.empty() ? "" : "; ") + name + " -> " + handler->Describe();
  }
  spdlog::info("worker {} '{}' for broker {} with {} slot(s); services: {}", options_.worker_id,
               options_.name, options_.broker, options_.slots,
               services.empty() ? "(none)" : services);
  if (snapshot.probed) {
    connect_at_ = now;
  } else {
    awaiting_first_probe_ = true;
    connect_at_ = now + options_.first_probe_wait;
  }
}

void Session::OnMonitor(Time now, const MonitorSnapshot& snapshot) {
  readings_ = snapshot.readings;
  manifest_ = snapshot.manifest;
  if (awaiting_first_probe_ && snapshot.probed) {
    awaiting_first_probe_ = false;
    if (!connected_ && connect_at_) connect_at_ = now;
  }
  MaybeSendManifest(now);
}

void Session::Connect(Time now) {
  Status s = io_->Connect();
  if (s.code() == StatusCode::kInvalidArgument) {
    spdlog::error("cannot use broker endpoint {}: {}", brokers_.current(), s.message());
    finished_ = s;
    return;
  }
  if (!s.ok()) {
    ScheduleReconnect(now, "could not be reached (" + s.message() + ")");
    return;
  }
  connected_ = true;
  results_sent_on_connection_ = false;
  SendReady(now);
}

void Session::SendReady(Time now) {
  proto::Ready ready;
  ready.worker_id = options_.worker_id;
  ready.name = options_.name;
  ready.worker_secret = options_.worker_secret;
  ready.agent_version = kVersion;
  ready.slots = options_.slots;
  ready.packed = true;           // ReceiveMessage splits packed body frames
  broker_reads_packed_ = false;  // until this broker's WELCOME says so
  ready.simulated = options_.simulated;
  ready.capabilities = options_.capabilities;
  if (!options_.simulated && readings_.ram_available_gb > 0) {
    ready.capabilities.ram_available_gb = readings_.ram_available_gb;
  }
  ready.services = manifest_;
  for (const auto& [key, f] : in_flight_) ready.running.push_back({key.first, key.second});
  ready.enrol_token = options_.enrol_token;
  const size_t holding = ready.running.size();
  registered_ = false;
  ready_sent_at_ = now;
  // The broker has DeadAfter() to answer.
  last_heard_ = now;
  ready_unanswered_ = Send(now, std::move(ready));
  if (ready_unanswered_) {
    advertised_ = manifest_;
    spdlog::info("registering with {}: advertising [{}]{}", brokers_.current(), Names(manifest_),
                 holding == 0 ? "" : "; still holding " + std::to_string(holding) + " task(s)");
  }
}

bool Session::Send(Time now, const std::vector<proto::ToBrokerMessage>& batch) {
  Status s = io_->Send(batch);
  if (!s.ok()) {
    spdlog::warn("could not send {} to the broker: {}",
                 proto::CommandName(proto::CommandOf(batch.front())), s.message());
    return false;
  }
  last_sent_ = now;
  return true;
}

void Session::ResetConnection(Time now, std::string_view why, std::string_view hint) {
  io_->Close(Duration(0));
  connected_ = false;
  registered_ = false;
  ready_unanswered_ = false;
  RequeueUnconfirmed();
  const std::string left = brokers_.current();
  // With one endpoint every failure backs off longer; with several, only a whole round of them.
  const bool grow = brokers_.Next(hint) || !brokers_.several();
  ScheduleReconnect(now, left + " " + std::string(why), grow);
}

void Session::OnDisconnected(Time now) {
  if (finished_ || !connected_ || !brokers_.several()) return;
  ResetConnection(now, "closed the connection");
}

void Session::ScheduleReconnect(Time now, std::string_view why, bool grow) {
  std::uniform_real_distribution<double> jitter(0.5, 1.0);
  Duration wait(static_cast<int64_t>(static_cast<double>(backoff_.count()) * jitter(rng_)));
  ++reconnects_;
  spdlog::warn(
      "broker {}: reconnecting{} in {} ms (attempt {}){}", why,
      brokers_.several() ? " to " + brokers_.current() : std::string(), ToMs(wait), reconnects_,
      held_results() > 0 ? "; " + std::to_string(held_results()) + " result(s) kept for delivery"
                         : "");
  if (grow) backoff_ = std::min(backoff_ * 2, options_.reconnect_max);
  connect_at_ = now + wait;
}

void Session::RequeueUnconfirmed() {
  // Oldest first, ahead of anything that finished later.
  for (auto it = unconfirmed_.rbegin(); it != unconfirmed_.rend(); ++it) {
    undelivered_.push_front(std::move(it->result));
  }
  unconfirmed_.clear();
  unconfirmed_bytes_ = 0;
}

void Session::ConfirmDelivered(std::optional<Time> heard) {
  const Duration margin = std::min(heartbeat_, kMaxConfirmDelay);
  size_t confirmed = 0;
  while (confirmed < unconfirmed_.size() &&
         ((heard && unconfirmed_[confirmed].at + margin <= *heard) ||
          unconfirmed_bytes_ > options_.max_unconfirmed_bytes)) {
    // Sent in order, so the oldest come first.
    const proto::TaskResult& r = unconfirmed_[confirmed].result;
    auto it = in_flight_.find({r.task_id, r.attempt});
    if (it != in_flight_.end() && !it->second.running) in_flight_.erase(it);
    unconfirmed_bytes_ -= std::min(unconfirmed_bytes_, r.result.size() + r.error.size());
    ++confirmed;
  }
  unconfirmed_.erase(unconfirmed_.begin(),
                     unconfirmed_.begin() + static_cast<std::ptrdiff_t>(confirmed));
}

void Session::Heard(Time now) {
  last_heard_ = now;
  ConfirmDelivered(now);  // the broker was heard now
}

void Session::OnUnreadable(Time now, const Status& why) {
  if (finished_) return;
  Heard(now);
  spdlog::warn("unreadable message from the broker: {}", why.message());
}

void Session::OnMessage(Time now, proto::ToWorkerMessage message) {
  if (finished_) return;
  Heard(now);
  if (auto* welcome = std::get_if<proto::Welcome>(&message)) return OnWelcome(now, *welcome);
  if (auto* task = std::get_if<proto::TaskAssignment>(&message))
    return OnTask(now, std::move(*task));
  if (auto* c = std::get_if<proto::CancelAttempt>(&message)) {
    auto it = in_flight_.find({c->task_id, c->attempt});
    if (it != in_flight_.end() && it->second.running) {
      spdlog::info("task {} attempt {} cancelled by the broker ({})", ToString(c->task_id),
                   c->attempt, c->reason);
      it->second.cancel->Cancel(c->reason.empty() ? "cancelled" : c->reason);
    }
    return;
  }
  if (auto* bye = std::get_if<proto::Disconnect>(&message)) return OnDisconnect(now, *bye);
  if (auto* e = std::get_if<proto::Error>(&message)) return OnError(now, *e);
  const auto& bodyless = std::get<proto::Bodyless>(message);
  if (bodyless.command == Command::kDrain) {
    // An admin paused this worker: it finishes what runs, gets nothing new and stays connected
    // until an admin undrains it (the broker simply sends work again). Leaving is the worker's
    // own decision (a signal), never the broker's.
    if (!paused_by_broker_) {
      paused_by_broker_ = true;
      spdlog::warn(
          "an admin drained this worker: no new tasks until it is undrained "
          "(rmactl undrain {}); {} task(s) finish",
          options_.worker_id, running());
    }
    return;
  }
  // HEARTBEAT: hearing it was the point.
}

void Session::OnWelcome(Time now, const proto::Welcome& w) {
  broker_reads_packed_ = w.packed;
  if (w.heartbeat_ms >= kMinHeartbeatMs && w.heartbeat_ms <= kMaxHeartbeatMs) {
    heartbeat_ = Ms(w.heartbeat_ms);
  } else {
    spdlog::warn("ignoring the broker's heartbeat interval of {} ms", w.heartbeat_ms);
  }
  if (w.liveness >= 1 && w.liveness <= kMaxLiveness) {
    liveness_ = w.liveness;
  } else {
    spdlog::warn("ignoring the broker's liveness of {}", w.liveness);
  }
  backoff_ = options_.reconnect_min;
  brokers_.Reset();
  const bool was_registered = registered_;
  registered_ = true;
  ready_unanswered_ = false;
  if (!was_registered) {
    std::string recs;
    for (const proto::Recommendation& r : w.recommendations) {
      recs += (recs.empty() ? "" : "; ") + r.service + " (" + r.reason + ")";
    }
    spdlog::info("registered as tier {} (heartbeat {} ms, liveness {}), advertising [{}]{}{}",
                 w.tier, ToMs(heartbeat_), liveness_, Names(advertised_),
                 recs.empty() ? "" : "; the pool would welcome: ", recs);
  }
  MaybeSendManifest(now);
  FlushResults(now);
  if (draining_) {
    // Still draining after a reconnect: the new session must not hand out work either.
    Send(now, proto::Bodyless{Command::kDrain});
  }
}

void Session::OnTask(Time now, proto::TaskAssignment task) {
  if (paused_by_broker_) {
    paused_by_broker_ = false;
    spdlog::info("work again: an admin undrained this worker");
  }
  AttemptKey key{task.task_id, task.attempt};
  if (in_flight_.count(key) > 0) {
    // Expected when the broker hands a lease back after a reconnect: it sends the task again.
    spdlog::info("task {} attempt {} is already here; ignoring the second copy",
                 ToString(task.task_id), task.attempt);
    return;
  }
  std::shared_ptr<Handler> handler;
  if (auto it = handlers_.find(task.service); it != handlers_.end()) {
    handler = it->second;
  } else if (IsGeneric(task.service)) {
    handler = options_.generic_handler;
  }
  auto cancel = std::make_shared<CancelToken>();
  in_flight_[key] = InFlight{cancel, true};
  if (!handler) {
    proto::TaskResult r;
    r.task_id = task.task_id;
    r.attempt = task.attempt;
    r.outcome = proto::Outcome::kError;
    r.error = "this worker does not provide service '" + task.service + "'";
    OnResults(now, {std::move(r)});
    return;
  }
  spdlog::debug("task {} attempt {} for {} started", ToString(task.task_id), task.attempt,
                task.service);
  io_->Execute(std::move(task), std::move(handler), std::move(cancel));
}

void Session::OnDisconnect(Time now, const proto::Disconnect& d) {
  if (!d.reconnect) {
    // With CURVE the key is named, so the operator can find the worker in the broker's lists.
    const std::string why =
        "the broker refused this worker: " + d.reason +
        (options_.public_key.empty() ? "" : " (this worker's key: " + options_.public_key + ")");
    spdlog::error("{}", why);
    CancelAll("the broker refused this worker");
    finished_ = Status::PermissionDenied(why);
    return;
  }
  // Every message queued before our READY reached the broker gets its own DISCONNECT: answer the
  // first, not each of them.
  if (!registered_ && now - ready_sent_at_ < heartbeat_) return;
  spdlog::info("the broker does not know this worker ({}): registering again", d.reason);
  registered_ = false;
  RequeueUnconfirmed();
  SendReady(now);
}

void Session::OnError(Time now, const proto::Error& e) {
  if (e.code == proto::kNotLeaderCode) {
    // A standby (--ha): the pool is alive and a leader is, or soon will be, elsewhere.
    backoff_ = std::min(backoff_, kNotLeaderBackoff);
    return ResetConnection(now, "is a standby (" + e.message + ")", e.message);
  }
  // Before WELCOME, on a connection that has carried no RESULT, ERROR unauthenticated or
  // permission_denied can only answer READY: the broker will not have this worker (an unknown or
  // revoked key, a spent enrolment token), and asking again cannot change that. RESULTs sent
  // earlier on the same connection (before a DISCONNECT{reconnect} made the worker register
  // again) may still draw those codes about themselves (docs/protocol.md sections 5.14 and 8.4), so
  // there the ERROR is only logged: a READY refused among them goes unanswered, the worker
  // reconnects, and on the new connection the refusal is plain.
  const bool refusal_code = e.code == "unauthenticated" || e.code == "permission_denied";
  if (!refusal_code || registered_ || !ready_unanswered_ || results_sent_on_connection_) {
    spdlog::warn("the broker reported an error: {}: {}", e.code, e.message);
    return;
  }
  const std::string refusal = "the broker refused this worker (" + e.code + "): " + e.message;
  const std::string hint = RefusalHint();
  spdlog::error("{}", refusal);
  spdlog::error("{}", hint);
  CancelAll("the broker refused this worker");
  finished_ = Status::PermissionDenied(refusal + "; " + hint);
}

std::string Session::RefusalHint() const {
  if (options_.public_key.empty()) {
    return "this worker has no key of its own (no --broker-key): a pool that enrols its workers "
           "needs --broker-key and --enrol TOKEN";
  }
  if (!options_.enrol_token.empty()) {
    return "this worker's key is " + options_.public_key +
           " and the enrolment token it sent was not taken: ask the pool's operator for a new "
           "token (each works once, until it expires) and start the worker with `rma-worker "
           "--enrol TOKEN` (a revoked key needs `--new-key` too)";
  }
  return "this worker's key is " + options_.public_key +
         ": enrol it with `rma-worker --enrol TOKEN` (a token from the pool's operator; a revoked "
         "key needs `--new-key` too)";
}

void Session::MaybeSendManifest(Time now) {
  if (!registered_ || manifest_ == advertised_) return;
  if (Send(now, proto::Manifest{manifest_, 0})) {
    spdlog::info("advertising [{}] (was [{}])", Names(manifest_), Names(advertised_));
    advertised_ = manifest_;
  }
}

void Session::FlushResults(Time now) {
  while (registered_ && !undelivered_.empty()) {
    size_t n = std::min(kMaxBatch, undelivered_.size());
    std::vector<proto::ToBrokerMessage> batch(
        undelivered_.begin(), undelivered_.begin() + static_cast<std::ptrdiff_t>(n));
    if (!Send(now, batch)) return;  // kept; OnTick tries again
    results_sent_on_connection_ = true;
    for (size_t i = 0; i < n; ++i) {
      unconfirmed_bytes_ += undelivered_.front().result.size() + undelivered_.front().error.size();
      unconfirmed_.push_back({std::move(undelivered_.front()), now});
      undelivered_.pop_front();
    }
  }
  ConfirmDelivered(std::nullopt);  // keeps what is held within the memory budget
}

void Session::SendHeartbeat(Time now) {
  proto::Heartbeat hb;
  hb.load = readings_.load;
  hb.in_flight = static_cast<uint32_t>(running());
  hb.ram_available_gb =
      options_.simulated ? options_.capabilities.ram_available_gb : readings_.ram_available_gb;
  hb.gpu_util = readings_.gpu_util;
  Send(now, hb);
}

void Session::OnResults(Time now, std::vector<proto::TaskResult> results) {
  for (proto::TaskResult& r : results) {
    auto it = in_flight_.find({r.task_id, r.attempt});
    if (it != in_flight_.end()) it->second.running = false;
    spdlog::debug("task {} attempt {} finished: {} in {} ms", ToString(r.task_id), r.attempt,
                  proto::OutcomeName(r.outcome), r.run_ms);
    if (!registered_ && !finished_) {
      spdlog::info(
          "task {} attempt {} finished ({}) while the broker is unreachable; its result "
          "is kept until the worker is registered again",
          ToString(r.task_id), r.attempt, proto::OutcomeName(r.outcome));
    }
    undelivered_.push_back(std::move(r));
  }
  FlushResults(now);
}

void Session::OnPartials(Time now, std::vector<proto::Partial> partials) {
  if (!registered_ || partials.empty()) return;
  std::vector<proto::ToBrokerMessage> batch;
  batch.reserve(partials.size());
  for (proto::Partial& p : partials) {
    auto it = in_flight_.find({p.task_id, p.attempt});
    if (it == in_flight_.end() || it->second.cancel->cancelled()) continue;
    batch.push_back(std::move(p));
    if (batch.size() == kMaxBatch) {
      Send(now, batch);
      batch.clear();
    }
  }
  if (!batch.empty()) Send(now, batch);
}

void Session::OnSignal(Time now, int signal) {
  if (finished_) return;
  const char* name = sigabbrev_np(signal);
  std::string sig = std::string("SIG") + (name != nullptr ? name : "?");
  if (!draining_) {
    StartDrain(now, sig + " received");
    return;
  }
  size_t lost = running() + undelivered_.size();
  spdlog::warn("second signal ({}): cancelling {} task(s) and leaving now{}", sig, running(),
               lost > 0 ? "; the broker will run unfinished work elsewhere" : "");
  CancelAll("worker shutting down");
  if (connected_) {
    Send(now, proto::Disconnect{"worker stopped", true});
  }
  finished_ = Status::Ok();
}

void Session::OnHandshakeRefused(Time now, const std::string& why, bool permanent) {
  if (finished_) return;
  if (permanent) {
    spdlog::error("{}", why);
    CancelAll("the broker refused this worker");
    finished_ = Status::PermissionDenied(why);
    return;
  }
  ResetConnection(now, "refused the connection (" + why + ")");
}

void Session::StartDrain(Time now, std::string_view why) {
  if (draining_) return;
  spdlog::info("{}: draining — no new tasks; {} in flight may take up to {} s", why, running(),
               ToMs(options_.drain_grace) / 1000);
  draining_ = true;
  drain_deadline_ = now + options_.drain_grace;
  if (registered_) Send(now, proto::Bodyless{Command::kDrain});
}

void Session::CancelAll(const std::string& reason) {
  for (auto& [key, f] : in_flight_) {
    if (f.running) f.cancel->Cancel(reason);
  }
}

void Session::OnTick(Time now) {
  if (finished_) return;
  if (connect_at_ && now >= *connect_at_) {
    connect_at_.reset();
    awaiting_first_probe_ = false;
    Connect(now);
    if (finished_) return;
  }
  if (connected_) {
    // With several brokers a READY unanswered for ready_timeout means a dead or hung endpoint:
    // the next one may lead.
    const Duration limit = registered_ || !brokers_.several()
                               ? DeadAfter()
                               : std::min(DeadAfter(), options_.ready_timeout);
    if (now - last_heard_ > limit) {
      ResetConnection(now, registered_ ? "went quiet" : "did not answer READY");
    } else if (registered_) {
      if (now - last_sent_ >= heartbeat_) SendHeartbeat(now);
      FlushResults(now);
    }
  }
  if (drain_deadline_ && now >= *drain_deadline_) {
    drain_deadline_.reset();
    if (running() > 0) {
      spdlog::warn(
          "drain grace period over: cancelling {} task(s); the broker will run them "
          "elsewhere",
          running());
      CancelAll("drain grace period over");
    }
  }
  if (draining_ && running() == 0) {
    if (undelivered_.empty()) {
      if (connected_) {
        Send(now, proto::Disconnect{"drained", true});
      }
      spdlog::info("drained: nothing left running and every result sent; goodbye");
      finished_ = Status::Ok();
    } else if (!told_waiting_) {
      told_waiting_ = true;
      spdlog::warn(
          "drained, but {} result(s) wait for the broker; a second signal leaves "
          "without delivering them",
          undelivered_.size());
    }
  }
}

Time Session::NextWakeup(Time now) const {
  Time next = now + Seconds(1);
  if (connect_at_) next = std::min(next, *connect_at_);
  if (connected_) {
    next = std::min(next, last_heard_ + DeadAfter() + Duration(1));
    if (registered_) {
      next = std::min(next, last_sent_ + heartbeat_);
      if (!undelivered_.empty()) next = std::min(next, now + kResendDelay);
    }
  }
  if (drain_deadline_) next = std::min(next, *drain_deadline_);
  return next;
}

}  // namespace rma::worker
