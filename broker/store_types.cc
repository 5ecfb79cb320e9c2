// See store_types.h.
#include "broker/store_types.h"

namespace rma::broker {

proto::TaskView ViewOf(const TaskRecord& r, bool with_result) {
  proto::TaskView v;
  v.task_id = r.id;
  v.service = r.service;
  v.status = r.status;
  v.priority = r.priority;
  v.attempts = r.attempts;
  v.max_attempts = r.max_attempts;
  v.worker_id = r.worker_id;
  if (with_result) v.result = r.result;
  v.content_type = r.result_content_type;
  v.http_status = r.http_status;
  v.error = r.error;
  v.error_code = r.error_code;
  v.idempotency_key = r.idempotency_key;
  v.owner = r.owner;
  v.verified = r.verified;
  v.created_at_ms = ToUnixMs(r.created_at);
  v.started_at_ms = r.started_at.time_since_epoch().count() > 0 ? ToUnixMs(r.started_at) : 0;
  v.completed_at_ms = r.completed_at.time_since_epoch().count() > 0 ? ToUnixMs(r.completed_at) : 0;
  return v;
}

void AddDetail(const TaskRecord& r, proto::TaskView* v) {
  v->payload = r.payload;  // shared
  v->payload_content_type = r.content_type;
  v->payload_bytes = r.payload.size();
  v->result_bytes = r.result.size();
  v->attempt_log = r.attempt_log;
}

}  // namespace rma::broker
