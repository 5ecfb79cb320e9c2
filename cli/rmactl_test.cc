// Unit tests of rmactl's requests (submit bodies, worker names resolved for drain/undrain, against
// a fake gateway) and of its tables and summaries.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "cli/rmactl_lib.h"

namespace rma::cli {
namespace {

using nlohmann::json;

TEST(TableTest, PadsColumnsToTheWidestCell) {
  EXPECT_EQ(Table({"A", "LONG"}, {{"xyz", "1"}, {"q", "22"}}),
            "A    LONG\n"
            "xyz  1\n"
            "q    22\n");
}

TEST(RenderTest, WorkersTable) {
  json doc = json::parse(R"({"workers": [{"worker_id": "w1", "name": "gpu-box", "tier": 1,
      "status": "busy", "health": "healthy", "in_flight": 1, "slots": 4, "load": 0.4567,
      "tasks_done": 12, "services": ["vllm", "ocr"]}], "total": 1})");
  std::string out = RenderWorkers(doc);
  EXPECT_NE(out.find("WORKER"), std::string::npos);
  EXPECT_NE(out.find("w1"), std::string::npos);
  EXPECT_NE(out.find("1/4"), std::string::npos);
  EXPECT_NE(out.find("0.46"), std::string::npos);
  EXPECT_NE(out.find("vllm,ocr"), std::string::npos);
  EXPECT_NE(out.find("1 worker(s)"), std::string::npos);
}

TEST(RenderTest, ServicesQueuesAndStatsSurviveMissingFields) {
  EXPECT_NE(RenderServices(json::object()).find("SERVICE"), std::string::npos);
  EXPECT_NE(RenderQueues(json{{"queues", {{"rag", {{"queued", 3}}}}}}).find("rag"),
            std::string::npos);
  std::string stats = RenderStats(json{{"tasks", {{"completed", 5}}}});
  EXPECT_NE(stats.find("5 completed"), std::string::npos);
  EXPECT_NE(RenderStats(json::array()).find("[]"), std::string::npos);
}

TEST(RenderTest, TaskShowsFieldsAndResult) {
  json t = {{"task_id", "7"},
            {"service", "echo"},
            {"status", "completed"},
            {"result", {{"n", 1}}},
            {"error", nullptr}};
  std::string out = RenderTask(t);
  EXPECT_NE(out.find("task_id"), std::string::npos);
  EXPECT_NE(out.find("completed"), std::string::npos);
  EXPECT_EQ(out.find("error"), std::string::npos);
  EXPECT_NE(out.find("\"n\": 1"), std::string::npos);
}

TEST(RenderTest, ErrorsNameCodeAndAvailableServices) {
  Reply r;
  r.status = 503;
  r.body = R"({"error": "Service 'rag' not available", "code": "unavailable",
              "available_services": ["echo", "ocr"], "suggestion": "Start a worker"})";
  EXPECT_EQ(RenderError(r),
            "error 503 (unavailable): Service 'rag' not available\n"
            "available services: echo,ocr\nStart a worker\n");
  r.body = "not json";
  EXPECT_EQ(RenderError(r), "error 503: not json\n");
}

// ---- Requests
// ------------------------------------------------------------------------------------

TEST(SubmitBodyTest, CarriesJsonPayloadAndOptions) {
  auto body = SubmitBody({"echo", R"({"n": 7})", false, 3, 2, 1.5, "k-1"});
  ASSERT_TRUE(body.ok()) << body.status().ToString();
  EXPECT_EQ(*body, json::parse(R"({"service": "echo", "payload": {"n": 7}, "priority": 3,
                                   "max_attempts": 2, "timeout_s": 1.5, "idempotency_key": "k-1"})"));
  // Any JSON value is a payload: a number, a quoted string.
  EXPECT_EQ(SubmitBody({"echo", "42"})->at("payload"), 42);
  EXPECT_EQ(SubmitBody({"echo", R"("text")"})->at("payload"), "text");
  // No payload, no defaults sent.
  EXPECT_EQ(*SubmitBody({"echo", ""}), json({{"service", "echo"}}));
}

TEST(SubmitBodyTest, MalformedJsonIsAnErrorUnlessRaw) {
  for (const char* bad : {"plain text", R"({"n": 7)", "{'n': 7}", "[1,]"}) {
    auto body = SubmitBody({"echo", bad});
    ASSERT_FALSE(body.ok()) << bad;
    EXPECT_NE(body.status().message().find("--raw"), std::string::npos);
  }
  auto raw = SubmitBody({"echo", R"({"n": 7)", true});
  ASSERT_TRUE(raw.ok());
  EXPECT_EQ(raw->at("payload"), R"({"n": 7)");
  // --raw sends even valid JSON as the text it is.
  EXPECT_EQ(SubmitBody({"echo", "42", true})->at("payload"), "42");
}

const json kWorkers = json::parse(R"({"workers": [
    {"worker_id": "w-1", "name": "gpu-box"},
    {"worker_id": "w-2", "name": "office"},
    {"worker_id": "w-3", "name": "office"},
    {"worker_id": "office-pi", "name": "w-1"}], "total": 4})");

TEST(ResolveWorkerTest, IdFirstThenUniqueName) {
  auto by_id = ResolveWorker(kWorkers, "w-2");
  ASSERT_TRUE(by_id.ok());
  EXPECT_EQ(by_id->worker_id, "w-2");
  EXPECT_EQ(by_id->name, "office");
  auto by_name = ResolveWorker(kWorkers, "gpu-box");
  ASSERT_TRUE(by_name.ok());
  EXPECT_EQ(by_name->worker_id, "w-1");
  // A worker named like another's id: the id wins (ids are unique).
  EXPECT_EQ(ResolveWorker(kWorkers, "w-1")->worker_id, "w-1");
}

TEST(ResolveWorkerTest, AmbiguousNameIsAnErrorListingTheIds) {
  auto r = ResolveWorker(kWorkers, "office");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("w-2, w-3"), std::string::npos) << r.status().message();
  EXPECT_NE(r.status().message().find("2 workers"), std::string::npos) << r.status().message();
}

TEST(ResolveWorkerTest, UnknownIsPassedOnAsAnId) {
  auto r = ResolveWorker(kWorkers, "w-gone");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->worker_id, "w-gone");
  EXPECT_EQ(r->name, "");
  EXPECT_EQ(ResolveWorker(json::object(), "w-9")->worker_id, "w-9");
}

TEST(WorkerActionPathTest, EncodesTheId) {
  EXPECT_EQ(WorkerActionPath("w-1", "undrain"), "/api/admin/workers/w-1/undrain");
  EXPECT_EQ(WorkerActionPath("a b/c", "drain"), "/api/admin/workers/a%20b%2Fc/drain");
}

// A gateway that answers the worker listing and records every request.
struct FakeGateway {
  struct Request {
    std::string method, path, body;
  };
  std::vector<Request> requests;
  Reply listing{200, kWorkers.dump(), ""};
  CallFn Fn() {
    return [this](const std::string& method, const std::string& path, const std::string& body) {
      requests.push_back({method, path, body});
      if (method == "GET" && path == "/api/admin/workers") return listing;
      return Reply{200, R"({"worker_id": "w-1", "action": "undrain", "ok": true})", ""};
    };
  }
};

TEST(WorkerActionTest, UndrainByNamePostsToTheResolvedId) {
  FakeGateway gateway;
  WorkerActionOutcome out = WorkerAction(gateway.Fn(), "undrain", "gpu-box");
  EXPECT_TRUE(out.error.empty()) << out.error;
  ASSERT_EQ(gateway.requests.size(), 2u);
  EXPECT_EQ(gateway.requests[0].method, "GET");
  EXPECT_EQ(gateway.requests[1].method, "POST");
  EXPECT_EQ(gateway.requests[1].path, "/api/admin/workers/w-1/undrain");
  EXPECT_EQ(gateway.requests[1].body, "");
  EXPECT_EQ(out.reply.status, 200);
  EXPECT_EQ(out.worker.name, "gpu-box");
  EXPECT_EQ(RenderAction(out.reply.Json(), {{"w-1", "gpu-box"}}),
            "undrain: worker w-1 (gpu-box) ok\n");
}

TEST(WorkerActionTest, DrainByIdAndAmbiguousNamePostsNothing) {
  FakeGateway gateway;
  WorkerAction(gateway.Fn(), "drain", "w-3");
  ASSERT_EQ(gateway.requests.size(), 2u);
  EXPECT_EQ(gateway.requests[1].path, "/api/admin/workers/w-3/drain");

  FakeGateway ambiguous;
  WorkerActionOutcome out = WorkerAction(ambiguous.Fn(), "drain", "office");
  EXPECT_NE(out.error.find("w-2, w-3"), std::string::npos) << out.error;
  EXPECT_EQ(ambiguous.requests.size(), 1u);  // only the listing
}

TEST(WorkerActionTest, AFailedListingIsTheAnswer) {
  FakeGateway gateway;
  gateway.listing =
      Reply{403, R"({"error": "needs an admin key", "code": "permission_denied"})", ""};
  WorkerActionOutcome out = WorkerAction(gateway.Fn(), "drain", "gpu-box");
  EXPECT_EQ(out.reply.status, 403);
  EXPECT_TRUE(out.error.empty());
  EXPECT_EQ(gateway.requests.size(), 1u);
}

TEST(RenderTest, TaskViewsNameTheWorker) {
  const WorkerNames names = WorkerNamesOf(kWorkers);
  EXPECT_EQ(names.at("w-2"), "office");
  json task = {{"task_id", "7"}, {"status", "completed"}, {"worker_id", "w-1"}};
  EXPECT_NE(RenderTask(task, names).find("w-1 (gpu-box)"), std::string::npos);
  // Unknown names: the id alone.
  EXPECT_NE(RenderTask(task).find("w-1"), std::string::npos);
  EXPECT_EQ(RenderTask(task).find('('), std::string::npos);
  json list = {{"tasks", json::array({task, {{"task_id", "8"}, {"status", "queued"}}})}};
  const std::string table = RenderTaskList(list, names);
  EXPECT_NE(table.find("w-1 (gpu-box)"), std::string::npos) << table;
  EXPECT_TRUE(MentionsWorkers(list));
  EXPECT_FALSE(MentionsWorkers(json{{"tasks", json::array({{{"task_id", "8"}}})}}));
  EXPECT_TRUE(MentionsWorkers(task));
}

TEST(RenderTest, FinalStatuses) {
  EXPECT_TRUE(IsFinal("completed"));
  EXPECT_TRUE(IsFinal("dead"));
  EXPECT_FALSE(IsFinal("failed"));
  EXPECT_FALSE(IsFinal("queued"));
}

}  // namespace
}  // namespace rma::cli
