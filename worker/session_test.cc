// The worker's protocol state machine driven by a FakeClock: registration and the manifest,
// heartbeats, liveness and reconnect back-off, results kept across reconnects, DISCONNECT
// handling, refusals (DISCONNECT, or ERROR in answer to READY), drain on the first signal and
// leaving at once on the second. The session speaks typed
// messages (the Agent encodes and decodes them at its socket), so the recorder keeps what it sends
// as values.
#include "worker/session.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>

namespace rma::worker {
namespace {

using proto::Command;

struct Wire {
  Command command;
  std::vector<proto::ToBrokerMessage> bodies;
};

struct Job {
  proto::TaskAssignment task;
  std::shared_ptr<Handler> handler;
  std::shared_ptr<CancelToken> cancel;
};

class RecordingIo final : public SessionIo {
 public:
  Status Connect() override {
    ++connects;
    connected = connect_result.ok();
    return connect_result;
  }
  void Close(Duration linger) override {
    ++closes;
    connected = false;
    last_linger = linger;
  }
  Status Send(const std::vector<proto::ToBrokerMessage>& batch) override {
    if (!send_result.ok()) return send_result;
    EXPECT_FALSE(batch.empty());
    const Command command = proto::CommandOf(batch.front());
    EXPECT_TRUE(connected) << "sent " << proto::CommandName(command) << " while closed";
    for (const proto::ToBrokerMessage& m : batch) {
      EXPECT_EQ(proto::CommandOf(m), command) << "a batch mixes commands";
    }
    sent.push_back({command, batch});
    return Status::Ok();
  }
  void Execute(proto::TaskAssignment task, std::shared_ptr<Handler> handler,
               std::shared_ptr<CancelToken> cancel) override {
    jobs.push_back({std::move(task), std::move(handler), std::move(cancel)});
  }

  // Messages of one command sent since the last Clear().
  std::vector<Wire> Of(Command c) const {
    std::vector<Wire> out;
    for (const Wire& w : sent) {
      if (w.command == c) out.push_back(w);
    }
    return out;
  }
  template <typename T>
  T Decode(const proto::ToBrokerMessage& body) {
    const T* m = std::get_if<T>(&body);
    EXPECT_NE(m, nullptr);
    return m == nullptr ? T{} : *m;
  }
  proto::Ready LastReady() {
    auto readies = Of(Command::kReady);
    EXPECT_FALSE(readies.empty());
    return readies.empty() ? proto::Ready{} : Decode<proto::Ready>(readies.back().bodies.at(0));
  }
  std::vector<proto::TaskResult> Results() {
    std::vector<proto::TaskResult> out;
    for (const Wire& w : Of(Command::kResult)) {
      for (const proto::ToBrokerMessage& b : w.bodies) out.push_back(Decode<proto::TaskResult>(b));
    }
    return out;
  }
  void Clear() { sent.clear(); }

  int connects = 0;
  int closes = 0;
  bool connected = false;
  Duration last_linger{-1};
  Status connect_result;
  Status send_result;
  std::vector<Wire> sent;
  std::vector<Job> jobs;
};

class Echo final : public Handler {
 public:
  std::string_view kind() const override { return "builtin"; }
  std::string Describe() const override { return "echo"; }
  Result<HandlerOutput> Run(const proto::TaskAssignment& t, const CancelToken&) override {
    return HandlerOutput{t.payload, "", 0};
  }
};

class SessionTest : public ::testing::Test {
 protected:
  SessionTest() {
    options_.worker_id = "w-1";
    options_.name = "test box";
    options_.slots = 2;
    options_.heartbeat = Ms(1000);
    options_.liveness = 3;
    options_.reconnect_min = Ms(100);
    options_.reconnect_max = Ms(1000);
    options_.drain_grace = Seconds(10);
    options_.first_probe_wait = Seconds(2);
    options_.generic_handler = std::make_shared<Echo>();
    options_.capabilities.cpu_cores = 4;
  }

  void Make(bool probed = true) {
    services_ = {{"echo", "builtin:echo", std::make_shared<Echo>()},
                 {"rag", "http://x", std::make_shared<Echo>()}};
    session_ = std::make_unique<Session>(options_, services_, &io_, /*seed=*/7);
    MonitorSnapshot snap;
    snap.manifest = {{"echo", "builtin"}};
    snap.probed = probed;
    snap.readings = {0.25, 3.5, 0.5};
    session_->Start(Now(), snap);
    Tick();
  }
  Time Now() const { return clock_.Now(); }
  void Advance(Duration d) {
    clock_.Advance(d);
    Tick();
  }
  void Tick() { session_->OnTick(Now()); }
  // Time passes with a live broker: it is heard every half interval.
  void AdvanceWithBroker(Duration total) {
    for (Duration done(0); done < total;) {
      Duration step = std::min<Duration>(Ms(500), total - done);
      Advance(step);
      done += step;
      DeliverEmpty(Command::kHeartbeat);
    }
  }
  // Runs the clock forward to the session's next wake-up.
  void AdvanceToWakeup() {
    Time next = session_->NextWakeup(Now());
    clock_.Set(std::max(next, Now()));
    Tick();
  }
  template <typename T>
  void Deliver(Command, const T& body) {
    session_->OnMessage(Now(), body);
  }
  void DeliverEmpty(Command c) {
    if (c == Command::kDisconnect) return session_->OnMessage(Now(), proto::Disconnect{});
    session_->OnMessage(Now(), proto::Bodyless{c});
  }
  void Welcome(uint32_t heartbeat_ms = 1000, uint32_t liveness = 3) {
    proto::Welcome w;
    w.worker_id = "w-1";
    w.tier = 2;
    w.heartbeat_ms = heartbeat_ms;
    w.liveness = liveness;
    Deliver(Command::kWelcome, w);
  }
  void Register() {
    Make();
    ASSERT_TRUE(io_.connected);
    Welcome();
    ASSERT_TRUE(session_->registered());
    io_.Clear();
  }
  void SendTask(uint64_t id, uint32_t attempt = 1, std::string service = "echo") {
    proto::TaskAssignment t;
    t.task_id = TaskId(id);
    t.attempt = attempt;
    t.service = std::move(service);
    t.payload = "p" + std::to_string(id);
    Deliver(Command::kTask, t);
  }
  void Finish(uint64_t id, uint32_t attempt = 1, proto::Outcome outcome = proto::Outcome::kOk) {
    proto::TaskResult r;
    r.task_id = TaskId(id);
    r.attempt = attempt;
    r.outcome = outcome;
    r.result = "r" + std::to_string(id);
    session_->OnResults(Now(), {r});
  }
  // The connection dies silently: the broker is heard no more until the session gives up on it.
  void LoseBroker() {
    int closes = io_.closes;
    for (int i = 0; i < 100 && io_.closes == closes; ++i) AdvanceToWakeup();
    ASSERT_EQ(io_.closes, closes + 1);
  }
  void Reconnect() {
    int connects = io_.connects;
    for (int i = 0; i < 100 && io_.connects == connects; ++i) AdvanceToWakeup();
    ASSERT_EQ(io_.connects, connects + 1);
  }

  FakeClock clock_;
  RecordingIo io_;
  SessionOptions options_;
  std::vector<ServiceBinding> services_;
  std::unique_ptr<Session> session_;
};

TEST_F(SessionTest, RegistersWithTheManifestCapabilitiesAndSlots) {
  Make();
  EXPECT_EQ(io_.connects, 1);
  proto::Ready ready = io_.LastReady();
  EXPECT_EQ(ready.worker_id, "w-1");
  EXPECT_EQ(ready.name, "test box");
  EXPECT_EQ(ready.slots, 2u);
  EXPECT_EQ(ready.capabilities.cpu_cores, 4u);
  EXPECT_EQ(ready.capabilities.ram_available_gb, 3.5) << "the latest reading";
  EXPECT_EQ(ready.services, (std::vector<proto::ServiceInfo>{{"echo", "builtin"}}));
  EXPECT_TRUE(ready.running.empty());
  EXPECT_TRUE(ready.enrol_token.empty()) << "no --enrol";
  EXPECT_FALSE(session_->registered());
  Welcome();
  EXPECT_TRUE(session_->registered());
}

TEST_F(SessionTest, EveryReadyCarriesTheEnrolmentToken) {
  options_.enrol_token = "rma_enrol_0123abcd";
  Register();
  // The broker ignores the token once the key is enrolled, so a new connection sends it again.
  LoseBroker();
  Reconnect();
  EXPECT_EQ(io_.LastReady().enrol_token, "rma_enrol_0123abcd");
  Welcome();
  // And so does a READY on the same connection.
  Deliver(Command::kDisconnect, proto::Disconnect{"not registered: send READY", true});
  ASSERT_EQ(io_.Of(Command::kReady).size(), 2u);
  EXPECT_EQ(io_.LastReady().enrol_token, "rma_enrol_0123abcd");
}

TEST_F(SessionTest, WaitsForTheFirstHealthRoundBeforeRegistering) {
  Make(/*probed=*/false);
  EXPECT_EQ(io_.connects, 0);
  MonitorSnapshot snap;
  snap.manifest = {{"echo", "builtin"}, {"rag", "http"}};
  snap.probed = true;
  session_->OnMonitor(Now(), snap);
  Tick();
  EXPECT_EQ(io_.connects, 1);
  EXPECT_EQ(io_.LastReady().services.size(), 2u);
}

TEST_F(SessionTest, RegistersAnywayWhenTheFirstHealthRoundTakesTooLong) {
  Make(/*probed=*/false);
  Advance(Ms(1999));
  EXPECT_EQ(io_.connects, 0);
  Advance(Ms(1));
  EXPECT_EQ(io_.connects, 1);
}

TEST_F(SessionTest, HeartbeatsCarryReadingsAndInFlightWhileTasksRun) {
  Register();
  SendTask(1);
  Advance(Ms(999));
  EXPECT_TRUE(io_.Of(Command::kHeartbeat).empty());
  Advance(Ms(1));
  auto beats = io_.Of(Command::kHeartbeat);
  ASSERT_EQ(beats.size(), 1u);
  auto hb = io_.Decode<proto::Heartbeat>(beats[0].bodies.at(0));
  EXPECT_EQ(hb.in_flight, 1u);
  EXPECT_EQ(hb.load, 0.25);
  EXPECT_EQ(hb.ram_available_gb, 3.5);
  EXPECT_EQ(hb.gpu_util, 0.5);
  // A long task never makes the worker look dead: heartbeats keep going while the broker answers.
  for (int i = 0; i < 20; ++i) {
    Advance(Ms(1000));
    DeliverEmpty(Command::kHeartbeat);
  }
  EXPECT_EQ(io_.Of(Command::kHeartbeat).size(), 21u);
  EXPECT_EQ(io_.closes, 0);
}

TEST_F(SessionTest, UsesTheIntervalFromWelcomeButIgnoresAbsurdValues) {
  Make();
  Welcome(/*heartbeat_ms=*/200, /*liveness=*/5);
  EXPECT_EQ(session_->heartbeat(), Ms(200));
  Welcome(/*heartbeat_ms=*/0, /*liveness=*/0);
  EXPECT_EQ(session_->heartbeat(), Ms(200));
  io_.Clear();
  Advance(Ms(200));
  EXPECT_EQ(io_.Of(Command::kHeartbeat).size(), 1u);
}

TEST_F(SessionTest, SendsAManifestWhenAServiceComesOrGoes) {
  Register();
  MonitorSnapshot snap;
  snap.probed = true;
  snap.manifest = {{"echo", "builtin"}, {"rag", "http"}};
  session_->OnMonitor(Now(), snap);
  auto manifests = io_.Of(Command::kManifest);
  ASSERT_EQ(manifests.size(), 1u);
  EXPECT_EQ(io_.Decode<proto::Manifest>(manifests[0].bodies.at(0)).services, snap.manifest);
  // The same manifest again (every monitor round): nothing to say.
  session_->OnMonitor(Now(), snap);
  EXPECT_EQ(io_.Of(Command::kManifest).size(), 1u);
  snap.manifest = {{"echo", "builtin"}};
  session_->OnMonitor(Now(), snap);
  ASSERT_EQ(io_.Of(Command::kManifest).size(), 2u);
  EXPECT_EQ(io_.Decode<proto::Manifest>(io_.Of(Command::kManifest)[1].bodies.at(0)).services,
            snap.manifest);
  EXPECT_EQ(session_->advertised(), snap.manifest);
}

TEST_F(SessionTest, SendsAManifestWhenAServicesModelsChange) {
  Register();
  MonitorSnapshot snap;
  snap.probed = true;
  snap.manifest = {{"echo", "builtin"}, {"rag", "http", {"llama"}}};
  session_->OnMonitor(Now(), snap);
  ASSERT_EQ(io_.Of(Command::kManifest).size(), 1u);
  // Same services, another model: the broker must hear of it (it routes by model).
  snap.manifest = {{"echo", "builtin"}, {"rag", "http", {"llama", "qwen"}}};
  session_->OnMonitor(Now(), snap);
  ASSERT_EQ(io_.Of(Command::kManifest).size(), 2u);
  EXPECT_EQ(io_.Decode<proto::Manifest>(io_.Of(Command::kManifest)[1].bodies.at(0)).services,
            snap.manifest);
  session_->OnMonitor(Now(), snap);
  EXPECT_EQ(io_.Of(Command::kManifest).size(), 2u);
}

TEST_F(SessionTest, AManifestChangeWhileRegisteringIsSentAfterWelcome) {
  Make();
  MonitorSnapshot snap;
  snap.probed = true;
  snap.manifest = {{"echo", "builtin"}, {"rag", "http"}};
  session_->OnMonitor(Now(), snap);
  EXPECT_TRUE(io_.Of(Command::kManifest).empty()) << "not registered yet";
  Welcome();
  ASSERT_EQ(io_.Of(Command::kManifest).size(), 1u);
}

TEST_F(SessionTest, AManifestChangeKeepsTasksRunning) {
  Register();
  SendTask(1);
  MonitorSnapshot snap;
  snap.probed = true;
  snap.manifest = {};
  session_->OnMonitor(Now(), snap);
  EXPECT_FALSE(io_.jobs[0].cancel->cancelled());
  EXPECT_EQ(session_->running(), 1u);
  Finish(1);
  EXPECT_EQ(io_.Results().size(), 1u);
}

TEST_F(SessionTest, SeveralBrokersAStandbySendsTheWorkerOnAndItsAttemptsReattachToTheLeader) {
  options_.broker = "tcp://a:1,tcp://b:2,tcp://c:3";
  Register();
  EXPECT_EQ(session_->broker(), "tcp://a:1");
  SendTask(7);
  ASSERT_EQ(io_.jobs.size(), 1u);
  // The leader is lost (kill -9: its connection closes): on to the next endpoint.
  session_->OnDisconnected(Now());
  EXPECT_FALSE(session_->connected());
  EXPECT_EQ(session_->broker(), "tcp://b:2");
  Reconnect();
  // b is a standby that names c as the leader: straight there, without a long back-off.
  io_.Clear();
  const Time told = Now();
  Deliver(Command::kError,
          proto::Error{0,
                       std::string(proto::kNotLeaderCode),
                       "this broker is a standby (--ha); the leader is tcp://c:3 (workers), "
                       "tcp://c:4 (clients), epoch 2",
                       {},
                       {}});
  EXPECT_EQ(session_->broker(), "tcp://c:3");
  Reconnect();
  EXPECT_LE(Now() - told, Seconds(1));
  // The running attempt goes with the READY to the new leader.
  const proto::Ready ready = io_.LastReady();
  ASSERT_EQ(ready.running.size(), 1u);
  EXPECT_EQ(ready.running[0].task_id, TaskId(7));
  Welcome();
  EXPECT_TRUE(session_->registered());
}

TEST_F(SessionTest, SeveralBrokersAnUnansweredReadyMovesOnAfterTheReadyTimeout) {
  options_.broker = "tcp://a:1,tcp://b:2";
  options_.ready_timeout = Ms(500);
  Make();
  ASSERT_TRUE(io_.connected);
  EXPECT_EQ(session_->broker(), "tcp://a:1");
  Advance(Ms(501));
  EXPECT_EQ(session_->broker(), "tcp://b:2");
}

TEST_F(SessionTest, OneBrokerIgnoresDisconnectEventsAndKeepsItsLiveness) {
  Register();
  session_->OnDisconnected(Now());  // ZeroMQ reconnects a single endpoint by itself
  EXPECT_TRUE(session_->connected());
  EXPECT_TRUE(session_->registered());
}

TEST_F(SessionTest, ReconnectsWithGrowingJitteredBackoffWhenTheBrokerGoesQuiet) {
  Register();
  Advance(Ms(3000));
  EXPECT_EQ(io_.closes, 0) << "exactly liveness intervals of silence is still alive";
  Advance(Ms(1));
  EXPECT_EQ(io_.closes, 1);
  EXPECT_FALSE(session_->registered());
  std::vector<int64_t> waits;
  for (int attempt = 0; attempt < 6; ++attempt) {
    Time closed = Now();
    Reconnect();
    waits.push_back(ToMs(Now() - closed));
    // No answer to READY either: give up on this connection too.
    LoseBroker();
  }
  // 100 ms doubling to the 1000 ms cap, each wait jittered into [half, full].
  std::vector<int64_t> caps = {100, 200, 400, 800, 1000, 1000};
  for (size_t i = 0; i < waits.size(); ++i) {
    EXPECT_GE(waits[i], caps[i] / 2) << i;
    EXPECT_LE(waits[i], caps[i]) << i;
  }
  Reconnect();
  Welcome();
  LoseBroker();
  Time closed = Now();
  Reconnect();
  EXPECT_LE(ToMs(Now() - closed), 100) << "WELCOME resets the back-off";
}

TEST_F(SessionTest, ResultsFinishedWhileDisconnectedAreDeliveredAfterRegistering) {
  Register();
  SendTask(1);
  SendTask(2);
  LoseBroker();
  Finish(1);
  EXPECT_TRUE(io_.Results().empty());
  Reconnect();
  proto::Ready ready = io_.LastReady();
  EXPECT_EQ(ready.running.size(), 2u) << "the finished and the running attempt are both held";
  EXPECT_TRUE(io_.Results().empty()) << "nothing before WELCOME";
  Welcome();
  auto results = io_.Results();
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(results[0].task_id, TaskId(1));
  EXPECT_EQ(results[0].result, "r1");
  Finish(2);
  EXPECT_EQ(io_.Results().size(), 2u);
}

TEST_F(SessionTest, AResultSentIntoADeadConnectionIsSentAgain) {
  Register();
  SendTask(1);
  Finish(1);
  ASSERT_EQ(io_.Results().size(), 1u);
  LoseBroker();  // never heard from again after sending: delivery unknown
  Reconnect();
  EXPECT_EQ(io_.LastReady().running.size(), 1u);
  Welcome();
  EXPECT_EQ(io_.Results().size(), 2u);
}

TEST_F(SessionTest, AResultTheBrokerSurelyHasIsNotSentAgain) {
  Register();
  SendTask(1);
  Finish(1);
  Advance(Ms(1000));
  DeliverEmpty(Command::kHeartbeat);  // a heartbeat interval after the send: it arrived
  EXPECT_EQ(session_->held_results(), 0u);
  LoseBroker();
  Reconnect();
  EXPECT_TRUE(io_.LastReady().running.empty());
  Welcome();
  EXPECT_EQ(io_.Results().size(), 1u);
}

TEST_F(SessionTest, SentResultsAreKeptWithinAMemoryBudget) {
  options_.max_unconfirmed_bytes = 5;
  Register();
  SendTask(1);
  SendTask(2);
  Finish(1);  // "r1": 2 bytes
  Finish(2);  // "r2": 2 bytes
  EXPECT_EQ(session_->held_results(), 2u);
  SendTask(3);
  Finish(3);  // 6 bytes held: over the budget, the oldest counts as delivered
  EXPECT_EQ(session_->held_results(), 2u);
  LoseBroker();
  Reconnect();
  proto::Ready ready = io_.LastReady();
  ASSERT_EQ(ready.running.size(), 2u);
  EXPECT_EQ(ready.running[0].task_id, TaskId(2));
  EXPECT_EQ(ready.running[1].task_id, TaskId(3));
}

TEST_F(SessionTest, DisconnectWithReconnectRegistersAgainOncePerBurst) {
  Register();
  SendTask(1);
  Finish(1);
  proto::Disconnect again{"not registered: send READY", true};
  Deliver(Command::kDisconnect, again);
  Deliver(Command::kDisconnect, again);
  Deliver(Command::kDisconnect, again);
  EXPECT_EQ(io_.Of(Command::kReady).size(), 1u);
  EXPECT_EQ(io_.connects, 1) << "same connection";
  EXPECT_EQ(io_.LastReady().running.size(), 1u);
  Welcome();
  EXPECT_EQ(io_.Results().size(), 2u) << "the result is sent again to the new session";
  // A later DISCONNECT is a new event and is answered.
  Advance(Ms(10));
  Deliver(Command::kDisconnect, again);
  EXPECT_EQ(io_.Of(Command::kReady).size(), 2u);
}

TEST_F(SessionTest, ARefusalEndsTheSessionAndCancelsWork) {
  Register();
  SendTask(1);
  Deliver(Command::kDisconnect, proto::Disconnect{"invalid worker token", false});
  ASSERT_TRUE(session_->finished().has_value());
  EXPECT_EQ(session_->finished()->code(), StatusCode::kPermissionDenied);
  EXPECT_THAT(session_->finished()->message(), ::testing::HasSubstr("invalid worker token"));
  EXPECT_TRUE(io_.jobs[0].cancel->cancelled());
}

constexpr char kKey[] = "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7";

proto::Error BrokerError(std::string code, std::string message) {
  return proto::Error{0, std::move(code), std::move(message), {}, {}};
}

TEST_F(SessionTest, AnUnauthenticatedAnswerToReadyEndsTheSessionNamingTheKey) {
  options_.public_key = kKey;
  Make();
  ASSERT_EQ(io_.Of(Command::kReady).size(), 1u);
  Deliver(Command::kError,
          BrokerError("unauthenticated",
                      "the broker refused this worker's key: enrol it with `rma-worker --enrol "
                      "TOKEN`"));
  ASSERT_TRUE(session_->finished().has_value());
  EXPECT_EQ(session_->finished()->code(), StatusCode::kPermissionDenied);
  const std::string& why = session_->finished()->message();
  EXPECT_THAT(why, ::testing::HasSubstr("the broker refused this worker (unauthenticated): the "
                                        "broker refused this worker's key"));
  EXPECT_THAT(why, ::testing::HasSubstr(std::string("this worker's key is ") + kKey));
  EXPECT_THAT(why, ::testing::HasSubstr("a revoked key needs `--new-key` too"));
  // It does not try again.
  clock_.Advance(Seconds(60));
  Tick();
  EXPECT_EQ(io_.connects, 1);
  EXPECT_EQ(io_.Of(Command::kReady).size(), 1u);
}

TEST_F(SessionTest, ARefusedEnrolmentTokenEndsTheSessionAskingForANewOne) {
  options_.public_key = kKey;
  options_.enrol_token = "rma_enrol_0123abcd";
  Make();
  Deliver(Command::kError, BrokerError("permission_denied",
                                       "the enrolment token is unknown, already used or expired"));
  ASSERT_TRUE(session_->finished().has_value());
  EXPECT_EQ(session_->finished()->code(), StatusCode::kPermissionDenied);
  EXPECT_THAT(session_->finished()->message(),
              ::testing::HasSubstr("(permission_denied): the enrolment token is unknown"));
  EXPECT_THAT(session_->finished()->message(), ::testing::HasSubstr("ask the pool's operator for "
                                                                    "a new token"));
  EXPECT_THAT(session_->finished()->message(), ::testing::Not(::testing::HasSubstr("0123abcd")))
      << "the token is a secret";
}

TEST_F(SessionTest, OtherErrorsBeforeWelcomeAreNoRefusal) {
  Make();
  Deliver(Command::kError,
          BrokerError("resource_exhausted", "too many registrations from 10.0.0.1; retry later"));
  Deliver(Command::kError, BrokerError("invalid_argument", "READY: truncated msgpack body"));
  EXPECT_FALSE(session_->finished().has_value());
  Welcome();
  EXPECT_TRUE(session_->registered());
}

TEST_F(SessionTest, AnAuthenticationErrorOnceRegisteredIsNoRefusal) {
  Register();
  SendTask(1);
  Deliver(Command::kError,
          BrokerError("permission_denied", "attempt 1 of task 7 is not leased to this worker"));
  EXPECT_FALSE(session_->finished().has_value());
  EXPECT_TRUE(session_->registered());
  EXPECT_FALSE(io_.jobs[0].cancel->cancelled());
}

TEST_F(SessionTest, AnErrorAboutAResultSentBeforeRegisteringAgainIsNoRefusal) {
  // The broker restarted: each RESULT the worker sent into the connection draws ERROR
  // unauthenticated and DISCONNECT{reconnect}; those after the first arrive while the new READY
  // waits for its WELCOME.
  options_.public_key = kKey;
  Register();
  SendTask(1);
  SendTask(2);
  Finish(1);
  Finish(2);
  const proto::Error stale = BrokerError(
      "unauthenticated", "RESULT for attempt 1 of task 2 from a session that is not registered");
  const proto::Disconnect again{"not registered: send READY", true};
  Deliver(Command::kError, stale);
  Deliver(Command::kDisconnect, again);
  ASSERT_EQ(io_.Of(Command::kReady).size(), 1u);
  Deliver(Command::kError, stale);
  Deliver(Command::kDisconnect, again);
  EXPECT_FALSE(session_->finished().has_value());
  Welcome();
  EXPECT_TRUE(session_->registered());
  EXPECT_EQ(io_.Results().size(), 4u) << "both results are sent again to the new session";
}

TEST_F(SessionTest, ARefusalHiddenAmongErrorsAboutResultsShowsOnTheNextConnection) {
  options_.public_key = kKey;
  Register();
  SendTask(1);
  Finish(1);
  Deliver(Command::kDisconnect, proto::Disconnect{"not registered: send READY", true});
  const proto::Error refused =
      BrokerError("unauthenticated", "the broker refused this worker's key");
  Deliver(Command::kError, refused);
  EXPECT_FALSE(session_->finished().has_value()) << "maybe about the RESULT";
  LoseBroker();  // READY is never answered
  Reconnect();
  Deliver(Command::kError, refused);
  ASSERT_TRUE(session_->finished().has_value());
  EXPECT_EQ(session_->finished()->code(), StatusCode::kPermissionDenied);
}

TEST_F(SessionTest, AHandshakeRefusalForGoodEndsTheSessionAndABusyOneRetries) {
  Make();
  session_->OnHandshakeRefused(Now(), "the broker is busy authenticating; retrying",
                               /*permanent=*/false);
  EXPECT_FALSE(session_->finished().has_value());
  Reconnect();
  session_->OnHandshakeRefused(Now(), "the broker refused this worker's key K", /*permanent=*/true);
  ASSERT_TRUE(session_->finished().has_value());
  EXPECT_EQ(session_->finished()->code(), StatusCode::kPermissionDenied);
  EXPECT_EQ(session_->finished()->message(), "the broker refused this worker's key K");
}

TEST_F(SessionTest, AnEndpointThatCannotWorkEndsTheSession) {
  io_.connect_result = Status::InvalidArgument("Invalid argument");
  Make();
  ASSERT_TRUE(session_->finished().has_value());
  EXPECT_EQ(session_->finished()->code(), StatusCode::kInvalidArgument);
}

TEST_F(SessionTest, RunsTasksOnTheirHandlersAndRefusesUnknownServices) {
  Register();
  SendTask(1, 1, "echo");
  SendTask(2, 1, "cpu-worker");  // generic: the generic handler
  SendTask(3, 1, "ocr");
  ASSERT_EQ(io_.jobs.size(), 2u);
  EXPECT_EQ(io_.jobs[0].handler, services_[0].handler);
  EXPECT_EQ(io_.jobs[1].handler, options_.generic_handler);
  auto results = io_.Results();
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(results[0].task_id, TaskId(3));
  EXPECT_EQ(results[0].outcome, proto::Outcome::kError);
  EXPECT_THAT(results[0].error, ::testing::HasSubstr("does not provide service 'ocr'"));
}

TEST_F(SessionTest, ASecondCopyOfAnAttemptIsIgnoredButANewAttemptRuns) {
  Register();
  SendTask(1, 1);
  SendTask(1, 1);
  EXPECT_EQ(io_.jobs.size(), 1u);
  SendTask(1, 2);
  EXPECT_EQ(io_.jobs.size(), 2u);
}

TEST_F(SessionTest, CancelStopsOnlyTheNamedAttempt) {
  Register();
  SendTask(1, 1);
  SendTask(2, 1);
  Deliver(Command::kCancel, proto::CancelAttempt{TaskId(1), 2, "wrong attempt"});
  EXPECT_FALSE(io_.jobs[0].cancel->cancelled());
  Deliver(Command::kCancel, proto::CancelAttempt{TaskId(1), 1, "timeout"});
  EXPECT_TRUE(io_.jobs[0].cancel->cancelled());
  EXPECT_EQ(io_.jobs[0].cancel->reason(), "timeout");
  EXPECT_FALSE(io_.jobs[1].cancel->cancelled());
}

TEST_F(SessionTest, UnreadableMessagesFromTheBrokerAreIgnoredButShowItIsThere) {
  Register();
  Advance(Ms(2500));  // close to the liveness limit of 3 s
  session_->OnUnreadable(Now(), Status::InvalidArgument("TASK: truncated msgpack body"));
  session_->OnUnreadable(Now(),
                         Status::InvalidArgument("SUBMIT is not a command the broker sends"));
  Advance(Ms(2000));
  Tick();
  EXPECT_TRUE(io_.jobs.empty());
  EXPECT_TRUE(session_->registered());
  EXPECT_FALSE(session_->finished().has_value());
}

TEST_F(SessionTest, DrainFinishesRunningTasksDeliversThemAndSaysGoodbye) {
  Register();
  SendTask(1);
  SendTask(2);
  session_->OnSignal(Now(), SIGTERM);
  EXPECT_TRUE(session_->draining());
  EXPECT_EQ(io_.Of(Command::kDrain).size(), 1u);
  Finish(1);
  Tick();
  EXPECT_FALSE(session_->finished().has_value());
  Finish(2);
  Tick();
  ASSERT_TRUE(session_->finished().has_value());
  EXPECT_TRUE(session_->finished()->ok());
  EXPECT_EQ(io_.Results().size(), 2u);
  auto byes = io_.Of(Command::kDisconnect);
  ASSERT_EQ(byes.size(), 1u);
  EXPECT_EQ(io_.Decode<proto::Disconnect>(byes[0].bodies.at(0)).reason, "drained");
  // The goodbye comes after the last result.
  EXPECT_EQ(io_.sent.back().command, Command::kDisconnect);
  EXPECT_FALSE(io_.jobs[0].cancel->cancelled());
}

TEST_F(SessionTest, DrainCancelsWhatIsLeftAfterTheGracePeriod) {
  Register();
  SendTask(1);
  session_->OnSignal(Now(), SIGTERM);
  AdvanceWithBroker(Ms(9999));
  EXPECT_FALSE(io_.jobs[0].cancel->cancelled());
  AdvanceWithBroker(Ms(1));
  EXPECT_TRUE(io_.jobs[0].cancel->cancelled());
  EXPECT_FALSE(session_->finished().has_value()) << "the cancelled result is still delivered";
  Finish(1, 1, proto::Outcome::kCancelled);
  Tick();
  ASSERT_TRUE(session_->finished().has_value());
  auto results = io_.Results();
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(results[0].outcome, proto::Outcome::kCancelled);
}

TEST_F(SessionTest, ASecondSignalLeavesAtOnce) {
  Register();
  SendTask(1);
  session_->OnSignal(Now(), SIGTERM);
  session_->OnSignal(Now(), SIGINT);
  ASSERT_TRUE(session_->finished().has_value());
  EXPECT_TRUE(session_->finished()->ok());
  EXPECT_TRUE(io_.jobs[0].cancel->cancelled());
  EXPECT_EQ(io_.Of(Command::kDisconnect).size(), 1u);
}

TEST_F(SessionTest, DrainingWhileDisconnectedWaitsToDeliverResults) {
  Register();
  SendTask(1);
  LoseBroker();
  session_->OnSignal(Now(), SIGTERM);
  Finish(1);
  Tick();
  EXPECT_FALSE(session_->finished().has_value()) << "a result still waits for the broker";
  Reconnect();
  Welcome();
  EXPECT_EQ(io_.Of(Command::kDrain).size(), 1u) << "the new session is told about the drain";
  Tick();
  ASSERT_TRUE(session_->finished().has_value());
  EXPECT_EQ(io_.Results().size(), 1u);
}

TEST_F(SessionTest, DrainingWithNothingToDoWhileDisconnectedLeavesAtOnce) {
  io_.connect_result = Status::Unavailable("no route");
  Make();
  EXPECT_FALSE(session_->connected());
  session_->OnSignal(Now(), SIGTERM);
  Tick();
  ASSERT_TRUE(session_->finished().has_value());
  EXPECT_TRUE(session_->finished()->ok());
}

TEST_F(SessionTest, AnAdminDrainPausesTheWorkerWithoutEndingIt) {
  Register();
  SendTask(1);
  DeliverEmpty(Command::kDrain);
  EXPECT_FALSE(session_->draining()) << "only the worker's own signal makes it leave";
  Finish(1);
  AdvanceWithBroker(Seconds(10));
  EXPECT_FALSE(session_->finished().has_value());
  EXPECT_TRUE(session_->registered());
  EXPECT_EQ(io_.Results().size(), 1u);
  // Undrained: the broker sends work again, and it runs.
  SendTask(2);
  EXPECT_EQ(io_.jobs.size(), 2u);
}

TEST_F(SessionTest, AFailedSendOfResultsIsRetried) {
  Register();
  SendTask(1);
  io_.send_result = Status::ResourceExhausted("peer queue full");
  Finish(1);
  EXPECT_EQ(session_->held_results(), 1u);
  io_.send_result = Status::Ok();
  EXPECT_LE(session_->NextWakeup(Now()), Now() + Ms(50));
  AdvanceToWakeup();
  EXPECT_EQ(io_.Results().size(), 1u);
}

}  // namespace
}  // namespace rma::worker
