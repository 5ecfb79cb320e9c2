// broker_bench: drives a real rma-broker process directly over ZeroMQ (no gateway) and reports
// - throughput: tasks/s with W in-process echo workers and one pipelined client (async SUBMIT,
//   batched);
// - latency: the round trip of one synchronous task at a time (SUBMIT mode sync -> TASK_INFO),
//   p50/p90/p99;
// - scale: N simulated workers (in child processes) registered and heartbeating, the broker's CPU
//   share and RSS from /proc, then the dispatch rate with all of them connected. Simulated workers
//   connect from loopback addresses of their own (127.1.x.y, 16 workers each), as workers on
//   separate machines would: the broker limits READYs and handshakes per address.
// With --curve (any of the three) the broker runs with a CURVE key (--curve-secret-file, and a
// client key list holding the bench client's key) and every socket of the bench speaks CURVE to it,
// each worker with a key of its own: the cost of encryption (issue 13).
// Every run prints its parameters and the machine's core count. See docs/benchmarks.md for how the
// figures there were produced. The broker binary is found next to this program unless --broker-bin
// says otherwise.
#include <sys/resource.h>
#include <unistd.h>
#include <CLI/CLI.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>
#include <vector>

#include "common/files.h"
#include "protocol/codec.h"
#include "protocol/curve_keys.h"
#include "protocol/frames.h"
#include "tests/support/process.h"

namespace {

using namespace rma;
using proto::Command;
using Clock = std::chrono::steady_clock;

struct Common {
  std::string broker_bin;
  std::string log_dir = "/tmp";
  int heartbeat_ms = 1000;
  bool curve = false;
};

struct Broker {
  testing::Process process;
  std::string workers;
  std::string clients;
  // With --curve: the broker's public key and the one client key it admits ("" = plaintext).
  std::string broker_key;
  proto::CurveKeypair client_key;
};

proto::CurveKeypair NewKeypairOrDie() {
  auto keys = proto::GenerateCurveKeypair();
  if (!keys.ok()) {
    std::fprintf(stderr, "%s\n", keys.status().ToString().c_str());
    std::exit(1);
  }
  return *keys;
}

Broker StartBroker(const Common& c, const std::vector<std::string>& extra) {
  std::string dir = testing::TempDir("rma-bench");
  std::vector<std::string> args = {"--workers",        "tcp://127.0.0.1:*",
                                   "--clients",        "tcp://127.0.0.1:*",
                                   "--endpoints-file", dir + "/endpoints",
                                   "--heartbeat-ms",   std::to_string(c.heartbeat_ms),
                                   "--log-level",      "warn"};
  args.insert(args.end(), extra.begin(), extra.end());
  Broker b;
  if (c.curve) {
    auto keys = proto::WriteNewKeypair(dir, "broker");
    if (!keys.ok()) {
      std::fprintf(stderr, "%s\n", keys.status().ToString().c_str());
      std::exit(1);
    }
    b.broker_key = keys->public_key;
    b.client_key = NewKeypairOrDie();
    std::ofstream(dir + "/clients") << b.client_key.public_key << " broker_bench\n";
    // Workers: any key (no --worker-keys-file), as a volunteer pool runs.
    for (const char* a : {"--curve-secret-file", "broker.key", "--client-keys-file", "clients"}) {
      args.push_back(a[0] == '-' ? std::string(a) : dir + "/" + a);
    }
  }
  b.process = testing::Process::Start(c.broker_bin, args, c.log_dir + "/broker-bench.log");
  std::string eps = testing::WaitForFile(dir + "/endpoints", std::chrono::seconds(20));
  if (eps.empty()) {
    std::fprintf(stderr, "broker did not start; see %s/broker-bench.log\n", c.log_dir.c_str());
    std::exit(1);
  }
  std::istringstream in(eps);
  std::getline(in, b.workers);
  std::getline(in, b.clients);
  return b;
}

// A DEALER on the broker's client endpoint (with --curve: as the client key the broker admits).
zmq::socket_t ClientSocket(zmq::context_t& ctx, const Broker& broker) {
  zmq::socket_t s(ctx, zmq::socket_type::dealer);
  proto::ConfigureSocket(s, proto::Limits{}, false);
  if (!broker.broker_key.empty()) proto::UseCurveClient(s, broker.client_key, broker.broker_key);
  s.connect(broker.clients);
  return s;
}

// Says this client reads packed body frames (a HEARTBEAT, docs/protocol.md §6.6) and returns
// whether the broker's answer says it does too (an older broker answers without a body).
bool AskPacked(zmq::socket_t& s) {
  proto::Heartbeat hello;
  hello.packed = true;
  (void)proto::SendOne(s, {}, Command::kHeartbeat, hello);
  proto::InMessage msg;
  proto::Decoder decoder;
  const auto deadline = Clock::now() + std::chrono::seconds(5);
  while (Clock::now() < deadline) {
    zmq::pollitem_t item{s.handle(), 0, ZMQ_POLLIN, 0};
    zmq::poll(&item, 1, std::chrono::milliseconds(100));
    auto got = proto::ReceiveMessage(s, false, proto::Limits{}, &msg);
    if (!got.ok() || !*got || msg.command() != Command::kHeartbeat) continue;
    proto::Heartbeat answer;
    return msg.body_count() > 0 && decoder.Decode(msg.body(0), &answer).ok() && answer.packed;
  }
  return false;
}

// With a broker key: makes `s` a CURVE client with a key of its own (before connect).
void UseOwnCurveKey(zmq::socket_t& s, const std::string& broker_key) {
  if (!broker_key.empty()) proto::UseCurveClient(s, NewKeypairOrDie(), broker_key);
}

// ---- /proc readings
// ----------------------------------------------------------------------------------

// utime + stime of a process (or of one thread, with the /proc/PID/task/TID/stat path).
double CpuSecondsAt(const std::string& stat_path) {
  std::ifstream in(stat_path);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  size_t close = text.rfind(')');
  std::istringstream fields(text.substr(close + 2));
  std::string f;
  unsigned long utime = 0, stime = 0;
  for (int i = 3; i <= 15; ++i) {
    fields >> f;
    if (i == 14) utime = std::stoul(f);
    if (i == 15) stime = std::stoul(f);
  }
  return static_cast<double>(utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

double CpuSeconds(pid_t pid) { return CpuSecondsAt("/proc/" + std::to_string(pid) + "/stat"); }

// CPU seconds per thread name (the broker's loop thread vs libzmq's ZMQbg/IO and ZMQbg/Reaper
// threads).
std::map<std::string, double> CpuByThread(pid_t pid) {
  std::map<std::string, double> out;
  std::string base = "/proc/" + std::to_string(pid) + "/task";
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(base, ec)) {
    std::ifstream comm(e.path() / "comm");
    std::string name;
    std::getline(comm, name);
    out[name] += CpuSecondsAt((e.path() / "stat").string());
  }
  return out;
}

double RssMb(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stod(line.substr(6)) / 1024.0;
  }
  return 0;
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

// ---- an echo worker thread
// -------------------------------------------------------------------------

proto::Ready MakeReady(const std::string& id, uint32_t slots, bool simulated) {
  proto::Ready r;
  r.worker_id = id;
  r.name = id;
  r.slots = slots;
  r.simulated = simulated;
  r.capabilities.cpu_cores = 8;
  r.capabilities.ram_gb = 32;
  r.services = {{"echo", "builtin"}};
  r.packed = true;  // proto::ReceiveMessage splits packed frames
  return r;
}

// Answers every TASK with a RESULT carrying the payload, batching the answers to one message per
// read.
void EchoWorker(zmq::context_t& ctx, const Broker& broker, const std::string& id, uint32_t slots,
                std::atomic<uint64_t>& completed, std::atomic<bool>& stop) {
  zmq::socket_t s(ctx, zmq::socket_type::dealer);
  proto::ConfigureSocket(s, proto::Limits{}, false);
  UseOwnCurveKey(s, broker.broker_key);
  s.connect(broker.workers);
  (void)proto::SendOne(s, {}, Command::kReady, MakeReady(id, slots, false));
  proto::Decoder decoder;
  proto::InMessage msg;
  auto last_hb = Clock::now();
  bool packed = false;  // the broker's WELCOME says whether it reads packed frames
  while (!stop.load(std::memory_order_relaxed)) {
    zmq::pollitem_t item{s.handle(), 0, ZMQ_POLLIN, 0};
    zmq::poll(&item, 1, std::chrono::milliseconds(100));
    for (int i = 0; i < 64; ++i) {
      auto got = proto::ReceiveMessage(s, false, proto::Limits{}, &msg);
      if (!got.ok() || !*got) break;
      if (msg.command() == Command::kWelcome && msg.body_count() > 0) {
        proto::Welcome w;
        if (decoder.Decode(msg.body(0), &w).ok()) packed = w.packed;
      }
      if (msg.command() != Command::kTask) continue;
      proto::OutMessage out(Command::kResult);
      out.set_packed(packed);
      for (size_t b = 0; b < msg.body_count(); ++b) {
        proto::TaskAssignment t;
        if (!decoder.Decode(msg.body(b), &t).ok()) continue;
        proto::TaskResult r;
        r.task_id = t.task_id;
        r.attempt = t.attempt;
        r.result = std::move(t.payload);
        out.Add(r);
      }
      (void)out.Send(s);
      completed.fetch_add(out.body_count(), std::memory_order_relaxed);
    }
    if (Clock::now() - last_hb > std::chrono::milliseconds(500)) {
      proto::Heartbeat hb;
      (void)proto::SendOne(s, {}, Command::kHeartbeat, hb);
      last_hb = Clock::now();
    }
  }
  (void)proto::SendOne(s, {}, Command::kDisconnect, proto::Disconnect{"bench done", true});
}

// ---- throughput
// --------------------------------------------------------------------------------------

// Sends SUBMITs `batch` bodies per message until `*submitted` reaches `upto` (refs are 1, 2, ...).
void SubmitUpTo(zmq::socket_t& s, proto::Submit& submit, uint64_t* submitted, uint64_t upto,
                size_t batch, bool packed) {
  while (*submitted < upto) {
    proto::OutMessage out(Command::kSubmit);
    out.set_packed(packed);
    for (size_t i = 0; i < batch && *submitted < upto; ++i) {
      submit.ref = ++*submitted;
      out.Add(submit);
    }
    (void)out.Send(s);
  }
}

// Submits `tasks` asynchronous echo tasks keeping at most `window` unfinished; returns tasks/s.
double RunThroughput(zmq::context_t& ctx, const Broker& broker, uint64_t tasks, uint64_t window,
                     size_t batch, size_t payload_bytes, std::atomic<uint64_t>& completed) {
  zmq::socket_t s = ClientSocket(ctx, broker);
  const bool packed = AskPacked(s);
  proto::InMessage msg;
  const uint64_t base = completed.load();
  uint64_t submitted = 0;
  uint64_t errors = 0;
  std::string payload(payload_bytes, 'x');
  proto::Submit submit;
  submit.service = "echo";
  submit.payload = payload;
  auto start = Clock::now();
  while (completed.load(std::memory_order_relaxed) - base < tasks) {
    uint64_t done = completed.load(std::memory_order_relaxed) - base;
    SubmitUpTo(s, submit, &submitted, std::min(tasks, done + window), batch, packed);
    zmq::pollitem_t item{s.handle(), 0, ZMQ_POLLIN, 0};
    zmq::poll(&item, 1, std::chrono::milliseconds(1));
    for (int i = 0; i < 256; ++i) {
      auto got = proto::ReceiveMessage(s, false, proto::Limits{}, &msg);
      if (!got.ok() || !*got) break;
      if (msg.command() == Command::kError) errors += msg.body_count();
    }
    if (std::chrono::duration<double>(Clock::now() - start).count() > 120) {
      std::fprintf(stderr, "throughput run gave up after 120 s (%llu of %llu done, %llu errors)\n",
                   static_cast<unsigned long long>(completed.load() - base),
                   static_cast<unsigned long long>(tasks), static_cast<unsigned long long>(errors));
      return 0;
    }
  }
  double secs = std::chrono::duration<double>(Clock::now() - start).count();
  if (errors > 0)
    std::fprintf(stderr, "  (%llu submissions refused)\n", static_cast<unsigned long long>(errors));
  return static_cast<double>(tasks) / secs;
}

// ---- latency
// -----------------------------------------------------------------------------------------

std::vector<double> RunLatency(zmq::context_t& ctx, const Broker& broker, int samples,
                               size_t payload_bytes) {
  zmq::socket_t s = ClientSocket(ctx, broker);
  proto::InMessage msg;
  std::vector<double> us;
  proto::Submit submit;
  submit.service = "echo";
  submit.mode = proto::SubmitMode::kSync;
  submit.payload = std::string(payload_bytes, 'x');
  for (int i = 0; i < samples; ++i) {
    submit.ref = static_cast<uint64_t>(i) + 1;
    auto t0 = Clock::now();
    (void)proto::SendOne(s, {}, Command::kSubmit, submit);
    for (;;) {
      zmq::pollitem_t item{s.handle(), 0, ZMQ_POLLIN, 0};
      zmq::poll(&item, 1, std::chrono::milliseconds(1000));
      auto got = proto::ReceiveMessage(s, false, proto::Limits{}, &msg);
      if (got.ok() && *got &&
          (msg.command() == Command::kTaskInfo || msg.command() == Command::kError))
        break;
    }
    us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
  }
  return us;
}

double Pct(std::vector<double> v, double q) {
  std::sort(v.begin(), v.end());
  return v.empty()
             ? 0
             : v[std::min(v.size() - 1, static_cast<size_t>(q * static_cast<double>(v.size())))];
}

// ---- scale: the simulator child
// ---------------------------------------------------------------------

// Simulated worker `n` connects from loopback address 127.1.x.y, shared by 16 workers: the
// broker takes a burst of 20 READYs (and 50 handshakes) per address, then 2 (5) a second, so
// 10,000 workers behind one address would take minutes to register, as they would from one machine.
constexpr int kWorkersPerAddress = 16;
std::string SourceAddressOf(int n) {
  const int a = n / kWorkersPerAddress;
  return "127.1." + std::to_string(a / 250) + "." + std::to_string(a % 250 + 1);
}

// `count` workers on one thread: READY each, then heartbeat each once per interval (spread evenly),
// answer TASKs. Never polls thousands of sockets at once: it sweeps them with non-blocking reads
// every few milliseconds. With `broker_key`, each worker has a CURVE key of its own.
int RunSimulator(const std::string& endpoint, int count, int offset, int heartbeat_ms,
                 const std::string& ready_file, const std::string& broker_key) {
  zmq::context_t ctx(2);
  ctx.set(zmq::ctxopt::max_sockets, count + 16);
  const std::string tcp = "tcp://";
  const std::string target = endpoint.rfind(tcp, 0) == 0 ? endpoint.substr(tcp.size()) : endpoint;
  std::vector<zmq::socket_t> sockets;
  sockets.reserve(static_cast<size_t>(count));
  for (int i = 0; i < count; ++i) {
    sockets.emplace_back(ctx, zmq::socket_type::dealer);
    proto::ConfigureSocket(sockets.back(), proto::Limits{}, false, 1000);
    UseOwnCurveKey(sockets.back(), broker_key);
    std::string address = tcp;
    address += SourceAddressOf(offset + i);
    address += ":0;";
    address += target;
    sockets.back().connect(address);
    (void)proto::SendOne(sockets.back(), {}, Command::kReady,
                         MakeReady("sim-" + std::to_string(offset + i), 1, true));
  }
  proto::InMessage msg;
  proto::Decoder decoder;
  std::vector<bool> welcomed(static_cast<size_t>(count), false);
  int welcomed_count = 0;
  bool ready_written = false;
  auto start = Clock::now();
  size_t next_hb = 0;
  for (;;) {
    auto now = Clock::now();
    // Heartbeats: socket i is due at start + k*interval + i*interval/count.
    double elapsed = std::chrono::duration<double>(now - start).count();
    auto due_upto = static_cast<size_t>(elapsed / (heartbeat_ms / 1000.0) * count);
    proto::Heartbeat hb;
    std::string hb_body = proto::Encode(hb);
    while (next_hb < due_upto) {
      proto::OutMessage m(Command::kHeartbeat);
      m.AddBody(hb_body);
      (void)m.Send(sockets[next_hb % static_cast<size_t>(count)]);
      ++next_hb;
    }
    for (int i = 0; i < count; ++i) {
      for (;;) {
        auto got =
            proto::ReceiveMessage(sockets[static_cast<size_t>(i)], false, proto::Limits{}, &msg);
        if (!got.ok() || !*got) break;
        if (msg.command() == Command::kWelcome && !welcomed[static_cast<size_t>(i)]) {
          welcomed[static_cast<size_t>(i)] = true;
          ++welcomed_count;
        } else if (msg.command() == Command::kTask) {
          proto::OutMessage out(Command::kResult);
          for (size_t b = 0; b < msg.body_count(); ++b) {
            proto::TaskAssignment t;
            if (!decoder.Decode(msg.body(b), &t).ok()) continue;
            proto::TaskResult r;
            r.task_id = t.task_id;
            r.attempt = t.attempt;
            out.Add(r);
          }
          (void)out.Send(sockets[static_cast<size_t>(i)]);
        }
      }
    }
    if (!ready_written && welcomed_count == count) {
      std::ofstream(ready_file) << count << "\n";
      ready_written = true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

}  // namespace

int main(int argc, char** argv) {
  Common common;
  common.broker_bin = (std::filesystem::path(argv[0]).parent_path() / "rma-broker").string();
  CLI::App app{"broker_bench: throughput, latency and scale of rma-broker over ZeroMQ"};
  app.add_option("--broker-bin", common.broker_bin, "rma-broker to run");
  app.add_option("--log-dir", common.log_dir, "where the broker's log goes");
  app.require_subcommand(1);

  int workers = 2, slots = 256, runs = 5, samples = 20000, sim_workers = 10000, procs = 4,
      measure_s = 20;
  uint64_t tasks = 1'000'000, window = 20000;
  size_t batch = 128, payload = 64;
  auto* tp = app.add_subcommand("throughput", "pipelined async tasks/s with W echo workers");
  tp->add_option("--workers", workers)->capture_default_str();
  tp->add_option("--slots", slots, "credit per worker")->capture_default_str();
  tp->add_option("--tasks", tasks, "tasks per run")->capture_default_str();
  tp->add_option("--window", window, "most unfinished tasks at once")->capture_default_str();
  tp->add_option("--batch", batch, "SUBMIT bodies per message")->capture_default_str();
  tp->add_option("--payload", payload, "payload bytes")->capture_default_str();
  tp->add_option("--runs", runs)->capture_default_str();
  tp->add_flag("--curve", common.curve, "broker, workers and client speak CURVE");
  auto* lat = app.add_subcommand("latency", "round trip of one synchronous task at a time");
  lat->add_option("--samples", samples)->capture_default_str();
  lat->add_option("--payload", payload)->capture_default_str();
  lat->add_option("--runs", runs)->capture_default_str();
  lat->add_flag("--curve", common.curve, "broker, worker and client speak CURVE");
  auto* sc =
      app.add_subcommand("scale", "N simulated workers heartbeating; broker CPU share and RSS");
  sc->add_option("--sim-workers", sim_workers)->capture_default_str();
  sc->add_option("--procs", procs, "simulator processes")->capture_default_str();
  sc->add_option("--heartbeat-ms", common.heartbeat_ms)->capture_default_str();
  sc->add_option("--measure-s", measure_s, "seconds of steady state measured")
      ->capture_default_str();
  sc->add_option("--tasks", tasks, "tasks for the dispatch-rate phase")->capture_default_str();
  sc->add_flag("--curve", common.curve, "broker, simulated workers and client speak CURVE");
  std::string endpoint, ready_file, broker_key;
  int count = 0, offset = 0;
  auto* sim = app.add_subcommand("simulate", "(internal) the simulator child");
  sim->add_option("--endpoint", endpoint)->required();
  sim->add_option("--count", count)->required();
  sim->add_option("--offset", offset)->required();
  sim->add_option("--heartbeat-ms", common.heartbeat_ms);
  sim->add_option("--ready-file", ready_file)->required();
  sim->add_option("--broker-key", broker_key, "CURVE: the broker's public key");
  CLI11_PARSE(app, argc, argv);

  RaiseFileLimit();  // thousands of sockets; inherited by the broker and the simulators
  if (*sim) {
    return RunSimulator(endpoint, count, offset, common.heartbeat_ms, ready_file, broker_key);
  }

  std::printf("machine: %ld cores (nproc)\n", sysconf(_SC_NPROCESSORS_ONLN));
  if (common.curve) std::printf("CURVE: on (broker key, client key list, a key per worker)\n");
  zmq::context_t ctx(1);
  if (*tp) {
    std::printf(
        "throughput: %d echo workers x %d slots, %llu tasks/run, window %llu, batch %zu, payload "
        "%zu B, %d runs\n",
        workers, slots, static_cast<unsigned long long>(tasks),
        static_cast<unsigned long long>(window), batch, payload, runs);
    Broker broker = StartBroker(common, {});
    std::atomic<uint64_t> completed{0};
    std::atomic<bool> stop{false};
    std::vector<std::thread> threads;
    threads.reserve(static_cast<size_t>(workers));
    for (int w = 0; w < workers; ++w) {
      threads.emplace_back([&, w] {
        EchoWorker(ctx, broker, "bench-" + std::to_string(w), static_cast<uint32_t>(slots),
                   completed, stop);
      });
    }
    std::this_thread::sleep_for(
        std::chrono::milliseconds(300));  // let the workers register before timing
    (void)RunThroughput(ctx, broker, std::min<uint64_t>(tasks, 50000), window, batch, payload,
                        completed);
    std::vector<double> rates;
    for (int r = 0; r < runs; ++r) {
      double cpu0 = CpuSeconds(broker.process.pid());
      auto t0 = Clock::now();
      double rate = RunThroughput(ctx, broker, tasks, window, batch, payload, completed);
      double wall = std::chrono::duration<double>(Clock::now() - t0).count();
      double cpu = (CpuSeconds(broker.process.pid()) - cpu0) / wall * 100;
      rates.push_back(rate);
      std::printf(
          "  run %d: %10.0f tasks/s   broker CPU %5.1f%% of one core   broker RSS %6.1f MB\n",
          r + 1, rate, cpu, RssMb(broker.process.pid()));
    }
    std::printf("throughput median: %.0f tasks/s\n", Median(rates));
    stop = true;
    for (auto& t : threads) t.join();
  }
  if (*lat) {
    std::printf(
        "latency: 1 echo worker, one synchronous task at a time, %d samples/run, payload %zu B, %d "
        "runs\n",
        samples, payload, runs);
    Broker broker = StartBroker(common, {});
    std::atomic<uint64_t> completed{0};
    std::atomic<bool> stop{false};
    std::thread worker([&] { EchoWorker(ctx, broker, "bench-lat", 1, completed, stop); });
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    (void)RunLatency(ctx, broker, 2000, payload);  // warm-up
    std::vector<double> p50s, p99s;
    for (int r = 0; r < runs; ++r) {
      auto us = RunLatency(ctx, broker, samples, payload);
      p50s.push_back(Pct(us, 0.5));
      p99s.push_back(Pct(us, 0.99));
      std::printf("  run %d: p50 %6.1f us   p90 %6.1f us   p99 %6.1f us   max %7.1f us\n", r + 1,
                  Pct(us, 0.5), Pct(us, 0.9), Pct(us, 0.99), Pct(us, 1.0));
    }
    std::printf("latency median of runs: p50 %.1f us, p99 %.1f us\n", Median(p50s), Median(p99s));
    stop = true;
    worker.join();
  }
  if (*sc) {
    std::printf(
        "scale: %d simulated workers in %d processes (%d per loopback address), heartbeat %d ms, "
        "%d s measured, then %llu tasks\n",
        sim_workers, procs, kWorkersPerAddress, common.heartbeat_ms, measure_s,
        static_cast<unsigned long long>(tasks));
    Broker broker = StartBroker(common, {"--allow-simulated", "--liveness", "5"});
    double idle_rss = RssMb(broker.process.pid());
    std::string dir = testing::TempDir("rma-bench-sim");
    std::vector<testing::Process> sims;
    int per = sim_workers / procs;
    auto t_reg = Clock::now();
    for (int p = 0; p < procs; ++p) {
      int n = p == procs - 1 ? sim_workers - per * (procs - 1) : per;
      std::vector<std::string> args = {"simulate",
                                       "--endpoint",
                                       broker.workers,
                                       "--count",
                                       std::to_string(n),
                                       "--offset",
                                       std::to_string(p * per),
                                       "--heartbeat-ms",
                                       std::to_string(common.heartbeat_ms),
                                       "--ready-file",
                                       dir + "/ready-" + std::to_string(p)};
      if (!broker.broker_key.empty()) {
        args.push_back("--broker-key");
        args.push_back(broker.broker_key);
      }
      sims.push_back(
          testing::Process::Start(argv[0], args, dir + "/sim-" + std::to_string(p) + ".log"));
    }
    for (int p = 0; p < procs; ++p) {
      if (testing::WaitForFile(dir + "/ready-" + std::to_string(p), std::chrono::seconds(120))
              .empty()) {
        std::fprintf(stderr, "simulator %d did not register its workers:\n%s\n", p,
                     sims[static_cast<size_t>(p)].Log().c_str());
        return 1;
      }
    }
    std::printf("  %d workers registered in %.1f s\n", sim_workers,
                std::chrono::duration<double>(Clock::now() - t_reg).count());
    std::this_thread::sleep_for(std::chrono::seconds(3));  // settle: first heartbeat round
    double cpu0 = CpuSeconds(broker.process.pid());
    auto threads0 = CpuByThread(broker.process.pid());
    auto t0 = Clock::now();
    std::this_thread::sleep_for(std::chrono::seconds(measure_s));
    double wall = std::chrono::duration<double>(Clock::now() - t0).count();
    double cpu = (CpuSeconds(broker.process.pid()) - cpu0) / wall * 100;
    auto threads1 = CpuByThread(broker.process.pid());
    double rss = RssMb(broker.process.pid());
    std::printf(
        "  steady state: broker CPU %.1f%% of one core, RSS %.1f MB (%.1f MB before the workers "
        "came)\n",
        cpu, rss, idle_rss);
    for (const auto& [name, secs] : threads1) {
      std::printf("    thread %-14s %5.1f%%\n", name.c_str(), (secs - threads0[name]) / wall * 100);
    }
    // Dispatch rate with every worker connected: results come back through the simulators' sweeps.
    zmq::socket_t client = ClientSocket(ctx, broker);
    const bool packed = AskPacked(client);
    proto::Submit submit;
    submit.service = "echo";
    submit.mode = proto::SubmitMode::kSync;  // TASK_INFO tells the client each task is done
    proto::InMessage msg;
    uint64_t sent = 0, done = 0;
    const uint64_t window_tasks = static_cast<uint64_t>(sim_workers);
    auto d0 = Clock::now();
    while (done < tasks && std::chrono::duration<double>(Clock::now() - d0).count() < 120) {
      SubmitUpTo(client, submit, &sent, std::min(tasks, done + window_tasks), 128, packed);
      zmq::pollitem_t item{client.handle(), 0, ZMQ_POLLIN, 0};
      zmq::poll(&item, 1, std::chrono::milliseconds(10));
      for (int i = 0; i < 1024; ++i) {
        auto got = proto::ReceiveMessage(client, false, proto::Limits{}, &msg);
        if (!got.ok() || !*got) break;
        done += msg.body_count();
      }
    }
    double dsecs = std::chrono::duration<double>(Clock::now() - d0).count();
    std::printf(
        "  dispatch with %d workers connected: %llu tasks in %.2f s = %.0f tasks/s (each worker 1 "
        "slot)\n",
        sim_workers, static_cast<unsigned long long>(done), dsecs,
        static_cast<double>(done) / dsecs);
    std::printf("  broker RSS after dispatch: %.1f MB\n", RssMb(broker.process.pid()));
    for (auto& s : sims) s.Kill();
  }
  return 0;
}
