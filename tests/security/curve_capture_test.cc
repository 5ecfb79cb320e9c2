// Proof of encryption (issue 13): what somebody who can read the wire between the broker and a
// worker sees. A real rma-broker (keys from `rma-broker keygen`) and a real rma-worker with
// --broker-key run an echo task whose payload is a random marker, while tcpdump records every
// packet to and from the broker's worker port on the loopback interface. Under CURVE the capture
// holds the handshake's command names and ciphertext, but neither the marker nor any key of the
// broker or the worker, nor the worker's id. The same scenario without CURVE (PLAIN with a worker
// token, which only authenticates) is the control that shows the check can fail: there the marker,
// the worker id and the token itself are in the capture.
//
// Needs tcpdump and the right to capture (root or CAP_NET_RAW): without either the tests skip,
// except under CI (CI=true), where a missing tcpdump fails them. Synchronisation without sleeps:
// tcpdump says "listening on" once it captures; when the task is done the test sends a sentinel
// over a fresh TCP connection to the same port and waits for it to appear in the capture file
// (written per packet, -U), so every earlier packet is in the file before tcpdump is stopped.
#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zmq.h>

#include <array>
#include <cstdlib>
#include <filesystem>
#include <random>

#include "protocol/curve_keys.h"
#include "tests/security/broker_attack.h"

namespace rma::testing::broker_attack {
namespace {

namespace fs = std::filesystem;

std::string RandomHex(size_t bytes) {
  std::random_device random;
  std::string out;
  const char* digits = "0123456789abcdef";
  for (size_t i = 0; i < bytes; ++i) {
    const unsigned b = random() & 0xff;
    out += digits[b >> 4];
    out += digits[b & 0xf];
  }
  return out;
}

// The 32 bytes a Z85 key stands for (what travels on the wire when a key does).
std::string BinaryKey(const std::string& z85) {
  std::array<uint8_t, 32> out{};
  if (zmq_z85_decode(out.data(), z85.c_str()) == nullptr) return {};
  return std::string(reinterpret_cast<const char*>(out.data()), out.size());
}

size_t Count(const std::string& haystack, const std::string& needle) {
  size_t n = 0;
  for (size_t at = haystack.find(needle); at != std::string::npos;
       at = haystack.find(needle, at + 1)) {
    ++n;
  }
  return n;
}

bool InCi() {
  const char* ci = std::getenv("CI");
  return ci != nullptr && std::string(ci) == "true";
}

// tcpdump on PATH or in the sbin directories (not on every user's PATH); "" when not installed.
std::string FindTcpdump() {
  std::vector<std::string> dirs;
  if (const char* path = std::getenv("PATH"); path != nullptr) {
    std::stringstream in(path);
    for (std::string d; std::getline(in, d, ':');) dirs.push_back(d);
  }
  for (const char* d : {"/usr/sbin", "/sbin", "/usr/bin", "/usr/local/sbin"}) dirs.push_back(d);
  for (const std::string& d : dirs) {
    std::string candidate = d + "/tcpdump";
    if (!d.empty() && access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return {};
}

int PortOf(const std::string& endpoint) {
  return std::stoi(endpoint.substr(endpoint.rfind(':') + 1));
}

// Writes `bytes` to 127.0.0.1:port over a new TCP connection and closes it. The broker drops a
// connection that does not start with a ZMTP greeting (with authentication on, it also refuses
// the old unversioned protocol), so this touches nothing but the capture.
bool SendRawTcp(int port, const std::string& bytes) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return false;
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bool ok = connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0 &&
            write(fd, bytes.data(), bytes.size()) == static_cast<ssize_t>(bytes.size());
  close(fd);
  return ok;
}

// tcpdump recording one TCP port of the loopback interface into a file.
class Capture {
 public:
  // Empty when capturing: otherwise why it cannot (`not_permitted` says whether that is a lack of
  // privilege rather than an error).
  std::string Start(const std::string& tcpdump, int port, const std::string& dir,
                    bool* not_permitted) {
    port_ = port;
    file_ = dir + "/capture.pcap";
    std::vector<std::string> args = {"-i", "lo", "-n", "-s", "0", "-U", "--immediate-mode",
                                     "-w", file_};
    // As root, tcpdump drops to its own user before it opens the file, which could not write into
    // this test's private directory.
    if (geteuid() == 0) args.insert(args.end(), {"-Z", "root"});
    args.push_back("tcp port " + std::to_string(port));
    process_ = Process::Start(tcpdump, args, dir + "/tcpdump.log");
    WaitUntil(
        [&] {
          return process_.Log().find("listening on") != std::string::npos || !process_.running();
        },
        20s);
    const std::string log = process_.Log();
    if (log.find("listening on") != std::string::npos && process_.running()) return {};
    *not_permitted = log.find("ermission") != std::string::npos ||
                     log.find("not permitted") != std::string::npos;
    process_.Kill();
    return "tcpdump did not start capturing: " + log;
  }

  // Makes sure every packet sent so far is in the file, stops tcpdump (SIGINT) and returns the
  // capture; "" with *error set when that failed.
  std::string Stop(std::string* error) {
    const std::string sentinel = "rma-capture-sentinel-" + RandomHex(16);
    if (!SendRawTcp(port_, sentinel)) {
      *error = "could not send the sentinel to port " + std::to_string(port_);
      return {};
    }
    const bool seen =
        WaitUntil([&] { return ReadFile(file_).find(sentinel) != std::string::npos; }, 20s);
    process_.Signal(SIGINT);
    if (!process_.Wait(10s)) {
      process_.Kill();
      *error = "tcpdump did not stop on SIGINT";
      return {};
    }
    if (!seen) {
      *error = "the sentinel never reached the capture file; tcpdump said: " + process_.Log();
      return {};
    }
    return ReadFile(file_);
  }

  std::string Log() const { return process_.Log(); }

 private:
  Process process_;
  int port_ = 0;
  std::string file_;
};

// One run of the scenario: what was on the wire, and what it would betray.
struct Observed {
  std::string capture;
  std::string marker;     // the task's payload (and so its result)
  std::string worker_id;  // sent in READY
  std::string token;      // PLAIN: the worker token
  proto::CurveKeypair broker_keys;
  proto::CurveKeypair worker_keys;
  std::string skip;  // why the scenario could not run here (no tcpdump, no right to capture)
};

void WriteSecret(const std::string& path, const std::string& text) {
  std::ofstream(path) << text << "\n";
  fs::permissions(path, fs::perms::owner_read | fs::perms::owner_write);
}

// A broker and a worker (CURVE or PLAIN with a token) run one echo task under capture.
void RunEchoUnderCapture(bool curve, Observed* seen) {
  const std::string tcpdump = FindTcpdump();
  if (tcpdump.empty()) {
    if (InCi()) FAIL() << "tcpdump is not installed (scripts/install-deps.sh installs it)";
    seen->skip = "tcpdump is not installed: cannot look at the wire (apt-get install tcpdump)";
    return;
  }
  const std::string dir = TempDir("rma-curve-capture");
  seen->marker = RandomHex(32);
  seen->worker_id = "capture-worker-" + RandomHex(8);
  BrokerFlags flags;
  if (curve) {
    Process keygen = Process::Start("rma-broker", {"keygen", dir}, dir + "/keygen.log");
    ASSERT_EQ(keygen.Wait(20s), 0) << "rma-broker keygen failed: " << keygen.Log();
    auto keys = proto::ReadSecretKeyFile(dir + "/broker.key");
    ASSERT_TRUE(keys.ok()) << keys.status().ToString();
    seen->broker_keys = *keys;
    EXPECT_THAT(keygen.Log(), ::testing::HasSubstr(keys->public_key))
        << "keygen prints the public key";
    flags.extra = {"--curve-secret-file", dir + "/broker.key"};
  } else {
    seen->token = "token-" + RandomHex(20);
    WriteSecret(dir + "/worker.token", seen->token);
    flags.extra = {"--worker-token-file", dir + "/worker.token"};
  }
  START_BROKER_OR_FAIL(broker, flags);

  Capture capture;
  bool not_permitted = false;
  const std::string why =
      capture.Start(tcpdump, PortOf(broker.workers_endpoint()), dir, &not_permitted);
  if (!why.empty()) {
    if (!not_permitted) FAIL() << why;
    seen->skip =
        "capturing on the loopback interface is not permitted here (needs root or "
        "CAP_NET_RAW): " +
        why;
    return;
  }

  // The worker starts after the capture does, so its handshake is on it too.
  std::vector<std::string> args = {"--broker",    broker.workers_endpoint(),
                                   "--service",   "echo=builtin:echo",
                                   "--data-dir",  dir + "/worker",
                                   "--worker-id", seen->worker_id,
                                   "--log-level", "info"};
  if (curve) {
    args.insert(args.end(), {"--broker-key", dir + "/broker.pub"});
  } else {
    args.insert(args.end(), {"--token-file", dir + "/worker.token"});
  }
  Process worker = Process::Start("rma-worker", args, dir + "/worker.log");

  Client client(broker.clients_endpoint());
  std::string error;
  auto id = client.Submit("echo", seen->marker, "", "", &error);
  ASSERT_TRUE(id) << "SUBMIT refused: " << error;
  proto::Get get;
  get.task_id = *id;
  get.wait_ms = 20000;
  auto answer = client.Call(Command::kGet, get, 25s);
  ASSERT_TRUE(answer && answer->command == Command::kTaskInfo)
      << "no TASK_INFO for the echo task\n--- worker log ---\n"
      << worker.Log() << "\n--- broker log ---\n"
      << broker.Log();
  auto info = DecodeAs<proto::TaskInfo>(answer->bodies[0]);
  ASSERT_TRUE(info);
  ASSERT_EQ(info->task.status, proto::TaskStatus::kCompleted)
      << info->task.error << "\n--- worker log ---\n"
      << worker.Log();
  ASSERT_EQ(info->task.result.view(), seen->marker) << "the echo worker returns the payload";
  EXPECT_EQ(info->task.worker_id, seen->worker_id);

  seen->capture = capture.Stop(&error);
  ASSERT_FALSE(seen->capture.empty()) << error;
  if (curve) {
    auto mine = proto::ReadSecretKeyFile(dir + "/worker/worker.key");
    ASSERT_TRUE(mine.ok()) << "the worker makes its key in --data-dir: "
                           << mine.status().ToString();
    seen->worker_keys = *mine;
  }
  worker.Signal(SIGTERM);
  EXPECT_EQ(worker.Wait(20s), 0) << worker.Log();
  std::printf("%s: %zu bytes captured on the worker port (%zu ZMTP MESSAGE commands)\n",
              curve ? "CURVE" : "PLAIN", seen->capture.size(),
              Count(seen->capture, std::string("\x07MESSAGE", 8)));
}

TEST(CurveCapture, TheWorkerLinkUnderCurveShowsNoPayloadKeysOrWorkerId) {
  Observed seen;
  ASSERT_NO_FATAL_FAILURE(RunEchoUnderCapture(/*curve=*/true, &seen));
  if (!seen.skip.empty()) GTEST_SKIP() << seen.skip;
  const std::string& wire = seen.capture;
  // The capture is of this connection: the greeting names the mechanism in the clear, and every
  // message after the handshake is a CURVE MESSAGE command (READY, WELCOME, heartbeats, TASK,
  // RESULT at least).
  EXPECT_NE(wire.find("CURVE"), std::string::npos) << "the capture holds no CURVE greeting";
  EXPECT_NE(wire.find("\x08INITIATE"), std::string::npos);
  EXPECT_GE(Count(wire, std::string("\x07MESSAGE", 8)), 4u);
  EXPECT_EQ(wire.find("PLAIN"), std::string::npos);

  EXPECT_EQ(wire.find(seen.marker), std::string::npos)
      << "the task's payload crossed the wire in the clear";
  EXPECT_EQ(wire.find(seen.worker_id), std::string::npos)
      << "the worker's id (READY) crossed the wire in the clear";
  for (const auto& [whose, key] : {std::pair{"broker", seen.broker_keys.secret_key},
                                   std::pair{"worker", seen.worker_keys.secret_key}}) {
    EXPECT_EQ(wire.find(key), std::string::npos) << "the " << whose << "'s secret key (Z85)";
    EXPECT_EQ(wire.find(BinaryKey(key)), std::string::npos) << "the " << whose << "'s secret key";
  }
  // The worker's long-term public key travels only inside INITIATE's encrypted box: who the
  // worker is stays hidden too. (The broker's is never sent: the worker knows it.)
  EXPECT_EQ(wire.find(BinaryKey(seen.worker_keys.public_key)), std::string::npos);
  EXPECT_EQ(wire.find(BinaryKey(seen.broker_keys.public_key)), std::string::npos);
}

// The control: the same check on a link without CURVE finds everything, so it can fail.
TEST(CurveCapture, ThePlaintextWorkerLinkShowsPayloadWorkerIdAndToken) {
  Observed seen;
  ASSERT_NO_FATAL_FAILURE(RunEchoUnderCapture(/*curve=*/false, &seen));
  if (!seen.skip.empty()) GTEST_SKIP() << seen.skip;
  const std::string& wire = seen.capture;
  EXPECT_NE(wire.find("PLAIN"), std::string::npos) << "the capture holds no PLAIN greeting";
  EXPECT_NE(wire.find(seen.marker), std::string::npos)
      << "the payload is not in the capture of a plaintext link: the check cannot see anything";
  EXPECT_GE(Count(wire, seen.marker), 2u) << "TASK and RESULT both carry it";
  EXPECT_NE(wire.find(seen.worker_id), std::string::npos);
  // PLAIN authenticates but sends the token as it is: anybody on the path can replay it.
  EXPECT_NE(wire.find(seen.token), std::string::npos)
      << "the worker token is not in the PLAIN handshake's capture";
}

}  // namespace
}  // namespace rma::testing::broker_attack
