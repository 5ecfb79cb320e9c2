// The admin routes: documents the broker builds, and actions on dead tasks and workers; see
// api.h and docs/http-api.md.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>
#include <cmath>

#include "common/version.h"
#include "gateway/api.h"
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

}  // namespace rma::gateway
