// Round trips of every protocol message through Encode and Decoder, plus the validation rules of
// each.
#include "protocol/codec.h"
#include "protocol/admin_reply.h"

#include <gtest/gtest.h>

#include "protocol/msgpack_io.h"

namespace rma::proto {
namespace {

template <typename T>
T RoundTrip(const T& in) {
  std::string bytes = Encode(in);
  Decoder decoder;
  T out;
  Status s = decoder.Decode(bytes, &out);
  EXPECT_TRUE(s.ok()) << s.ToString();
  return out;
}

Capabilities GpuCaps() {
  Capabilities c;
  c.cpu_cores = 16;
  c.cpu_model = "AMD Ryzen 9";
  c.ram_gb = 64;
  c.ram_available_gb = 40.5;
  c.disk_gb = 1000;
  c.disk_free_gb = 512.25;
  c.has_gpu = true;
  c.gpu_type = "NVIDIA RTX 4090";
  c.gpu_memory_gb = 24;
  c.gpu_count = 1;
  c.os = "Linux 6.1";
  c.arch = "x86_64";
  c.worker_type = "gpu";
  c.labels = {{"site", "home"}, {"owner", "ana"}};
  return c;
}

TEST(CodecTest, ReadyRoundTripsWithEveryField) {
  Ready r;
  r.worker_id = "w-0123456789abcdef";
  r.name = "ana-desktop";
  r.token = "secret";
  r.agent_version = "0.1.0";
  r.slots = 4;
  r.simulated = true;
  r.capabilities = GpuCaps();
  r.services = {{"rag", "http"}, {"vllm", "http"}, {"echo", "builtin"}};
  r.running = {{TaskId(42), 2}, {TaskId(43), 1}};
  EXPECT_EQ(RoundTrip(r), r);
}

TEST(CodecTest, WelcomeRoundTrips) {
  Welcome w;
  w.worker_id = "w-1";
  w.tier = 1;
  w.heartbeat_ms = 30000;
  w.liveness = 3;
  w.recommendations = {
      {"vllm", 1, "vllm/vllm-openai:latest", 8000, "3 tasks waiting, no provider"}};
  EXPECT_EQ(RoundTrip(w), w);
}

TEST(CodecTest, TaskAssignmentRoundTripsWithBinaryPayloadAndRequest) {
  TaskAssignment t;
  t.task_id = TaskId(1'700'000'000'000'001);
  t.attempt = 3;
  t.service = "rag";
  t.payload = std::string("\x00\x01\xff{}", 5);
  t.content_type = "application/json";
  t.timeout_ms = 30000;
  t.request = HttpRequest{"POST", "/query", "k=5", {{"accept", "application/json"}}};
  EXPECT_EQ(RoundTrip(t), t);
}

TEST(CodecTest, TaskResultRoundTripsEveryOutcome) {
  for (Outcome o : {Outcome::kOk, Outcome::kError, Outcome::kCancelled}) {
    TaskResult r;
    r.task_id = TaskId(9);
    r.attempt = 1;
    r.outcome = o;
    r.result = "hello";
    r.content_type = "text/plain";
    r.http_status = 200;
    r.error = o == Outcome::kOk ? "" : "backend said no";
    r.retryable = o != Outcome::kError;
    r.run_ms = 12;
    EXPECT_EQ(RoundTrip(r), r);
  }
}

TEST(CodecTest, SmallMessagesRoundTrip) {
  EXPECT_EQ(RoundTrip(Progress{TaskId(5), 2, 0.5, "half way"}),
            (Progress{TaskId(5), 2, 0.5, "half way"}));
  EXPECT_EQ(RoundTrip(CancelAttempt{TaskId(5), 2, "timeout"}),
            (CancelAttempt{TaskId(5), 2, "timeout"}));
  EXPECT_EQ(RoundTrip(Heartbeat{0.75, 3, 12.5, 0.9}), (Heartbeat{0.75, 3, 12.5, 0.9}));
  Manifest m{{{"ocr", "exec"}}, 8};
  EXPECT_EQ(RoundTrip(m), m);
  EXPECT_EQ(RoundTrip(Disconnect{"simulated workers are not allowed", false}),
            (Disconnect{"simulated workers are not allowed", false}));
}

TEST(CodecTest, PartialsRoundTripInBothDirections) {
  Partial first{TaskId(5),
                2,
                0,
                Bytes("data: a\n\n"),
                200,
                "text/event-stream",
                {{"cache-control", "no-cache"}}};
  EXPECT_EQ(RoundTrip(first), first);
  Partial next{TaskId(5), 2, 1, Bytes(std::string("\0\xff", 2)), 0, "", {}};
  EXPECT_EQ(RoundTrip(next), next);
  CallPartial relayed{9, TaskId(5), 0, Bytes("data: a\n\n"), 200, "text/event-stream", {}};
  EXPECT_EQ(RoundTrip(relayed), relayed);
  // The first chunk's status is checked like a RESULT's.
  Decoder d;
  Partial bad = first;
  bad.http_status = 1000;
  std::string body;
  Encode(bad, &body);
  Partial out;
  EXPECT_FALSE(d.Decode(body, &out).ok());
}

TEST(CodecTest, SubmitRoundTripsSyncCallWithRequest) {
  Submit s;
  s.ref = 77;
  s.service = "rag";
  s.payload = "{\"q\":\"hi\"}";
  s.content_type = "application/json";
  s.priority = 9;
  s.max_attempts = 5;
  s.timeout_ms = 1000;
  s.idempotency_key = "order-17";
  s.min_tier = 2;
  s.min_gpu_memory_gb = 8;
  s.run_at_ms = 1'800'000'000'000;
  s.mode = SubmitMode::kSync;
  s.request = HttpRequest{"GET", "/health", "", {}};
  EXPECT_EQ(RoundTrip(s), s);
  s.mode = SubmitMode::kAsync;
  s.request.reset();
  s.wait_ms = 30000;
  s.announce = true;
  EXPECT_EQ(RoundTrip(s), s);
}

TEST(CodecTest, ClientRepliesRoundTrip) {
  EXPECT_EQ(RoundTrip(Accepted{5, TaskId(6), TaskStatus::kQueued, true, true}),
            (Accepted{5, TaskId(6), TaskStatus::kQueued, true, true}));
  TaskView v;
  v.task_id = TaskId(6);
  v.service = "echo";
  v.status = TaskStatus::kCompleted;
  v.priority = 3;
  v.attempts = 1;
  v.max_attempts = 3;
  v.worker_id = "w-1";
  v.result = "ok";
  v.content_type = "text/plain";
  v.http_status = 200;
  v.error_code = "timeout";
  v.waiting_for_provider = true;
  v.idempotency_key = "k";
  v.created_at_ms = 1;
  v.started_at_ms = 2;
  v.completed_at_ms = 3;
  EXPECT_EQ(RoundTrip(TaskInfo{8, v}), (TaskInfo{8, v}));
  v.progress = 0.25;
  v.progress_message = "a quarter";
  EXPECT_EQ(RoundTrip(TaskInfo{8, v}), (TaskInfo{8, v}));
  v.progress = -1;
  v.progress_message.clear();
  v.status = TaskStatus::kQueued;
  v.queue_position = 12;
  v.estimated_start_s = 3.5;
  EXPECT_EQ(RoundTrip(TaskInfo{8, v}), (TaskInfo{8, v}));
  v.queue_position = 0;
  v.estimated_start_s = 0;
  v.status = TaskStatus::kCompleted;
  Get watch;
  watch.ref = 4;
  watch.task_id = TaskId(6);
  watch.wait_ms = 1000;
  watch.watch = true;
  EXPECT_EQ(RoundTrip(watch), watch);
  // Listings carry views without results (their producers leave them out).
  v.result.clear();
  TaskList list{9, {v, v}};
  EXPECT_EQ(RoundTrip(list), list);
}

TEST(CodecTest, ClientRequestsRoundTrip) {
  EXPECT_EQ(RoundTrip(Get{1, TaskId(2), 3000}), (Get{1, TaskId(2), 3000}));
  EXPECT_EQ(RoundTrip(CancelTask{1, TaskId(2)}), (CancelTask{1, TaskId(2)}));
  EXPECT_EQ(RoundTrip(List{1, "echo", "queued", 50}), (List{1, "echo", "queued", 50}));
  EXPECT_EQ(RoundTrip(Admin{1, "retry", "123", ""}), (Admin{1, "retry", "123", ""}));
  Error e{4,
          "unavailable",
          "Service 'x' not available",
          {"echo", "rag"},
          "start a worker with --service x=..."};
  EXPECT_EQ(RoundTrip(e), e);
}

TEST(CodecTest, AdminReplyCarriesAJsonDocumentAsAMsgpackMap) {
  AdminReply reply;
  reply.ref = 3;
  reply.data = {{"workers", 2}, {"state", "ok"}, {"list", {1, -2, 2.5, nullptr, true}}};
  AdminReply back = RoundTrip(reply);
  EXPECT_EQ(back, reply);
  // On the wire the document is a map inside the body, not a byte string holding msgpack.
  Decoder d;
  auto obj = d.Parse(Encode(reply));
  ASSERT_TRUE(obj.ok());
  const msgpack::object_map& body = obj->via.map;
  bool found = false;
  for (uint32_t i = 0; i < body.size; ++i) {
    if (std::string_view(body.ptr[i].key.via.str.ptr, body.ptr[i].key.via.str.size) != "data")
      continue;
    found = true;
    EXPECT_EQ(body.ptr[i].val.type, msgpack::type::MAP);
    EXPECT_EQ(body.ptr[i].val.via.map.size, 3u);
  }
  EXPECT_TRUE(found);
}

TEST(CodecTest, ReadyWithoutSlotsIsRefused) {
  Ready r;
  r.worker_id = "w";
  r.slots = 3;
  std::string body = Encode(r);
  Ready out;
  Decoder d;
  ASSERT_TRUE(d.Decode(body, &out).ok());
  EXPECT_EQ(out.slots, 3u);
  // The same READY without its "slots" key: a worker must say how many tasks it takes.
  std::string key = std::string("\xa5slots", 6);
  size_t at = body.find(key);
  ASSERT_NE(at, std::string::npos);
  body[at + 1] = 'x';  // rename the key to "xlots", an unknown key
  Status s = d.Decode(body, &out);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("slots"), std::string::npos) << s.ToString();
}

TEST(CodecTest, PayloadsAreSharedNotCopiedWhenAMessageIsCopied) {
  Submit s;
  s.payload = std::string(1 << 20, 'p');
  Submit copy = s;
  EXPECT_TRUE(copy.payload.SharesBufferWith(s.payload));
}

TEST(CodecTest, UnknownKeysAreIgnoredAndNilMeansAbsent) {
  // {"task_id": 5, "attempt": 1, "outcome": "ok", "future_field": [1, 2], "error": nil}
  std::string bytes;
  {
    internal::MapWriter w(&bytes);
    w.U64("task_id", 5);
    w.U64("attempt", 1);
    w.Str("outcome", "ok");
    w.Key("future_field");
    w.packer().pack_array(2);
    w.packer().pack(1);
    w.packer().pack(2);
    w.Key("error");
    w.packer().pack_nil();
  }
  Decoder d;
  TaskResult r;
  ASSERT_TRUE(d.Decode(bytes, &r).ok());
  EXPECT_EQ(r.task_id, TaskId(5));
  EXPECT_TRUE(r.error.empty());
}

TEST(CodecTest, AResultOrProgressMustNameItsAttempt) {
  std::string bytes;
  {
    internal::MapWriter w(&bytes);
    w.U64("task_id", 5);
    w.Str("outcome", "ok");
  }
  Decoder d;
  TaskResult r;
  Status s = d.Decode(bytes, &r);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("attempt"), std::string::npos) << s.message();
  Progress p;
  EXPECT_FALSE(d.Decode(bytes, &p).ok());
}

TEST(CodecTest, MissingRequiredFieldsAreNamed) {
  Decoder d;
  std::string bytes;
  {
    internal::MapWriter w(&bytes);
    w.Str("outcome", "ok");
  }
  TaskResult r;
  Status s = d.Decode(bytes, &r);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("task_id"), std::string::npos) << s.ToString();
}

TEST(CodecTest, ValuesOutOfRangeAreRefused) {
  Decoder d;
  Submit s;
  s.service = "echo";
  s.priority = 9;
  std::string ok = Encode(s);
  Submit out;
  EXPECT_TRUE(d.Decode(ok, &out).ok());
  s.priority = 10;
  Status st = d.Decode(Encode(s), &out);
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("priority"), std::string::npos);
  s.priority = 0;
  s.service = "bad name!";
  EXPECT_FALSE(d.Decode(Encode(s), &out).ok());
  s.service = "";
  EXPECT_FALSE(d.Decode(Encode(s), &out).ok());
}

TEST(CodecTest, WrongTypesAreRefusedWithTheFieldName) {
  std::string bytes;
  {
    internal::MapWriter w(&bytes);
    w.Str("task_id", "12");  // a string where a number belongs
    w.Str("outcome", "ok");
  }
  Decoder d;
  TaskResult r;
  Status s = d.Decode(bytes, &r);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("task_id"), std::string::npos);
}

TEST(CodecTest, TaskStatusNamesRoundTrip) {
  for (int i = 0; i <= static_cast<int>(TaskStatus::kExpired); ++i) {
    auto s = static_cast<TaskStatus>(i);
    EXPECT_EQ(ParseTaskStatus(TaskStatusName(s)), s);
  }
  EXPECT_FALSE(ParseTaskStatus("pending").has_value());
}

TEST(IdsTest, TaskIdParsesOnlyPositiveDecimals) {
  EXPECT_EQ(ParseTaskId("123"), TaskId(123));
  EXPECT_FALSE(ParseTaskId("").has_value());
  EXPECT_FALSE(ParseTaskId("0").has_value());
  EXPECT_FALSE(ParseTaskId("-1").has_value());
  EXPECT_FALSE(ParseTaskId("12a").has_value());
  EXPECT_FALSE(ParseTaskId("99999999999999999999999").has_value());
}

}  // namespace
}  // namespace rma::proto

namespace rma::proto {
namespace {

TEST(CodecTest, DecodeToWorkerPicksTheMessageByCommandAndRefusesTheRest) {
  Decoder d;
  ToWorkerMessage m;
  ASSERT_TRUE(
      d.DecodeToWorker(Command::kCancel, Encode(CancelAttempt{TaskId(7), 2, "x"}), &m).ok());
  ASSERT_TRUE(std::holds_alternative<CancelAttempt>(m));
  EXPECT_EQ(std::get<CancelAttempt>(m).task_id, TaskId(7));
  ASSERT_TRUE(d.DecodeToWorker(Command::kDisconnect, "", &m).ok());
  EXPECT_TRUE(std::get<Disconnect>(m).reconnect)
      << "a DISCONNECT without a body asks to register again";
  ASSERT_TRUE(d.DecodeToWorker(Command::kDrain, "", &m).ok());
  EXPECT_EQ(std::get<Bodyless>(m).command, Command::kDrain);
  EXPECT_FALSE(d.DecodeToWorker(Command::kTask, "\xc1 not msgpack", &m).ok());
  EXPECT_FALSE(d.DecodeToWorker(Command::kCancel, std::string(5, '\xdd'), &m).ok());
  EXPECT_FALSE(d.DecodeToWorker(Command::kWelcome, "", &m).ok());
  EXPECT_FALSE(d.DecodeToWorker(Command::kSubmit, Encode(Submit{}), &m).ok());
}

}  // namespace
}  // namespace rma::proto
