// pool_bench: the client side of bench/pool_bench.sh — tasks through a real rma-broker and real
// rma-worker processes, driven over the client protocol (docs/protocol.md §6) the way a gateway
// drives it, with no HTTP in between. The workers are started by the script; this program only
// submits and measures.
//
// Four measurements, the same four bench/rabbit_bench.c makes against RabbitMQ:
//   --mode throughput            SUBMIT mode "sync" (transient: never persisted), batched, at most
//                                --window unfinished; tasks/s from the first SUBMIT to the last
//                                answer.
//   --mode latency               one synchronous SUBMIT at a time; round-trip p50/p99.
//   --mode throughput --durable  SUBMIT async with "wait_ms" (the broker answers ACCEPTED after the
//                                commit holding the task, and TASK_INFO when it ends); tasks/s to
//                                the last answer (every task acknowledged and ended).
//   --mode latency --durable     one async SUBMIT at a time: ack = SUBMIT -> ACCEPTED (durable),
//                                completion = SUBMIT -> TASK_INFO (the result, which is not held
//                                for the commit), p50/p99 of each; the next SUBMIT leaves once both
//                                have come.
// Prints one line of parameters and one of figures (key=value, for bench/lib.sh).
#include <CLI/CLI.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "protocol/admin_reply.h"
#include "tests/support/zmq_peers.h"

namespace {

using Steady = std::chrono::steady_clock;
using rma::proto::Command;

struct Args {
  std::string clients;
  std::string mode = "throughput";
  bool durable = false;
  int tasks = 20000;
  int window = 2000;
  int batch = 50;
  int samples = 2000;
  int warmup = 200;
  int payload = 100;
  std::string service = "echo";
  uint32_t wait_ms = 60000;
  // Durable: ask for the end with a GET after the ACCEPTED (a second round trip, what clients did
  // before SUBMIT had wait_ms, and what a broker without it needs).
  bool get_wait = false;
};

double Percentile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  size_t k = std::min(v.size() - 1, static_cast<size_t>(q * static_cast<double>(v.size())));
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(k), v.end());
  return v[k];
}

double Us(Steady::duration d) { return std::chrono::duration<double, std::micro>(d).count(); }

rma::proto::Submit MakeSubmit(const Args& a, uint64_t ref, const std::string& payload) {
  rma::proto::Submit s;
  s.ref = ref;
  s.service = a.service;
  s.payload = payload;
  if (a.durable) {
    s.mode = rma::proto::SubmitMode::kAsync;
    s.wait_ms = a.get_wait ? 0 : a.wait_ms;
  } else {
    s.mode = rma::proto::SubmitMode::kSync;
  }
  return s;
}

// What one answer means to the run: an ACCEPTED, a finished task, or a failure.
enum class Answer { kAccepted, kDone, kFailed, kOther };

// With --get-wait, an ACCEPTED is followed by a GET for the task's end (same ref).
Answer Classify(const Args& a, rma::testing::ZmqClient& client, rma::proto::Decoder& decoder,
                Command command, const std::string& body, uint64_t* ref) {
  if (command == Command::kAccepted) {
    rma::proto::Accepted acc;
    if (!decoder.Decode(body, &acc).ok()) return Answer::kFailed;
    *ref = acc.ref;
    if (a.get_wait) {
      rma::proto::Get get;
      get.ref = acc.ref;
      get.task_id = acc.task_id;
      get.wait_ms = a.wait_ms;
      client.Send(Command::kGet, rma::proto::Encode(get));
    }
    return Answer::kAccepted;
  }
  if (command == Command::kTaskInfo) {
    rma::proto::TaskInfo info;
    if (!decoder.Decode(body, &info).ok()) return Answer::kFailed;
    *ref = info.ref;
    return info.task.status == rma::proto::TaskStatus::kCompleted ? Answer::kDone : Answer::kFailed;
  }
  if (command == Command::kError) {
    rma::proto::Error e;
    if (decoder.Decode(body, &e).ok()) {
      *ref = e.ref;
      std::fprintf(stderr, "pool_bench: ERROR %s: %s\n", e.code.c_str(), e.message.c_str());
    }
    return Answer::kFailed;
  }
  return Answer::kOther;
}

int Throughput(const Args& a) {
  rma::testing::ZmqClient client(a.clients);
  rma::proto::Decoder decoder;
  const std::string payload(static_cast<size_t>(a.payload), 'x');
  int next = 1;
  int done = 0;
  int failed = 0;
  int accepted = 0;
  const auto start = Steady::now();
  // Durable: the run ends when every task is both acknowledged (committed) and ended.
  while (done + failed < a.tasks || (a.durable && accepted + failed < a.tasks)) {
    while (next <= a.tasks && (next - 1) - (done + failed) < a.window) {
      std::vector<rma::proto::Submit> batch;
      for (int i = 0; i < a.batch && next <= a.tasks; ++i, ++next) {
        batch.push_back(MakeSubmit(a, static_cast<uint64_t>(next), payload));
      }
      client.Submit(batch);
    }
    rma::testing::ClientMessage m;
    if (!client.Receive(std::chrono::milliseconds(10000), &m)) {
      std::fprintf(stderr, "pool_bench: no answer for 10 s (%d done, %d failed)\n", done, failed);
      return 1;
    }
    for (const std::string& body : m.bodies) {
      uint64_t ref = 0;
      switch (Classify(a, client, decoder, m.command, body, &ref)) {
        case Answer::kDone:
          ++done;
          break;
        case Answer::kAccepted:
          ++accepted;
          break;
        case Answer::kFailed:
          ++failed;
          break;
        default:
          break;
      }
    }
  }
  const double secs = std::chrono::duration<double>(Steady::now() - start).count();
  std::printf(
      "rma mode=throughput durable=%d tasks=%d done=%d failed=%d elapsed_s=%.3f "
      "tasks_per_s=%.0f\n",
      a.durable ? 1 : 0, a.tasks, done, failed, secs, done / secs);
  return failed == 0 ? 0 : 1;
}

int Latency(const Args& a) {
  rma::testing::ZmqClient client(a.clients);
  rma::proto::Decoder decoder;
  const std::string payload(static_cast<size_t>(a.payload), 'x');
  std::vector<double> ack_us;
  std::vector<double> done_us;
  int failed = 0;
  for (int i = 0; i < a.warmup + a.samples; ++i) {
    const uint64_t ref = static_cast<uint64_t>(i + 1);
    const auto sent = Steady::now();
    client.Submit({MakeSubmit(a, ref, payload)});
    // Durable: both answers are awaited (the TASK_INFO may come first: it is not held for the
    // commit), so each sample has its ack and its completion.
    bool acked = !a.durable;
    bool finished = false;
    while (!finished || !acked) {
      rma::testing::ClientMessage m;
      if (!client.Receive(std::chrono::milliseconds(10000), &m)) {
        std::fprintf(stderr, "pool_bench: no answer for 10 s (sample %d)\n", i);
        return 1;
      }
      const auto now = Steady::now();
      for (const std::string& body : m.bodies) {
        uint64_t got = 0;
        Answer answer = Classify(a, client, decoder, m.command, body, &got);
        if (got != ref) continue;
        if (answer == Answer::kAccepted) {
          acked = true;
          if (i >= a.warmup) ack_us.push_back(Us(now - sent));
        }
        if (answer == Answer::kDone && i >= a.warmup) done_us.push_back(Us(now - sent));
        if (answer == Answer::kFailed) {
          ++failed;
          acked = true;
        }
        if (answer == Answer::kDone || answer == Answer::kFailed) finished = true;
      }
    }
  }
  std::printf("rma mode=latency durable=%d samples=%d failed=%d", a.durable ? 1 : 0, a.samples,
              failed);
  if (a.durable) {
    std::printf(" ack_p50_us=%.0f ack_p99_us=%.0f", Percentile(ack_us, 0.5),
                Percentile(ack_us, 0.99));
  }
  std::printf(" p50_us=%.0f p99_us=%.0f\n", Percentile(done_us, 0.5), Percentile(done_us, 0.99));
  return failed == 0 ? 0 : 1;
}

// Prints how many workers the broker lists (the script waits for its workers with it).
int CountWorkers(const Args& a) {
  rma::testing::ZmqClient client(a.clients);
  rma::proto::Admin admin;
  admin.ref = 1;
  admin.query = "workers";
  rma::testing::ClientMessage m;
  if (!client.Call(Command::kAdmin, rma::proto::Encode(admin), 1, std::chrono::milliseconds(2000),
                   &m) ||
      m.command != Command::kAdminReply || m.bodies.empty()) {
    return 1;
  }
  rma::proto::Decoder decoder;
  rma::proto::AdminReply reply;
  if (!decoder.Decode(m.bodies[0], &reply).ok()) return 1;
  std::printf("%d\n", reply.data.value("total", 0));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Args a;
  CLI::App app{"pool_bench: tasks through rma-broker and real rma-worker processes"};
  app.add_option("--clients", a.clients, "the broker's client endpoint")->required();
  app.add_option("--mode", a.mode)->check(CLI::IsMember({"throughput", "latency"}));
  app.add_flag("--durable", a.durable, "async tasks (persisted when the broker has --db)");
  app.add_flag(
      "--get-wait", a.get_wait,
      "durable: GET with wait_ms after ACCEPTED instead of SUBMIT wait_ms (older brokers)");
  app.add_option("--tasks", a.tasks, "throughput: tasks per run")->check(CLI::PositiveNumber);
  app.add_option("--window", a.window, "throughput: most unfinished tasks")
      ->check(CLI::PositiveNumber);
  app.add_option("--batch", a.batch, "throughput: SUBMIT bodies per message")
      ->check(CLI::PositiveNumber);
  app.add_option("--samples", a.samples, "latency: measured round trips")
      ->check(CLI::PositiveNumber);
  app.add_option("--warmup", a.warmup, "latency: round trips before measuring");
  app.add_option("--payload", a.payload, "payload bytes");
  app.add_option("--service", a.service);
  bool count_workers = false;
  app.add_flag("--count-workers", count_workers, "print how many workers the broker lists");
  CLI11_PARSE(app, argc, argv);
  if (count_workers) return CountWorkers(a);
  std::printf(
      "pool_bench: mode=%s durable=%d tasks=%d window=%d batch=%d samples=%d payload=%dB "
      "nproc=%u\n",
      a.mode.c_str(), a.durable ? 1 : 0, a.tasks, a.window, a.batch, a.samples, a.payload,
      std::thread::hardware_concurrency());
  return a.mode == "throughput" ? Throughput(a) : Latency(a);
}
