// Who CURVE lets in (issue 13), against a real rma-broker started with a key from `rma-broker
// keygen`: a worker that pins the broker's key registers and runs tasks, and is its key; a worker
// that pins another key gives up with a message naming --broker-key; a key outside
// --worker-keys-file is refused until it is listed and the broker is sent SIGHUP; a second session
// with another key cannot take a live worker's id, while the worker's own key can; and on the
// client endpoint only the keys of --client-keys-file get an answer. Real rma-worker processes,
// and raw CURVE DEALERs (the project's key helpers, protocol/curve_keys.h) where the test needs to
// choose the key; the rest of the toolkit is broker_attack.h's.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <csignal>
#include <fstream>
#include <optional>
#include <random>

#include "protocol/curve_keys.h"
#include "protocol/handshake.h"
#include "tests/security/broker_attack.h"

namespace rma::testing::broker_attack {
namespace {

using ::testing::HasSubstr;
using Kind = proto::HandshakeEvent::Kind;

std::string FirstLine(const std::string& text) { return text.substr(0, text.find('\n')); }

std::string RandomPayload() {
  std::random_device random;
  return "payload-" + std::to_string(random()) + "-" + std::to_string(random());
}

std::string Describe(const std::optional<proto::HandshakeEvent>& e) {
  if (!e) return "no handshake outcome";
  switch (e->kind) {
    case Kind::kSucceeded:
      return "handshake succeeded";
    case Kind::kRefused:
      return "handshake refused by the broker, ZAP status " + std::to_string(e->status);
    case Kind::kMismatch:
      return "handshake failed: mechanism mismatch";
    case Kind::kBroken:
      return "handshake broken off without detail";
    case Kind::kDisconnected:
      return "connection closed or refused";
  }
  return "?";
}

// A raw DEALER that speaks CURVE as `mine` to the broker `broker_key`, and watches its handshake.
// Used by the test's thread only.
class CurvePeer {
 public:
  CurvePeer(const std::string& endpoint, const proto::CurveKeypair& mine,
            const std::string& broker_key)
      : socket_(Context(), zmq::socket_type::dealer) {
    static int generation = 0;
    proto::ConfigureSocket(socket_, proto::Limits{}, /*is_router=*/false);
    proto::UseCurveClient(socket_, mine, broker_key);
    monitor_ =
        proto::MonitorHandshakes(Context(), socket_, "curve-test-" + std::to_string(++generation));
    socket_.connect(endpoint);
  }
  ~CurvePeer() {
    if (monitor_) (void)zmq_socket_monitor(socket_.handle(), nullptr, 0);
  }

  // The first outcome of its handshake within `timeout`.
  std::optional<proto::HandshakeEvent> Handshake(std::chrono::milliseconds timeout = 5s) {
    if (!monitor_) return std::nullopt;
    const auto deadline = Steady::now() + timeout;
    for (;;) {
      if (auto e = proto::NextHandshakeEvent(*monitor_)) return e;
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Steady::now());
      if (left.count() <= 0) return std::nullopt;
      zmq::pollitem_t item{monitor_->handle(), 0, ZMQ_POLLIN, 0};
      zmq::poll(&item, 1, left);
    }
  }

  template <typename T>
  void Send(Command command, const T& message) {
    proto::OutMessage m(command);
    m.AddBody(proto::Encode(message));
    Status s = m.Send(socket_);
    EXPECT_TRUE(s.ok()) << s.message();
  }
  void SendBodyless(Command command) {
    proto::OutMessage m(command);
    Status s = m.Send(socket_);
    EXPECT_TRUE(s.ok()) << s.message();
  }

  // The first message `match` likes within `timeout` (others are dropped).
  bool WaitFor(const std::function<bool(const Message&)>& match, std::chrono::milliseconds timeout,
               Message* out) {
    const auto deadline = Steady::now() + timeout;
    for (;;) {
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Steady::now());
      if (left.count() <= 0) return false;
      zmq::pollitem_t item{socket_.handle(), 0, ZMQ_POLLIN, 0};
      zmq::poll(&item, 1, left);
      if (!(item.revents & ZMQ_POLLIN)) continue;
      proto::InMessage msg;
      auto got = proto::ReceiveMessage(socket_, /*has_identity=*/false, proto::Limits{}, &msg);
      if (!got.ok() || !*got) continue;
      out->command = msg.command();
      out->bodies.clear();
      for (size_t i = 0; i < msg.body_count(); ++i) out->bodies.emplace_back(msg.body(i));
      if (match(*out)) return true;
    }
  }

  // Whether the broker answers a HEARTBEAT on the client endpoint within `timeout`.
  bool Answered(std::chrono::milliseconds timeout) {
    SendBodyless(Command::kHeartbeat);
    Message m;
    return WaitFor([](const Message& x) { return x.command == Command::kHeartbeat; }, timeout, &m);
  }

  // An admin document (client endpoint), or null.
  json Admin(const std::string& query) {
    proto::Admin a;
    a.query = query;
    a.ref = ++next_ref_;
    Send(Command::kAdmin, a);
    proto::Decoder decoder(AdminLimits());
    Message m;
    if (!WaitFor(
            [&](const Message& x) {
              return x.command == Command::kAdminReply && !x.bodies.empty() &&
                     RefOf(decoder, x.command, x.bodies[0]) == a.ref;
            },
            5s, &m)) {
      return nullptr;
    }
    auto reply = DecodeAs<proto::AdminReply>(m.bodies[0], AdminLimits());
    return reply ? reply->data : json(nullptr);
  }

 private:
  zmq::socket_t socket_;
  std::unique_ptr<zmq::socket_t> monitor_;
  uint64_t next_ref_ = 0;
};

// READY and the broker's verdict: true on WELCOME; otherwise the reason in *refusal.
bool Register(CurvePeer& worker, const proto::Ready& ready, std::string* refusal) {
  worker.Send(Command::kReady, ready);
  Message m;
  if (!worker.WaitFor(
          [](const Message& x) {
            return x.command == Command::kWelcome || x.command == Command::kError || IsRefusal(x);
          },
          5s, &m)) {
    *refusal = "no answer";
    return false;
  }
  if (m.command == Command::kWelcome) return true;
  if (m.command == Command::kError) {
    *refusal = "ERROR " + Client::ErrorCode(m);
  } else {
    auto d = DecodeAs<proto::Disconnect>(m.bodies.empty() ? std::string() : m.bodies[0]);
    *refusal = d ? d->reason : "(DISCONNECT without a reason)";
  }
  return false;
}

class CurveAdmission : public ::testing::Test {
 protected:
  CurveAdmission() : dir_(TempDir("rma-curve-admission")) {}
  ~CurveAdmission() override {
    client_.reset();
    broker_.reset();
  }

  // `rma-broker keygen DIR --name NAME`: DIR/NAME.key and DIR/NAME.pub; the public key.
  std::string Keygen(const std::string& name) {
    Process keygen =
        Process::Start("rma-broker", {"keygen", dir_, "--name", name}, dir_ + "/keygen.log");
    auto code = keygen.Wait(20s);
    std::string pub = FirstLine(ReadFile(dir_ + "/" + name + ".pub"));
    if (code != 0 || !proto::IsZ85Key(pub)) {
      ADD_FAILURE() << "rma-broker keygen failed (exit code " << (code ? *code : -1)
                    << "): " << keygen.Log();
      return {};
    }
    EXPECT_THAT(keygen.Log(), HasSubstr(pub)) << "keygen prints the public key";
    return pub;
  }

  // A CURVE broker (its key from keygen) on loopback ports it picks, with `extra` flags.
  void StartBroker(const std::vector<std::string>& extra) {
    broker_key_ = Keygen("broker");
    ASSERT_FALSE(broker_key_.empty());
    BrokerFlags flags;
    flags.extra = {"--curve-secret-file", dir_ + "/broker.key"};
    flags.extra.insert(flags.extra.end(), extra.begin(), extra.end());
    broker_.emplace(flags);
    ASSERT_TRUE(broker_->started()) << broker_->WhyNotStarted();
    // The client endpoint stays plaintext (loopback) unless a client key list is given.
    if (std::find(extra.begin(), extra.end(), "--client-keys-file") == extra.end()) {
      client_.emplace(broker_->clients_endpoint());
    }
  }

  // rma-worker with its data (and so its key) in DIR/`name`, pinning the broker key in
  // `broker_key_file`.
  Process StartWorker(const std::string& name, const std::string& worker_id,
                      const std::string& broker_key_file) {
    return Process::Start("rma-worker",
                          {"--broker", broker_->workers_endpoint(), "--broker-key", broker_key_file,
                           "--service", "echo=builtin:echo", "--data-dir", dir_ + "/" + name,
                           "--worker-id", worker_id, "--name", worker_id, "--log-level", "info"},
                          dir_ + "/" + name + "-" + std::to_string(++runs_) + ".log");
  }
  std::string BrokerPub() const { return dir_ + "/broker.pub"; }
  // The public key a worker made in its data dir.
  std::string WorkerKey(const std::string& name) {
    return FirstLine(WaitForFile(dir_ + "/" + name + "/worker.key.pub", 20s));
  }

  // The broker's record of a worker (the admin "workers" document), or null.
  json WorkerRecord(const std::string& worker_id) {
    json doc = client_->Admin("workers");
    if (!doc.is_object()) return nullptr;
    for (const json& w : doc["workers"]) {
      if (w["worker_id"] == worker_id) return w;
    }
    return nullptr;
  }
  bool WaitRegistered(const std::string& worker_id, std::chrono::milliseconds timeout = 30s) {
    return WaitUntil(
        [&] {
          json w = WorkerRecord(worker_id);
          return w.is_object() && w["status"] != "offline";
        },
        timeout);
  }

  // Runs an echo task and expects `worker_id` to have run it.
  void ExpectRunsAnEchoTask(const std::string& worker_id) {
    const std::string payload = RandomPayload();
    std::string error;
    auto id = client_->Submit("echo", payload, "", "", &error);
    ASSERT_TRUE(id) << error;
    proto::Get get;
    get.task_id = *id;
    get.wait_ms = 20000;
    auto answer = client_->Call(Command::kGet, get, 25s);
    ASSERT_TRUE(answer && answer->command == Command::kTaskInfo) << "no answer to GET";
    auto info = DecodeAs<proto::TaskInfo>(answer->bodies[0]);
    ASSERT_TRUE(info);
    EXPECT_EQ(info->task.status, proto::TaskStatus::kCompleted) << info->task.error;
    EXPECT_EQ(info->task.result.view(), payload);
    EXPECT_EQ(info->task.worker_id, worker_id);
  }

  // Sends SIGHUP and waits for the broker to say it read `count` keys of a list ("worker" or
  // "client").
  void Reload(const std::string& which, int count) {
    broker_->process().Signal(SIGHUP);
    const std::string line = std::to_string(count) + " " + which + " key(s) admitted";
    ASSERT_TRUE(WaitUntil([&] { return broker_->Log().find(line) != std::string::npos; }, 20s))
        << "the broker did not read its key list again on SIGHUP\n"
        << broker_->Log();
  }

  static void Stop(Process& worker) {
    worker.Signal(SIGTERM);
    if (!worker.Wait(20s)) worker.Kill();
  }

  std::string dir_;
  std::string broker_key_;
  std::optional<BrokerUnderAttack> broker_;
  std::optional<Client> client_;  // on the plaintext client endpoint
  int runs_ = 0;
};

// (a) The worker pins the broker's key (its .pub file): it registers, the broker knows it by the
// key it made in its data dir, and it runs a task.
TEST_F(CurveAdmission, AWorkerWithTheBrokersKeyRegistersAsItsKeyAndRunsATask) {
  ASSERT_NO_FATAL_FAILURE(StartBroker({}));
  Process worker = StartWorker("a", "curve-a", BrokerPub());
  const std::string key = WorkerKey("a");
  ASSERT_TRUE(proto::IsZ85Key(key)) << "no worker.key.pub in the data dir: " << worker.Log();
  ASSERT_TRUE(WaitRegistered("curve-a")) << worker.Log() << "\n--- broker ---\n" << broker_->Log();
  EXPECT_EQ(WorkerRecord("curve-a")["key"], key) << "the broker knows the worker by its key";
  ASSERT_NO_FATAL_FAILURE(ExpectRunsAnEchoTask("curve-a"));
  Stop(worker);
}

// (b) The worker pins a key that is not the broker's: every handshake breaks off (the broker
// cannot read HELLO), and the worker gives up saying which flag to check.
TEST_F(CurveAdmission, AWorkerPinningAnotherBrokerKeyExitsNamingBrokerKey) {
  ASSERT_NO_FATAL_FAILURE(StartBroker({}));
  ASSERT_FALSE(Keygen("impostor").empty());
  Process worker = StartWorker("b", "curve-b", dir_ + "/impostor.pub");
  auto code = worker.Wait(60s);
  ASSERT_TRUE(code) << "the worker still runs a minute later: " << worker.Log();
  EXPECT_NE(*code, 0);
  EXPECT_THAT(worker.Log(), HasSubstr("check --broker-key"));
  EXPECT_TRUE(WorkerRecord("curve-b").is_null()) << "it registered with the wrong broker key";
}

// (c) --worker-keys-file admits the keys it lists: a worker whose key is not there is refused at
// the handshake and exits saying so; once its key is added and the broker has had SIGHUP, the same
// worker (same data dir, same key) gets in.
TEST_F(CurveAdmission, AWorkerKeyOutsideTheKeyListIsRefusedUntilListedAndReloaded) {
  auto someone_else = proto::GenerateCurveKeypair();
  ASSERT_TRUE(someone_else.ok());
  const std::string list = dir_ + "/worker-keys";
  std::ofstream(list) << "# workers admitted\n" << someone_else->public_key << " someone-else\n";
  ASSERT_NO_FATAL_FAILURE(StartBroker({"--worker-keys-file", list}));

  Process refused = StartWorker("c", "curve-c", BrokerPub());
  auto code = refused.Wait(60s);
  ASSERT_TRUE(code) << "the unlisted worker still runs a minute later: " << refused.Log();
  EXPECT_NE(*code, 0);
  EXPECT_THAT(refused.Log(), HasSubstr("refused this worker's key"));
  EXPECT_TRUE(WorkerRecord("curve-c").is_null()) << "a worker outside the key list registered";
  EXPECT_GE(client_->Refusals("unknown_key"), 1) << client_->RefusalsText();

  const std::string key = WorkerKey("c");
  ASSERT_TRUE(proto::IsZ85Key(key));
  std::ofstream(list, std::ios::app) << key << " curve-c\n";
  ASSERT_NO_FATAL_FAILURE(Reload("worker", 2));
  Process admitted = StartWorker("c", "curve-c", BrokerPub());
  ASSERT_TRUE(WaitRegistered("curve-c")) << admitted.Log();
  EXPECT_EQ(WorkerRecord("curve-c")["key"], key);
  ASSERT_NO_FATAL_FAILURE(ExpectRunsAnEchoTask("curve-c"));
  Stop(admitted);
}

// (d) A CURVE worker is its key: a second process claiming a live worker's id with another key
// (another data dir) is refused and exits, the live worker keeps its id and its work; a session
// with the worker's own key may take the id (a reconnect).
TEST_F(CurveAdmission, AnotherKeyCannotTakeOverALiveWorkersIdButItsOwnKeyCan) {
  ASSERT_NO_FATAL_FAILURE(StartBroker({}));
  Process live = StartWorker("d-live", "twin", BrokerPub());
  ASSERT_TRUE(WaitRegistered("twin")) << live.Log();
  const std::string live_key = WorkerKey("d-live");

  Process second = StartWorker("d-second", "twin", BrokerPub());
  auto code = second.Wait(60s);
  ASSERT_TRUE(code) << "the second 'twin' still runs a minute later: " << second.Log();
  EXPECT_NE(*code, 0);
  EXPECT_THAT(second.Log(), HasSubstr("in use"));
  json record = WorkerRecord("twin");
  ASSERT_TRUE(record.is_object());
  EXPECT_EQ(record["key"], live_key) << "the second key took over the live worker's id";
  EXPECT_NE(record["status"], "offline");
  EXPECT_GE(client_->Refusals("worker_id_in_use"), 1) << client_->RefusalsText();
  ASSERT_NO_FATAL_FAILURE(ExpectRunsAnEchoTask("twin"));

  // The same at the ZeroMQ level, choosing the key. Another key is refused even when its READY
  // carries the live worker's worker_secret (a copied or leaked secret file: under CURVE the key,
  // not the secret, is the credential); the live worker's own key is welcomed.
  auto second_keys = proto::ReadSecretKeyFile(dir_ + "/d-second/worker.key");
  auto live_keys = proto::ReadSecretKeyFile(dir_ + "/d-live/worker.key");
  ASSERT_TRUE(second_keys.ok() && live_keys.ok());
  const std::string live_secret = FirstLine(ReadFile(dir_ + "/d-live/worker_secret"));
  ASSERT_FALSE(live_secret.empty()) << "rma-worker keeps its worker_secret in its data dir";
  std::string refusal;
  {
    CurvePeer other(broker_->workers_endpoint(), *second_keys, broker_key_);
    EXPECT_FALSE(Register(other, MakeReady("twin", {"echo"}, 1, live_secret), &refusal))
        << "a session with another key (and the live worker's worker_secret) took over 'twin'";
    EXPECT_THAT(refusal, HasSubstr("in use"));
  }
  EXPECT_EQ(WorkerRecord("twin")["key"], live_key);
  CurvePeer same(broker_->workers_endpoint(), *live_keys, broker_key_);
  EXPECT_TRUE(Register(same, MakeReady("twin", {"echo"}), &refusal))
      << "the worker's own key could not take its id back: " << refusal;
  EXPECT_EQ(WorkerRecord("twin")["key"], live_key);
  Stop(live);
}

// (e) With --client-keys-file the client endpoint speaks CURVE and answers the listed keys only:
// another key's handshake is refused (ZAP 400) and its requests get nothing, as do a client
// without CURVE; listing the key and SIGHUP let it in.
TEST_F(CurveAdmission, TheClientEndpointAnswersOnlyListedKeys) {
  auto gateway = proto::GenerateCurveKeypair();
  auto stranger = proto::GenerateCurveKeypair();
  ASSERT_TRUE(gateway.ok() && stranger.ok());
  const std::string list = dir_ + "/client-keys";
  std::ofstream(list) << gateway->public_key << " gateway\n";
  ASSERT_NO_FATAL_FAILURE(StartBroker({"--client-keys-file", list}));
  const std::string endpoint = broker_->clients_endpoint();

  CurvePeer listed(endpoint, *gateway, broker_key_);
  auto handshake = listed.Handshake();
  EXPECT_TRUE(handshake && handshake->kind == Kind::kSucceeded) << Describe(handshake);
  EXPECT_TRUE(listed.Answered(5s)) << "the listed key gets no answer";
  {
    CurvePeer unlisted(endpoint, *stranger, broker_key_);
    handshake = unlisted.Handshake();
    EXPECT_TRUE(handshake && handshake->kind == Kind::kRefused && handshake->status == 400)
        << Describe(handshake);
    EXPECT_FALSE(unlisted.Answered(2s)) << "a key outside --client-keys-file was answered";
  }
  {
    Peer plaintext(endpoint);
    plaintext.SendBodies(Command::kHeartbeat, {});
    Message m;
    EXPECT_FALSE(plaintext.WaitFor(Command::kHeartbeat, 2s, &m))
        << "a client without CURVE was answered on a CURVE endpoint";
  }
  json metrics = listed.Admin("metrics");
  ASSERT_TRUE(metrics.is_object()) << "no metrics for the listed key";
  EXPECT_GE(metrics["refusals"].value("unknown_key", int64_t{0}), 1) << metrics["refusals"].dump();

  // The list is what refused it: listed and reloaded, the same key is answered.
  std::ofstream(list, std::ios::app) << stranger->public_key << " stranger, now admitted\n";
  ASSERT_NO_FATAL_FAILURE(Reload("client", 2));
  CurvePeer admitted(endpoint, *stranger, broker_key_);
  handshake = admitted.Handshake();
  EXPECT_TRUE(handshake && handshake->kind == Kind::kSucceeded) << Describe(handshake);
  EXPECT_TRUE(admitted.Answered(5s));
}

}  // namespace
}  // namespace rma::testing::broker_attack
