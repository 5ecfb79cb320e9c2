// See pg_internal.h and accounts.h: the account actions of the PostgreSQL store (accounts, API
// keys, enrolment tokens, worker credentials), run on the reader thread one transaction each, and
// the snapshot of keys and credentials the broker loop keeps. Every change reads the snapshot back
// in its own transaction, so the loop's copy includes the change when the answer arrives.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>
#include <cstdlib>

#include "broker/pg_internal.h"
#include "broker/pg_values.h"

namespace rma::broker::pg {

namespace {

constexpr int64_t kDefaultTokenTtlS = 24 * 3600;
constexpr int64_t kMaxTtlS = 10LL * 365 * 24 * 3600;

std::string Arg(const AccountRequest& r, const std::string& name) {
  auto it = r.args.find(name);
  return it == r.args.end() ? std::string() : it->second;
}

// A number of seconds from an argument ("" -> fallback); refused when not a whole number in range.
Result<int64_t> SecondsArg(const AccountRequest& r, const std::string& name, int64_t fallback) {
  const std::string text = Arg(r, name);
  if (text.empty()) return fallback;
  int64_t v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size() || v <= 0 || v > kMaxTtlS) {
    return Status::InvalidArgument(name + " must be a whole number of seconds from 1 to " +
                                   std::to_string(kMaxTtlS));
  }
  return v;
}

nlohmann::json ListOrNull(const pqxx::field& joined) {
  if (joined.is_null()) return nullptr;
  return SplitCommaList(Text(joined));
}

// The role of an account, or nullopt when there is none.
std::optional<std::string> RoleOf(pqxx::transaction_base& tx, const std::string& account) {
  pqxx::result rows = tx.exec_params("SELECT role FROM accounts WHERE name = $1", account);
  if (rows.empty()) return std::nullopt;
  return Text(rows[0][0]);
}

Status NoAccount(const std::string& account) {
  return Status::NotFound("no account '" + account.substr(0, 64) + "'");
}

nlohmann::json AccountDocument(const pqxx::row& row) {
  return {{"name", Text(row[0])},
          {"role", Text(row[1])},
          {"credits", row[2].as<double>()},
          {"created_at", Timestamp(row[3])}};
}

const std::string kAccountColumns =
    "name, role, credits::float8, " + Micros("created_at") + " FROM accounts";

}  // namespace

AccountsSnapshot LoadAccounts(pqxx::transaction_base& tx) {
  AccountsSnapshot s;
  for (const pqxx::row& row :
       tx.exec("SELECT name, role, credits::double precision FROM accounts")) {
    s.balances.push_back({Text(row[0]), Text(row[1]), row[2].as<double>()});
  }
  s.accounts = s.balances.size();
  for (const pqxx::row& row : tx.exec(
           "SELECT k.prefix, k.hash, k.account, a.role, k.name, array_to_string(k.scopes, ','), "
           "coalesce(array_to_string(k.services, ','), ''), " +
           Micros("k.expires_at") +
           " FROM api_keys k JOIN accounts a ON a.name = k.account WHERE k.revoked_at IS NULL")) {
    ApiKeyEntry k;
    k.prefix = Text(row[0]);
    k.hash = Text(row[1]);
    k.account = Text(row[2]);
    k.role = Text(row[3]);
    k.name = Text(row[4]);
    k.scopes = SplitCommaList(Text(row[5]));
    k.services = SplitCommaList(Text(row[6]));
    k.expires_at = TimeOf(row[7]);
    s.keys.push_back(std::move(k));
  }
  for (const pqxx::row& row :
       tx.exec("SELECT public_key, account, name, worker_id, "
               "coalesce(array_to_string(services, ','), ''), tier_cap, revoked_at IS NOT NULL "
               "FROM worker_credentials")) {
    CredentialEntry c;
    c.public_key = Text(row[0]);
    c.account = Text(row[1]);
    c.name = Text(row[2]);
    c.worker_id = Text(row[3]);
    c.services = SplitCommaList(Text(row[4]));
    c.tier_cap = static_cast<uint32_t>(Int(row[5]));
    c.revoked = row[6].as<bool>();
    s.credentials.push_back(std::move(c));
  }
  return s;
}

namespace {

// Inserts a key for `account` with `scopes`; returns its document (the key in it, once).
nlohmann::json InsertKey(pqxx::transaction_base& tx, const std::string& account,
                         const std::vector<std::string>& scopes,
                         const std::vector<std::string>& services, int64_t expires_s,
                         const std::string& name) {
  std::string prefix;
  const std::string key = NewApiKey(&prefix);
  pqxx::result row = tx.exec_params(
      "INSERT INTO api_keys (prefix, hash, account, name, scopes, services, expires_at) "
      "VALUES ($1, $2, $3, $4, $5::text[], $6::text[], "
      "CASE WHEN $7::bigint > 0 THEN now() + make_interval(secs => $7::bigint) END) "
      "RETURNING " +
          Micros("expires_at"),
      prefix, SecretHash(key), account, CleanText(name), TextArrayLiteral(scopes),
      services.empty() ? std::optional<std::string>() : TextArrayLiteral(services), expires_s);
  return {{"key", key},
          {"prefix", prefix},
          {"account", account},
          {"name", name},
          {"scopes", scopes},
          {"services", services.empty() ? nlohmann::json(nullptr) : nlohmann::json(services)},
          {"expires_at", Timestamp(row[0][0])}};
}

Status CreateKey(pqxx::transaction_base& tx, const AccountRequest& r, nlohmann::json* doc) {
  const std::string account = Arg(r, "account");
  RMA_RETURN_IF_ERROR(CheckAccountName(account));
  auto role = RoleOf(tx, account);
  if (!role) return NoAccount(account);
  auto scopes = ParseScopes(Arg(r, "scopes").empty() ? "client" : Arg(r, "scopes"));
  if (!scopes.ok()) return scopes.status();
  if (*role != "admin" && std::find(scopes->begin(), scopes->end(), "admin") != scopes->end()) {
    return Status::PermissionDenied("only an admin account's keys may have the admin scope");
  }
  auto services = ParseServiceList(Arg(r, "services"));
  if (!services.ok()) return services.status();
  auto expires = SecondsArg(r, "expires_s", 0);
  if (!Arg(r, "expires_s").empty() && !expires.ok()) return expires.status();
  const std::string name = Arg(r, "name");
  if (name.size() > 128) return Status::InvalidArgument("a key name may have 128 bytes at most");
  pqxx::result live = tx.exec_params(
      "SELECT count(*) FROM api_keys WHERE account = $1 AND revoked_at IS NULL", account);
  if (Int(live[0][0]) >= 1000) {
    return Status::ResourceExhausted("account '" + account + "' has 1000 live keys already");
  }
  *doc = InsertKey(tx, account, *scopes, *services, expires.ok() ? *expires : 0, name);
  spdlog::info("accounts: key {} created for '{}' (scopes {})", (*doc)["prefix"].get<std::string>(),
               account, Arg(r, "scopes").empty() ? "client" : Arg(r, "scopes"));
  return Status::Ok();
}

Status AccountShow(pqxx::transaction_base& tx, const AccountRequest& r, nlohmann::json* doc) {
  const std::string account = Arg(r, "account");
  pqxx::result a = tx.exec_params("SELECT " + kAccountColumns + " WHERE name = $1", account);
  if (a.empty()) return NoAccount(account);
  *doc = AccountDocument(a[0]);
  nlohmann::json keys = nlohmann::json::array();
  for (const pqxx::row& k : tx.exec_params(
           "SELECT prefix, name, array_to_string(scopes, ','), array_to_string(services, ','), " +
               Micros("expires_at") + ", revoked_at IS NOT NULL, " + Micros("last_used_at") + ", " +
               Micros("created_at") +
               " FROM api_keys WHERE account = $1 ORDER BY created_at DESC LIMIT 1000",
           account)) {
    keys.push_back({{"prefix", Text(k[0])},
                    {"name", Text(k[1])},
                    {"scopes", ListOrNull(k[2])},
                    {"services", ListOrNull(k[3])},
                    {"expires_at", Timestamp(k[4])},
                    {"revoked", k[5].as<bool>()},
                    {"last_used_at", Timestamp(k[6])},
                    {"created_at", Timestamp(k[7])}});
  }
  (*doc)["keys"] = std::move(keys);
  nlohmann::json workers = nlohmann::json::array();
  for (const pqxx::row& w : tx.exec_params(
           "SELECT public_key, name, worker_id, array_to_string(services, ','), tier_cap, "
           "revoked_at IS NOT NULL, " +
               Micros("first_seen") + ", " + Micros("last_seen") +
               " FROM worker_credentials WHERE account = $1 ORDER BY first_seen DESC LIMIT 10000",
           account)) {
    workers.push_back({{"key", Text(w[0])},
                       {"name", Text(w[1])},
                       {"worker_id", Text(w[2])},
                       {"services", ListOrNull(w[3])},
                       {"tier_cap", Int(w[4])},
                       {"revoked", w[5].as<bool>()},
                       {"first_seen", Timestamp(w[6])},
                       {"last_seen", Timestamp(w[7])}});
  }
  (*doc)["workers"] = std::move(workers);
  nlohmann::json tasks = nlohmann::json::object();
  for (const pqxx::row& t : tx.exec_params(
           "SELECT status, count(*) FROM tasks WHERE owner = $1 GROUP BY status", account)) {
    tasks[Text(t[0])] = Int(t[1]);
  }
  (*doc)["tasks"] = std::move(tasks);
  // Its credits: "balance" (the same as "credits"), "earned", "spent", "granted", "ledger".
  doc->update(CreditSummary(tx, account));
  (*doc)["balance"] = (*doc)["credits"];
  return Status::Ok();
}

Status Enrol(pqxx::transaction_base& tx, const AccountRequest& r, AccountAnswer* answer) {
  const std::string key = Arg(r, "key");
  pqxx::result used = tx.exec_params(
      "UPDATE enrol_tokens SET used_at = now(), used_by = $2 "
      "WHERE hash = $1 AND used_at IS NULL AND expires_at > now() RETURNING account",
      Arg(r, "token_hash"), key);
  if (used.empty()) {
    return Status::PermissionDenied("the enrolment token is unknown, already used or expired");
  }
  const std::string account = Text(used[0][0]);
  pqxx::result bound = tx.exec_params(
      "INSERT INTO worker_credentials (public_key, account, name, worker_id) "
      "VALUES ($1, $2, $3, $4) ON CONFLICT (public_key) DO NOTHING RETURNING account",
      key, account, CleanText(Arg(r, "name")), CleanText(r.worker_id));
  if (bound.empty()) {
    return Status::AlreadyExists("this worker's key is enrolled already (or was revoked)");
  }
  answer->enrolled_key = key;
  answer->enrolled_account = account;
  answer->document = nlohmann::json{{"account", account}, {"key", key}};
  spdlog::info("accounts: worker key {} enrolled for '{}' (worker {})", key, account, r.worker_id);
  return Status::Ok();
}

// The key of the credential an admin names: the live worker's (r.worker_key), else the one that
// last registered with the worker id r.worker_id, or the key itself.
Result<std::string> FindCredentialKey(pqxx::transaction_base& tx, const AccountRequest& r) {
  pqxx::result rows;
  if (!r.worker_key.empty()) {
    rows = tx.exec_params("SELECT public_key FROM worker_credentials WHERE public_key = $1",
                          r.worker_key);
  }
  if (rows.empty()) {
    rows = tx.exec_params(
        "SELECT public_key FROM worker_credentials WHERE worker_id = $1 OR public_key = $1 "
        "ORDER BY last_seen DESC LIMIT 1",
        r.worker_id);
  }
  if (rows.empty()) {
    return Status::NotFound("no worker credential for '" + r.worker_id.substr(0, 128) +
                            "' (a worker admitted by --worker-keys-file has no credential: it is "
                            "revoked by removing its key there and sending SIGHUP)");
  }
  return Text(rows[0][0]);
}

Status RevokeCredential(pqxx::transaction_base& tx, const AccountRequest& r,
                        AccountAnswer* answer) {
  RMA_ASSIGN_OR_RETURN(std::string key, FindCredentialKey(tx, r));
  pqxx::result rows = tx.exec_params(
      "UPDATE worker_credentials SET revoked_at = coalesce(revoked_at, now()) "
      "WHERE public_key = $1 RETURNING public_key, account, worker_id",
      key);
  answer->revoked_key = key;
  answer->document = nlohmann::json{
      {"worker_id", r.worker_id}, {"key", key}, {"account", Text(rows[0][1])}, {"revoked", true}};
  spdlog::warn("accounts: worker credential {} of '{}' revoked", key, Text(rows[0][1]));
  return Status::Ok();
}

// An admin caps a credential's tier (docs/security.md, "Worker credentials"): a worker whose
// hardware claim its work does not bear out (a "GPU" that times out on GPU tasks) is ranked as the
// tier the admin says, however it describes itself.
Status LimitCredential(pqxx::transaction_base& tx, const AccountRequest& r, AccountAnswer* answer) {
  const std::string text = Arg(r, "tier_cap");
  uint32_t cap = 0;
  if (text.size() != 1 || text[0] < '0' || text[0] > '3') {
    return Status::InvalidArgument("'tier_cap' must be 0 (no cap), 1, 2 or 3");
  }
  cap = static_cast<uint32_t>(text[0] - '0');
  RMA_ASSIGN_OR_RETURN(std::string key, FindCredentialKey(tx, r));
  pqxx::result rows = tx.exec_params(
      "UPDATE worker_credentials SET tier_cap = $2 WHERE public_key = $1 "
      "RETURNING account, worker_id",
      key, static_cast<int>(cap));
  answer->limited_key = key;
  answer->tier_cap = cap;
  answer->document = nlohmann::json{
      {"worker_id", r.worker_id}, {"key", key}, {"account", Text(rows[0][0])}, {"tier_cap", cap}};
  spdlog::warn("accounts: worker credential {} of '{}': tier capped at {}", key, Text(rows[0][0]),
               cap);
  return Status::Ok();
}

}  // namespace

void ExecuteAccount(pqxx::connection& conn, const AccountRequest& r, AccountAnswer* answer) {
  answer->op = r.op;
  answer->ref = r.ref;
  pqxx::work tx(conn);
  nlohmann::json doc;
  Status status;
  bool changes = true;
  if (r.op == "accounts") {
    changes = false;
    doc = {{"accounts", nlohmann::json::array()}};
    for (const pqxx::row& row :
         tx.exec("SELECT a.name, a.role, a.credits::float8, " + Micros("a.created_at") +
                 ", (SELECT count(*) FROM api_keys k WHERE k.account = a.name AND k.revoked_at IS "
                 "NULL), (SELECT count(*) FROM worker_credentials w WHERE w.account = a.name AND "
                 "w.revoked_at IS NULL) FROM accounts a ORDER BY a.name LIMIT 10000")) {
      nlohmann::json a = AccountDocument(row);
      a["keys"] = Int(row[4]);
      a["workers"] = Int(row[5]);
      doc["accounts"].push_back(std::move(a));
    }
  } else if (r.op == "account") {
    changes = false;
    status = AccountShow(tx, r, &doc);
  } else if (r.op == "account_create") {
    const std::string name = Arg(r, "account");
    const std::string role = Arg(r, "role").empty() ? "member" : Arg(r, "role");
    status = CheckAccountName(name);
    if (status.ok() && role != "member" && role != "admin") {
      status = Status::InvalidArgument("role must be member or admin");
    }
    if (status.ok()) {
      pqxx::result row = tx.exec_params(
          "INSERT INTO accounts (name, role) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING "
          "RETURNING " +
              kAccountColumns.substr(0, kAccountColumns.find(" FROM")),
          name, role);
      if (row.empty()) {
        status = Status::AlreadyExists("account '" + name + "' exists already");
      } else {
        doc = AccountDocument(row[0]);
        spdlog::info("accounts: account '{}' created ({})", name, role);
        // --initial-credits: the broker passes it when credits are on.
        const double initial = std::strtod(Arg(r, "initial_credits").c_str(), nullptr);
        if (initial > 0) {
          LedgerEntry grant;
          grant.account = name;
          grant.kind = "grant";
          grant.amount = initial;
          grant.note = "initial credits";
          grant.at = r.now;
          auto granted = GrantCredits(tx, grant);
          if (granted.ok()) doc["credits"] = (*granted)["balance"];
        }
      }
    }
  } else if (r.op == "key_create") {
    status = CreateKey(tx, r, &doc);
  } else if (r.op == "credits_grant") {
    // The broker checked the amount and kind; the store checks the account.
    LedgerEntry grant;
    grant.account = Arg(r, "account");
    grant.kind = Arg(r, "kind");
    grant.amount = std::strtod(Arg(r, "amount").c_str(), nullptr);
    grant.note = Arg(r, "note");
    grant.at = r.now;
    auto granted = GrantCredits(tx, grant);
    if (granted.ok()) {
      doc = std::move(*granted);
      spdlog::info("accounts: {} of {} credits to '{}'", grant.kind, FormatCredits(grant.amount),
                   grant.account);
    } else {
      status = granted.status();
    }
  } else if (r.op == "leaderboard") {
    changes = false;
    const std::string period = Arg(r, "period").empty() ? "week" : Arg(r, "period");
    const std::string by = Arg(r, "by").empty() ? "credits" : Arg(r, "by");
    auto board = Leaderboard(tx, period, by, 100);
    if (board.ok()) {
      doc = std::move(*board);
    } else {
      status = board.status();
    }
  } else if (r.op == "key_revoke") {
    const std::string prefix = Arg(r, "prefix");
    pqxx::result row = tx.exec_params(
        "UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()) WHERE prefix = $1 "
        "RETURNING account",
        prefix);
    if (row.empty()) {
      status = Status::NotFound("no key with prefix '" + prefix.substr(0, 32) + "'");
    } else {
      doc = {{"prefix", prefix}, {"account", Text(row[0][0])}, {"revoked", true}};
      spdlog::warn("accounts: key {} of '{}' revoked", prefix, Text(row[0][0]));
    }
  } else if (r.op == "enrol_token_create") {
    changes = false;
    const std::string account = Arg(r, "account");
    auto ttl = SecondsArg(r, "expires_s", kDefaultTokenTtlS);
    if (!ttl.ok()) {
      status = ttl.status();
    } else if (!RoleOf(tx, account)) {
      status = NoAccount(account);
    } else {
      const std::string token = NewEnrolToken();
      pqxx::result row = tx.exec_params(
          "INSERT INTO enrol_tokens (hash, account, expires_at) "
          "VALUES ($1, $2, now() + make_interval(secs => $3::bigint)) RETURNING " +
              Micros("expires_at"),
          SecretHash(token), account, *ttl);
      doc = {{"token", token}, {"account", account}, {"expires_at", Timestamp(row[0][0])}};
      spdlog::info("accounts: enrolment token created for '{}'", account);
    }
  } else if (r.op == "enrol") {
    status = Enrol(tx, r, answer);
    if (status.ok()) doc = answer->document.ok() ? *answer->document : nlohmann::json();
  } else if (r.op == "credential_revoke") {
    status = RevokeCredential(tx, r, answer);
    if (status.ok()) doc = *answer->document;
  } else if (r.op == "credential_limits") {
    status = LimitCredential(tx, r, answer);
    if (status.ok()) doc = *answer->document;
  } else if (r.op == "seen") {
    changes = false;
    tx.exec_params(
        "UPDATE worker_credentials SET last_seen = now(), worker_id = $2 WHERE public_key = $1",
        Arg(r, "key"), CleanText(r.worker_id));
  } else if (r.op == "keys_seen") {
    changes = false;
    tx.exec_params(
        "UPDATE worker_credentials SET last_seen = now() WHERE public_key = ANY($1::text[])",
        TextArrayLiteral(SplitCommaList(Arg(r, "keys"))));
  } else if (r.op == "keys_used") {
    changes = false;
    tx.exec_params(
        "UPDATE api_keys SET last_used_at = now() WHERE prefix = ANY($1::text[]) AND "
        "revoked_at IS NULL",
        TextArrayLiteral(SplitCommaList(Arg(r, "used"))));
  } else {
    status = Status::InvalidArgument("unknown account query '" + r.op.substr(0, 64) + "'");
  }
  if (!status.ok()) {
    tx.abort();
    answer->document = status;
    return;
  }
  if (changes) answer->snapshot = LoadAccounts(tx);
  tx.commit();
  answer->document = std::move(doc);
}

Result<std::optional<std::string>> BootstrapAdmin(pqxx::connection& conn) {
  pqxx::work tx(conn);
  // Two brokers starting at once must not both create one.
  tx.exec("SELECT pg_advisory_xact_lock(7283640021)");
  if (!tx.exec("SELECT 1 FROM accounts WHERE role = 'admin' LIMIT 1").empty()) {
    return std::optional<std::string>();
  }
  if (!tx.exec("SELECT 1 FROM accounts WHERE name = 'admin'").empty()) {
    return Status::FailedPrecondition(
        "--bootstrap-admin: an account named 'admin' exists but is not an admin");
  }
  tx.exec("INSERT INTO accounts (name, role) VALUES ('admin', 'admin')");
  nlohmann::json key =
      InsertKey(tx, "admin", {"admin", "client", "contributor"}, {}, 0, "bootstrap");
  tx.commit();
  return std::optional<std::string>(key["key"].get<std::string>());
}

// Worker credentials' lasting trust states (reputation; schemas/sql/007_worker_trust.sql).

void WriteTrustRow(pqxx::transaction_base& tx, const TrustRecord& t) {
  if (t.state.empty()) {
    tx.exec_params("DELETE FROM worker_trust WHERE credential = $1", CleanText(t.credential));
    return;
  }
  tx.exec_params(
      "INSERT INTO worker_trust (credential, account, state, reason, updated_at) VALUES ($1, $2, "
      "$3, $4, $5::timestamptz) ON CONFLICT (credential) DO UPDATE SET account = "
      "EXCLUDED.account, state = EXCLUDED.state, reason = EXCLUDED.reason, updated_at = "
      "EXCLUDED.updated_at",
      CleanText(t.credential), CleanText(t.account), t.state, CleanText(t.reason),
      PgTimestamp(t.at));
}

std::vector<TrustRecord> LoadTrust(pqxx::transaction_base& tx) {
  std::vector<TrustRecord> records;
  for (const pqxx::row& r :
       tx.exec("SELECT credential, account, state, reason FROM worker_trust ORDER BY updated_at")) {
    TrustRecord t;
    t.credential = r[0].c_str();
    t.account = r[1].c_str();
    t.state = r[2].c_str();
    t.reason = r[3].c_str();
    records.push_back(std::move(t));
  }
  return records;
}

}  // namespace rma::broker::pg
