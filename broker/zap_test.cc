// Who may connect (zap.h): the worker token and the client secret are checked at the handshake,
// in constant time, with handshakes per address rate-limited so a secret cannot be guessed at wire
// speed; with CURVE, the peer's key against the endpoint's list (or any key for workers).
#include "broker/zap.h"

#include <gtest/gtest.h>

namespace rma::broker {
namespace {

ZapRequest Plain(const char* domain, const char* user, const char* password,
                 const char* address = "192.0.2.7") {
  return ZapRequest{domain, address, "PLAIN", user, password};
}

TEST(ZapPolicyTest, TheRightSecretPassesEverythingElseIsRefused) {
  FakeClock clock;
  ZapPolicy policy({"worker-token-123", "client-secret-456"}, &clock);
  EXPECT_TRUE(policy.Decide(Plain(kWorkerDomain, kWorkerUser, "worker-token-123")).allowed);
  EXPECT_TRUE(policy.Decide(Plain(kClientDomain, kClientUser, "client-secret-456")).allowed);
  ZapDecision wrong = policy.Decide(Plain(kWorkerDomain, kWorkerUser, "worker-token-124"));
  EXPECT_FALSE(wrong.allowed);
  EXPECT_EQ(wrong.status_code, "400");
  EXPECT_NE(wrong.status_text.find("invalid worker token"), std::string::npos);
  // The client secret does not open the worker endpoint, nor the reverse.
  EXPECT_FALSE(policy.Decide(Plain(kWorkerDomain, kWorkerUser, "client-secret-456")).allowed);
  EXPECT_FALSE(policy.Decide(Plain(kClientDomain, kClientUser, "worker-token-123")).allowed);
  EXPECT_FALSE(policy.Decide(Plain(kClientDomain, kWorkerUser, "client-secret-456")).allowed);
  EXPECT_FALSE(policy.Decide(ZapRequest{kWorkerDomain, "192.0.2.7", "NULL", "", ""}).allowed);
  EXPECT_EQ(policy.refused(), 5u);
}

TEST(ZapPolicyTest, AnEndpointWithoutASecretTakesOnlyUnauthenticatedPeers) {
  FakeClock clock;
  ZapPolicy policy({"token", ""}, &clock);
  EXPECT_TRUE(policy.Decide(ZapRequest{kClientDomain, "127.0.0.1", "NULL", "", ""}).allowed);
  EXPECT_FALSE(policy.Decide(Plain(kClientDomain, kClientUser, "anything")).allowed);
}

TEST(ZapPolicyTest, HandshakesPerAddressAreRateLimited) {
  FakeClock clock;
  ZapPolicyOptions options{"token", ""};
  options.handshakes_per_s = 2;
  options.handshake_burst = 5;
  ZapPolicy policy(options, &clock);
  int allowed = 0;
  for (int i = 0; i < 20; ++i) {
    allowed += policy.Decide(Plain(kWorkerDomain, kWorkerUser, "guess")).status_code != "300";
  }
  EXPECT_EQ(allowed, 5) << "a burst, then nothing";
  EXPECT_EQ(policy.throttled(), 15u);
  // Another address is not held back by this one; time refills the bucket.
  EXPECT_TRUE(policy.Decide(Plain(kWorkerDomain, kWorkerUser, "token", "198.51.100.1")).allowed);
  clock.Advance(Seconds(1));
  EXPECT_TRUE(policy.Decide(Plain(kWorkerDomain, kWorkerUser, "token")).allowed);
}

ZapRequest Curve(const char* domain, const std::string& key, const char* address = "192.0.2.7") {
  return ZapRequest{domain, address, "CURVE", "", "", key};
}

constexpr const char* kKeyA = "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7";
constexpr const char* kKeyB = "Yne@$w-vo<fVvi]a<NY6T1ed:M$fCG*[IaLV{hID";

TEST(ZapPolicyTest, CurveWorkersWithoutAListAreTheirKeys) {
  FakeClock clock;
  ZapPolicyOptions options;
  options.worker_curve = true;
  ZapPolicy policy(options, &clock);
  ZapDecision d = policy.Decide(Curve(kWorkerDomain, kKeyA));
  EXPECT_TRUE(d.allowed);
  EXPECT_EQ(d.user_id, kKeyA) << "the key is who the worker is";
  // CURVE only: a PLAIN or NULL peer is refused, and so is a CURVE peer whose key did not decode.
  EXPECT_FALSE(policy.Decide(Plain(kWorkerDomain, kWorkerUser, "token")).allowed);
  EXPECT_FALSE(policy.Decide(ZapRequest{kWorkerDomain, "192.0.2.7", "NULL", "", "", ""}).allowed);
  EXPECT_FALSE(policy.Decide(Curve(kWorkerDomain, "")).allowed);
}

TEST(ZapPolicyTest, CurveKeyListsAdmitOnlyTheirKeysAndCanBeReplaced) {
  FakeClock clock;
  ZapPolicyOptions options;
  options.worker_curve = true;
  options.client_curve = true;
  options.worker_keys = std::set<std::string>{kKeyA};
  options.client_keys = {kKeyB};
  ZapPolicy policy(options, &clock);
  EXPECT_TRUE(policy.Decide(Curve(kWorkerDomain, kKeyA)).allowed);
  ZapDecision unknown = policy.Decide(Curve(kWorkerDomain, kKeyB));
  EXPECT_FALSE(unknown.allowed);
  EXPECT_EQ(unknown.status_code, "400");
  EXPECT_NE(unknown.status_text.find("unknown worker key"), std::string::npos);
  // The lists are per endpoint: a worker's key does not open the client endpoint.
  EXPECT_FALSE(policy.Decide(Curve(kClientDomain, kKeyA)).allowed);
  EXPECT_TRUE(policy.Decide(Curve(kClientDomain, kKeyB)).allowed);
  EXPECT_EQ(policy.unknown_keys(), 2u);
  // Read again (SIGHUP): the new lists hold from the next handshake.
  policy.SetWorkerKeys(std::set<std::string>{kKeyB});
  policy.SetClientKeys({});
  EXPECT_FALSE(policy.Decide(Curve(kWorkerDomain, kKeyA)).allowed);
  EXPECT_TRUE(policy.Decide(Curve(kWorkerDomain, kKeyB)).allowed);
  EXPECT_FALSE(policy.Decide(Curve(kClientDomain, kKeyB)).allowed);
  policy.SetWorkerKeys(std::nullopt);  // any key again
  EXPECT_TRUE(policy.Decide(Curve(kWorkerDomain, kKeyA)).allowed);
}

TEST(ZapPolicyTest, WithAccountsRevokedKeysAreRefusedAndUnknownOnesMayOnlyEnrol) {
  FakeClock clock;
  ZapPolicyOptions options;
  options.worker_curve = true;
  options.accounts = true;
  ZapPolicy policy(options, &clock);
  const std::string enrolled(40, 'E'), revoked(40, 'R'), stranger(40, 'S');
  policy.SetCredentials({enrolled}, {revoked});
  EXPECT_TRUE(policy.Decide(Curve(kWorkerDomain, enrolled)).allowed);
  EXPECT_TRUE(policy.WorkerKeyAdmitted(enrolled));
  // Revoked: refused before a single message, and counted.
  ZapDecision r = policy.Decide(Curve(kWorkerDomain, revoked));
  EXPECT_FALSE(r.allowed);
  EXPECT_NE(r.status_text.find("revoked"), std::string::npos) << r.status_text;
  EXPECT_EQ(policy.revoked_keys(), 1u);
  EXPECT_FALSE(policy.WorkerKeyAdmitted(revoked));
  // Unknown: through the handshake (it may carry an enrolment token) but not admitted to
  // register without one.
  EXPECT_TRUE(policy.Decide(Curve(kWorkerDomain, stranger)).allowed);
  EXPECT_FALSE(policy.WorkerKeyAdmitted(stranger));
  // A revoked key stays refused even when a key list names it.
  policy.SetWorkerKeys(std::set<std::string>{revoked});
  EXPECT_FALSE(policy.Decide(Curve(kWorkerDomain, revoked)).allowed);
  EXPECT_FALSE(policy.WorkerKeyAdmitted(revoked));
}

TEST(ZapPolicyTest, WithAccountsAllowUnenrolledAdmitsAnyKeyButNotARevokedOne) {
  FakeClock clock;
  ZapPolicyOptions options;
  options.worker_curve = true;
  options.accounts = true;
  options.allow_unenrolled = true;
  ZapPolicy policy(options, &clock);
  policy.SetCredentials({}, {std::string(40, 'R')});
  EXPECT_TRUE(policy.WorkerKeyAdmitted(std::string(40, 'S')));
  EXPECT_FALSE(policy.WorkerKeyAdmitted(std::string(40, 'R')));
  EXPECT_FALSE(policy.Decide(Curve(kWorkerDomain, std::string(40, 'R'))).allowed);
}

TEST(AddressLimiterTest, TheTableOfAddressesIsBounded) {
  FakeClock clock;
  AddressLimiter limiter(1, 2, /*max_addresses=*/100);
  for (int i = 0; i < 1000; ++i) limiter.Take("10.0.0." + std::to_string(i), clock.Now());
  EXPECT_LE(limiter.addresses(), 100u);
}

}  // namespace
}  // namespace rma::broker
