// Test support for the broker's security tests (issue 12): an attacker's toolkit against a real
// rma-broker process. BrokerUnderAttack starts rma-broker from BinDir() (so RMA_BIN_DIR=<dir> runs
// the same attacks against another build's broker, which is how each test was shown to fail before
// the fixes) on ports it picks and reads them back from --endpoints-file; Peer is a raw DEALER that
// speaks the wire protocol (docs/protocol.md) with the project's codec, optionally logs in with
// PLAIN and watches its handshake with a socket monitor. Nothing here is a mock: every message goes
// over TCP to the broker process.
//
// Each Peer is used by one thread (RoundTripProbe runs its own on a thread of its own); all sockets
// share one ZeroMQ context that lives until the process exits.
#pragma once

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <zmq.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <deque>
#include <fstream>
#include <functional>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "protocol/admin_reply.h"
#include "protocol/codec.h"
#include "protocol/frames.h"
#include "tests/support/process.h"
#include "tests/support/zmq_peers.h"

// Task states and ids as text in failure messages.
namespace rma::proto {
inline void PrintTo(TaskStatus s, std::ostream* os) { *os << TaskStatusName(s); }
}  // namespace rma::proto
namespace rma {
inline void PrintTo(const TaskId& id, std::ostream* os) { *os << ToString(id); }
}  // namespace rma

namespace rma::testing::broker_attack {

using namespace std::chrono_literals;
using nlohmann::json;
using proto::Command;
using Steady = std::chrono::steady_clock;

inline zmq::context_t& Context() {
  // Never destroyed: a context's destructor waits for every socket, and a failed ASSERT may leave
  // one behind in a test that is already over.
  static auto* context = new zmq::context_t(1);
  return *context;
}

// Turns "tcp://0.0.0.0:1234" (what a wildcard bind reports) into an address this machine can
// connect to.
inline std::string Loopback(std::string endpoint) {
  const std::string any = "tcp://0.0.0.0:";
  if (endpoint.rfind(any, 0) == 0) endpoint = "tcp://127.0.0.1:" + endpoint.substr(any.size());
  return endpoint;
}

// What rma-broker says about its memory (/proc/PID/status), in KiB; -1 when unreadable.
inline long ProcStatusKiB(pid_t pid, const std::string& field) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(field + ":", 0) == 0) return std::stol(line.substr(field.size() + 1));
  }
  return -1;
}

struct BrokerFlags {
  std::string workers = "tcp://127.0.0.1:*";
  std::string clients = "tcp://127.0.0.1:*";
  // Raw peers send no heartbeats: a liveness window of 5 s keeps them registered through a test on
  // a busy machine, while a closed connection is still noticed within one interval.
  int heartbeat_ms = 200;
  int liveness = 25;
  std::vector<std::string> extra;  // further flags
};

// One rma-broker process, stopped (SIGTERM, then SIGKILL) when destroyed.
class BrokerUnderAttack {
 public:
  explicit BrokerUnderAttack(BrokerFlags flags = {}) : flags_(std::move(flags)) {
    dir_ = TempDir("rma-sec");
    const std::string file = dir_ + "/endpoints";
    args_ = {"--workers",        flags_.workers,
             "--clients",        flags_.clients,
             "--endpoints-file", file,
             "--heartbeat-ms",   std::to_string(flags_.heartbeat_ms),
             "--liveness",       std::to_string(flags_.liveness),
             "--log-level",      "info"};
    args_.insert(args_.end(), flags_.extra.begin(), flags_.extra.end());
    process_ = Process::Start("rma-broker", args_, dir_ + "/broker.log");
    // Either the broker writes its endpoints or it exits (a configuration it refuses).
    std::string endpoints;
    WaitUntil(
        [&] {
          endpoints = ReadFile(file);
          return (!endpoints.empty() && endpoints.back() == '\n') || !process_.running();
        },
        20s);
    if (endpoints.empty() || endpoints.back() != '\n') return;
    std::istringstream in(endpoints);
    std::getline(in, workers_);
    std::getline(in, clients_);
    workers_ = Loopback(workers_);
    clients_ = Loopback(clients_);
    started_ = true;
  }
  ~BrokerUnderAttack() {
    process_.Signal(15);
    if (!process_.Wait(5s)) process_.Kill();
  }

  bool started() const { return started_; }
  // Why it did not start, for a failure message: the command line, the exit code and the log. A
  // broker built before issue 12 exits at once on the flags it does not know (--client-secret,
  // --insecure-plaintext, --max-queued-bytes, ...).
  std::string WhyNotStarted() {
    std::string cmd = "rma-broker";
    for (const std::string& a : args_) cmd += " " + a;
    auto code = process_.Wait(5s);
    return "the broker did not start (exit code " + (code ? std::to_string(*code) : "none") +
           "): " + cmd +
           "\n(a broker from before issue 12 refuses flags it does not know, such as "
           "--client-secret, --insecure-plaintext and the --max-* budgets)\n--- broker log ---\n" +
           Log();
  }
  const std::string& workers_endpoint() const { return workers_; }
  const std::string& clients_endpoint() const { return clients_; }
  Process& process() { return process_; }
  std::string Log() const { return process_.Log(); }
  // The broker's peak resident memory so far.
  long VmHwmMiB() { return ProcStatusKiB(process_.pid(), "VmHWM") / 1024; }

 private:
  BrokerFlags flags_;
  std::string dir_;
  std::vector<std::string> args_;
  Process process_;
  bool started_ = false;
  std::string workers_;
  std::string clients_;
};

// Starts a broker or fails the test with the reason (from a TEST body: it returns on failure).
#define START_BROKER_OR_FAIL(var, ...)                               \
  ::rma::testing::broker_attack::BrokerUnderAttack var{__VA_ARGS__}; \
  ASSERT_TRUE(var.started()) << var.WhyNotStarted()

using Message = ClientMessage;

// What a socket monitor reported about a connection.
struct HandshakeEvent {
  int event = 0;  // ZMQ_EVENT_*
  // For HANDSHAKE_FAILED_AUTH: the ZAP status, 400 (refused). A 300 ("try later") reaches the
  // client as no event at all: libzmq drops the connection (HANDSHAKE_FAILED_NO_DETAIL,
  // DISCONNECTED) or leaves it silent until the handshake times out.
  uint32_t value = 0;
};

struct Plain {
  std::string user;
  std::string password;
};

// A raw peer: one DEALER, any credentials, no protocol logic of its own.
class Peer {
 public:
  // `receive_hwm` > 0: hold at most that many incoming messages (and a small kernel buffer), so a
  // peer that does not call Receive() stops reading its connection, as a stalled client would.
  explicit Peer(const std::string& endpoint, std::optional<Plain> plain = std::nullopt,
                bool monitor = false, int receive_hwm = 0)
      : socket_(Context(), zmq::socket_type::dealer) {
    proto::ConfigureSocket(socket_, proto::Limits{}, /*is_router=*/false);
    if (receive_hwm > 0) {
      socket_.set(zmq::sockopt::rcvhwm, receive_hwm);
      socket_.set(zmq::sockopt::rcvbuf, 64 * 1024);
    }
    if (plain) {
      socket_.set(zmq::sockopt::plain_username, plain->user);
      socket_.set(zmq::sockopt::plain_password, plain->password);
    }
    if (monitor) {
      static std::atomic<int> generation{0};
      const std::string address = "inproc://sec-monitor-" + std::to_string(++generation);
      if (zmq_socket_monitor(socket_.handle(), address.c_str(),
                             ZMQ_EVENT_HANDSHAKE_FAILED_AUTH | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                                 ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL |
                                 ZMQ_EVENT_HANDSHAKE_SUCCEEDED | ZMQ_EVENT_DISCONNECTED) == 0) {
        monitor_.emplace(Context(), zmq::socket_type::pair);
        monitor_->set(zmq::sockopt::linger, 0);
        monitor_->connect(address);
      }
    }
    socket_.connect(endpoint);
  }
  ~Peer() {
    if (monitor_) (void)zmq_socket_monitor(socket_.handle(), nullptr, 0);
  }

  zmq::socket_t& socket() { return socket_; }

  void SendBodies(Command command, const std::vector<std::string>& bodies) {
    proto::OutMessage m(command);
    for (const std::string& b : bodies) m.AddBody(b);
    Status s = m.Send(socket_);
    EXPECT_TRUE(s.ok()) << s.message();
  }
  template <typename T>
  void Send(Command command, const T& message) {
    SendBodies(command, {proto::Encode(message)});
  }

  // The next message (from the inbox first), or nothing within `timeout`.
  bool Receive(std::chrono::milliseconds timeout, Message* out) {
    if (!inbox_.empty()) {
      *out = std::move(inbox_.front());
      inbox_.pop_front();
      return true;
    }
    return ReceiveFromSocket(timeout, out);
  }

  // Waits for a message `match` likes; other messages are kept for later Receive() calls.
  bool WaitFor(const std::function<bool(const Message&)>& match, std::chrono::milliseconds timeout,
               Message* out) {
    for (auto it = inbox_.begin(); it != inbox_.end(); ++it) {
      if (match(*it)) {
        *out = std::move(*it);
        inbox_.erase(it);
        return true;
      }
    }
    const auto deadline = Steady::now() + timeout;
    for (;;) {
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Steady::now());
      if (left.count() <= 0) return false;
      Message m;
      if (!ReceiveFromSocket(left, &m)) return false;
      if (match(m)) {
        *out = std::move(m);
        return true;
      }
      inbox_.push_back(std::move(m));
    }
  }
  bool WaitFor(Command command, std::chrono::milliseconds timeout, Message* out) {
    return WaitFor([command](const Message& m) { return m.command == command; }, timeout, out);
  }

  // Everything that arrives within `window` (inbox included).
  std::vector<Message> Drain(std::chrono::milliseconds window) {
    std::vector<Message> all(std::make_move_iterator(inbox_.begin()),
                             std::make_move_iterator(inbox_.end()));
    inbox_.clear();
    const auto deadline = Steady::now() + window;
    Message m;
    for (;;) {
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Steady::now());
      if (left.count() <= 0 || !ReceiveFromSocket(left, &m)) return all;
      all.push_back(std::move(m));
    }
  }

  // The next monitor event within `timeout` (needs monitor = true).
  std::optional<HandshakeEvent> NextEvent(std::chrono::milliseconds timeout) {
    if (!monitor_) return std::nullopt;
    zmq::pollitem_t item{monitor_->handle(), 0, ZMQ_POLLIN, 0};
    zmq::poll(&item, 1, timeout);
    if (!(item.revents & ZMQ_POLLIN)) return std::nullopt;
    zmq::message_t event;
    zmq::message_t address;
    if (!monitor_->recv(event, zmq::recv_flags::none)) return std::nullopt;
    if (event.more()) (void)monitor_->recv(address, zmq::recv_flags::none);
    if (event.size() < 6) return std::nullopt;
    uint16_t kind = 0;
    HandshakeEvent e;
    std::memcpy(&kind, event.data(), sizeof kind);
    std::memcpy(&e.value, static_cast<const char*>(event.data()) + 2, sizeof e.value);
    e.event = kind;
    return e;
  }

 private:
  bool ReceiveFromSocket(std::chrono::milliseconds timeout, Message* out) {
    return ReceiveOne(socket_, timeout, out);
  }

  zmq::socket_t socket_;
  std::optional<zmq::socket_t> monitor_;
  std::deque<Message> inbox_;
};

template <typename T>
std::optional<T> DecodeAs(const std::string& body, const proto::Limits& limits = {}) {
  proto::Decoder decoder(limits);
  T out;
  if (!decoder.Decode(body, &out).ok()) return std::nullopt;
  return out;
}

// ---- Workers ------------------------------------------------------------------------------------

inline proto::Ready MakeReady(const std::string& worker_id, std::vector<std::string> services,
                              uint32_t slots = 1, const std::string& secret = "") {
  proto::Ready r;
  r.worker_id = worker_id;
  r.name = worker_id;
  r.worker_secret = secret;
  r.agent_version = "attacker";
  r.slots = slots;
  r.capabilities.cpu_cores = 2;
  r.capabilities.ram_gb = 4;
  for (std::string& s : services) r.services.push_back({std::move(s), "builtin"});
  return r;
}

// Whether a message is a DISCONNECT with reconnect: false (a refusal for good).
inline bool IsRefusal(const Message& m) {
  if (m.command != Command::kDisconnect) return false;
  for (const std::string& b : m.bodies) {
    auto d = DecodeAs<proto::Disconnect>(b);
    if (d && !d->reconnect) return true;
  }
  return false;
}

// Sends READY and waits for the broker's verdict: true on WELCOME; false on a refusal
// (DISCONNECT reconnect: false, or an ERROR such as the READY rate limit), its reason in *refusal,
// or when no verdict came within `timeout` (*refusal = "no answer"). Other messages (TASKs after
// the WELCOME) stay in the peer's inbox.
inline bool Register(Peer& worker, const proto::Ready& ready, std::string* refusal = nullptr,
                     std::chrono::milliseconds timeout = 5s) {
  worker.Send(Command::kReady, ready);
  Message m;
  const bool got = worker.WaitFor(
      [](const Message& x) {
        return x.command == Command::kWelcome || x.command == Command::kError || IsRefusal(x);
      },
      timeout, &m);
  std::string why = "no answer";
  if (got && m.command == Command::kWelcome) return true;
  if (got && m.command == Command::kError) {
    auto e = DecodeAs<proto::Error>(m.bodies.empty() ? std::string() : m.bodies[0]);
    why = "ERROR " + (e ? e->code + ": " + e->message : std::string("(unreadable)"));
  } else if (got) {
    auto d = DecodeAs<proto::Disconnect>(m.bodies.empty() ? std::string() : m.bodies[0]);
    why = d ? d->reason : "(no reason)";
  }
  if (refusal != nullptr) *refusal = why;
  return false;
}

// The next TASK body the worker receives.
inline std::optional<proto::TaskAssignment> NextTask(Peer& worker,
                                                     std::chrono::milliseconds timeout = 5s) {
  Message m;
  if (!worker.WaitFor(Command::kTask, timeout, &m) || m.bodies.empty()) return std::nullopt;
  return DecodeAs<proto::TaskAssignment>(m.bodies[0]);
}

inline proto::TaskResult ResultFor(TaskId id, uint32_t attempt, const std::string& result,
                                   proto::Outcome outcome = proto::Outcome::kOk) {
  proto::TaskResult r;
  r.task_id = id;
  r.attempt = attempt;
  r.outcome = outcome;
  r.result = result;
  r.error = outcome == proto::Outcome::kOk ? "" : "forged failure";
  return r;
}

// ---- Clients ------------------------------------------------------------------------------------

// Admin documents of a large pool have long arrays: answers are decoded with the gateway's limits
// (gateway/broker_client.cc).
inline proto::Limits AdminLimits() {
  proto::Limits limits;
  limits.max_array = 1u << 20;
  limits.max_map = 1u << 16;
  limits.max_objects = 1u << 24;
  limits.max_depth = 16;
  return limits;
}

// A client on the client endpoint: requests with refs, answers matched by ref.
class Client {
 public:
  explicit Client(const std::string& endpoint, std::optional<Plain> plain = std::nullopt)
      : peer_(endpoint, std::move(plain)) {}
  Peer& peer() { return peer_; }

  // Sends one request (its ref set here) and waits for the answer with that ref.
  template <typename T>
  std::optional<Message> Call(Command command, T request, std::chrono::milliseconds timeout = 5s) {
    request.ref = ++next_ref_;
    const uint64_t ref = request.ref;
    peer_.Send(command, request);
    return AnswerTo(ref, timeout);
  }
  std::optional<Message> AnswerTo(uint64_t ref, std::chrono::milliseconds timeout) {
    proto::Decoder decoder(AdminLimits());
    const auto deadline = Steady::now() + timeout;
    for (;;) {
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Steady::now());
      if (left.count() <= 0) return std::nullopt;
      Message m;
      if (!peer_.Receive(left, &m)) return std::nullopt;
      for (const std::string& b : m.bodies) {
        if (RefOf(decoder, m.command, b) == ref) return Message{m.command, {b}};
      }
    }
  }
  uint64_t NextRef() { return ++next_ref_; }

  // Submits an async task; its id, or nullopt (the error in *error).
  std::optional<TaskId> Submit(const std::string& service, const std::string& payload = "x",
                               const std::string& owner = "", const std::string& key = "",
                               std::string* error = nullptr, bool* duplicate = nullptr) {
    proto::Submit s;
    s.service = service;
    s.payload = payload;
    s.owner = owner;
    s.idempotency_key = key;
    auto m = Call(Command::kSubmit, s);
    if (!m) {
      if (error != nullptr) *error = "no answer";
      return std::nullopt;
    }
    if (m->command == Command::kAccepted) {
      auto a = DecodeAs<proto::Accepted>(m->bodies[0]);
      if (!a) return std::nullopt;
      if (duplicate != nullptr) *duplicate = a->duplicate;
      return a->task_id;
    }
    if (error != nullptr) *error = ErrorCode(*m);
    return std::nullopt;
  }

  // Polls task `id` until it has `status` (up to `timeout`); the last view read goes to *view.
  bool WaitForStatus(TaskId id, proto::TaskStatus status, std::chrono::milliseconds timeout,
                     std::optional<proto::TaskView>* view = nullptr) {
    std::optional<proto::TaskView> last;
    const bool reached = WaitUntil(
        [&] {
          last = Get(id);
          return last && last->status == status;
        },
        timeout);
    if (view != nullptr) *view = std::move(last);
    return reached;
  }

  // A task as its owner (or an admin) sees it; nullopt with the error code in *error otherwise.
  std::optional<proto::TaskView> Get(TaskId id, const std::string& owner = "", bool admin = false,
                                     std::string* error = nullptr) {
    proto::Get g;
    g.task_id = id;
    g.owner = owner;
    g.admin = admin;
    return TaskOf(Call(Command::kGet, g), error);
  }
  std::optional<proto::TaskView> Cancel(TaskId id, const std::string& owner = "",
                                        bool admin = false, std::string* error = nullptr) {
    proto::CancelTask c;
    c.task_id = id;
    c.owner = owner;
    c.admin = admin;
    return TaskOf(Call(Command::kCancelTask, c), error);
  }
  std::vector<proto::TaskView> List(const std::string& owner = "", bool admin = false) {
    proto::List l;
    l.owner = owner;
    l.admin = admin;
    l.limit = 1000;
    auto m = Call(Command::kList, l);
    if (!m || m->command != Command::kTaskList) return {};
    auto list = DecodeAs<proto::TaskList>(m->bodies[0]);
    return list ? list->tasks : std::vector<proto::TaskView>{};
  }
  // An admin document (ADMIN_REPLY data), or null.
  json Admin(const std::string& query) {
    proto::Admin a;
    a.query = query;
    auto m = Call(Command::kAdmin, a);
    if (!m || m->command != Command::kAdminReply) return nullptr;
    last_admin_bytes_ = m->bodies[0].size();
    auto reply = DecodeAs<proto::AdminReply>(m->bodies[0], AdminLimits());
    return reply ? reply->data : json(nullptr);
  }
  size_t last_admin_bytes() const { return last_admin_bytes_; }
  // refusals.<reason> of the metrics document; -1 when the broker does not count it (a broker
  // from before issue 12 has no "refusals" in its metrics).
  int64_t Refusals(const std::string& reason) {
    json m = Admin("metrics");
    if (!m.is_object() || !m.contains("refusals") || !m["refusals"].contains(reason)) return -1;
    return m["refusals"][reason].get<int64_t>();
  }
  // The refusals section of the metrics document, for failure messages.
  std::string RefusalsText() {
    json m = Admin("metrics");
    if (!m.is_object() || !m.contains("refusals")) return "the metrics document counts no refusals";
    return "refusals: " + m["refusals"].dump();
  }

  static std::string ErrorCode(const Message& m) {
    if (m.command != Command::kError || m.bodies.empty()) return "";
    auto e = DecodeAs<proto::Error>(m.bodies[0]);
    return e ? e->code : "";
  }

 private:
  static std::optional<proto::TaskView> TaskOf(const std::optional<Message>& m,
                                               std::string* error) {
    if (!m) {
      if (error != nullptr) *error = "no answer";
      return std::nullopt;
    }
    if (m->command == Command::kTaskInfo) {
      auto info = DecodeAs<proto::TaskInfo>(m->bodies[0]);
      if (info) return info->task;
    }
    if (error != nullptr) *error = ErrorCode(*m);
    return std::nullopt;
  }

  Peer peer_;
  uint64_t next_ref_ = 0;
  size_t last_admin_bytes_ = 0;
};

// Another client's round trips (HEARTBEAT on the client endpoint, which the broker answers at
// once), measured on a thread of its own for as long as the probe lives: how long an attack makes
// everybody else wait.
class RoundTripProbe {
 public:
  explicit RoundTripProbe(const std::string& clients_endpoint)
      : thread_([this, clients_endpoint] { Run(clients_endpoint); }) {}
  ~RoundTripProbe() { Stop(); }
  void Stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  // After Stop(): every round trip in ms (an unanswered one counts as the 5 s it waited).
  std::vector<double> round_trips_ms() const { return round_trips_ms_; }
  double WorstMs() const {
    return round_trips_ms_.empty()
               ? 0
               : *std::max_element(round_trips_ms_.begin(), round_trips_ms_.end());
  }
  double MedianMs() const {
    std::vector<double> v = round_trips_ms_;
    if (v.empty()) return 0;
    std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(v.size() / 2), v.end());
    return v[v.size() / 2];
  }
  int unanswered() const { return unanswered_; }
  std::string Summary() const {
    char text[160];
    std::snprintf(text, sizeof text,
                  "%zu round trips, median %.2f ms, worst %.1f ms, %d unanswered",
                  round_trips_ms_.size(), MedianMs(), WorstMs(), unanswered_);
    return text;
  }

 private:
  void Run(const std::string& endpoint) {
    Peer peer(endpoint);
    while (!stop_) {
      const auto t0 = Steady::now();
      peer.SendBodies(Command::kHeartbeat, {});
      Message m;
      const bool got = peer.WaitFor(Command::kHeartbeat, 5s, &m);
      round_trips_ms_.push_back(
          std::chrono::duration<double, std::milli>(Steady::now() - t0).count());
      if (!got) ++unanswered_;
    }
  }

  std::atomic<bool> stop_{false};
  std::vector<double> round_trips_ms_;  // written by the thread until Stop()
  int unanswered_ = 0;
  std::thread thread_;
};

inline std::string StatusOf(const std::optional<proto::TaskView>& t) {
  return t ? std::string(proto::TaskStatusName(t->status)) : "(not visible)";
}

}  // namespace rma::testing::broker_attack
