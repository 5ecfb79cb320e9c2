// store_bench: durable tasks per second through a real rma-broker running on PostgreSQL.
//
// Drives the broker directly over ZeroMQ (no HTTP): one client thread sends batched SUBMIT
// messages with at most --window tasks unacknowledged, and --workers fake workers in this process
// (tests/support/zmq_peers.h) answer every TASK at once with its payload. A task counts when its
// completion is committed in PostgreSQL: the run ends when the tasks table holds --tasks completed
// rows. Prints its parameters, nproc, durable tasks/s, the latency of durable acceptance (SUBMIT
// sent -> ACCEPTED received, which waits for the commit holding the task) and of completion
// (SUBMIT sent -> RESULT sent by the worker), p50 and p99. bench/store_bench.sh starts PostgreSQL
// and the broker, repeats runs and reports medians with the processes' memory.
#include <pqxx/pqxx>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "tests/support/zmq_peers.h"

namespace {

using Steady = std::chrono::steady_clock;
using rma::proto::Command;

struct Args {
  std::string clients;
  std::string workers_endpoint;
  std::string db;
  int tasks = 100000;
  int workers = 2;
  int slots = 64;
  int window = 2000;
  int batch = 50;
  int payload = 64;
  int rate = 0;       // tasks/s offered (0: as fast as the window allows)
  std::string owner;  // the account the tasks are submitted for ("": anonymous, never charged)
};

double Percentile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  size_t k = std::min(v.size() - 1, static_cast<size_t>(q * static_cast<double>(v.size())));
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(k), v.end());
  return v[k];
}

int64_t CompletedOnRecord(pqxx::connection& conn) {
  pqxx::nontransaction tx(conn);
  return tx.exec("SELECT count(*) FROM tasks WHERE status = 'completed'")[0][0].as<int64_t>();
}

int Usage() {
  std::fprintf(stderr,
               "usage: store_bench --clients EP --workers-endpoint EP --db URL [--tasks N] "
               "[--workers W] [--slots S] [--window N] [--batch N] [--payload BYTES] [--rate N] "
               "[--owner ACCOUNT]\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  Args a;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i];
    std::string v = argv[i + 1];
    if (k == "--clients") {
      a.clients = v;
    } else if (k == "--workers-endpoint") {
      a.workers_endpoint = v;
    } else if (k == "--db") {
      a.db = v;
    } else if (k == "--tasks") {
      a.tasks = std::atoi(v.c_str());
    } else if (k == "--workers") {
      a.workers = std::atoi(v.c_str());
    } else if (k == "--slots") {
      a.slots = std::atoi(v.c_str());
    } else if (k == "--window") {
      a.window = std::atoi(v.c_str());
    } else if (k == "--batch") {
      a.batch = std::atoi(v.c_str());
    } else if (k == "--payload") {
      a.payload = std::atoi(v.c_str());
    } else if (k == "--rate") {
      a.rate = std::atoi(v.c_str());
    } else if (k == "--owner") {
      a.owner = v;
    } else {
      return Usage();
    }
  }
  if (a.clients.empty() || a.workers_endpoint.empty() || a.db.empty() || a.tasks <= 0) {
    return Usage();
  }
  std::printf(
      "store_bench: tasks=%d workers=%d slots=%d window=%d batch=%d payload=%dB rate=%s nproc=%u\n",
      a.tasks, a.workers, a.slots, a.window, a.batch, a.payload,
      a.rate > 0 ? std::to_string(a.rate).c_str() : "max", std::thread::hardware_concurrency());

  std::vector<std::unique_ptr<rma::testing::FakeWorker>> workers;
  for (int i = 0; i < a.workers; ++i) {
    rma::testing::FakeWorkerOptions w;
    w.endpoint = a.workers_endpoint;
    w.worker_id = "bench-" + std::to_string(i + 1);
    w.slots = static_cast<uint32_t>(a.slots);
    w.record_completions = true;
    workers.push_back(std::make_unique<rma::testing::FakeWorker>(w, nullptr));
    workers.back()->Start();
  }
  auto ready_by = Steady::now() + std::chrono::seconds(10);
  while (!std::all_of(workers.begin(), workers.end(), [](auto& w) { return w->registered(); })) {
    if (Steady::now() > ready_by) {
      std::fprintf(stderr, "workers did not register\n");
      return 1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }

  pqxx::connection db(a.db);
  const int64_t completed_before = CompletedOnRecord(db);
  rma::testing::ZmqClient client(a.clients);
  rma::proto::Decoder decoder;
  std::vector<Steady::time_point> sent_at(static_cast<size_t>(a.tasks) + 1);
  std::vector<double> ack_ms;
  ack_ms.reserve(static_cast<size_t>(a.tasks));
  std::unordered_map<uint64_t, uint64_t> ref_of_task;  // task id -> ref
  ref_of_task.reserve(static_cast<size_t>(a.tasks) * 2);
  const std::string payload(static_cast<size_t>(a.payload), 'x');
  int next = 1;
  int acked = 0;
  int refused = 0;
  const auto start = Steady::now();
  // With --rate, batches leave on a schedule (open loop: the latency is the system's, not the
  // window's); otherwise as fast as --window allows.
  auto due = [&] {
    if (a.rate <= 0) return true;
    double elapsed = std::chrono::duration<double>(Steady::now() - start).count();
    return static_cast<double>(next - 1) < elapsed * a.rate;
  };
  while (acked + refused < a.tasks) {
    while (next <= a.tasks && (next - 1) - (acked + refused) < a.window && due()) {
      std::vector<rma::proto::Submit> batch;
      for (int i = 0; i < a.batch && next <= a.tasks; ++i, ++next) {
        rma::proto::Submit s;
        s.ref = static_cast<uint64_t>(next);
        s.service = "echo";
        s.payload = payload;
        s.owner = a.owner;
        batch.push_back(std::move(s));
      }
      auto now = Steady::now();
      for (const auto& s : batch) sent_at[s.ref] = now;
      client.Submit(batch);
    }
    rma::testing::ClientMessage m;
    const auto wait = a.rate > 0 ? std::chrono::milliseconds(1) : std::chrono::milliseconds(1000);
    if (!client.Receive(wait, &m)) {
      if (a.rate > 0 && Steady::now() - start < std::chrono::seconds(600)) continue;
      std::fprintf(stderr, "no answer from the broker for 1 s (%d acknowledged)\n", acked);
      return 1;
    }
    auto now = Steady::now();
    for (const std::string& body : m.bodies) {
      if (m.command == Command::kAccepted) {
        rma::proto::Accepted acc;
        if (!decoder.Decode(body, &acc).ok()) continue;
        ack_ms.push_back(std::chrono::duration<double, std::milli>(now - sent_at[acc.ref]).count());
        ref_of_task[acc.task_id.value()] = acc.ref;
        ++acked;
      } else if (m.command == Command::kError) {
        ++refused;
      }
    }
  }
  const auto all_acked = Steady::now();
  // Done when every completion is committed.
  int64_t on_record = 0;
  while ((on_record = CompletedOnRecord(db) - completed_before) < acked) {
    if (Steady::now() - all_acked > std::chrono::seconds(60)) {
      std::fprintf(stderr, "only %lld of %d completions on record after 60 s\n",
                   static_cast<long long>(on_record), acked);
      return 1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  const auto end = Steady::now();
  std::vector<double> done_ms;
  for (auto& w : workers) {
    w->Stop();
    for (const auto& [task, at] : w->completions()) {
      auto it = ref_of_task.find(task);
      if (it == ref_of_task.end()) continue;
      done_ms.push_back(
          std::chrono::duration<double, std::milli>(at - sent_at[it->second]).count());
    }
  }
  double secs = std::chrono::duration<double>(end - start).count();
  std::printf("durable_tasks_per_s=%.0f elapsed_s=%.3f acked=%d refused=%d\n", acked / secs, secs,
              acked, refused);
  std::printf("ack_ms p50=%.2f p99=%.2f  completion_ms p50=%.2f p99=%.2f (%zu completions)\n",
              Percentile(ack_ms, 0.5), Percentile(ack_ms, 0.99), Percentile(done_ms, 0.5),
              Percentile(done_ms, 0.99), done_ms.size());
  return refused == 0 ? 0 : 1;
}
