// Encoders and decoders for every protocol body; see codec.h and docs/protocol.md for the field
// tables.
#include "schemas/codec.h"

#include <array>
#include <limits>
#include <typeinfo>

#include "schemas/msgpack_io.h"

namespace rma::proto {

using internal::ForEachField;
using internal::ForEachItem;
using internal::MapWriter;
using internal::MissingField;
using internal::ReadBin;
using internal::ReadBool;
using internal::ReadDouble;
using internal::ReadI64;
using internal::ReadStr;
using internal::ReadStrMap;
using internal::ReadU32;
using internal::ReadU64;

namespace {
constexpr uint32_t kU32Max = std::numeric_limits<uint32_t>::max();
constexpr uint64_t kU64Max = std::numeric_limits<uint64_t>::max();
constexpr uint32_t kMaxPriority = 9;
constexpr uint32_t kMaxTier = 3;
constexpr uint32_t kMaxHttpStatus = 999;
constexpr uint32_t kMaxPort = 65535;

Status ReadTaskId(const msgpack::object& v, std::string_view field, TaskId* out) {
  uint64_t id = 0;
  RMA_RETURN_IF_ERROR(ReadU64(v, field, kU64Max, &id));
  if (id == 0) return Status::InvalidArgument("field '" + std::string(field) + "' must not be 0");
  *out = TaskId(id);
  return Status::Ok();
}

// ---- shared records ----

void WriteCapabilities(MapWriter& parent, const Capabilities& c) {
  parent.Key("capabilities");
  MapWriter w(parent.out());
  w.U64("cpu_cores", c.cpu_cores);
  w.OptStr("cpu_model", c.cpu_model);
  w.Double("ram_gb", c.ram_gb);
  w.OptDouble("ram_available_gb", c.ram_available_gb);
  w.OptDouble("disk_gb", c.disk_gb);
  w.OptDouble("disk_free_gb", c.disk_free_gb);
  w.Bool("has_gpu", c.has_gpu);
  w.OptStr("gpu_type", c.gpu_type);
  w.OptDouble("gpu_memory_gb", c.gpu_memory_gb);
  w.OptU64("gpu_count", c.gpu_count);
  w.OptStr("os", c.os);
  w.OptStr("arch", c.arch);
  w.OptStr("worker_type", c.worker_type);
  if (!c.labels.empty()) w.StrMap("labels", c.labels);
}

Status ReadCapabilities(const msgpack::object& v, const Limits& l, Capabilities* c) {
  return ForEachField(
      v, "capabilities", [&](std::string_view k, const msgpack::object& f) -> Status {
        if (k == "cpu_cores") return ReadU32(f, k, 1u << 20, &c->cpu_cores);
        if (k == "cpu_model") return ReadStr(f, k, l.max_string_bytes, &c->cpu_model);
        if (k == "ram_gb") return ReadDouble(f, k, &c->ram_gb);
        if (k == "ram_available_gb") return ReadDouble(f, k, &c->ram_available_gb);
        if (k == "disk_gb") return ReadDouble(f, k, &c->disk_gb);
        if (k == "disk_free_gb") return ReadDouble(f, k, &c->disk_free_gb);
        if (k == "has_gpu") return ReadBool(f, k, &c->has_gpu);
        if (k == "gpu_type") return ReadStr(f, k, l.max_string_bytes, &c->gpu_type);
        if (k == "gpu_memory_gb") return ReadDouble(f, k, &c->gpu_memory_gb);
        if (k == "gpu_count") return ReadU32(f, k, 1024, &c->gpu_count);
        if (k == "os") return ReadStr(f, k, l.max_string_bytes, &c->os);
        if (k == "arch") return ReadStr(f, k, l.max_string_bytes, &c->arch);
        if (k == "worker_type") {
          RMA_RETURN_IF_ERROR(ReadStr(f, k, l.max_string_bytes, &c->worker_type));
          if (!c->worker_type.empty() && c->worker_type != "gpu" && c->worker_type != "cpu" &&
              c->worker_type != "storage") {
            return Status::InvalidArgument("field 'worker_type' must be gpu, cpu or storage");
          }
          return Status::Ok();
        }
        if (k == "labels") return ReadStrMap(f, k, l.max_string_bytes, &c->labels);
        return Status::Ok();
      });
}

void WriteServices(MapWriter& parent, const std::vector<ServiceInfo>& services) {
  parent.Key("services");
  parent.packer().pack_array(static_cast<uint32_t>(services.size()));
  for (const ServiceInfo& s : services) {
    MapWriter w(parent.out());
    w.Str("name", s.name);
    w.OptStr("kind", s.kind);
  }
}

Status ReadServiceName(const msgpack::object& v, std::string_view field, const Limits& l,
                       std::string* name) {
  RMA_RETURN_IF_ERROR(ReadStr(v, field, std::min<size_t>(l.max_string_bytes, 128), name));
  if (name->empty()) return Status::InvalidArgument("field '" + std::string(field) + "' is empty");
  for (char ch : *name) {
    bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '-' || ch == '_' || ch == '.';
    if (!ok) {
      return Status::InvalidArgument("field '" + std::string(field) +
                                     "' may hold only letters, digits, '-', '_' and '.'");
    }
  }
  return Status::Ok();
}

Status ReadServices(const msgpack::object& v, const Limits& l, std::vector<ServiceInfo>* out) {
  out->clear();
  return ForEachItem(
      v, "services", l.max_array, [&](uint32_t, const msgpack::object& item) -> Status {
        ServiceInfo s;
        bool has_name = false;
        RMA_RETURN_IF_ERROR(ForEachField(
            item, "services[]", [&](std::string_view k, const msgpack::object& f) -> Status {
              if (k == "name") {
                has_name = true;
                return ReadServiceName(f, "services[].name", l, &s.name);
              }
              if (k == "kind") return ReadStr(f, "services[].kind", l.max_string_bytes, &s.kind);
              return Status::Ok();
            }));
        if (!has_name) return MissingField("services[]", "name");
        out->push_back(std::move(s));
        return Status::Ok();
      });
}

void WriteHttpRequest(MapWriter& parent, const HttpRequest& r) {
  parent.Key("request");
  MapWriter w(parent.out());
  w.Str("method", r.method);
  w.Str("path", r.path);
  w.OptStr("query", r.query);
  if (!r.headers.empty()) w.StrMap("headers", r.headers);
}

Status ReadHttpRequest(const msgpack::object& v, const Limits& l, HttpRequest* r) {
  bool has_method = false;
  RMA_RETURN_IF_ERROR(
      ForEachField(v, "request", [&](std::string_view k, const msgpack::object& f) -> Status {
        if (k == "method") {
          has_method = true;
          return ReadStr(f, "request.method", 16, &r->method);
        }
        if (k == "path") return ReadStr(f, "request.path", l.max_string_bytes, &r->path);
        if (k == "query") return ReadStr(f, "request.query", l.max_string_bytes, &r->query);
        if (k == "headers")
          return ReadStrMap(f, "request.headers", l.max_string_bytes, &r->headers);
        return Status::Ok();
      }));
  if (!has_method) return MissingField("request", "method");
  if (r->path.empty()) r->path = "/";
  if (r->path.front() != '/')
    return Status::InvalidArgument("field 'request.path' must start with '/'");
  return Status::Ok();
}

void WriteTaskView(MapWriter& w, const TaskView& t, bool with_result) {
  w.U64("task_id", t.task_id.value());
  w.Str("service", t.service);
  w.Str("status", TaskStatusName(t.status));
  w.U64("priority", t.priority);
  w.U64("attempts", t.attempts);
  w.U64("max_attempts", t.max_attempts);
  w.OptStr("worker_id", t.worker_id);
  if (with_result) w.OptBin("result", t.result);
  w.OptStr("content_type", t.content_type);
  w.OptU64("http_status", t.http_status);
  w.OptStr("error", t.error);
  w.OptStr("error_code", t.error_code);
  if (t.waiting_for_provider) w.Bool("waiting_for_provider", true);
  w.OptStr("idempotency_key", t.idempotency_key);
  w.I64("created_at_ms", t.created_at_ms);
  w.OptI64("started_at_ms", t.started_at_ms);
  w.OptI64("completed_at_ms", t.completed_at_ms);
}

Status ReadTaskView(const msgpack::object& v, const Limits& l, TaskView* t) {
  bool has_id = false;
  bool has_status = false;
  RMA_RETURN_IF_ERROR(
      ForEachField(v, "task", [&](std::string_view k, const msgpack::object& f) -> Status {
        if (k == "task_id") {
          has_id = true;
          return ReadTaskId(f, k, &t->task_id);
        }
        if (k == "service") return ReadStr(f, k, l.max_string_bytes, &t->service);
        if (k == "status") {
          has_status = true;
          std::string name;
          RMA_RETURN_IF_ERROR(ReadStr(f, k, 32, &name));
          auto parsed = ParseTaskStatus(name);
          if (!parsed)
            return Status::InvalidArgument("field 'status' has unknown value '" + name + "'");
          t->status = *parsed;
          return Status::Ok();
        }
        if (k == "priority") return ReadU32(f, k, kMaxPriority, &t->priority);
        if (k == "attempts") return ReadU32(f, k, kU32Max, &t->attempts);
        if (k == "max_attempts") return ReadU32(f, k, kU32Max, &t->max_attempts);
        if (k == "worker_id") return ReadStr(f, k, l.max_string_bytes, &t->worker_id);
        if (k == "result") return ReadBin(f, k, l.max_payload_bytes, &t->result);
        if (k == "content_type") return ReadStr(f, k, l.max_string_bytes, &t->content_type);
        if (k == "http_status") return ReadU32(f, k, kMaxHttpStatus, &t->http_status);
        if (k == "error") return ReadStr(f, k, l.max_string_bytes, &t->error);
        if (k == "error_code") return ReadStr(f, k, 64, &t->error_code);
        if (k == "waiting_for_provider") return ReadBool(f, k, &t->waiting_for_provider);
        if (k == "idempotency_key") return ReadStr(f, k, l.max_string_bytes, &t->idempotency_key);
        if (k == "created_at_ms") return ReadI64(f, k, &t->created_at_ms);
        if (k == "started_at_ms") return ReadI64(f, k, &t->started_at_ms);
        if (k == "completed_at_ms") return ReadI64(f, k, &t->completed_at_ms);
        return Status::Ok();
      }));
  if (!has_id) return MissingField("task", "task_id");
  if (!has_status) return MissingField("task", "status");
  return Status::Ok();
}

// Bounds the total number of objects and the nesting depth of a body before the tree decoder
// allocates for it: every msgpack object costs the tree decoder ~24 bytes even when it is one byte
// on the wire.
class ShapeCheck : public msgpack::null_visitor {
 public:
  explicit ShapeCheck(const Limits& l) : limits_(l) {}
  bool visit_nil() { return Count(); }
  bool visit_boolean(bool) { return Count(); }
  bool visit_positive_integer(uint64_t) { return Count(); }
  bool visit_negative_integer(int64_t) { return Count(); }
  bool visit_float32(float) { return Count(); }
  bool visit_float64(double) { return Count(); }
  bool visit_str(const char*, uint32_t) { return Count(); }
  bool visit_bin(const char*, uint32_t) { return Count(); }
  bool visit_ext(const char*, uint32_t) { return Count(); }
  bool start_array(uint32_t n) { return Count() && Open(n <= limits_.max_array); }
  bool end_array() { return Close(); }
  bool start_map(uint32_t n) { return Count() && Open(n <= limits_.max_map); }
  bool end_map() { return Close(); }
  bool over_limit() const { return over_limit_; }

 private:
  bool Count() {
    if (++objects_ > limits_.max_objects) over_limit_ = true;
    return !over_limit_;
  }
  bool Open(bool size_ok) {
    if (!size_ok || ++depth_ > limits_.max_depth) over_limit_ = true;
    return !over_limit_;
  }
  bool Close() {
    --depth_;
    return true;
  }
  const Limits& limits_;
  size_t objects_ = 0;
  size_t depth_ = 0;
  bool over_limit_ = false;
};

// Frames smaller than this cannot make the tree decoder allocate more than ~24x their size; larger
// ones get the counting pre-pass first.
constexpr size_t kShapeCheckThreshold = 64 * 1024;

}  // namespace

// ---- Decoder core ----

Result<msgpack::object> Decoder::Parse(std::string_view body) {
  if (body.empty()) return Status::InvalidArgument("empty body");
  if (body.size() > limits_.max_frame_bytes) {
    return Status::InvalidArgument("body of " + std::to_string(body.size()) +
                                   " bytes exceeds the limit of " +
                                   std::to_string(limits_.max_frame_bytes));
  }
  zone_.clear();
  try {
    if (body.size() > kShapeCheckThreshold) {
      ShapeCheck check(limits_);
      size_t offset = 0;
      bool parsed = msgpack::parse(body.data(), body.size(), offset, check);
      if (check.over_limit()) {
        return Status::InvalidArgument("body exceeds the msgpack object, size or depth limits");
      }
      if (!parsed) return Status::InvalidArgument("malformed msgpack body");
    }
    size_t string_limit = std::max(limits_.max_string_bytes, limits_.max_payload_bytes);
    msgpack::unpack_limit limit(limits_.max_array, limits_.max_map, string_limit,
                                limits_.max_payload_bytes,
                                /*ext=*/0, limits_.max_depth);
    size_t offset = 0;
    bool referenced = false;
    msgpack::object obj = msgpack::unpack(zone_, body.data(), body.size(), offset, referenced,
                                          nullptr, nullptr, limit);
    if (offset != body.size())
      return Status::InvalidArgument("trailing bytes after the msgpack body");
    return obj;
  } catch (const msgpack::insufficient_bytes&) {
    return Status::InvalidArgument("truncated msgpack body");
  } catch (const msgpack::size_overflow&) {
    return Status::InvalidArgument("body exceeds the msgpack size or depth limits");
  } catch (const msgpack::unpack_error& e) {
    return Status::InvalidArgument(std::string("malformed msgpack body: ") + e.what());
  } catch (const std::bad_cast&) {  // msgpack::type_error
    return Status::InvalidArgument("msgpack value of an unexpected type");
  } catch (const std::bad_alloc&) {
    return Status::ResourceExhausted("out of memory decoding a body");
  }
}

#define RMA_DECODE_ROOT(what)                                           \
  *out = {};                                                            \
  auto parsed_root = Parse(body);                                       \
  if (!parsed_root.ok()) return parsed_root.status().WithContext(what); \
  const msgpack::object& root = *parsed_root;                           \
  const Limits& l = limits_;                                            \
  (void)l

// ---- READY ----

void Encode(const Ready& m, std::string* out) {
  MapWriter w(out);
  w.Str("worker_id", m.worker_id);
  w.OptStr("name", m.name);
  w.OptStr("token", m.token);
  w.OptStr("agent_version", m.agent_version);
  w.U64("slots", m.slots);
  if (m.simulated) w.Bool("simulated", true);
  WriteCapabilities(w, m.capabilities);
  WriteServices(w, m.services);
  if (!m.running.empty()) {
    w.Key("running");
    w.packer().pack_array(static_cast<uint32_t>(m.running.size()));
    for (const RunningTask& r : m.running) {
      MapWriter rw(out);
      rw.U64("task_id", r.task_id.value());
      rw.U64("attempt", r.attempt);
    }
  }
}

Status Decoder::Decode(std::string_view body, Ready* out) {
  RMA_DECODE_ROOT("READY");
  bool has_id = false;
  bool has_caps = false;
  RMA_RETURN_IF_ERROR(
      ForEachField(root, "READY", [&](std::string_view k, const msgpack::object& f) -> Status {
        if (k == "worker_id") {
          has_id = true;
          return ReadStr(f, k, 128, &out->worker_id);
        }
        if (k == "name") return ReadStr(f, k, 256, &out->name);
        if (k == "token") return ReadStr(f, k, l.max_string_bytes, &out->token);
        if (k == "agent_version") return ReadStr(f, k, 64, &out->agent_version);
        if (k == "slots") return ReadU32(f, k, 1u << 16, &out->slots);
        if (k == "simulated") return ReadBool(f, k, &out->simulated);
        if (k == "capabilities") {
          has_caps = true;
          return ReadCapabilities(f, l, &out->capabilities);
        }
        if (k == "services") return ReadServices(f, l, &out->services);
        if (k == "running") {
          return ForEachItem(
              f, k, l.max_array, [&](uint32_t, const msgpack::object& item) -> Status {
                RunningTask r;
                bool has_task = false;
                RMA_RETURN_IF_ERROR(
                    ForEachField(item, "running[]",
                                 [&](std::string_view rk, const msgpack::object& rf) -> Status {
                                   if (rk == "task_id") {
                                     has_task = true;
                                     return ReadTaskId(rf, "running[].task_id", &r.task_id);
                                   }
                                   if (rk == "attempt")
                                     return ReadU32(rf, "running[].attempt", kU32Max, &r.attempt);
                                   return Status::Ok();
                                 }));
                if (!has_task) return MissingField("running[]", "task_id");
                out->running.push_back(r);
                return Status::Ok();
              });
        }
        return Status::Ok();
      }));
  if (!has_id || out->worker_id.empty()) return MissingField("READY", "worker_id");
  if (!has_caps) return MissingField("READY", "capabilities");
  if (out->slots == 0) return Status::InvalidArgument("READY: field 'slots' must be at least 1");
  return Status::Ok();
}

// ---- WELCOME ----

void Encode(const Welcome& m, std::string* out) {
  MapWriter w(out);
  w.Str("worker_id", m.worker_id);
  w.U64("tier", m.tier);
  w.U64("heartbeat_ms", m.heartbeat_ms);
  w.U64("liveness", m.liveness);
  w.Key("recommendations");
  w.packer().pack_array(static_cast<uint32_t>(m.recommendations.size()));
  for (const Recommendation& r : m.recommendations) {
    MapWriter rw(out);
    rw.Str("service", r.service);
    rw.U64("tier", r.tier);
    rw.OptStr("image", r.image);
    rw.OptU64("port", r.port);
    rw.OptStr("reason", r.reason);
  }
}

Status Decoder::Decode(std::string_view body, Welcome* out) {
  RMA_DECODE_ROOT("WELCOME");
  bool has_tier = false;
  bool has_hb = false;
  RMA_RETURN_IF_ERROR(
      ForEachField(root, "WELCOME", [&](std::string_view k, const msgpack::object& f) -> Status {
        if (k == "worker_id") return ReadStr(f, k, 128, &out->worker_id);
        if (k == "tier") {
          has_tier = true;
          return ReadU32(f, k, kMaxTier, &out->tier);
        }
        if (k == "heartbeat_ms") {
          has_hb = true;
          return ReadU32(f, k, kU32Max, &out->heartbeat_ms);
        }
        if (k == "liveness") return ReadU32(f, k, 1000, &out->liveness);
        if (k == "recommendations") {
          return ForEachItem(
              f, k, l.max_array, [&](uint32_t, const msgpack::object& item) -> Status {
                Recommendation r;
                RMA_RETURN_IF_ERROR(ForEachField(
                    item, "recommendations[]",
                    [&](std::string_view rk, const msgpack::object& rf) -> Status {
                      if (rk == "service")
                        return ReadStr(rf, "recommendations[].service", 128, &r.service);
                      if (rk == "tier")
                        return ReadU32(rf, "recommendations[].tier", kMaxTier, &r.tier);
                      if (rk == "image")
                        return ReadStr(rf, "recommendations[].image", l.max_string_bytes, &r.image);
                      if (rk == "port")
                        return ReadU32(rf, "recommendations[].port", kMaxPort, &r.port);
                      if (rk == "reason")
                        return ReadStr(rf, "recommendations[].reason", l.max_string_bytes,
                                       &r.reason);
                      return Status::Ok();
                    }));
                out->recommendations.push_back(std::move(r));
                return Status::Ok();
              });
        }
        return Status::Ok();
      }));
  if (!has_tier) return MissingField("WELCOME", "tier");
  if (!has_hb || out->heartbeat_ms == 0) return MissingField("WELCOME", "heartbeat_ms");
  if (out->liveness == 0)
    return Status::InvalidArgument("WELCOME: field 'liveness' must be at least 1");
  return Status::Ok();
}

// ---- TASK ----

void Encode(const TaskAssignment& m, std::string* out) {
  MapWriter w(out);
  w.U64("task_id", m.task_id.value());
  w.U64("attempt", m.attempt);
  w.Str("service", m.service);
  w.Bin("payload", m.payload);
  w.OptStr("content_type", m.content_type);
  w.OptU64("timeout_ms", m.timeout_ms);
  if (m.request) WriteHttpRequest(w, *m.request);
}

Status Decoder::Decode(std::string_view body, TaskAssignment* out) {
  RMA_DECODE_ROOT("TASK");
  bool has_id = false;
  bool has_service = false;
  RMA_RETURN_IF_ERROR(
      ForEachField(root, "TASK", [&](std::string_view k, const msgpack::object& f) -> Status {
        if (k == "task_id") {
          has_id = true;
          return ReadTaskId(f, k, &out->task_id);
        }
        if (k == "attempt") return ReadU32(f, k, kU32Max, &out->attempt);
        if (k == "service") {
          has_service = true;
          return ReadServiceName(f, k, l, &out->service);
        }
        if (k == "payload") return ReadBin(f, k, l.max_payload_bytes, &out->payload);
        if (k == "content_type") return ReadStr(f, k, l.max_string_bytes, &out->content_type);
        if (k == "timeout_ms") return ReadU32(f, k, kU32Max, &out->timeout_ms);
        if (k == "request") {
          out->request.emplace();
          return ReadHttpRequest(f, l, &*out->request);
        }
        return Status::Ok();
      }));
  if (!has_id) return MissingField("TASK", "task_id");
  if (!has_service) return MissingField("TASK", "service");
  return Status::Ok();
}

// ---- RESULT ----

void Encode(const TaskResult& m, std::string* out) {
  MapWriter w(out);
  w.U64("task_id", m.task_id.value());
  w.U64("attempt", m.attempt);
  w.Str("outcome", OutcomeName(m.outcome));
  w.OptBin("result", m.result);
  w.OptStr("content_type", m.content_type);
  w.OptU64("http_status", m.http_status);
  w.OptStr("error", m.error);
  if (!m.retryable) w.Bool("retryable", false);
  w.OptU64("run_ms", m.run_ms);
}

Status Decoder::Decode(std::string_view body, TaskResult* out) {
  RMA_DECODE_ROOT("RESULT");
  bool has_id = false;
  bool has_outcome = false;
  RMA_RETURN_IF_ERROR(
      ForEachField(root, "RESULT", [&](std::string_view k, const msgpack::object& f) -> Status {
        if (k == "task_id") {
          has_id = true;
          return ReadTaskId(f, k, &out->task_id);
        }
        if (k == "attempt") return ReadU32(f, k, kU32Max, &out->attempt);
        if (k == "outcome") {
          has_outcome = true;
          std::string name;
          RMA_RETURN_IF_ERROR(ReadStr(f, k, 16, &name));
          if (name == "ok") {
            out->outcome = Outcome::kOk;
          } else if (name == "error") {
            out->outcome = Outcome::kError;
          } else if (name == "cancelled") {
            out->outcome = Outcome::kCancelled;
          } else {
            return Status::InvalidArgument("field 'outcome' must be ok, error or cancelled");
          }
          return Status::Ok();
        }
        if (k == "result") return ReadBin(f, k, l.max_payload_bytes, &out->result);
        if (k == "content_type") return ReadStr(f, k, l.max_string_bytes, &out->content_type);
        if (k == "http_status") return ReadU32(f, k, kMaxHttpStatus, &out->http_status);
        if (k == "error") return ReadStr(f, k, l.max_string_bytes, &out->error);
        if (k == "retryable") return ReadBool(f, k, &out->retryable);
        if (k == "run_ms") return ReadU32(f, k, kU32Max, &out->run_ms);
        return Status::Ok();
      }));
  if (!has_id) return MissingField("RESULT", "task_id");
  if (!has_outcome) return MissingField("RESULT", "outcome");
  return Status::Ok();
}

// ---- PROGRESS ----

void Encode(const Progress& m, std::string* out) {
  MapWriter w(out);
  w.U64("task_id", m.task_id.value());
  w.U64("attempt", m.attempt);
  w.OptDouble("fraction", m.fraction);
  w.OptStr("message", m.message);
}

Status Decoder::Decode(std::string_view body, Progress* out) {
  RMA_DECODE_ROOT("PROGRESS");
  bool has_id = false;
  RMA_RETURN_IF_ERROR(
      ForEachField(root, "PROGRESS", [&](std::string_view k, const msgpack::object& f) -> Status {
        if (k == "task_id") {
          has_id = true;
          return ReadTaskId(f, k, &out->task_id);
        }
        if (k == "attempt") return ReadU32(f, k, kU32Max, &out->attempt);
        if (k == "fraction") return ReadDouble(f, k, &out->fraction);
        if (k == "message") return ReadStr(f, k, l.max_string_bytes, &out->message);
        return Status::Ok();
      }));
  if (!has_id) return MissingField("PROGRESS", "task_id");
  return Status::Ok();
}

// ---- CANCEL (broker -> worker) ----

void Encode(const CancelAttempt& m, std::string* out) {
  MapWriter w(out);
  w.U64("task_id", m.task_id.value());
  w.U64("attempt", m.attempt);
  w.OptStr("reason", m.reason);
}

Status Decoder::Decode(std::string_view body, CancelAttempt* out) {
  RMA_DECODE_ROOT("CANCEL");
  bool has_id = false;
  RMA_RETURN_IF_ERROR(
      ForEachField(root, "CANCEL", [&](std::string_view k, const msgpack::object& f) -> Status {
        if (k == "task_id") {
          has_id = true;
          return ReadTaskId(f, k, &out->task_id);
        }
        if (k == "attempt") return ReadU32(f, k, kU32Max, &out->attempt);
        if (k == "reason") return ReadStr(f, k, l.max_string_bytes, &out->reason);
        return Status::Ok();
      }));
  if (!has_id) return MissingField("CANCEL", "task_id");
  return Status::Ok();
}

// ---- HEARTBEAT ----

void Encode(const Heartbeat& m, std::string* out) {
  MapWriter w(out);
  w.Double("load", m.load);
  w.U64("in_flight", m.in_flight);
  w.OptDouble("ram_available_gb", m.ram_available_gb);
  w.OptDouble("gpu_util", m.gpu_util);
}

Status Decoder::Decode(std::string_view body, Heartbeat* out) {
  RMA_DECODE_ROOT("HEARTBEAT");
  return ForEachField(root, "HEARTBEAT",
                      [&](std::string_view k, const msgpack::object& f) -> Status {
                        if (k == "load") return ReadDouble(f, k, &out->load);
                        if (k == "in_flight") return ReadU32(f, k, kU32Max, &out->in_flight);
                        if (k == "ram_available_gb")
                          return ReadDouble(f, k, &out->ram_available_gb);
                        if (k == "gpu_util") return ReadDouble(f, k, &out->gpu_util);
                        return Status::Ok();
                      });
}

// ---- MANIFEST ----

void Encode(const Manifest& m, std::string* out) {
  MapWriter w(out);
  WriteServices(w, m.services);
  w.OptU64("slots", m.slots);
}

Status Decoder::Decode(std::string_view body, Manifest* out) {
  RMA_DECODE_ROOT("MANIFEST");
  bool has_services = false;
  RMA_RETURN_IF_ERROR(
      ForEachField(root, "MANIFEST", [&](std::string_view k, const msgpack::object& f) -> Status {
        if (k == "services") {
          has_services = true;
          return ReadServices(f, l, &out->services);
        }
        if (k == "slots") return ReadU32(f, k, 1u << 16, &out->slots);
        return Status::Ok();
      }));
  if (!has_services) return MissingField("MANIFEST", "services");
  return Status::Ok();
}

// ---- DISCONNECT ----

void Encode(const Disconnect& m, std::string* out) {
  MapWriter w(out);
  w.OptStr("reason", m.reason);
  w.Bool("reconnect", m.reconnect);
}

Status Decoder::Decode(std::string_view body, Disconnect* out) {
  RMA_DECODE_ROOT("DISCONNECT");
  return ForEachField(root, "DISCONNECT",
                      [&](std::string_view k, const msgpack::object& f) -> Status {
                        if (k == "reason") return ReadStr(f, k, l.max_string_bytes, &out->reason);
                        if (k == "reconnect") return ReadBool(f, k, &out->reconnect);
                        return Status::Ok();
                      });
}

// ---- SUBMIT ----

void Encode(const Submit& m, std::string* out) {
  MapWriter w(out);
  w.U64("ref", m.ref);
  w.Str("service", m.service);
  w.Bin("payload", m.payload);
  w.OptStr("content_type", m.content_type);
  w.OptU64("priority", m.priority);
  w.OptU64("max_attempts", m.max_attempts);
  w.OptU64("timeout_ms", m.timeout_ms);
  w.OptStr("idempotency_key", m.idempotency_key);
  w.OptU64("min_tier", m.min_tier);
  w.OptDouble("min_gpu_memory_gb", m.min_gpu_memory_gb);
  w.OptI64("run_at_ms", m.run_at_ms);
  if (m.mode == SubmitMode::kSync) w.Str("mode", "sync");
  if (m.request) WriteHttpRequest(w, *m.request);
}

Status Decoder::Decode(std::string_view body, Submit* out) {
  RMA_DECODE_ROOT("SUBMIT");
  bool has_service = false;
  RMA_RETURN_IF_ERROR(
      ForEachField(root, "SUBMIT", [&](std::string_view k, const msgpack::object& f) -> Status {
        if (k == "ref") return ReadU64(f, k, kU64Max, &out->ref);
        if (k == "service") {
          has_service = true;
          return ReadServiceName(f, k, l, &out->service);
        }
        if (k == "payload") return ReadBin(f, k, l.max_payload_bytes, &out->payload);
        if (k == "content_type") return ReadStr(f, k, 256, &out->content_type);
        if (k == "priority") return ReadU32(f, k, kMaxPriority, &out->priority);
        if (k == "max_attempts") return ReadU32(f, k, 100, &out->max_attempts);
        if (k == "timeout_ms") return ReadU32(f, k, kU32Max, &out->timeout_ms);
        if (k == "idempotency_key") return ReadStr(f, k, 256, &out->idempotency_key);
        if (k == "min_tier") return ReadU32(f, k, kMaxTier, &out->min_tier);
        if (k == "min_gpu_memory_gb") {
          RMA_RETURN_IF_ERROR(ReadDouble(f, k, &out->min_gpu_memory_gb));
          if (out->min_gpu_memory_gb < 0)
            return Status::InvalidArgument("field 'min_gpu_memory_gb' is negative");
          return Status::Ok();
        }
        if (k == "run_at_ms") return ReadI64(f, k, &out->run_at_ms);
        if (k == "mode") {
          std::string mode;
          RMA_RETURN_IF_ERROR(ReadStr(f, k, 16, &mode));
          if (mode == "async") {
            out->mode = SubmitMode::kAsync;
          } else if (mode == "sync") {
            out->mode = SubmitMode::kSync;
          } else {
            return Status::InvalidArgument("field 'mode' must be async or sync");
          }
          return Status::Ok();
        }
        if (k == "request") {
          out->request.emplace();
          return ReadHttpRequest(f, l, &*out->request);
        }
        return Status::Ok();
      }));
  if (!has_service) return MissingField("SUBMIT", "service");
  return Status::Ok();
}

// ---- ACCEPTED ----

void Encode(const Accepted& m, std::string* out) {
  MapWriter w(out);
  w.U64("ref", m.ref);
  w.U64("task_id", m.task_id.value());
  w.Str("status", TaskStatusName(m.status));
  if (m.duplicate) w.Bool("duplicate", true);
  if (m.waiting_for_provider) w.Bool("waiting_for_provider", true);
}

Status Decoder::Decode(std::string_view body, Accepted* out) {
  RMA_DECODE_ROOT("ACCEPTED");
  bool has_id = false;
  RMA_RETURN_IF_ERROR(
      ForEachField(root, "ACCEPTED", [&](std::string_view k, const msgpack::object& f) -> Status {
        if (k == "ref") return ReadU64(f, k, kU64Max, &out->ref);
        if (k == "task_id") {
          has_id = true;
          return ReadTaskId(f, k, &out->task_id);
        }
        if (k == "status") {
          std::string name;
          RMA_RETURN_IF_ERROR(ReadStr(f, k, 32, &name));
          auto parsed = ParseTaskStatus(name);
          if (!parsed)
            return Status::InvalidArgument("field 'status' has unknown value '" + name + "'");
          out->status = *parsed;
          return Status::Ok();
        }
        if (k == "duplicate") return ReadBool(f, k, &out->duplicate);
        if (k == "waiting_for_provider") return ReadBool(f, k, &out->waiting_for_provider);
        return Status::Ok();
      }));
  if (!has_id) return MissingField("ACCEPTED", "task_id");
  return Status::Ok();
}

// ---- TASK_INFO ----

void Encode(const TaskInfo& m, std::string* out) {
  MapWriter w(out);
  w.U64("ref", m.ref);
  w.Key("task");
  MapWriter tw(out);
  WriteTaskView(tw, m.task, /*with_result=*/true);
}

Status Decoder::Decode(std::string_view body, TaskInfo* out) {
  RMA_DECODE_ROOT("TASK_INFO");
  bool has_task = false;
  RMA_RETURN_IF_ERROR(
      ForEachField(root, "TASK_INFO", [&](std::string_view k, const msgpack::object& f) -> Status {
        if (k == "ref") return ReadU64(f, k, kU64Max, &out->ref);
        if (k == "task") {
          has_task = true;
          return ReadTaskView(f, l, &out->task);
        }
        return Status::Ok();
      }));
  if (!has_task) return MissingField("TASK_INFO", "task");
  return Status::Ok();
}

// ---- GET ----

void Encode(const Get& m, std::string* out) {
  MapWriter w(out);
  w.U64("ref", m.ref);
  w.U64("task_id", m.task_id.value());
  w.OptU64("wait_ms", m.wait_ms);
}

Status Decoder::Decode(std::string_view body, Get* out) {
  RMA_DECODE_ROOT("GET");
  bool has_id = false;
  RMA_RETURN_IF_ERROR(
      ForEachField(root, "GET", [&](std::string_view k, const msgpack::object& f) -> Status {
        if (k == "ref") return ReadU64(f, k, kU64Max, &out->ref);
        if (k == "task_id") {
          has_id = true;
          return ReadTaskId(f, k, &out->task_id);
        }
        if (k == "wait_ms") return ReadU32(f, k, kU32Max, &out->wait_ms);
        return Status::Ok();
      }));
  if (!has_id) return MissingField("GET", "task_id");
  return Status::Ok();
}

// ---- CANCEL_TASK ----

void Encode(const CancelTask& m, std::string* out) {
  MapWriter w(out);
  w.U64("ref", m.ref);
  w.U64("task_id", m.task_id.value());
}

Status Decoder::Decode(std::string_view body, CancelTask* out) {
  RMA_DECODE_ROOT("CANCEL_TASK");
  bool has_id = false;
  RMA_RETURN_IF_ERROR(ForEachField(root, "CANCEL_TASK",
                                   [&](std::string_view k, const msgpack::object& f) -> Status {
                                     if (k == "ref") return ReadU64(f, k, kU64Max, &out->ref);
                                     if (k == "task_id") {
                                       has_id = true;
                                       return ReadTaskId(f, k, &out->task_id);
                                     }
                                     return Status::Ok();
                                   }));
  if (!has_id) return MissingField("CANCEL_TASK", "task_id");
  return Status::Ok();
}

// ---- LIST / TASK_LIST ----

void Encode(const List& m, std::string* out) {
  MapWriter w(out);
  w.U64("ref", m.ref);
  w.OptStr("service", m.service);
  w.OptStr("status", m.status);
  w.U64("limit", m.limit);
}

Status Decoder::Decode(std::string_view body, List* out) {
  RMA_DECODE_ROOT("LIST");
  return ForEachField(root, "LIST", [&](std::string_view k, const msgpack::object& f) -> Status {
    if (k == "ref") return ReadU64(f, k, kU64Max, &out->ref);
    if (k == "service") return ReadStr(f, k, 128, &out->service);
    if (k == "status") return ReadStr(f, k, 32, &out->status);
    if (k == "limit") return ReadU32(f, k, 10000, &out->limit);
    return Status::Ok();
  });
}

void Encode(const TaskList& m, std::string* out) {
  MapWriter w(out);
  w.U64("ref", m.ref);
  w.Key("tasks");
  w.packer().pack_array(static_cast<uint32_t>(m.tasks.size()));
  for (const TaskView& t : m.tasks) {
    MapWriter tw(out);
    WriteTaskView(tw, t, /*with_result=*/false);
  }
}

Status Decoder::Decode(std::string_view body, TaskList* out) {
  RMA_DECODE_ROOT("TASK_LIST");
  return ForEachField(root, "TASK_LIST",
                      [&](std::string_view k, const msgpack::object& f) -> Status {
                        if (k == "ref") return ReadU64(f, k, kU64Max, &out->ref);
                        if (k == "tasks") {
                          return ForEachItem(f, k, l.max_array,
                                             [&](uint32_t, const msgpack::object& item) -> Status {
                                               TaskView t;
                                               RMA_RETURN_IF_ERROR(ReadTaskView(item, l, &t));
                                               out->tasks.push_back(std::move(t));
                                               return Status::Ok();
                                             });
                        }
                        return Status::Ok();
                      });
}

// ---- ADMIN / ADMIN_REPLY ----

void Encode(const Admin& m, std::string* out) {
  MapWriter w(out);
  w.U64("ref", m.ref);
  w.Str("query", m.query);
  w.OptStr("task_id", m.task_id);
  w.OptStr("worker_id", m.worker_id);
}

Status Decoder::Decode(std::string_view body, Admin* out) {
  RMA_DECODE_ROOT("ADMIN");
  bool has_query = false;
  RMA_RETURN_IF_ERROR(
      ForEachField(root, "ADMIN", [&](std::string_view k, const msgpack::object& f) -> Status {
        if (k == "ref") return ReadU64(f, k, kU64Max, &out->ref);
        if (k == "query") {
          has_query = true;
          return ReadStr(f, k, 64, &out->query);
        }
        if (k == "task_id") return ReadStr(f, k, 32, &out->task_id);
        if (k == "worker_id") return ReadStr(f, k, 128, &out->worker_id);
        return Status::Ok();
      }));
  if (!has_query) return MissingField("ADMIN", "query");
  return Status::Ok();
}

void Encode(const AdminReply& m, std::string* out) {
  MapWriter w(out);
  w.U64("ref", m.ref);
  w.Key("data");
  if (m.data.empty()) {
    w.packer().pack_nil();
  } else {
    out->append(m.data);  // already msgpack
  }
}

Status Decoder::Decode(std::string_view body, AdminReply* out) {
  RMA_DECODE_ROOT("ADMIN_REPLY");
  return ForEachField(root, "ADMIN_REPLY",
                      [&](std::string_view k, const msgpack::object& f) -> Status {
                        if (k == "ref") return ReadU64(f, k, kU64Max, &out->ref);
                        if (k == "data") {
                          internal::StringSink sink(&out->data);
                          msgpack::packer<internal::StringSink> packer(sink);
                          packer.pack(f);
                        }
                        return Status::Ok();
                      });
}

// ---- ERROR ----

void Encode(const Error& m, std::string* out) {
  MapWriter w(out);
  w.OptU64("ref", m.ref);
  w.Str("code", m.code);
  w.Str("message", m.message);
  if (!m.available_services.empty()) {
    w.Key("available_services");
    w.packer().pack_array(static_cast<uint32_t>(m.available_services.size()));
    for (const std::string& s : m.available_services) w.packer().pack(s);
  }
  w.OptStr("suggestion", m.suggestion);
}

Status Decoder::Decode(std::string_view body, Error* out) {
  RMA_DECODE_ROOT("ERROR");
  bool has_code = false;
  RMA_RETURN_IF_ERROR(
      ForEachField(root, "ERROR", [&](std::string_view k, const msgpack::object& f) -> Status {
        if (k == "ref") return ReadU64(f, k, kU64Max, &out->ref);
        if (k == "code") {
          has_code = true;
          return ReadStr(f, k, 64, &out->code);
        }
        if (k == "message") return ReadStr(f, k, l.max_string_bytes, &out->message);
        if (k == "available_services") {
          return ForEachItem(f, k, l.max_array,
                             [&](uint32_t, const msgpack::object& item) -> Status {
                               std::string s;
                               RMA_RETURN_IF_ERROR(ReadStr(item, "available_services[]", 128, &s));
                               out->available_services.push_back(std::move(s));
                               return Status::Ok();
                             });
        }
        if (k == "suggestion") return ReadStr(f, k, l.max_string_bytes, &out->suggestion);
        return Status::Ok();
      }));
  if (!has_code) return MissingField("ERROR", "code");
  return Status::Ok();
}

#undef RMA_DECODE_ROOT

}  // namespace rma::proto
