// The account routes (docs/http-api.md, "Accounts and keys"): the caller's own account, and the
// admin routes that create accounts, API keys and enrolment tokens and revoke keys and worker
// credentials, grants of credits and the leaderboard. The broker owns accounts (broker/accounts.h);
// these handlers check the request, turn it into an ADMIN query with string arguments and shape the
// answer.
#include <charconv>

#include "gateway/api.h"

namespace rma::gateway {

using nlohmann::json;
using proto::Command;

namespace {

constexpr int64_t kMaxExpiresS = 10LL * 365 * 24 * 3600;

// The JSON object of a request body ("" is an empty object); a clear 400 otherwise.
Result<json> BodyObject(const std::string& body) {
  if (body.empty()) return json::object();
  json j = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return Status::InvalidArgument("the body must be a JSON object");
  }
  return j;
}

// A string field ("" when absent).
Result<std::string> StringField(const json& j, const char* name, size_t max_bytes) {
  auto it = j.find(name);
  if (it == j.end() || it->is_null()) return std::string();
  if (!it->is_string())
    return Status::InvalidArgument(std::string("'") + name + "' must be a string");
  std::string v = it->get<std::string>();
  if (v.size() > max_bytes) {
    return Status::InvalidArgument(std::string("'") + name + "' is too long");
  }
  return v;
}

// A list of strings joined with ',' ("" when absent); items may not hold ','.
Result<std::string> ListField(const json& j, const char* name, size_t max_items) {
  auto it = j.find(name);
  if (it == j.end() || it->is_null()) return std::string();
  if (!it->is_array() || it->size() > max_items) {
    return Status::InvalidArgument(std::string("'") + name + "' must be an array of at most " +
                                   std::to_string(max_items) + " strings");
  }
  std::string joined;
  for (const json& item : *it) {
    if (!item.is_string() || item.get_ref<const std::string&>().empty() ||
        item.get_ref<const std::string&>().find(',') != std::string::npos ||
        item.get_ref<const std::string&>().size() > 128) {
      return Status::InvalidArgument(std::string("each item of '") + name +
                                     "' must be a non-empty string without ','");
    }
    if (!joined.empty()) joined += ',';
    joined += item.get<std::string>();
  }
  return joined;
}

// "expires_in_s" as a whole number of seconds ("" when absent).
Result<std::string> ExpiresField(const json& j) {
  auto it = j.find("expires_in_s");
  if (it == j.end() || it->is_null()) return std::string();
  if (!it->is_number_integer() || it->get<int64_t>() <= 0 || it->get<int64_t>() > kMaxExpiresS) {
    return Status::InvalidArgument("'expires_in_s' must be a whole number of seconds from 1 to " +
                                   std::to_string(kMaxExpiresS));
  }
  return std::to_string(it->get<int64_t>());
}

HttpReply BadRequest(const Status& s) { return ErrorReply(400, s.message(), "invalid_argument"); }

// A path parameter, percent-decoded and bounded; nullopt when unusable.
std::optional<std::string> PathParam(const Call& call, const char* name) {
  auto decoded = PercentDecode(call.match.Param(name), false);
  if (!decoded || decoded->empty() || decoded->size() > 256) return std::nullopt;
  return decoded;
}

}  // namespace

void Api::AccountAction(proto::Admin admin, int status, Exchange& ex,
                        std::function<void(const json&)> on_created) {
  Ask(ex, Command::kAdmin, std::move(admin), ctx_->options.submit_timeout,
      [status, on_created = std::move(on_created)](const BrokerAnswer& a) -> HttpReply {
        const auto* ar = std::get_if<proto::AdminReply>(&a);
        if (ar == nullptr) return UnexpectedAnswer();
        if (on_created) on_created(ar->data);
        return JsonReply(status, ar->data);
      });
}

void Api::OwnAccount(const Call& call, Exchange& ex) {
  if (call.key == nullptr) {
    return ex.Reply(
        ErrorReply(404, "this gateway has no API keys: there is no account to show", "not_found"));
  }
  if (call.key->prefix.empty()) {
    // A key configured on this gateway: its account is a name, not a record at the broker.
    json scopes = json::array();
    if (call.key->scopes & kScopeAdmin) scopes.push_back("admin");
    if (call.key->scopes & kScopeClient) scopes.push_back("client");
    if (call.key->scopes & kScopeContributor) scopes.push_back("contributor");
    return ex.Reply(JsonReply(200, {{"name", call.key->account},
                                    {"role", call.key->role == Role::kAdmin ? "admin" : "member"},
                                    {"source", "gateway"},
                                    {"key_name", call.key->name},
                                    {"scopes", scopes}}));
  }
  proto::Admin admin;
  admin.query = "account";
  admin.args["account"] = call.key->account;
  AccountAction(std::move(admin), 200, ex);
}

void Api::AnyAccount(const Call& call, Exchange& ex) {
  auto account = PathParam(call, "name");
  if (!account) return ex.Reply(ErrorReply(404, "no such account", "not_found"));
  proto::Admin admin;
  admin.query = "account";
  admin.args["account"] = *account;
  AccountAction(std::move(admin), 200, ex);
}

void Api::CreateAccount(const Call& call, Exchange& ex) {
  auto body = BodyObject(call.body);
  if (!body.ok()) return ex.Reply(BadRequest(body.status()));
  auto name = StringField(*body, "name", 64);
  auto role = StringField(*body, "role", 16);
  if (!name.ok()) return ex.Reply(BadRequest(name.status()));
  if (!role.ok()) return ex.Reply(BadRequest(role.status()));
  if (name->empty()) return ex.Reply(BadRequest(Status::InvalidArgument("'name' is required")));
  proto::Admin admin;
  admin.query = "account_create";
  admin.args["account"] = *name;
  if (!role->empty()) admin.args["role"] = *role;
  AccountAction(std::move(admin), 201, ex);
}

void Api::GrantCredits(const Call& call, Exchange& ex) {
  auto account = PathParam(call, "name");
  if (!account) return ex.Reply(ErrorReply(404, "no such account", "not_found"));
  auto body = BodyObject(call.body);
  if (!body.ok()) return ex.Reply(BadRequest(body.status()));
  auto amount = body->find("amount");
  if (amount == body->end() || !amount->is_number()) {
    return ex.Reply(BadRequest(
        Status::InvalidArgument("'amount' is required: a number of credits (negative takes)")));
  }
  auto kind = StringField(*body, "kind", 16);
  auto note = StringField(*body, "note", 500);
  if (!kind.ok()) return ex.Reply(BadRequest(kind.status()));
  if (!note.ok()) return ex.Reply(BadRequest(note.status()));
  proto::Admin admin;
  admin.query = "credits_grant";
  admin.args["account"] = *account;
  admin.args["amount"] = amount->dump();  // the broker checks range and precision
  if (!kind->empty()) admin.args["kind"] = *kind;
  if (!note->empty()) admin.args["note"] = *note;
  AccountAction(std::move(admin), 200, ex);
}

void Api::Leaderboard(const Call& call, Exchange& ex) {
  proto::Admin admin;
  admin.query = "leaderboard";
  for (const char* name : {"period", "by"}) {
    auto value = QueryParam(call.query, name);
    if (value && value->size() > 16) {
      return ex.Reply(BadRequest(Status::InvalidArgument(std::string(name) + " is too long")));
    }
    if (value && !value->empty()) admin.args[name] = *value;
  }
  AccountAction(std::move(admin), 200, ex);
}

void Api::CreateKey(const Call& call, Exchange& ex) {
  auto account = PathParam(call, "name");
  if (!account) return ex.Reply(ErrorReply(404, "no such account", "not_found"));
  auto body = BodyObject(call.body);
  if (!body.ok()) return ex.Reply(BadRequest(body.status()));
  auto scopes = ListField(*body, "scopes", 3);
  auto services = ListField(*body, "services", 256);
  auto expires = ExpiresField(*body);
  auto name = StringField(*body, "name", 128);
  if (!scopes.ok()) return ex.Reply(BadRequest(scopes.status()));
  if (!services.ok()) return ex.Reply(BadRequest(services.status()));
  if (!expires.ok()) return ex.Reply(BadRequest(expires.status()));
  if (!name.ok()) return ex.Reply(BadRequest(name.status()));
  proto::Admin admin;
  admin.query = "key_create";
  admin.args["account"] = *account;
  if (!scopes->empty()) admin.args["scopes"] = *scopes;
  if (!services->empty()) admin.args["services"] = *services;
  if (!expires->empty()) admin.args["expires_s"] = *expires;
  if (!name->empty()) admin.args["name"] = *name;
  ApiContext* ctx = ctx_;
  // Usable on this gateway at once; other gateways learn it with their next poll (~1 s). The
  // broker gives the admin scope only to an admin account's keys.
  AccountAction(std::move(admin), 201, ex,
                [ctx](const json& created) { ctx->broker_keys.AddCreated(created, "admin"); });
}

void Api::RevokeKey(const Call& call, Exchange& ex) {
  auto prefix = PathParam(call, "prefix");
  if (!prefix) return ex.Reply(ErrorReply(404, "no such key", "not_found"));
  proto::Admin admin;
  admin.query = "key_revoke";
  admin.args["prefix"] = *prefix;
  AccountAction(std::move(admin), 200, ex);
}

void Api::CreateEnrolToken(const Call& call, Exchange& ex) {
  auto account = PathParam(call, "name");
  if (!account) return ex.Reply(ErrorReply(404, "no such account", "not_found"));
  // A contributor enrols workers for its own account only.
  if (call.key != nullptr && !(call.key->scopes & kScopeAdmin) && call.key->account != *account) {
    return ex.Reply(
        ErrorReply(403, "a contributor key creates enrolment tokens for its own account only",
                   "permission_denied"));
  }
  auto body = BodyObject(call.body);
  if (!body.ok()) return ex.Reply(BadRequest(body.status()));
  auto expires = ExpiresField(*body);
  if (!expires.ok()) return ex.Reply(BadRequest(expires.status()));
  proto::Admin admin;
  admin.query = "enrol_token_create";
  admin.args["account"] = *account;
  if (!expires->empty()) admin.args["expires_s"] = *expires;
  AccountAction(std::move(admin), 201, ex);
}

void Api::RevokeCredential(const Call& call, Exchange& ex) {
  auto worker = PathParam(call, "id");
  if (!worker) return ex.Reply(ErrorReply(404, "no such worker", "not_found"));
  proto::Admin admin;
  admin.query = "credential_revoke";
  admin.worker_id = *worker;
  AccountAction(std::move(admin), 200, ex);
}

void Api::LimitCredential(const Call& call, Exchange& ex) {
  auto worker = PathParam(call, "id");
  if (!worker) return ex.Reply(ErrorReply(404, "no such worker", "not_found"));
  auto body = BodyObject(call.body);
  if (!body.ok()) return ex.Reply(BadRequest(body.status()));
  const nlohmann::json& b = *body;
  if (b.size() != 1 || !b.contains("tier_cap") || !b["tier_cap"].is_number_integer() ||
      b["tier_cap"].get<int64_t>() < 0 || b["tier_cap"].get<int64_t>() > 3) {
    return ex.Reply(BadRequest(Status::InvalidArgument(
        "the body must be {\"tier_cap\": 0, 1, 2 or 3} (0: no cap; the worker is ranked no better "
        "than that tier)")));
  }
  proto::Admin admin;
  admin.query = "credential_limits";
  admin.worker_id = *worker;
  admin.args["tier_cap"] = std::to_string(b["tier_cap"].get<int64_t>());
  AccountAction(std::move(admin), 200, ex);
}

void Api::AdminWorkerTrust(const Call& call, Exchange& ex) {
  const std::string worker = call.match.Param("id");
  auto decoded = PercentDecode(worker, false);
  if (!decoded || decoded->empty() || decoded->size() > 256) {
    return ex.Reply(ErrorReply(404, "no worker '" + worker.substr(0, 64) + "'", "not_found"));
  }
  auto body = BodyObject(call.body);
  if (!body.ok()) return ex.Reply(BadRequest(body.status()));
  auto state = StringField(*body, "state", 16);
  if (!state.ok()) return ex.Reply(BadRequest(state.status()));
  if (state->empty()) {
    return ex.Reply(BadRequest(
        Status::InvalidArgument("'state' is required: trusted, normal, quarantined or banned")));
  }
  proto::Admin admin;
  admin.query = "trust";
  admin.worker_id = *decoded;
  admin.args["state"] = *state;
  Ask(ex, Command::kAdmin, admin, ctx_->options.submit_timeout, AdminDocument);
}

}  // namespace rma::gateway
