// Test harness for the Scheduler: a recording SchedulerOutput that keeps what the scheduler sends,
// and a fixture with a FakeClock and helpers to register workers, submit tasks and answer them. No
// sockets, no threads, no real time: every test drives the state machine directly.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <set>
#include <string>
#include <type_traits>
#include <variant>
#include <vector>

#include "broker/scheduler.h"
#include "protocol/messages.h"

namespace rma::broker::testing {

struct Sent {
  std::string identity;
  std::variant<proto::ToWorkerMessage, proto::ToClientMessage> message;
  bool durable = false;  // sent through ToClientWhenDurable
  uint64_t after = 0;    // sent through ToClientAfter with this token
  proto::Command command() const {
    return std::visit(
        [](const auto& m) {
          return std::visit([](const auto& x) { return proto::CommandOf(x); }, m);
        },
        message);
  }
  // The message as T, or nullptr when it is another type.
  template <typename T>
  const T* As() const {
    if (const auto* w = std::get_if<proto::ToWorkerMessage>(&message)) {
      if constexpr (std::is_constructible_v<proto::ToWorkerMessage, T>) return std::get_if<T>(w);
    }
    if (const auto* c = std::get_if<proto::ToClientMessage>(&message)) {
      if constexpr (std::is_constructible_v<proto::ToClientMessage, T>) return std::get_if<T>(c);
    }
    return nullptr;
  }
};

// Records the scheduler's typed output as it is (no encoding: the loop does that).
class RecordingOutput final : public SchedulerOutput {
 public:
  void ToWorker(const std::string& identity, const proto::ToWorkerMessage& message) override {
    to_workers.push_back({identity, message});
  }
  void ToClient(const std::string& identity, const proto::ToClientMessage& message) override {
    to_clients.push_back({identity, message});
  }
  uint64_t ToClientWhenDurable(const std::string& identity, proto::Accepted accepted) override {
    to_clients.push_back({identity, proto::ToClientMessage(std::move(accepted)), true});
    return ++durable_tokens;
  }
  void ToClientAfter(const std::string& identity, proto::ToClientMessage message,
                     uint64_t after) override {
    to_clients.push_back({identity, std::move(message), false, after});
  }
  void Record(TaskWrite write) override { writes.push_back(std::move(write)); }
  void RecordWorker(WorkerRecord record) override { worker_records.push_back(std::move(record)); }
  void RecordLedger(std::vector<LedgerEntry> entries) override {
    for (LedgerEntry& e : entries) ledger.push_back(std::move(e));
  }
  void RecordTrust(TrustRecord record) override { trust.push_back(std::move(record)); }

  // Removes and returns every message of `command` sent to `identity` so far.
  template <typename T>
  std::vector<T> Take(std::vector<Sent>& list, const std::string& identity,
                      proto::Command command) {
    std::vector<T> out;
    // One pass (remove_if), so tests that send many messages stay linear.
    auto kept = std::remove_if(list.begin(), list.end(), [&](const Sent& sent) {
      if (sent.identity != identity || sent.command() != command) return false;
      const T* m = sent.As<T>();
      EXPECT_NE(m, nullptr) << "a " << proto::CommandName(command) << " of another type";
      if (m != nullptr) out.push_back(*m);
      return true;
    });
    list.erase(kept, list.end());
    return out;
  }
  size_t Count(const std::vector<Sent>& list, const std::string& identity,
               proto::Command command) const {
    size_t n = 0;
    for (const Sent& s : list) n += (s.identity == identity && s.command() == command) ? 1 : 0;
    return n;
  }

  std::vector<Sent> to_workers;
  std::vector<Sent> to_clients;
  std::vector<TaskWrite> writes;
  std::vector<WorkerRecord> worker_records;
  std::vector<LedgerEntry> ledger;
  std::vector<TrustRecord> trust;
  uint64_t durable_tokens = 0;  // the last token ToClientWhenDurable returned
};

inline proto::Capabilities GpuCaps(double gpu_memory_gb = 24) {
  proto::Capabilities c;
  c.cpu_cores = 16;
  c.ram_gb = 64;
  c.has_gpu = true;
  c.gpu_type = "RTX";
  c.gpu_memory_gb = gpu_memory_gb;
  c.gpu_count = 1;
  return c;
}
inline proto::Capabilities CpuCaps() {
  proto::Capabilities c;
  c.cpu_cores = 8;
  c.ram_gb = 32;
  return c;
}
inline proto::Capabilities SmallCaps() {
  proto::Capabilities c;
  c.cpu_cores = 2;
  c.ram_gb = 4;
  return c;
}

class SchedulerFixture : public ::testing::Test {
 protected:
  SchedulerFixture() {
    config_.heartbeat_interval = Ms(1000);
    config_.liveness = 3;
    config_.default_timeout = Seconds(60);
    config_.max_queue_time = Seconds(600);
    config_.retry_backoff_base = Ms(1000);
    config_.retry_backoff_max = Seconds(60);
    config_.catalog = DefaultCatalog();
  }

  Scheduler& s() {
    if (!scheduler_)
      scheduler_ = std::make_unique<Scheduler>(config_, &out_, durable_, /*seed=*/42);
    return *scheduler_;
  }
  Time now() const { return clock_.Now(); }
  // Moves time on. Every worker in beating_ heartbeats first, as a live worker would.
  void Advance(Duration d) {
    clock_.Advance(d);
    for (const std::string& w : beating_) Heartbeat(w);
    s().OnTick(now());
  }
  // Advances in small steps so the scheduler sees every intermediate wake-up.
  void AdvanceInSteps(Duration total, Duration step = Ms(100)) {
    for (Duration done{0}; done < total; done += step) Advance(step);
  }

  // Registers worker `id` (identity "id/ident"), bound to `account` as a credential would, and
  // returns its WELCOME.
  proto::Welcome Register(const std::string& id, proto::Capabilities caps,
                          std::vector<std::string> services, uint32_t slots = 1,
                          bool simulated = false, std::vector<proto::RunningTask> running = {},
                          std::string account = "") {
    proto::Ready r;
    r.account = std::move(account);
    r.worker_id = id;
    r.worker_secret = id + "-secret";
    r.name = id;
    r.slots = slots;
    r.simulated = simulated;
    r.capabilities = std::move(caps);
    for (const std::string& name : services) r.services.push_back({name, "builtin"});
    r.running = std::move(running);
    s().OnWorkerReady(now(), Ident(id), std::move(r));
    beating_.insert(id);
    auto welcomes = out_.Take<proto::Welcome>(out_.to_workers, Ident(id), proto::Command::kWelcome);
    if (welcomes.empty()) return proto::Welcome{};
    return welcomes.back();
  }
  static std::string Ident(const std::string& worker_id) { return worker_id + "/ident"; }

  // Submits an async task and returns its id (from ACCEPTED).
  TaskId Submit(const std::string& service, proto::Submit extra = {},
                const std::string& client = "client") {
    extra.service = service;
    extra.ref = ++ref_;
    if (extra.payload.empty()) extra.payload = "p" + std::to_string(ref_);
    s().OnSubmit(now(), client, extra);
    auto acc = out_.Take<proto::Accepted>(out_.to_clients, client, proto::Command::kAccepted);
    if (acc.size() != 1) {
      ADD_FAILURE() << "expected one ACCEPTED for " << service;
      return TaskId(0);
    }
    EXPECT_EQ(acc[0].ref, ref_);
    return acc[0].task_id;
  }

  // TASKs sent to a worker since the last call.
  std::vector<proto::TaskAssignment> Tasks(const std::string& worker_id) {
    return out_.Take<proto::TaskAssignment>(out_.to_workers, Ident(worker_id),
                                            proto::Command::kTask);
  }
  std::vector<proto::CancelAttempt> Cancels(const std::string& worker_id) {
    return out_.Take<proto::CancelAttempt>(out_.to_workers, Ident(worker_id),
                                           proto::Command::kCancel);
  }

  void Result(const std::string& worker_id, const proto::TaskAssignment& t,
              proto::Outcome outcome = proto::Outcome::kOk, std::string result = "done",
              bool retryable = true) {
    proto::TaskResult r;
    r.task_id = t.task_id;
    r.attempt = t.attempt;
    r.outcome = outcome;
    r.result = std::move(result);
    r.error = outcome == proto::Outcome::kError ? "boom" : "";
    r.retryable = retryable;
    s().OnWorkerResult(now(), Ident(worker_id), std::move(r));
  }
  void Heartbeat(const std::string& worker_id, double load = 0) {
    proto::Heartbeat hb;
    hb.load = load;
    s().OnWorkerHeartbeat(now(), Ident(worker_id), &hb);
  }

  proto::TaskStatus Status(TaskId id) {
    const Scheduler::Task* t = s().FindTask(id);
    EXPECT_NE(t, nullptr);
    return t == nullptr ? proto::TaskStatus::kExpired : t->status;
  }

  BrokerConfig config_;
  bool durable_ = false;
  FakeClock clock_;
  RecordingOutput out_;
  std::unique_ptr<Scheduler> scheduler_;
  uint64_t ref_ = 0;
  std::set<std::string>
      beating_;  // workers that heartbeat on every Advance(); erase one to let it die
};

}  // namespace rma::broker::testing
