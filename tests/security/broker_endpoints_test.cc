// Security tests (issue 12), attacks 7 and 8: who may connect at all. An endpoint other machines
// can reach must not serve anybody without a credential (the broker refuses to start unless the
// operator says --insecure-plaintext); with a credential, peers that do not present it get no
// answer at all (the handshake fails before a frame reaches the broker); and guessing the worker
// token is throttled per address. Real rma-broker process, raw ZeroMQ peers (broker_attack.h).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <memory>

#include "tests/security/broker_attack.h"

namespace rma::testing::broker_attack {
namespace {

using ::testing::HasSubstr;

const std::string kAllInterfaces = "tcp://0.0.0.0:*";

// A broker that must refuse to start: it exits non-zero, saying which flag is missing.
void ExpectRefusesToStart(BrokerUnderAttack& broker, const std::string& endpoint_word,
                          const std::string& flag) {
  EXPECT_FALSE(broker.started()) << "the broker serves its " << endpoint_word
                                 << " endpoint on every interface without a credential";
  auto code = broker.process().Wait(5s);
  ASSERT_TRUE(code) << "the broker is still running";
  EXPECT_NE(*code, 0);
  const std::string log = broker.Log();
  EXPECT_THAT(log, HasSubstr(endpoint_word + " endpoint"));
  EXPECT_THAT(log, HasSubstr(flag));
  EXPECT_THAT(log, HasSubstr("--insecure-plaintext"));
}

// Waits for the outcome of a peer's handshake: the first failure or success its monitor reports.
// With `count_disconnect`, a connection dropped before any of those is an outcome too (that is how
// a ZAP status 300, "try later", looks to the client: libzmq closes the connection without an
// ERROR, as the CurveZMQ RFC asks).
std::optional<HandshakeEvent> HandshakeOutcome(Peer& peer, std::chrono::milliseconds timeout = 5s,
                                               bool count_disconnect = false) {
  const auto deadline = Steady::now() + timeout;
  for (;;) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Steady::now());
    if (left.count() <= 0) return std::nullopt;
    auto e = peer.NextEvent(left);
    if (!e) return std::nullopt;
    if (e->event != ZMQ_EVENT_DISCONNECTED || count_disconnect) return e;
  }
}

std::string Describe(const std::optional<HandshakeEvent>& e) {
  if (!e) return "no handshake event";
  switch (e->event) {
    case ZMQ_EVENT_HANDSHAKE_SUCCEEDED:
      return "handshake succeeded";
    case ZMQ_EVENT_HANDSHAKE_FAILED_AUTH:
      return "handshake refused by authentication, status " + std::to_string(e->value);
    case ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL:
      return "handshake failed: protocol (mechanism mismatch), " + std::to_string(e->value);
    default:
      return "handshake event " + std::to_string(e->event);
  }
}

bool Failed(const std::optional<HandshakeEvent>& e) {
  return e && (e->event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH ||
               e->event == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL ||
               e->event == ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL);
}

// ---- Attack 7: the client endpoint --------------------------------------------------------------

TEST(BrokerEndpointsAttack, ClientEndpointOnEveryInterfaceWithoutASecretRefusesToStart) {
  BrokerUnderAttack broker(BrokerFlags{.clients = kAllInterfaces});
  ExpectRefusesToStart(broker, "client", "--client-secret");
}

TEST(BrokerEndpointsAttack, ClientEndpointOnEveryInterfaceStartsWithInsecurePlaintext) {
  START_BROKER_OR_FAIL(broker,
                       BrokerFlags{.clients = kAllInterfaces, .extra = {"--insecure-plaintext"}});
  Client client(broker.clients_endpoint());
  EXPECT_TRUE(client.Admin("health").is_object());
  EXPECT_THAT(broker.Log(), HasSubstr("--insecure-plaintext: the client endpoint"));
}

TEST(BrokerEndpointsAttack, ClientEndpointWithASecretAnswersOnlyClientsThatPresentIt) {
  const std::string secret = "client-secret-5b1e";
  START_BROKER_OR_FAIL(
      broker, BrokerFlags{.clients = kAllInterfaces, .extra = {"--client-secret", secret}});
  proto::Admin health;
  health.query = "health";
  health.ref = 1;
  struct Attempt {
    const char* who;
    std::optional<Plain> plain;
  };
  for (const Attempt& a : {Attempt{"no credentials", std::nullopt},
                           Attempt{"a wrong secret", Plain{"client", "guess"}},
                           Attempt{"the worker's user name", Plain{"worker", secret}}}) {
    Peer raw(broker.clients_endpoint(), a.plain, /*monitor=*/true);
    raw.Send(Command::kAdmin, health);
    auto outcome = HandshakeOutcome(raw);
    EXPECT_TRUE(Failed(outcome)) << "a client with " << a.who << ": " << Describe(outcome);
    Message m;
    EXPECT_FALSE(raw.Receive(200ms, &m))
        << "a client with " << a.who << " got " << proto::CommandName(m.command);
  }
  Client good(broker.clients_endpoint(), Plain{"client", secret});
  EXPECT_TRUE(good.Admin("health").is_object()) << "the client with the secret got no answer";
}

// ---- Attack 7: the worker endpoint --------------------------------------------------------------

TEST(BrokerEndpointsAttack, WorkerEndpointOnEveryInterfaceWithoutATokenRefusesToStart) {
  BrokerUnderAttack broker(BrokerFlags{.workers = kAllInterfaces});
  ExpectRefusesToStart(broker, "worker", "--worker-token");
}

TEST(BrokerEndpointsAttack, WorkerEndpointOnEveryInterfaceStartsWithInsecurePlaintext) {
  START_BROKER_OR_FAIL(broker,
                       BrokerFlags{.workers = kAllInterfaces, .extra = {"--insecure-plaintext"}});
  Peer worker(broker.workers_endpoint());
  EXPECT_TRUE(Register(worker, MakeReady("w", {"svc"})));
  EXPECT_THAT(broker.Log(), HasSubstr("--insecure-plaintext: the worker endpoint"));
}

TEST(BrokerEndpointsAttack, WorkerEndpointWithATokenAnswersOnlyWorkersThatPresentIt) {
  const std::string token = "worker-token-90c2";
  START_BROKER_OR_FAIL(broker,
                       BrokerFlags{.workers = kAllInterfaces, .extra = {"--worker-token", token}});
  struct Attempt {
    const char* who;
    std::optional<Plain> plain;
    std::string ready_token;  // the pre-handshake way: the token in READY
  };
  for (const Attempt& a : {Attempt{"no credentials", std::nullopt, ""},
                           Attempt{"the token in READY only", std::nullopt, token},
                           Attempt{"a wrong token", Plain{"worker", "guess"}, ""},
                           Attempt{"the client's user name", Plain{"client", token}, ""}}) {
    Peer raw(broker.workers_endpoint(), a.plain, /*monitor=*/true);
    proto::Ready ready = MakeReady("intruder", {"svc"});
    ready.token = a.ready_token;
    raw.Send(Command::kReady, ready);
    auto outcome = HandshakeOutcome(raw);
    EXPECT_TRUE(Failed(outcome)) << "a worker with " << a.who << ": " << Describe(outcome);
    Message m;
    EXPECT_FALSE(raw.Receive(200ms, &m))
        << "a worker with " << a.who << " got " << proto::CommandName(m.command)
        << " (the broker read its READY)";
  }
  Peer good(broker.workers_endpoint(), Plain{"worker", token});
  std::string refusal;
  EXPECT_TRUE(Register(good, MakeReady("member", {"svc"}), &refusal))
      << "the worker with the token was not registered: " << refusal;
}

// ---- Attack 8: guessing the worker token --------------------------------------------------------

TEST(BrokerEndpointsAttack, WorkerTokenGuessesFromOneAddressAreThrottled) {
  const std::string token = "the-real-token-c0ffee";
  START_BROKER_OR_FAIL(broker, BrokerFlags{.extra = {"--worker-token", token}});
  // The attacker tries guesses as fast as the broker answers, 25 connections at a time, and
  // counts the guesses the broker checked: refused with ZAP status 400, which tells the attacker
  // "wrong". A throttled guess (ZAP status 300) is not checked; libzmq does not tell the client so
  // with an event but drops or stalls the connection, so a guess without a verdict within half a
  // second counts as unanswered.
  constexpr int kGuesses = 300;
  constexpr int kWave = 25;
  int checked = 0;
  int unanswered = 0;
  int accepted = 0;
  bool plain_unsupported = false;
  const auto start = Steady::now();
  for (int wave = 0; wave < kGuesses / kWave && !plain_unsupported; ++wave) {
    std::vector<std::unique_ptr<Peer>> peers;
    peers.reserve(kWave);
    for (int i = 0; i < kWave; ++i) {
      peers.push_back(std::make_unique<Peer>(
          broker.workers_endpoint(), Plain{"worker", "guess-" + std::to_string(wave * kWave + i)},
          /*monitor=*/true));
    }
    const auto verdict_by = Steady::now() + 500ms;
    for (auto& p : peers) {
      std::optional<HandshakeEvent> verdict;
      for (;;) {
        const auto left =
            std::chrono::duration_cast<std::chrono::milliseconds>(verdict_by - Steady::now());
        verdict = p->NextEvent(std::max(left, 0ms));
        if (!verdict || verdict->event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH ||
            verdict->event == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL ||
            verdict->event == ZMQ_EVENT_HANDSHAKE_SUCCEEDED) {
          break;
        }
        // HANDSHAKE_FAILED_NO_DETAIL and DISCONNECTED: dropped unanswered; libzmq may retry.
      }
      if (verdict && verdict->event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH && verdict->value == 400) {
        ++checked;
      } else if (verdict && verdict->event == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL) {
        plain_unsupported = true;  // a broker without PLAIN: guess through READY below
      } else if (verdict && verdict->event == ZMQ_EVENT_HANDSHAKE_SUCCEEDED) {
        ++accepted;
      } else {
        ++unanswered;
      }
    }
  }
  if (plain_unsupported) {
    // A broker from before the handshake checks the token in READY: guess there, one connection
    // per guess, as fast as it answers.
    checked = unanswered = accepted = 0;
    for (int i = 0; i < kGuesses; ++i) {
      Peer p(broker.workers_endpoint());
      proto::Ready ready = MakeReady("guesser-" + std::to_string(i), {"svc"});
      ready.token = "guess-" + std::to_string(i);
      std::string refusal;
      if (Register(p, ready, &refusal, 500ms)) {
        ++accepted;
      } else if (refusal == "no answer" || refusal.find("too many") != std::string::npos) {
        ++unanswered;
      } else {
        ++checked;
      }
    }
  }
  const double seconds = std::chrono::duration<double>(Steady::now() - start).count();
  std::printf(
      "worker token guesses from one address: %d checked, %d unanswered in %.2f s (%.0f "
      "checked per second)%s\n",
      checked, unanswered, seconds, checked / seconds,
      plain_unsupported ? " [through READY: the broker has no PLAIN handshake]" : "");
  // The broker's policy: a burst of 50 handshakes per address, then 5 per second.
  const double bound = 50 + 5 * seconds + 10;
  EXPECT_LE(checked, bound) << "the broker checked " << checked << " token guesses from one "
                            << "address in " << seconds << " s";
  EXPECT_GT(unanswered, 0) << "no guess was throttled";
  EXPECT_EQ(accepted, 0) << "a wrong token was accepted";
  Client client(broker.clients_endpoint());
  EXPECT_GT(client.Refusals("handshake_throttled"), 0) << client.RefusalsText();
  EXPECT_GE(client.Refusals("handshake_refused"), checked) << client.RefusalsText();

  // The real worker, from the same address, gets in once the bucket has refilled a little. Like
  // rma-worker, it starts a new connection when one hears nothing (a throttled handshake can stall
  // until ZMQ_HANDSHAKE_IVL).
  std::string refusal;
  EXPECT_TRUE(WaitUntil(
      [&] {
        Peer member(broker.workers_endpoint(), Plain{"worker", token});
        return Register(member, MakeReady("member", {"svc"}), &refusal, 1s);
      },
      15s))
      << refusal;
}

}  // namespace
}  // namespace rma::testing::broker_attack
