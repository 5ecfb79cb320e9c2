// See agent.h.
#include "worker/agent.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "common/version.h"
#include "schemas/codec.h"
#include "worker/detect.h"

namespace rma::worker {

using proto::Command;

namespace {
bool IsGeneric(std::string_view service) {
  return service == "gpu-worker" || service == "cpu-worker" || service == "processing";
}
}  // namespace

Agent::Agent(AgentOptions options, std::vector<ServiceBinding> services, const Clock* clock)
    : options_(std::move(options)),
      services_(std::move(services)),
      clock_(clock),
      context_(1),
      executor_(options_.slots),
      decoder_(options_.limits),
      rng_(std::random_device{}()),
      heartbeat_(options_.heartbeat),
      liveness_(options_.liveness),
      backoff_(options_.reconnect_min) {}

Agent::~Agent() { CancelAll("agent stopping"); }

std::vector<proto::ServiceInfo> Agent::Manifest() const {
  std::vector<proto::ServiceInfo> out;
  for (const ServiceBinding& s : services_) {
    if (s.healthy) out.push_back({s.name, std::string(s.handler->kind())});
  }
  return out;
}

void Agent::Connect(Time now) {
  socket_ = std::make_unique<zmq::socket_t>(context_, zmq::socket_type::dealer);
  proto::ConfigureSocket(*socket_, options_.limits, /*is_router=*/false);
  socket_->connect(options_.broker);
  SendReady(now);
}

void Agent::SendReady(Time now) {
  proto::Ready ready;
  ready.worker_id = options_.worker_id;
  ready.name = options_.name;
  ready.token = options_.token;
  ready.agent_version = kVersion;
  ready.slots = options_.slots;
  ready.simulated = options_.simulated;
  ready.capabilities = options_.capabilities;
  if (!options_.simulated) ready.capabilities.ram_available_gb = AvailableRamGb();
  ready.services = Manifest();
  // Everything still running or finished-but-undelivered: the broker keeps those leases instead of
  // running the tasks again elsewhere.
  for (const auto& [id, f] : in_flight_) ready.running.push_back({id, f.attempt});
  proto::OutMessage m(Command::kReady);
  m.Add(ready);
  Send(now, m);
  registered_ = false;
  registering_since_ = now;
  last_heard_ = now;
}

void Agent::Send(Time now, proto::OutMessage& message) {
  Status s = message.Send(*socket_);
  if (!s.ok()) {
    spdlog::warn("could not send {} to the broker: {}", proto::CommandName(message.command()),
                 s.message());
    return;
  }
  last_sent_ = now;
}

void Agent::ScheduleReconnect(Time now, std::string_view why) {
  std::uniform_real_distribution<double> jitter(0.5, 1.0);
  Duration wait(static_cast<int64_t>(static_cast<double>(backoff_.count()) * jitter(rng_)));
  spdlog::warn("broker {} {}: reconnecting in {} ms (attempt {})", options_.broker, why, ToMs(wait),
               reconnects_ + 1);
  backoff_ = std::min(backoff_ * 2, options_.reconnect_max);
  socket_.reset();
  reconnect_at_ = now + wait;
  ++reconnects_;
}

Status Agent::Run(SignalWatcher& signals) {
  std::string names;
  for (const ServiceBinding& s : services_)
    names += (names.empty() ? "" : ", ") + s.name + "=" + s.spec;
  spdlog::info("worker {} '{}' connecting to {} with {} slot(s); services: {}", options_.worker_id,
               options_.name, options_.broker, options_.slots, names.empty() ? "(none)" : names);
  Time now = clock_->Now();
  Connect(now);
  proto::InMessage msg;
  for (;;) {
    now = clock_->Now();
    // Next timer: heartbeat, liveness / registration deadline, reconnect, drain grace.
    Time next = now + Ms(1000);
    if (socket_) {
      next = std::min(next, last_sent_ + heartbeat_);
      next = std::min(next, last_heard_ + DeadAfter());
    }
    if (reconnect_at_) next = std::min(next, *reconnect_at_);
    if (drain_deadline_) next = std::min(next, *drain_deadline_);
    int64_t wait_ms = std::clamp<int64_t>(ToMs(next - now) + 1, 0, 1000);

    zmq::pollitem_t items[3] = {{nullptr, signals.fd(), ZMQ_POLLIN, 0},
                                {nullptr, executor_.wake_fd(), ZMQ_POLLIN, 0},
                                {socket_ ? socket_->handle() : nullptr, 0, ZMQ_POLLIN, 0}};
    try {
      zmq::poll(items, socket_ ? 3 : 2, std::chrono::milliseconds(wait_ms));
    } catch (const zmq::error_t& e) {
      if (e.num() == EINTR) continue;
      return Status::Internal(std::string("poll failed: ") + e.what());
    }
    now = clock_->Now();

    if (items[0].revents & ZMQ_POLLIN) {
      while (auto sig = signals.Take()) {
        if (draining_ || !socket_) {
          spdlog::warn("second signal: cancelling {} task(s) and leaving now", in_flight_.size());
          CancelAll("worker shutting down");
          if (socket_) {
            proto::OutMessage bye(Command::kDisconnect);
            bye.Add(proto::Disconnect{"worker stopped", true});
            Send(now, bye);
          }
          return Status::Ok();
        }
        StartDrain(now);
      }
    }
    if (items[1].revents & ZMQ_POLLIN) OnResults(now, executor_.TakeFinished());
    if (socket_ && (items[2].revents & ZMQ_POLLIN)) {
      for (int i = 0; i < 256 && socket_; ++i) {
        auto got = proto::ReceiveMessage(*socket_, /*has_identity=*/false, options_.limits, &msg);
        if (!got.ok()) {
          spdlog::warn("malformed message from the broker: {}", got.status().message());
          continue;
        }
        if (!*got) break;
        last_heard_ = now;
        OnMessage(now, msg);
        if (fatal_) return Status::PermissionDenied(fatal_reason_);
      }
    }

    if (reconnect_at_ && now >= *reconnect_at_) {
      reconnect_at_.reset();
      Connect(now);
    }
    if (socket_) {
      if (now - last_heard_ > DeadAfter()) {
        ScheduleReconnect(now, registered_ ? "went quiet" : "did not answer READY");
        continue;
      }
      if (now - last_sent_ >= heartbeat_ && registered_) {
        proto::OutMessage hb(Command::kHeartbeat);
        proto::Heartbeat report;
        report.load = options_.simulated ? 0 : LoadPerCore();
        report.in_flight = static_cast<uint32_t>(in_flight_.size());
        report.ram_available_gb =
            options_.simulated ? options_.capabilities.ram_available_gb : AvailableRamGb();
        hb.Add(report);
        Send(now, hb);
      }
    }
    if (drain_deadline_ && now >= *drain_deadline_) {
      spdlog::warn("drain grace period over: cancelling {} task(s)", in_flight_.size());
      CancelAll("drain grace period over");
      drain_deadline_.reset();
    }
    if (draining_ && in_flight_.empty()) {
      if (socket_) {
        proto::OutMessage bye(Command::kDisconnect);
        bye.Add(proto::Disconnect{"drained", true});
        Send(now, bye);
      }
      spdlog::info("drained: every task finished and was delivered; goodbye");
      return Status::Ok();
    }
  }
}

void Agent::OnMessage(Time now, const proto::InMessage& msg) {
  switch (msg.command()) {
    case Command::kWelcome: {
      proto::Welcome w;
      if (Status s = decoder_.Decode(msg.body_count() ? msg.body(0) : std::string_view(), &w);
          !s.ok()) {
        spdlog::warn("bad WELCOME: {}", s.message());
        return;
      }
      heartbeat_ = Ms(w.heartbeat_ms);
      liveness_ = w.liveness;
      backoff_ = options_.reconnect_min;
      registered_ = true;
      std::string recs;
      for (const proto::Recommendation& r : w.recommendations) {
        recs += (recs.empty() ? "" : "; ") + r.service + " (" + r.reason + ")";
      }
      spdlog::info("registered as tier {} (heartbeat {} ms, liveness {}){}{}", w.tier,
                   w.heartbeat_ms, w.liveness,
                   recs.empty() ? "" : "; the pool would welcome: ", recs);
      FlushResults(now);
      if (draining_) {
        // Still draining after a reconnect: tell the new session too.
        proto::OutMessage drain(Command::kDrain);
        Send(now, drain);
      }
      return;
    }
    case Command::kTask:
      for (size_t i = 0; i < msg.body_count(); ++i) {
        proto::TaskAssignment t;
        if (Status s = decoder_.Decode(msg.body(i), &t); !s.ok()) {
          spdlog::warn("bad TASK: {}", s.message());
          continue;
        }
        OnTask(now, std::move(t));
      }
      return;
    case Command::kCancel:
      for (size_t i = 0; i < msg.body_count(); ++i) {
        proto::CancelAttempt c;
        if (!decoder_.Decode(msg.body(i), &c).ok()) continue;
        auto it = in_flight_.find(c.task_id);
        if (it != in_flight_.end() && it->second.attempt == c.attempt) {
          spdlog::info("task {} attempt {} cancelled by the broker ({})", ToString(c.task_id),
                       c.attempt, c.reason);
          it->second.cancel->Cancel(c.reason);
        }
      }
      return;
    case Command::kHeartbeat:
      return;
    case Command::kDrain:
      spdlog::info("the broker asked this worker to drain");
      StartDrain(now);
      return;
    case Command::kDisconnect: {
      proto::Disconnect d;
      if (msg.body_count() > 0) (void)decoder_.Decode(msg.body(0), &d);
      if (!d.reconnect) {
        spdlog::error("the broker refused this worker: {}", d.reason);
        fatal_ = true;
        fatal_reason_ = d.reason;
        return;
      }
      spdlog::info("the broker asked this worker to register again ({})", d.reason);
      SendReady(now);
      return;
    }
    case Command::kError: {
      proto::Error e;
      if (msg.body_count() > 0 && decoder_.Decode(msg.body(0), &e).ok()) {
        spdlog::warn("the broker reported an error: {}: {}", e.code, e.message);
      }
      return;
    }
    default:
      spdlog::warn("unexpected {} from the broker", proto::CommandName(msg.command()));
  }
}

void Agent::OnTask(Time, proto::TaskAssignment task) {
  if (in_flight_.count(task.task_id) > 0) {
    spdlog::warn("task {} is already running here; ignoring a second copy", ToString(task.task_id));
    return;
  }
  std::shared_ptr<Handler> handler;
  for (const ServiceBinding& s : services_) {
    if (s.name == task.service) handler = s.handler;
  }
  if (!handler && IsGeneric(task.service)) handler = options_.generic_handler;
  auto cancel = std::make_shared<CancelToken>();
  in_flight_[task.task_id] = InFlight{task.attempt, cancel, false};
  if (!handler) {
    proto::TaskResult r;
    r.task_id = task.task_id;
    r.attempt = task.attempt;
    r.outcome = proto::Outcome::kError;
    r.error = "this worker does not provide service '" + task.service + "'";
    OnResults(clock_->Now(), {r});
    return;
  }
  spdlog::debug("task {} attempt {} for {} started", ToString(task.task_id), task.attempt,
                task.service);
  executor_.Submit(Executor::Job{std::move(task), std::move(handler), std::move(cancel)});
}

void Agent::OnResults(Time now, std::vector<proto::TaskResult> results) {
  for (proto::TaskResult& r : results) {
    auto it = in_flight_.find(r.task_id);
    if (it != in_flight_.end()) it->second.finished = true;
    undelivered_.push_back(std::move(r));
  }
  FlushResults(now);
}

void Agent::FlushResults(Time now) {
  if (undelivered_.empty() || !socket_ || !registered_) return;
  proto::OutMessage m(Command::kResult);
  for (proto::TaskResult& r : undelivered_) {
    m.Add(r);
    in_flight_.erase(r.task_id);
    if (m.body_count() == 256) {
      Send(now, m);
      m.Clear();
    }
  }
  if (!m.empty()) Send(now, m);
  undelivered_.clear();
}

void Agent::StartDrain(Time now) {
  if (draining_) return;
  spdlog::info("draining: no new tasks; waiting up to {} s for {} in-flight task(s)",
               ToMs(options_.drain_grace) / 1000, in_flight_.size());
  draining_ = true;
  drain_deadline_ = now + options_.drain_grace;
  if (registered_ && socket_) {
    proto::OutMessage drain(Command::kDrain);
    Send(now, drain);
  }
}

void Agent::CancelAll(const std::string& reason) {
  for (auto& [id, f] : in_flight_) f.cancel->Cancel(reason);
}

}  // namespace rma::worker
