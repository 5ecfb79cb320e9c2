// stream_bench: streamed answers through the pool against the backend called directly, in the
// same run (issue 15; bench/stream_bench.sh, docs/benchmarks.md "Streamed answers"). One run
// starts rma-broker, one rma-worker (service llm=http://127.0.0.1:PORT, --slots) and rma-gateway
// from --bin-dir as child processes, and runs TestBackend (tests/support/test_backend.h) in this
// process: the backend takes each token's write time on steady_clock (CLOCK_MONOTONIC) and the
// client below takes each event's arrival time on the same clock, so recv - write is the whole
// path of one chunk. Three paths are measured one after another on the same processes:
//   direct   the client talks to the backend itself (POST /v1/chat/completions, "stream": true)
//   service  through the gateway's service route: POST /api/service/llm/v1/chat/completions
//   openai   through the gateway's OpenAI route: POST /v1/chat/completions (routed by model)
// Phases:
//   ttfb     --ttfb-samples requests per path, one at a time, the paths alternating, 1 token, no
//            token delay: time from the request's last byte written to the first byte of the
//            answer, and to the first token's event.
//   latency  per path, --streams concurrent streams of --tokens tokens, --delay-ms apart (so
//            chunks never coalesce): per-chunk latency recv - write, p50/p90/p99.
//   scale    --scale-streams concurrent streams of --scale-tokens tokens, --scale-delay-ms apart,
//            through the service route (every stream has its own model name, so each is matched
//            to the backend's record of it): streams complete, chunks lost, chunks/s, per-chunk
//            latency under that load, and VmHWM/VmRSS and CPU time of gateway, broker and worker.
// The client is one thread: non-blocking sockets on epoll, HTTP/1.1 chunked decoding and SSE
// event splitting by hand (no library buffering between the socket and the timestamp).
// Prints human lines and "fig KEY VALUE" lines for the script. Every child is killed on exit,
// also on an exception or SIGINT/SIGTERM.
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "tests/support/http_client.h"
#include "tests/support/process.h"
#include "tests/support/test_backend.h"

namespace {

using Clock = std::chrono::steady_clock;
using rma::testing::Process;
using rma::testing::TestBackend;

struct Args {
  std::string bin_dir;
  int streams = 20;
  int tokens = 200;
  int delay_ms = 5;
  int ttfb_samples = 100;
  int scale_streams = 500;
  int scale_tokens = 1000;
  int scale_delay_ms = 50;
  int slots = 600;
  int gateway_threads = 2;
  bool skip_scale = false;
  int timeout_s = 300;
};

// Children to kill from a signal handler (kill(2) is async-signal-safe).
constexpr int kMaxChildren = 8;
std::atomic<pid_t> g_children[kMaxChildren];

void OnSignal(int sig) {
  for (auto& c : g_children) {
    pid_t p = c.load();
    if (p > 0) kill(p, SIGKILL);
  }
  _exit(128 + sig);
}

void Register(const Process& p) {
  for (auto& c : g_children) {
    pid_t expected = 0;
    if (c.compare_exchange_strong(expected, p.pid())) return;
  }
}

double Us(Clock::duration d) { return std::chrono::duration<double, std::micro>(d).count(); }

double Percentile(std::vector<double> v, double q) {
  if (v.empty()) return -1;
  size_t k = std::min(v.size() - 1, static_cast<size_t>(q * static_cast<double>(v.size())));
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(k), v.end());
  return v[k];
}

void Fig(const std::string& key, double value) {
  std::printf("fig %s %.3f\n", key.c_str(), value);
  std::fflush(stdout);
}

// One /proc/PID/status field in kB ("VmHWM", "VmRSS").
long StatusKb(pid_t pid, const std::string& field) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(field + ":", 0) == 0) return std::atol(line.c_str() + field.size() + 1);
  }
  return -1;
}

// User + system CPU seconds of a process so far.
double CpuSeconds(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  size_t close = all.rfind(')');
  if (close == std::string::npos) return -1;
  std::istringstream rest(all.substr(close + 2));
  std::vector<std::string> f;
  std::string tok;
  while (rest >> tok) f.push_back(tok);
  if (f.size() < 13) return -1;  // f[0] is field 3 (state): utime is field 14, stime 15
  return static_cast<double>(std::stoll(f[11]) + std::stoll(f[12])) /
         static_cast<double>(sysconf(_SC_CLK_TCK));
}

// One streamed request and what its reader saw.
struct StreamRead {
  int port = 0;
  std::string request;
  std::string model;
  int fd = -1;
  Clock::time_point sent{};
  Clock::time_point first_byte{};
  bool got_byte = false;
  std::string head;
  bool head_done = false;
  bool chunked = false;
  int status = 0;
  std::string raw;        // body bytes not yet decoded from chunked framing
  std::string sse;        // decoded body not yet split into events
  size_t body_bytes = 0;  // decoded body bytes so far
  bool body_done = false;
  std::vector<Clock::time_point> tokens;  // arrival of each token event
  bool stop_seen = false;
  bool done_seen = false;
  std::string error;  // transport, HTTP or in-stream error
  bool closed = false;

  bool Complete(size_t want) const {
    return error.empty() && status == 200 && body_done && stop_seen && done_seen &&
           tokens.size() == want;
  }
};

std::string MakeRequest(int port, const std::string& path, const std::string& model, int tokens) {
  const std::string body = R"({"model":")" + model + R"(","stream":true,"max_tokens":)" +
                           std::to_string(tokens) +
                           R"(,"messages":[{"role":"user","content":"hi"}]})";
  return "POST " + path + " HTTP/1.1\r\nHost: 127.0.0.1:" + std::to_string(port) +
         "\r\nContent-Type: application/json\r\nAccept: text/event-stream\r\nContent-Length: " +
         std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body;
}

// Connects (blocking, loopback), writes the whole request, then turns the socket non-blocking.
bool Open(StreamRead* s) {
  s->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (s->fd < 0) {
    s->error = std::string("socket: ") + std::strerror(errno);
    return false;
  }
  int one = 1;
  setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(s->port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(s->fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    s->error = std::string("connect: ") + std::strerror(errno);
    return false;
  }
  size_t off = 0;
  while (off < s->request.size()) {
    ssize_t n = send(s->fd, s->request.data() + off, s->request.size() - off, MSG_NOSIGNAL);
    if (n <= 0) {
      s->error = std::string("send: ") + std::strerror(errno);
      return false;
    }
    off += static_cast<size_t>(n);
  }
  s->sent = Clock::now();
  fcntl(s->fd, F_SETFL, fcntl(s->fd, F_GETFL) | O_NONBLOCK);
  return true;
}

void OnEvent(StreamRead* s, const std::string& event, Clock::time_point at) {
  if (event.rfind("data: [DONE]", 0) == 0) {
    s->done_seen = true;
  } else if (event.rfind("data: {\"error\"", 0) == 0) {
    s->error = "error event: " + event.substr(0, 200);
  } else if (event.find("\"finish_reason\":\"stop\"") != std::string::npos) {
    s->stop_seen = true;
  } else if (event.rfind("data: ", 0) == 0) {
    s->tokens.push_back(at);
  }
}

// Feeds bytes read at `at`; decodes the head, chunked framing and SSE events.
void Feed(StreamRead* s, const char* data, size_t n, Clock::time_point at) {
  if (!s->got_byte) {
    s->got_byte = true;
    s->first_byte = at;
  }
  std::string_view in(data, n);
  if (!s->head_done) {
    s->head.append(in);
    size_t end = s->head.find("\r\n\r\n");
    if (end == std::string::npos) return;
    s->head_done = true;
    if (s->head.size() > 12) s->status = std::atoi(s->head.c_str() + 9);
    std::string lower = s->head.substr(0, end);
    std::transform(lower.begin(), lower.end(), lower.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    s->chunked = lower.find("transfer-encoding: chunked") != std::string::npos;
    s->raw = s->head.substr(end + 4);
    s->head.resize(end);
    if (s->status != 200) s->error = "HTTP " + std::to_string(s->status);
  } else {
    s->raw.append(in);
  }
  const size_t before = s->sse.size();
  if (!s->chunked) {
    s->sse += s->raw;
    s->raw.clear();
  } else {
    size_t pos = 0;
    while (!s->body_done) {
      size_t eol = s->raw.find("\r\n", pos);
      if (eol == std::string::npos) break;
      size_t size = std::strtoul(s->raw.c_str() + pos, nullptr, 16);
      if (size == 0) {
        s->body_done = true;
        pos = s->raw.size();
        break;
      }
      if (s->raw.size() < eol + 2 + size + 2) break;
      s->sse.append(s->raw, eol + 2, size);
      pos = eol + 2 + size + 2;
    }
    s->raw.erase(0, pos);
  }
  s->body_bytes += s->sse.size() - before;
  size_t start = 0;
  for (size_t end; (end = s->sse.find("\n\n", start)) != std::string::npos; start = end + 2) {
    OnEvent(s, s->sse.substr(start, end - start), at);
  }
  s->sse.erase(0, start);
}

// Opens every stream (at most 16 between two reads, so early streams are read while later ones
// open) and reads them all until each has ended or `timeout` passes.
void Run(std::vector<StreamRead>& streams, std::chrono::seconds timeout) {
  const auto deadline = Clock::now() + timeout;
  int ep = epoll_create1(EPOLL_CLOEXEC);
  if (ep < 0) throw std::runtime_error("epoll_create1 failed");
  size_t next = 0, open = 0;
  std::vector<char> buf(256 * 1024);
  std::vector<epoll_event> events(1024);
  auto finish = [&](StreamRead* s) {
    if (s->closed) return;
    s->closed = true;
    if (s->fd >= 0) {
      epoll_ctl(ep, EPOLL_CTL_DEL, s->fd, nullptr);
      close(s->fd);
      s->fd = -1;
    }
    --open;
  };
  while (next < streams.size() || open > 0) {
    for (int k = 0; k < 16 && next < streams.size(); ++k) {
      StreamRead* s = &streams[next++];
      ++open;
      if (!Open(s)) {
        finish(s);
        continue;
      }
      epoll_event ev{};
      ev.events = EPOLLIN | EPOLLRDHUP;
      ev.data.ptr = s;
      epoll_ctl(ep, EPOLL_CTL_ADD, s->fd, &ev);
    }
    if (Clock::now() >= deadline) break;
    int wait_ms = next < streams.size() ? 0 : 100;
    int n = epoll_wait(ep, events.data(), static_cast<int>(events.size()), wait_ms);
    for (int i = 0; i < n; ++i) {
      auto* s = static_cast<StreamRead*>(events[i].data.ptr);
      for (;;) {
        ssize_t r = read(s->fd, buf.data(), buf.size());
        const auto at = Clock::now();
        if (r > 0) {
          Feed(s, buf.data(), static_cast<size_t>(r), at);
          if (s->body_done) {
            finish(s);
            break;
          }
          continue;
        }
        if (r < 0 && (errno == EAGAIN || errno == EINTR)) break;
        if (r < 0 && s->error.empty()) s->error = std::string("read: ") + std::strerror(errno);
        if (r == 0 && s->chunked && !s->body_done && s->error.empty()) {
          s->error = "connection closed before the end of the stream";
        }
        if (r == 0 && !s->chunked) s->body_done = true;
        finish(s);
        break;
      }
    }
  }
  for (StreamRead& s : streams) {
    if (!s.closed) {
      if (s.error.empty()) s.error = "timed out";
      if (s.fd >= 0) close(s.fd);
      s.fd = -1;
      s.closed = true;
    }
  }
  close(ep);
}

struct Path {
  std::string name;  // direct, service, openai
  int port;
  std::string path;
};

// Per-chunk latencies (us) of `streams`, matched by model to the backend's streams.
std::vector<double> ChunkLatencies(const std::vector<StreamRead>& streams,
                                   const std::vector<TestBackend::Stream>& recorded,
                                   int* negative) {
  std::map<std::string, const TestBackend::Stream*> by_model;
  for (const TestBackend::Stream& r : recorded) by_model[r.model] = &r;
  std::vector<double> out;
  for (const StreamRead& s : streams) {
    auto it = by_model.find(s.model);
    if (it == by_model.end()) continue;
    const auto& written = it->second->chunk_times;
    for (size_t i = 0; i < std::min(written.size(), s.tokens.size()); ++i) {
      double us = Us(s.tokens[i] - written[i]);
      if (us < 0) ++*negative;
      out.push_back(us);
    }
  }
  return out;
}

struct Pool {
  Process broker, worker, gateway;
  int gateway_port = 0;
};

Pool StartPool(const Args& a, const std::string& dir, const std::string& backend_url,
               const std::string& first_model) {
  using namespace std::chrono_literals;
  Pool p;
  const std::string endpoints = dir + "/broker.endpoints";
  p.broker = Process::Start(a.bin_dir + "/rma-broker",
                            {"--workers", "tcp://127.0.0.1:*", "--clients", "tcp://127.0.0.1:*",
                             "--endpoints-file", endpoints, "--log-level", "warn"},
                            dir + "/broker.log");
  Register(p.broker);
  std::string eps = rma::testing::WaitForFile(endpoints, 20s);
  if (eps.empty()) throw std::runtime_error("the broker did not start:\n" + p.broker.Log());
  std::istringstream in(eps);
  std::string workers_ep, clients_ep;
  std::getline(in, workers_ep);
  std::getline(in, clients_ep);
  p.worker = Process::Start(
      a.bin_dir + "/rma-worker",
      {"--broker", workers_ep, "--worker-id", "stream-bench", "--name", "stream-bench",
       "--data-dir", dir + "/worker", "--service", "llm=" + backend_url, "--slots",
       std::to_string(a.slots), "--log-level", "warn"},
      dir + "/worker.log");
  Register(p.worker);
  const std::string port_file = dir + "/gateway.port";
  // Limits raised for the benchmark: every stream comes from 127.0.0.1 (default 256 connections
  // per address), and a scale stream may outlast the default 30 s call timeout.
  p.gateway = Process::Start(
      a.bin_dir + "/rma-gateway",
      {"--broker", clients_ep, "--listen", "127.0.0.1:0", "--port-file", port_file, "--threads",
       std::to_string(a.gateway_threads), "--max-connections-per-ip", "0", "--call-timeout-ms",
       "600000", "--max-call-timeout-ms", "600000", "--log-level", "warn"},
      dir + "/gateway.log");
  Register(p.gateway);
  std::string port = rma::testing::WaitForFile(port_file, 20s);
  if (port.empty()) throw std::runtime_error("the gateway did not start:\n" + p.gateway.Log());
  p.gateway_port = std::stoi(port);
  const std::string gw = "http://127.0.0.1:" + port.substr(0, port.size() - 1);
  bool ready = rma::testing::WaitUntil(
      [&] {
        nlohmann::json s = rma::testing::HttpGet(gw + "/api/admin/services", 2000).Json();
        bool llm = false;
        if (s.is_object() && s.contains("services")) {
          for (const auto& x : s["services"]) {
            llm = llm || (x.value("name", "") == "llm" && x.value("available", false));
          }
        }
        if (!llm) return false;
        nlohmann::json m = rma::testing::HttpGet(gw + "/v1/models", 2000).Json();
        if (!m.is_object() || !m.contains("data")) return false;
        for (const auto& x : m["data"]) {
          if (x.value("id", "") == first_model) return true;
        }
        return false;
      },
      30s);
  if (!ready) {
    throw std::runtime_error("the service never became available:\n" + p.broker.Log() +
                             p.worker.Log() + p.gateway.Log());
  }
  return p;
}

void PrintMemory(const Pool& p, const std::string& when, const std::string& key) {
  std::printf(
      "memory %s: VmHWM gateway %.1f MB, broker %.1f MB, worker %.1f MB (VmRSS %.1f / %.1f "
      "/ %.1f MB)\n",
      when.c_str(), StatusKb(p.gateway.pid(), "VmHWM") / 1024.0,
      StatusKb(p.broker.pid(), "VmHWM") / 1024.0, StatusKb(p.worker.pid(), "VmHWM") / 1024.0,
      StatusKb(p.gateway.pid(), "VmRSS") / 1024.0, StatusKb(p.broker.pid(), "VmRSS") / 1024.0,
      StatusKb(p.worker.pid(), "VmRSS") / 1024.0);
  Fig(key + "_gateway_hwm_mb", StatusKb(p.gateway.pid(), "VmHWM") / 1024.0);
  Fig(key + "_broker_hwm_mb", StatusKb(p.broker.pid(), "VmHWM") / 1024.0);
  Fig(key + "_worker_hwm_mb", StatusKb(p.worker.pid(), "VmHWM") / 1024.0);
}

int RunBench(const Args& a) {
  const std::string dir = rma::testing::TempDir("rma-stream-bench");
  // Models the OpenAI route can route to: o-0 .. o-(K-1) (a service lists at most 256).
  const int openai_streams = std::min(a.streams, 200);
  TestBackend::Options bo;
  bo.models.clear();
  for (int i = 0; i < openai_streams; ++i) bo.models.push_back("o-" + std::to_string(i));
  TestBackend backend(bo);
  Pool pool = StartPool(a, dir, backend.Url(), "o-0");
  PrintMemory(pool, "idle", "idle");

  const std::vector<Path> paths = {
      {"direct", backend.port(), "/v1/chat/completions"},
      {"service", pool.gateway_port, "/api/service/llm/v1/chat/completions"},
      {"openai", pool.gateway_port, "/v1/chat/completions"}};
  const auto timeout = std::chrono::seconds(a.timeout_s);
  int failures = 0;

  // ttfb: one request at a time, the paths alternating; one token, no delay. Ten warm-up rounds.
  backend.SetTokenDelayMs(0);
  // Where the first token's time goes: the request's way to the backend (written -> the backend
  // has read it) and the first token's way back (the backend's write -> arrival).
  std::map<std::string, std::vector<double>> ttfb, ttft, req_leg, answer_leg;
  for (int j = -10; j < a.ttfb_samples; ++j) {
    for (const Path& p : paths) {
      std::vector<StreamRead> one(1);
      one[0].port = p.port;
      one[0].model = p.name == "openai" ? "o-0" : "t-" + p.name;
      one[0].request = MakeRequest(p.port, p.path, one[0].model, 1);
      Run(one, timeout);
      if (!one[0].Complete(1)) {
        ++failures;
        std::printf("ttfb %s: failed: %s\n", p.name.c_str(), one[0].error.c_str());
        continue;
      }
      if (j < 0) continue;
      ttfb[p.name].push_back(Us(one[0].first_byte - one[0].sent));
      ttft[p.name].push_back(Us(one[0].tokens[0] - one[0].sent));
      std::vector<TestBackend::Stream> recorded = backend.Streams();
      if (!recorded.empty() && recorded.back().model == one[0].model &&
          !recorded.back().chunk_times.empty()) {
        req_leg[p.name].push_back(Us(recorded.back().started - one[0].sent));
        answer_leg[p.name].push_back(Us(one[0].tokens[0] - recorded.back().chunk_times[0]));
      }
    }
  }
  for (const Path& p : paths) {
    std::printf(
        "ttfb %-7s (%d one at a time): first byte p50 %.0f us p90 %.0f us, first token "
        "p50 %.0f us p90 %.0f us\n",
        p.name.c_str(), a.ttfb_samples, Percentile(ttfb[p.name], 0.5),
        Percentile(ttfb[p.name], 0.9), Percentile(ttft[p.name], 0.5),
        Percentile(ttft[p.name], 0.9));
    Fig("ttfb_" + p.name + "_p50_us", Percentile(ttfb[p.name], 0.5));
    Fig("ttft_" + p.name + "_p50_us", Percentile(ttft[p.name], 0.5));
    std::printf(
        "ttfb %-7s where the first token's time goes (p50): request to the backend %.0f us, "
        "first token back %.0f us\n",
        p.name.c_str(), Percentile(req_leg[p.name], 0.5), Percentile(answer_leg[p.name], 0.5));
    Fig("ttft_" + p.name + "_request_leg_p50_us", Percentile(req_leg[p.name], 0.5));
    Fig("ttft_" + p.name + "_answer_leg_p50_us", Percentile(answer_leg[p.name], 0.5));
  }
  for (const char* via : {"service", "openai"}) {
    Fig(std::string("ttfb_added_") + via + "_p50_us",
        Percentile(ttfb[via], 0.5) - Percentile(ttfb["direct"], 0.5));
    Fig(std::string("ttft_added_") + via + "_p50_us",
        Percentile(ttft[via], 0.5) - Percentile(ttft["direct"], 0.5));
  }

  // latency: per path, K concurrent streams of M tokens D ms apart.
  backend.SetTokenDelayMs(a.delay_ms);
  std::map<std::string, double> p50;
  for (const Path& p : paths) {
    const int k = p.name == "openai" ? openai_streams : a.streams;
    std::vector<StreamRead> streams(static_cast<size_t>(k));
    for (int i = 0; i < k; ++i) {
      StreamRead& s = streams[static_cast<size_t>(i)];
      s.port = p.port;
      s.model = p.name == "openai" ? "o-" + std::to_string(i) : "l-" + p.name + std::to_string(i);
      s.request = MakeRequest(p.port, p.path, s.model, a.tokens);
    }
    const size_t before = backend.Streams().size();
    Run(streams, timeout);
    std::vector<TestBackend::Stream> recorded = backend.Streams();
    recorded.erase(recorded.begin(), recorded.begin() + static_cast<std::ptrdiff_t>(before));
    int complete = 0, negative = 0;
    for (const StreamRead& s : streams) {
      if (s.Complete(static_cast<size_t>(a.tokens))) {
        ++complete;
      } else if (!s.error.empty()) {
        std::printf("latency %s %s: %s\n", p.name.c_str(), s.model.c_str(), s.error.c_str());
      }
    }
    failures += k - complete;
    std::vector<double> lat = ChunkLatencies(streams, recorded, &negative);
    std::vector<double> ft;
    for (const StreamRead& s : streams) {
      if (!s.tokens.empty()) ft.push_back(Us(s.tokens[0] - s.sent));
    }
    p50[p.name] = Percentile(lat, 0.5);
    std::printf(
        "latency %-7s (%d streams x %d tokens, %d ms apart): %d/%d complete, %zu chunks: "
        "p50 %.0f us p90 %.0f us p99 %.0f us max %.0f us; first token p50 %.2f ms%s\n",
        p.name.c_str(), k, a.tokens, a.delay_ms, complete, k, lat.size(), p50[p.name],
        Percentile(lat, 0.9), Percentile(lat, 0.99), Percentile(lat, 1.0),
        Percentile(ft, 0.5) / 1000, negative > 0 ? " (NEGATIVE LATENCIES: matching is wrong)" : "");
    Fig("lat_" + p.name + "_p50_us", p50[p.name]);
    Fig("lat_" + p.name + "_p90_us", Percentile(lat, 0.9));
    Fig("lat_" + p.name + "_p99_us", Percentile(lat, 0.99));
  }
  Fig("lat_added_service_p50_us", p50["service"] - p50["direct"]);
  Fig("lat_added_openai_p50_us", p50["openai"] - p50["direct"]);
  PrintMemory(pool, "after ttfb and latency", "pre");

  if (!a.skip_scale) {
    backend.SetTokenDelayMs(a.scale_delay_ms);
    const Path& p = paths[1];
    std::vector<StreamRead> streams(static_cast<size_t>(a.scale_streams));
    for (int i = 0; i < a.scale_streams; ++i) {
      StreamRead& s = streams[static_cast<size_t>(i)];
      s.port = p.port;
      s.model = "s-" + std::to_string(i);
      s.request = MakeRequest(p.port, p.path, s.model, a.scale_tokens);
    }
    const pid_t pids[3] = {pool.gateway.pid(), pool.broker.pid(), pool.worker.pid()};
    double cpu0[3];
    for (int i = 0; i < 3; ++i) cpu0[i] = CpuSeconds(pids[i]);
    const size_t before = backend.Streams().size();
    const auto t0 = Clock::now();
    Run(streams, timeout);
    const double seconds = std::chrono::duration<double>(Clock::now() - t0).count();
    double cpu[3];
    for (int i = 0; i < 3; ++i) cpu[i] = CpuSeconds(pids[i]) - cpu0[i];
    std::vector<TestBackend::Stream> recorded = backend.Streams();
    recorded.erase(recorded.begin(), recorded.begin() + static_cast<std::ptrdiff_t>(before));
    int complete = 0, negative = 0;
    size_t received = 0, written = 0, backend_finished = 0, bytes = 0;
    std::map<std::string, int> errors;
    for (const StreamRead& s : streams) {
      received += s.tokens.size();
      bytes += s.body_bytes;
      if (s.Complete(static_cast<size_t>(a.scale_tokens))) {
        ++complete;
      } else {
        errors[s.error.empty() ? "incomplete without an error" : s.error.substr(0, 120)]++;
      }
    }
    for (const TestBackend::Stream& r : recorded) {
      written += r.chunk_times.size();
      backend_finished += r.finished ? 1 : 0;
    }
    failures += a.scale_streams - complete;
    std::vector<double> lat = ChunkLatencies(streams, recorded, &negative);
    std::vector<double> ft, scale_req_leg;
    for (const StreamRead& s : streams) {
      if (!s.tokens.empty()) ft.push_back(Us(s.tokens[0] - s.sent));
    }
    std::map<std::string, Clock::time_point> sent;
    for (const StreamRead& s : streams) sent[s.model] = s.sent;
    for (const TestBackend::Stream& r : recorded) {
      if (auto it = sent.find(r.model); it != sent.end()) {
        scale_req_leg.push_back(Us(r.started - it->second));
      }
    }
    const size_t expected = static_cast<size_t>(a.scale_streams) * a.scale_tokens;
    std::printf(
        "scale (%d streams x %d tokens, %d ms apart, service route): %d/%d streams "
        "complete; chunks received %zu of %zu (backend wrote %zu, finished %zu streams); "
        "%.1f s, %.0f chunks/s\n",
        a.scale_streams, a.scale_tokens, a.scale_delay_ms, complete, a.scale_streams, received,
        expected, written, backend_finished, seconds, static_cast<double>(received) / seconds);
    for (const auto& [e, n] : errors) std::printf("  %d stream(s): %s\n", n, e.c_str());
    std::printf("scale answers: %.1f KB per stream, %.1f MB in all\n",
                static_cast<double>(bytes) / 1024 / a.scale_streams,
                static_cast<double>(bytes) / (1 << 20));
    std::printf(
        "scale per-chunk latency: p50 %.0f us p90 %.0f us p99 %.0f us max %.0f us; first "
        "token p50 %.1f ms p99 %.1f ms%s\n",
        Percentile(lat, 0.5), Percentile(lat, 0.9), Percentile(lat, 0.99), Percentile(lat, 1.0),
        Percentile(ft, 0.5) / 1000, Percentile(ft, 0.99) / 1000,
        negative > 0 ? " (NEGATIVE LATENCIES: matching is wrong)" : "");
    std::printf("scale: each request reached the backend after p50 %.1f ms, p99 %.1f ms\n",
                Percentile(scale_req_leg, 0.5) / 1000, Percentile(scale_req_leg, 0.99) / 1000);
    Fig("scale_request_leg_p50_us", Percentile(scale_req_leg, 0.5));
    std::printf(
        "scale CPU: gateway %.2f s, broker %.2f s, worker %.2f s (%.1f / %.1f / %.1f us "
        "per chunk)\n",
        cpu[0], cpu[1], cpu[2], cpu[0] * 1e6 / static_cast<double>(received),
        cpu[1] * 1e6 / static_cast<double>(received), cpu[2] * 1e6 / static_cast<double>(received));
    Fig("scale_complete", complete);
    Fig("scale_lost_chunks", static_cast<double>(expected - received));
    Fig("scale_seconds", seconds);
    Fig("scale_chunks_per_s", static_cast<double>(received) / seconds);
    Fig("scale_lat_p50_us", Percentile(lat, 0.5));
    Fig("scale_lat_p99_us", Percentile(lat, 0.99));
    Fig("scale_ttft_p50_us", Percentile(ft, 0.5));
    Fig("scale_cpu_gateway_s", cpu[0]);
    Fig("scale_cpu_broker_s", cpu[1]);
    Fig("scale_cpu_worker_s", cpu[2]);
    PrintMemory(pool, "after scale", "scale");
  }
  if (!pool.gateway.running() || !pool.broker.running() || !pool.worker.running()) {
    std::printf("a pool process exited during the run\n");
    ++failures;
  }
  // Warnings and errors the processes logged (they run at --log-level warn).
  for (const Process* proc : {&pool.broker, &pool.worker, &pool.gateway}) {
    std::istringstream log(proc->Log());
    std::string line;
    int n = 0, shown = 0;
    while (std::getline(log, line)) {
      ++n;
      if (shown < 5) {
        std::printf("  log %s: %s\n", proc->log_path().substr(dir.size() + 1).c_str(),
                    line.substr(0, 200).c_str());
        ++shown;
      }
    }
    if (n > shown) std::printf("  log: %d more line(s)\n", n - shown);
  }
  Fig("failures", failures);
  backend.Stop();
  return failures == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  Args a;
  CLI::App app{"stream_bench: streamed answers through the pool against the backend directly"};
  app.add_option("--bin-dir", a.bin_dir, "directory of rma-broker, rma-worker, rma-gateway")
      ->required();
  app.add_option("--streams", a.streams, "latency: concurrent streams per path")
      ->capture_default_str();
  app.add_option("--tokens", a.tokens, "latency: tokens per stream")->capture_default_str();
  app.add_option("--delay-ms", a.delay_ms, "latency: ms between tokens")->capture_default_str();
  app.add_option("--ttfb-samples", a.ttfb_samples, "ttfb: requests per path, one at a time")
      ->capture_default_str();
  app.add_option("--scale-streams", a.scale_streams, "scale: concurrent streams")
      ->capture_default_str();
  app.add_option("--scale-tokens", a.scale_tokens, "scale: tokens per stream")
      ->capture_default_str();
  app.add_option("--scale-delay-ms", a.scale_delay_ms, "scale: ms between tokens")
      ->capture_default_str();
  app.add_option("--slots", a.slots, "the worker's --slots")->capture_default_str();
  app.add_option("--gateway-threads", a.gateway_threads, "the gateway's --threads")
      ->capture_default_str();
  app.add_flag("--skip-scale", a.skip_scale, "only the ttfb and latency phases");
  app.add_option("--timeout-s", a.timeout_s, "longest a phase may take")->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  signal(SIGPIPE, SIG_IGN);
  for (int sig : {SIGINT, SIGTERM, SIGHUP}) signal(sig, OnSignal);
  std::printf(
      "== stream_bench: streams=%d tokens=%d delay_ms=%d ttfb_samples=%d "
      "scale_streams=%d scale_tokens=%d scale_delay_ms=%d slots=%d gateway_threads=%d "
      "bin=%s\n",
      a.streams, a.tokens, a.delay_ms, a.ttfb_samples, a.scale_streams, a.scale_tokens,
      a.scale_delay_ms, a.slots, a.gateway_threads, a.bin_dir.c_str());
  try {
    return RunBench(a);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "stream_bench: %s\n", e.what());
    return 2;
  }
}
