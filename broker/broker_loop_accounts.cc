// BrokerLoop, the accounts part (accounts.h): the ADMIN account queries (the gateways' key poll
// answered from the loop's registry, the rest forwarded to the store), enrolment of a worker key
// on its first READY, credential revocation (the worker is disconnected at once and refused at its
// next handshake), keeping the ZAP policy's view of enrolled and revoked keys current, and the
// credit queries (grants checked here and applied to the credit book once committed).
#include <spdlog/spdlog.h>

#include <charconv>
#include <cmath>
#include <cstdlib>
#include <map>

#include "broker/admin.h"
#include "broker/broker_loop.h"

namespace rma::broker {

using proto::Command;

namespace {

// Enrolments waiting for the database at once: a flood of READYs with made-up tokens costs a
// bounded number of entries (each one a transaction that finds no token).
constexpr size_t kMaxPendingEnrolments = 1024;
// Prefixes of used keys a gateway reports per poll (last_used_at).
constexpr size_t kMaxUsedPrefixes = 1000;
// Credentials' last_seen: keys seen since the last update, written together this often.
constexpr size_t kMaxSeenKeys = 100000;
constexpr Duration kSeenInterval = Seconds(60);

// A grant's arguments: an account, a non-zero amount within +-1e12 and a kind; the note bounded.
Status CheckGrant(std::map<std::string, std::string>& args) {
  const std::string& text = args["amount"];
  char* end = nullptr;
  const double amount = std::strtod(text.c_str(), &end);
  if (text.empty() || end != text.c_str() + text.size() || !std::isfinite(amount) ||
      RoundCredits(amount) == 0 || std::fabs(amount) > 1e12) {
    return Status::InvalidArgument("amount must be a non-zero number of credits (at most 1e12)");
  }
  std::string& kind = args["kind"];
  if (kind.empty()) kind = "grant";
  if (kind != "grant" && kind != "adjustment") {
    return Status::InvalidArgument("kind must be grant or adjustment");
  }
  if (args["note"].size() > 500) {
    return Status::InvalidArgument("note must be at most 500 bytes");
  }
  if (Status s = CheckAccountName(args["account"]); !s.ok()) return s;
  return Status::Ok();
}

}  // namespace

void BrokerLoop::ApplyAccounts(AccountsSnapshot snapshot) {
  scheduler_->credits().Learn(snapshot.balances);
  accounts_.Replace(std::move(snapshot));
  zap_policy_.SetCredentials(accounts_.EnrolledKeys(), accounts_.RevokedKeys());
}

void BrokerLoop::RecordSeenKeys(Time now, bool drain) {
  if (seen_keys_.empty() || (!drain && now - seen_keys_at_ < kSeenInterval)) return;
  seen_keys_at_ = now;
  std::string keys;
  for (const std::string& k : seen_keys_) {
    if (!keys.empty()) keys += ',';
    keys += k;  // Z85 has no ','
  }
  seen_keys_.clear();
  AccountRequest seen;
  seen.op = "keys_seen";
  seen.args["keys"] = std::move(keys);
  seen.now = now;
  store_->Account("", std::move(seen));
}

void BrokerLoop::HandleAccountAdmin(Time now, const std::string& client,
                                    const proto::Admin& admin) {
  auto arg = [&](const char* name) -> std::string {
    auto it = admin.args.find(name);
    return it == admin.args.end() ? std::string() : it->second;
  };
  if (!store_->can_lookup()) {
    if (admin.query == kKeysQuery) {
      // A pool without a database has no keys to hand out: the gateways use their own.
      ReplyAdmin(client, admin.ref, {{"version", 0}, {"keys", nlohmann::json::array()}});
      return;
    }
    ToClient(client,
             proto::ErrorOf(admin.ref, Status::FailedPrecondition(
                                           "accounts need a database: start the broker with "
                                           "--db (this pool uses the gateways' static keys)")));
    return;
  }
  if (admin.query == kKeysQuery) {
    uint64_t known = 0;
    const std::string version = arg("version");
    std::from_chars(version.data(), version.data() + version.size(), known);
    if (const std::string used = arg("used"); !used.empty()) {
      // last_used_at, written off the loop; bounded so a poll cannot carry an unbounded update.
      AccountRequest seen;
      seen.op = "keys_used";
      size_t commas = 0;
      size_t cut = used.size();
      for (size_t i = 0; i < used.size(); ++i) {
        if (used[i] == ',' && ++commas == kMaxUsedPrefixes) {
          cut = i;
          break;
        }
      }
      seen.args["used"] = used.substr(0, cut);
      seen.now = now;
      store_->Account("", std::move(seen));
    }
    ReplyAdmin(client, admin.ref, accounts_.KeysDocument(now, known));
    return;
  }
  AccountRequest request;
  request.op = admin.query;
  request.ref = admin.ref;
  request.args = admin.args;
  request.worker_id = admin.worker_id;
  request.now = now;
  const CreditBook& credits = scheduler_->credits();
  if (admin.query == "account_create" && credits.enabled() &&
      credits.config().initial_credits > 0) {
    request.args["initial_credits"] = FormatCredits(credits.config().initial_credits);
  }
  if (admin.query == "credits_grant") {
    if (Status s = CheckGrant(request.args); !s.ok()) {
      ToClient(client, proto::ErrorOf(admin.ref, s));
      return;
    }
  }
  if (admin.query == "credential_revoke" || admin.query == "credential_limits") {
    if (admin.worker_id.empty()) {
      ToClient(client, proto::ErrorOf(admin.ref, Status::InvalidArgument("worker_id is required")));
      return;
    }
    request.worker_key = scheduler_->LiveWorkerKey(admin.worker_id);
  }
  store_->Account(client, std::move(request));
}

void BrokerLoop::OnAccountAnswer(Time now, const std::string& client, AccountAnswer answer) {
  if (answer.snapshot) ApplyAccounts(std::move(*answer.snapshot));
  if (answer.op == "enrol") return FinishEnrolment(now, client, std::move(answer));
  if (answer.op == "seen" || answer.op == "keys_seen" || answer.op == "keys_used") {
    if (!answer.document.ok()) {
      spdlog::debug("accounts: {}: {}", answer.op, answer.document.status().message());
    }
    return;
  }
  if (!answer.document.ok()) {
    ToClient(client, proto::ErrorOf(answer.ref, answer.document.status()));
    return;
  }
  nlohmann::json doc = std::move(*answer.document);
  if (answer.op == "credits_grant") {
    // Committed: the balance the broker checks submissions against moves with it.
    scheduler_->credits().Apply(doc.value("account", ""), doc.value("amount", 0.0));
  } else if (answer.op == "account") {
    doc["credits_mode"] = CreditModeName(scheduler_->credits().config().mode);
    // Its workers' reputation, rolled up: what the pool thinks of what this account gives.
    doc["reputation"] = AccountReputationJson(*scheduler_, now, doc.value("name", ""));
  }
  if (answer.op == "credential_revoke") {
    // The worker goes now; its attempts are queued again for other workers.
    const size_t gone = scheduler_->RevokeWorkerKeys(
        now, [&](const std::string& key) { return key != answer.revoked_key; });
    doc["disconnected"] = gone > 0;
    if (gone > 0) spdlog::warn("worker with revoked key {} disconnected", answer.revoked_key);
  } else if (answer.op == "credential_limits") {
    // Applied to the live worker now, as its next READY would.
    doc["applied"] = scheduler_->CapWorkerTier(now, answer.limited_key, answer.tier_cap) > 0;
  } else if (answer.op == "account" && doc.contains("workers")) {
    const std::set<std::string> live = scheduler_->LiveWorkerKeys();
    for (nlohmann::json& w : doc["workers"]) {
      w["connected"] = live.count(w.value("key", "")) > 0;
    }
  }
  ReplyAdmin(client, answer.ref, std::move(doc));
}

bool BrokerLoop::AdmitWorkerKey(Time now, const std::string& identity, proto::Ready& ready,
                                const std::string& key) {
  auto refuse = [&](const Status& why) {
    ++ready_refused_keys_;
    spdlog::warn("refused worker {} ({}) with key {}: {}", ready.worker_id, ready.name, key,
                 why.message());
    ToWorker(identity, proto::ErrorOf(0, why));
    ToWorker(identity, proto::Disconnect{why.message(), false});
  };
  const CredentialEntry* credential = accounts_.Credential(key);
  // A key admitted without an account (listed, or --allow-unenrolled-workers) that brings a token
  // is bound to the token's account like any other.
  const bool enrol = zap_policy_.accounts() && credential == nullptr && !ready.enrol_token.empty();
  if (zap_policy_.WorkerKeyAdmitted(key) && !enrol) {
    if (const CredentialEntry* c = credential; c != nullptr) {
      ready.account = c->account;
      ready.tier_cap = c->tier_cap;
      ready.allowed_services = c->services;
      if (c->worker_id != ready.worker_id) {
        // The record names the worker id a credential last used (revocation by id).
        AccountRequest seen;
        seen.op = "seen";
        seen.args["key"] = key;
        seen.worker_id = ready.worker_id;
        seen.now = now;
        store_->Account("", std::move(seen));
      } else if (seen_keys_.size() < kMaxSeenKeys) {
        seen_keys_.insert(key);  // last_seen, in one statement every kSeenInterval
      }
    }
    return true;
  }
  if (!zap_policy_.accounts() || ready.enrol_token.empty()) {
    refuse(Status::Unauthenticated(
        "the broker refused this worker's key " + key +
        ": it is not enrolled in the pool; enrol it with `rma-worker --enrol TOKEN` (a token "
        "from `rmactl enrol-token create`)"));
    return false;
  }
  if (!LooksLikeEnrolToken(ready.enrol_token)) {
    refuse(Status::PermissionDenied("the enrolment token is unknown, already used or expired"));
    return false;
  }
  if (pending_enrolments_.size() >= kMaxPendingEnrolments &&
      pending_enrolments_.count(identity) == 0) {
    const Status busy = Status::ResourceExhausted("too many enrolments in progress; retry later");
    ToWorker(identity, proto::ErrorOf(0, busy));
    ToWorker(identity, proto::Disconnect{busy.message(), true});
    return false;
  }
  AccountRequest request;
  request.op = "enrol";
  request.args["token_hash"] = SecretHash(ready.enrol_token);
  request.args["key"] = key;
  request.args["name"] = ready.name;
  request.worker_id = ready.worker_id;
  request.now = now;
  pending_enrolments_[identity] = PendingEnrolment{std::move(ready), key};
  store_->Account(identity, std::move(request));
  return false;
}

void BrokerLoop::FinishEnrolment(Time now, const std::string& identity, AccountAnswer answer) {
  auto it = pending_enrolments_.find(identity);
  if (it == pending_enrolments_.end()) return;
  PendingEnrolment pending = std::move(it->second);
  pending_enrolments_.erase(it);
  if (!answer.document.ok()) {
    const Status& why = answer.document.status();
    if (why.code() != StatusCode::kUnavailable) ++ready_refused_keys_;
    spdlog::warn("refused to enrol worker {} with key {}: {}", pending.ready.worker_id, pending.key,
                 why.message());
    ToWorker(identity, proto::ErrorOf(0, why));
    // A database that cannot answer now is worth another try; a refused token is not.
    ToWorker(identity, proto::Disconnect{why.message(), why.code() == StatusCode::kUnavailable});
    return;
  }
  spdlog::info("worker {} ({}) enrolled its key {} for '{}'", pending.ready.worker_id,
               pending.ready.name, pending.key, answer.enrolled_account);
  pending.ready.enrol_token.clear();
  if (!AdmitWorkerKey(now, identity, pending.ready, pending.key)) return;
  pending.ready.worker_secret = "curve:" + pending.key;
  pending.ready.worker_key = pending.key;
  scheduler_->OnWorkerReady(now, identity, std::move(pending.ready));
}

}  // namespace rma::broker
