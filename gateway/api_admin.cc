// The admin routes: documents the broker builds, and actions on dead tasks and workers; see
// api.h and docs/http-api.md.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>
#include <cmath>

#include "common/version.h"
#include "gateway/api.h"
#include "gateway/console.h"
#include "gateway/task_json.h"
#include "protocol/names.h"

namespace rma::gateway {

using nlohmann::json;
using proto::Command;

HttpReply Api::AdminDocument(const BrokerAnswer& a) {
  const auto* ar = std::get_if<proto::AdminReply>(&a);
  if (ar == nullptr) return UnexpectedAnswer();
  return JsonReply(200, ar->data);
}

void Api::AdminQuery(const char* query, Exchange& ex) {
  proto::Admin admin;
  admin.query = query;
  Ask(ex, Command::kAdmin, admin, ctx_->options.submit_timeout, AdminDocument);
}

void Api::AdminTaskAction(const char* action, const Call& call, Exchange& ex) {
  const std::string id_text = call.match.Param("id");
  if (!ParseTaskId(id_text)) {
    return ex.Reply(ErrorReply(404, "task '" + id_text + "' not found", "not_found"));
  }
  proto::Admin admin;
  admin.query = action;
  admin.task_id = id_text;
  Ask(ex, Command::kAdmin, admin, ctx_->options.submit_timeout, AdminDocument);
}

void Api::AdminWorkerAction(const char* action, const Call& call, Exchange& ex) {
  const std::string worker = call.match.Param("id");
  auto decoded = PercentDecode(worker, false);
  if (!decoded || decoded->empty() || decoded->size() > 256) {
    return ex.Reply(ErrorReply(404, "no worker '" + worker.substr(0, 64) + "'", "not_found"));
  }
  proto::Admin admin;
  admin.query = action;
  admin.worker_id = *decoded;
  Ask(ex, Command::kAdmin, admin, ctx_->options.submit_timeout, AdminDocument);
}

void Api::AdminBulkDead(const Call& call, Exchange& ex, bool retry) {
  auto admin = ParseBulkBody(call.body, retry);
  if (!admin.ok()) {
    const bool too_large = admin.status().code() == StatusCode::kResourceExhausted;
    return ex.Reply(ErrorReply(too_large ? 413 : 400, admin.status().message(),
                               too_large ? "payload_too_large" : "invalid_argument"));
  }
  Ask(ex, Command::kAdmin, std::move(*admin), ctx_->options.submit_timeout, AdminDocument);
}

void Api::AdminPurge(const Call& call, Exchange& ex) {
  const std::string name = call.match.Param("name");
  auto decoded = PercentDecode(name, false);
  if (!decoded || !proto::IsServiceName(*decoded)) {
    return ex.Reply(ErrorReply(404, "no service '" + name.substr(0, 64) + "'", "not_found"));
  }
  proto::Admin admin;
  admin.query = "purge";
  admin.args["service"] = *decoded;
  Ask(ex, Command::kAdmin, admin, ctx_->options.submit_timeout, AdminDocument);
}

void Api::AdminHistory(const Call& call, Exchange& ex) {
  proto::Admin admin;
  admin.query = "history";
  auto service = QueryParam(call.query, "service");
  if (service && !service->empty()) {
    if (!proto::IsServiceName(*service)) {
      return ex.Reply(ErrorReply(400, "'service' is not a valid service name", "invalid_argument"));
    }
    admin.args["service"] = *service;
  }
  auto range = QueryParam(call.query, "range");
  std::string r = range ? *range : "1h";
  if (r.empty()) r = "1h";
  if (r != "1h" && r != "24h" && r != "7d") {
    return ex.Reply(ErrorReply(400, "'range' must be 1h, 24h or 7d", "invalid_argument"));
  }
  admin.args["range"] = r;
  Ask(ex, Command::kAdmin, admin, ctx_->options.submit_timeout, AdminDocument);
}

}  // namespace rma::gateway
