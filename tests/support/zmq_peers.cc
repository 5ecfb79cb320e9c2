// See zmq_peers.h.
#include "tests/support/zmq_peers.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <deque>

#include "protocol/admin_reply.h"

namespace rma::testing {

using proto::Command;
using Steady = std::chrono::steady_clock;

ZmqClient::ZmqClient(const std::string& endpoint)
    : context_(1), socket_(context_, zmq::socket_type::dealer) {
  proto::ConfigureSocket(socket_, proto::Limits{}, /*is_router=*/false);
  socket_.connect(endpoint);
}

bool ZmqClient::Submit(const std::vector<proto::Submit>& batch) {
  proto::OutMessage m(Command::kSubmit);
  for (const proto::Submit& s : batch) m.Add(s);
  return m.Send(socket_).ok();
}

bool ZmqClient::Send(Command command, const std::string& body) {
  proto::OutMessage m(command);
  if (!body.empty()) m.AddBody(body);
  return m.Send(socket_).ok();
}

bool ReceiveOne(zmq::socket_t& socket, std::chrono::milliseconds timeout, ClientMessage* out) {
  zmq::pollitem_t item{socket.handle(), 0, ZMQ_POLLIN, 0};
  zmq::poll(&item, 1, timeout);
  if (!(item.revents & ZMQ_POLLIN)) return false;
  proto::InMessage msg;
  auto got = proto::ReceiveMessage(socket, /*has_identity=*/false, proto::Limits{}, &msg);
  if (!got.ok() || !*got) return false;
  out->command = msg.command();
  out->bodies.clear();
  for (size_t i = 0; i < msg.body_count(); ++i) out->bodies.emplace_back(msg.body(i));
  return true;
}

bool ZmqClient::Receive(std::chrono::milliseconds timeout, ClientMessage* out) {
  return ReceiveOne(socket_, timeout, out);
}

bool ZmqClient::Call(Command command, const std::string& body, uint64_t ref,
                     std::chrono::milliseconds timeout, ClientMessage* answer) {
  if (!Send(command, body)) return false;
  proto::Decoder decoder;
  auto deadline = Steady::now() + timeout;
  while (Steady::now() < deadline) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Steady::now());
    if (!Receive(std::max(left, std::chrono::milliseconds(1)), answer)) continue;
    for (const std::string& b : answer->bodies) {
      if (RefOf(decoder, answer->command, b) == ref) {
        answer->bodies = {b};
        return true;
      }
    }
  }
  return false;
}

uint64_t RefOf(proto::Decoder& decoder, Command command, std::string_view body) {
  switch (command) {
    case Command::kAccepted: {
      proto::Accepted a;
      return decoder.Decode(body, &a).ok() ? a.ref : 0;
    }
    case Command::kTaskInfo: {
      proto::TaskInfo t;
      return decoder.Decode(body, &t).ok() ? t.ref : 0;
    }
    case Command::kTaskList: {
      proto::TaskList t;
      return decoder.Decode(body, &t).ok() ? t.ref : 0;
    }
    case Command::kAdminReply: {
      proto::AdminReply a;
      return decoder.Decode(body, &a).ok() ? a.ref : 0;
    }
    case Command::kError: {
      proto::Error e;
      return decoder.Decode(body, &e).ok() ? e.ref : 0;
    }
    default:
      return 0;
  }
}

void ExecutionLog::Add(uint64_t task_id, uint32_t attempt, const std::string& worker_id) {
  std::lock_guard<std::mutex> lock(mu_);
  entries_.push_back({task_id, attempt, worker_id});
}

std::map<uint64_t, int> ExecutionLog::Counts() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::map<uint64_t, int> counts;
  for (const Entry& e : entries_) ++counts[e.task_id];
  return counts;
}

std::map<uint64_t, std::vector<uint32_t>> ExecutionLog::Attempts() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::map<uint64_t, std::vector<uint32_t>> attempts;
  for (const Entry& e : entries_) attempts[e.task_id].push_back(e.attempt);
  return attempts;
}

size_t ExecutionLog::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return entries_.size();
}

std::vector<std::pair<uint64_t, Steady::time_point>> FakeWorker::completions() const {
  std::lock_guard<std::mutex> lock(completions_mu_);
  return completions_;
}

std::vector<proto::TaskAssignment> FakeWorker::tasks() const {
  std::lock_guard<std::mutex> lock(completions_mu_);
  return tasks_;
}

proto::TaskResult FakeWorker::DescribeRequest(const proto::TaskAssignment& task) {
  nlohmann::json j = {{"service", task.service},
                      {"body", std::string(task.payload.view())},
                      {"content_type", task.content_type},
                      {"timeout_ms", task.timeout_ms}};
  if (task.request) {
    j["method"] = task.request->method;
    j["path"] = task.request->path;
    j["query"] = task.request->query;
    j["headers"] = task.request->headers;
  }
  proto::TaskResult r;
  r.task_id = task.task_id;
  r.attempt = task.attempt;
  r.outcome = proto::Outcome::kOk;
  r.result = j.dump();
  r.content_type = "application/x-rma-test";
  r.http_status = 201;
  return r;
}

FakeWorker::FakeWorker(FakeWorkerOptions options, ExecutionLog* log)
    : options_(std::move(options)), log_(log) {}

FakeWorker::~FakeWorker() { Stop(); }

void FakeWorker::Start() {
  stop_ = false;
  thread_ = std::thread([this] { Run(); });
}

void FakeWorker::Stop() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
}

void FakeWorker::Run() {
  struct Running {
    Steady::time_point due;
    proto::TaskAssignment task;
  };
  zmq::context_t context(1);
  zmq::socket_t socket(context, zmq::socket_type::dealer);
  proto::ConfigureSocket(socket, proto::Limits{}, /*is_router=*/false);
  socket.connect(options_.endpoint);
  proto::Decoder decoder;
  std::deque<Running> running;          // ordered by due time when run_time is constant
  std::vector<proto::TaskResult> held;  // finished while not registered
  bool registered = false;
  auto heartbeat = options_.heartbeat;
  Steady::time_point last_sent{};

  auto send_ready = [&] {
    proto::Ready ready;
    ready.worker_id = options_.worker_id;
    ready.name = options_.worker_id;
    ready.agent_version = "fake";
    ready.slots = options_.slots;
    ready.capabilities.cpu_cores = 2;
    ready.capabilities.ram_gb = 4;
    for (const std::string& s : options_.services) ready.services.push_back({s, "builtin"});
    for (const Running& r : running) ready.running.push_back({r.task.task_id, r.task.attempt});
    for (const proto::TaskResult& r : held) ready.running.push_back({r.task_id, r.attempt});
    (void)proto::SendOne(socket, {}, Command::kReady, ready);
    registered = false;
    registered_ = false;
    last_sent = Steady::now();
  };
  auto send_results = [&](std::vector<proto::TaskResult>& results) {
    if (options_.record_completions && !results.empty()) {
      auto at = Steady::now();
      std::lock_guard<std::mutex> lock(completions_mu_);
      for (const proto::TaskResult& r : results) completions_.emplace_back(r.task_id.value(), at);
    }
    for (size_t i = 0; i < results.size(); i += 256) {
      proto::OutMessage m(Command::kResult);
      for (size_t k = i; k < std::min(results.size(), i + 256); ++k) m.Add(results[k]);
      if (m.Send(socket).ok()) results_sent_ += m.body_count();
    }
    results.clear();
    last_sent = Steady::now();
  };

  send_ready();
  proto::InMessage msg;
  std::vector<proto::TaskResult> done;
  while (!stop_) {
    Steady::time_point now = Steady::now();
    Steady::time_point next = std::min(last_sent + heartbeat, now + std::chrono::milliseconds(50));
    for (const Running& r : running) next = std::min(next, r.due);
    auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(next - now);
    zmq::pollitem_t item{socket.handle(), 0, ZMQ_POLLIN, 0};
    zmq::poll(&item, 1, std::max(wait, std::chrono::milliseconds(0)));
    for (int budget = 0; budget < 256; ++budget) {
      auto got = proto::ReceiveMessage(socket, /*has_identity=*/false, proto::Limits{}, &msg);
      if (!got.ok()) continue;
      if (!*got) break;
      switch (msg.command()) {
        case Command::kWelcome: {
          proto::Welcome w;
          if (msg.body_count() > 0 && decoder.Decode(msg.body(0), &w).ok() && w.heartbeat_ms > 0) {
            heartbeat = std::chrono::milliseconds(w.heartbeat_ms);
          }
          registered = true;
          registered_ = true;
          send_results(held);
          break;
        }
        case Command::kTask:
          for (size_t i = 0; i < msg.body_count(); ++i) {
            proto::TaskAssignment t;
            if (!decoder.Decode(msg.body(i), &t).ok()) continue;
            if (log_ != nullptr) log_->Add(t.task_id.value(), t.attempt, options_.worker_id);
            if (options_.record_tasks) {
              std::lock_guard<std::mutex> lock(completions_mu_);
              tasks_.push_back(t);
            }
            auto d = options_.run_time ? options_.run_time() : std::chrono::microseconds(0);
            running.push_back({Steady::now() + d, std::move(t)});
          }
          break;
        case Command::kCancel:
          for (size_t i = 0; i < msg.body_count(); ++i) {
            proto::CancelAttempt c;
            if (!decoder.Decode(msg.body(i), &c).ok()) continue;
            for (auto it = running.begin(); it != running.end(); ++it) {
              if (it->task.task_id == c.task_id && it->task.attempt == c.attempt) {
                proto::TaskResult r;
                r.task_id = c.task_id;
                r.attempt = c.attempt;
                r.outcome = proto::Outcome::kCancelled;
                done.push_back(std::move(r));
                running.erase(it);
                break;
              }
            }
          }
          break;
        case Command::kDisconnect: {
          proto::Disconnect d;
          if (msg.body_count() > 0) (void)decoder.Decode(msg.body(0), &d);
          // Before the WELCOME, further DISCONNECTs answer messages sent before our READY: ignore
          // them (docs/protocol.md 5.13), or every READY would give the leases back again.
          if (d.reconnect && registered) send_ready();
          break;
        }
        default:
          break;  // HEARTBEAT, ERROR
      }
    }
    now = Steady::now();
    for (auto it = running.begin(); it != running.end();) {
      if (it->due > now) {
        ++it;
        continue;
      }
      if (options_.stream) {
        // PARTIALs first, one message each (as a streaming backend produces them), then the
        // RESULT below.
        std::vector<std::string> chunks = options_.stream(it->task);
        for (uint32_t seq = 0; seq < chunks.size(); ++seq) {
          proto::Partial p;
          p.task_id = it->task.task_id;
          p.attempt = it->task.attempt;
          p.seq = seq;
          p.data = std::move(chunks[seq]);
          if (seq == 0) {
            p.http_status = 200;
            p.content_type = "text/event-stream";
          }
          (void)proto::SendOne(socket, {}, Command::kPartial, p);
        }
      }
      if (options_.backend) {
        done.push_back(options_.backend(it->task));
      } else {
        proto::TaskResult r;
        r.task_id = it->task.task_id;
        r.attempt = it->task.attempt;
        r.outcome = proto::Outcome::kOk;
        r.result = it->task.payload;  // shared, not copied
        r.content_type = std::move(it->task.content_type);
        done.push_back(std::move(r));
      }
      it = running.erase(it);
    }
    if (!done.empty()) {
      if (registered) {
        send_results(done);
      } else {
        for (proto::TaskResult& r : done) held.push_back(std::move(r));
        done.clear();
      }
    }
    if (Steady::now() - last_sent >= heartbeat) {
      proto::Heartbeat hb;
      hb.in_flight = static_cast<uint32_t>(running.size());
      (void)proto::SendOne(socket, {}, Command::kHeartbeat, hb);
      last_sent = Steady::now();
    }
  }
}

}  // namespace rma::testing
