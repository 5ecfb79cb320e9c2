// Unit tests of rmactl's requests (submit bodies; worker names resolved for drain, undrain and
// worker revoke; account, key and enrolment-token requests, the caller's account looked up for
// enrol-token create; all against a fake gateway) and of its tables and summaries.
#include <gtest/gtest.h>

#include <map>
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
      "tasks_done": 12, "services": ["vllm", "ocr"], "account": "alice",
      "reputation": {"state": "suspect", "trusted": false}}], "total": 1})");
  std::string out = RenderWorkers(doc);
  EXPECT_NE(out.find("TRUST"), std::string::npos);
  EXPECT_NE(out.find("suspect"), std::string::npos) << out;
  EXPECT_NE(out.find("ACCOUNT"), std::string::npos);
  EXPECT_NE(out.find("alice"), std::string::npos) << out;
  EXPECT_NE(out.find("WORKER"), std::string::npos);
  EXPECT_NE(out.find("w1"), std::string::npos);
  EXPECT_NE(out.find("1/4"), std::string::npos);
  EXPECT_NE(out.find("0.46"), std::string::npos);
  EXPECT_NE(out.find("vllm,ocr"), std::string::npos);
  EXPECT_NE(out.find("1 worker(s)"), std::string::npos);
}

TEST(RenderTest, ServicesQueuesAndStatsSurviveMissingFields) {
  EXPECT_NE(RenderServices(json::object()).find("SERVICE"), std::string::npos);
  EXPECT_NE(RenderDeadLetters(
                json{{"total", 3},
                     {"groups", {{{"service", "ocr"}, {"error_code", "timeout"}, {"count", 3}}}}})
                .find("timeout"),
            std::string::npos);
  EXPECT_EQ(RenderPurged(json{{"service", "ocr"}, {"purged", 2}}),
            "purge: service ocr, 2 queued task(s) cancelled\n");
  EXPECT_EQ(RenderBulk(json{{"action", "retry"}, {"matched", 4}, {"done", 3}}),
            "retry: 3 of 4 matching dead task(s)\n");
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

TEST(RenderTest, QueuedTaskShowsItsPlace) {
  json t = {{"task_id", "7"},
            {"service", "echo"},
            {"status", "queued"},
            {"queue_position", 3},
            {"estimated_start_s", 4.5}};
  std::string out = RenderTask(t);
  EXPECT_NE(out.find("queue_position"), std::string::npos);
  EXPECT_NE(out.find("4.5"), std::string::npos);
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

// ---- Accounts, keys, enrolment tokens, worker credentials --------------------------------------

TEST(PathSegmentTest, EncodesEverythingButUnreservedCharacters) {
  EXPECT_EQ(PathSegment("alice-1_b.c~"), "alice-1_b.c~");
  EXPECT_EQ(PathSegment("a b/c?d%"), "a%20b%2Fc%3Fd%25");
  EXPECT_EQ(PathSegment(".."), "..");
  EXPECT_EQ(PathSegment("\xC3\xA9"), "%C3%A9");
}

TEST(ParseDurationTest, SecondsOrOneUnit) {
  EXPECT_EQ(*ParseDuration("86400"), 86400);
  EXPECT_EQ(*ParseDuration("90s"), 90);
  EXPECT_EQ(*ParseDuration("15m"), 900);
  EXPECT_EQ(*ParseDuration("24h"), 86400);
  EXPECT_EQ(*ParseDuration("30d"), 2592000);
}

TEST(ParseDurationTest, RefusesWhatItCannotReadExactly) {
  for (const char* bad :
       {"", "0", "0d", "-5", "+5", "1.5h", "1d12h", "10w", "h", "12 h", "99999999999999999999"}) {
    EXPECT_FALSE(ParseDuration(bad).ok()) << bad;
  }
  EXPECT_NE(ParseDuration("1w").status().message().find("30d"), std::string::npos);
  EXPECT_FALSE(ParseDuration("40000d").ok());  // over 100 years
}

TEST(AccountRequestTest, CreateListAndShow) {
  Request create = AccountCreateRequest("alice", "admin");
  EXPECT_EQ(create.method, "POST");
  EXPECT_EQ(create.path, "/api/admin/accounts");
  EXPECT_EQ(json::parse(create.body), json({{"name", "alice"}, {"role", "admin"}}));
  // No role: the gateway's default (member).
  EXPECT_EQ(json::parse(AccountCreateRequest("bob", "").body), json({{"name", "bob"}}));
  EXPECT_EQ(AccountListRequest(), (Request{"GET", "/api/admin/accounts", ""}));
  EXPECT_EQ(AccountShowRequest(), (Request{"GET", "/api/account", ""}));
  EXPECT_EQ(AccountShowRequest("bob smith"),
            (Request{"GET", "/api/admin/accounts/bob%20smith", ""}));
}

TEST(KeyRequestTest, CreateSendsOnlyWhatWasGiven) {
  Request all = KeyCreateRequest({"alice", {"client", "contributor"}, {"echo"}, 86400, "laptop"});
  EXPECT_EQ(all.method, "POST");
  EXPECT_EQ(all.path, "/api/admin/accounts/alice/keys");
  EXPECT_EQ(json::parse(all.body), json::parse(R"({"scopes": ["client", "contributor"],
      "services": ["echo"], "expires_in_s": 86400, "name": "laptop"})"));
  Request bare = KeyCreateRequest({"team a/b"});
  EXPECT_EQ(bare.path, "/api/admin/accounts/team%20a%2Fb/keys");
  EXPECT_EQ(json::parse(bare.body), json::object());
}

TEST(KeyRequestTest, RevokeDeletesByEncodedPrefix) {
  EXPECT_EQ(KeyRevokeRequest("ab12cd34"), (Request{"DELETE", "/api/admin/keys/ab12cd34", ""}));
  EXPECT_EQ(KeyRevokeRequest("a/b").path, "/api/admin/keys/a%2Fb");
}

TEST(EnrolTokenRequestTest, PostsToTheAccount) {
  Request r = EnrolTokenRequest("alice", 3600);
  EXPECT_EQ(r.method, "POST");
  EXPECT_EQ(r.path, "/api/admin/accounts/alice/enrol-tokens");
  EXPECT_EQ(json::parse(r.body), json({{"expires_in_s", 3600}}));
  EXPECT_EQ(json::parse(EnrolTokenRequest("a b", 0).body), json::object());
  EXPECT_EQ(EnrolTokenRequest("a b", 0).path, "/api/admin/accounts/a%20b/enrol-tokens");
}

// A gateway with canned answers by "METHOD PATH"; it records every request.
struct ScriptedGateway {
  std::vector<FakeGateway::Request> requests;
  std::map<std::string, Reply> answers;
  CallFn Fn() {
    return [this](const std::string& method, const std::string& path, const std::string& body) {
      requests.push_back({method, path, body});
      auto it = answers.find(method + " " + path);
      return it == answers.end() ? Reply{404, R"({"error": "no route", "code": "not_found"})", ""}
                                 : it->second;
    };
  }
};

const char kTokenAnswer[] =
    R"({"token": "rma_enrol_s3cret", "account": "alice", "expires_at": "2030-01-02T03:04:05Z"})";

TEST(CreateEnrolTokenTest, WithoutAnAccountUsesTheCallersOwn) {
  ScriptedGateway gateway;
  gateway.answers["GET /api/account"] = {200, R"({"name": "alice", "role": "member"})", ""};
  gateway.answers["POST /api/admin/accounts/alice/enrol-tokens"] = {201, kTokenAnswer, ""};
  EnrolTokenOutcome out = CreateEnrolToken(gateway.Fn(), "", 0);
  EXPECT_TRUE(out.error.empty()) << out.error;
  EXPECT_EQ(out.account, "alice");
  ASSERT_EQ(gateway.requests.size(), 2u);
  EXPECT_EQ(gateway.requests[0].method, "GET");
  EXPECT_EQ(gateway.requests[0].path, "/api/account");
  EXPECT_EQ(gateway.requests[1].method, "POST");
  EXPECT_EQ(gateway.requests[1].path, "/api/admin/accounts/alice/enrol-tokens");
  EXPECT_EQ(json::parse(gateway.requests[1].body), json::object());
  EXPECT_EQ(out.reply.status, 201);
  EXPECT_EQ(out.reply.Json().at("token"), "rma_enrol_s3cret");
}

TEST(CreateEnrolTokenTest, AGivenAccountSkipsTheLookup) {
  ScriptedGateway gateway;
  gateway.answers["POST /api/admin/accounts/bob/enrol-tokens"] = {201, kTokenAnswer, ""};
  EnrolTokenOutcome out = CreateEnrolToken(gateway.Fn(), "bob", 600);
  ASSERT_EQ(gateway.requests.size(), 1u);
  EXPECT_EQ(gateway.requests[0].path, "/api/admin/accounts/bob/enrol-tokens");
  EXPECT_EQ(json::parse(gateway.requests[0].body), json({{"expires_in_s", 600}}));
  EXPECT_EQ(out.reply.status, 201);
}

TEST(CreateEnrolTokenTest, AFailedLookupIsTheAnswerAndNothingIsPosted) {
  ScriptedGateway gateway;
  gateway.answers["GET /api/account"] = {401, R"({"error": "missing API key",
      "code": "unauthenticated"})",
                                         ""};
  EnrolTokenOutcome out = CreateEnrolToken(gateway.Fn(), "", 0);
  EXPECT_EQ(out.reply.status, 401);
  EXPECT_TRUE(out.error.empty());
  EXPECT_EQ(gateway.requests.size(), 1u);
  EXPECT_EQ(RenderError(out.reply), "error 401 (unauthenticated): missing API key\n");

  ScriptedGateway nameless;
  nameless.answers["GET /api/account"] = {200, R"({"role": "member"})", ""};
  out = CreateEnrolToken(nameless.Fn(), "", 0);
  EXPECT_NE(out.error.find("names no account"), std::string::npos) << out.error;
  EXPECT_EQ(nameless.requests.size(), 1u);
}

TEST(CreateEnrolTokenTest, ARefusedPostIsTheAnswer) {
  ScriptedGateway gateway;
  gateway.answers["GET /api/account"] = {200, R"({"name": "alice"})", ""};
  gateway.answers["POST /api/admin/accounts/alice/enrol-tokens"] = {
      403, R"({"error": "needs an admin key or a contributor key of 'alice'",
               "code": "permission_denied"})",
      ""};
  EnrolTokenOutcome out = CreateEnrolToken(gateway.Fn(), "", 0);
  EXPECT_EQ(out.reply.status, 403);
  EXPECT_EQ(RenderError(out.reply),
            "error 403 (permission_denied): needs an admin key or a contributor key of 'alice'\n");
}

TEST(RevokeWorkerCredentialTest, ResolvesTheNameAndDeletesTheCredential) {
  ScriptedGateway gateway;
  gateway.answers["GET /api/admin/workers"] = {200, kWorkers.dump(), ""};
  gateway.answers["DELETE /api/admin/workers/w-1/credential"] = {
      200, R"({"worker_id": "w-1", "key": "K3y", "account": "alice", "revoked": true,
               "disconnected": true})",
      ""};
  WorkerActionOutcome out = RevokeWorkerCredential(gateway.Fn(), "gpu-box");
  EXPECT_TRUE(out.error.empty()) << out.error;
  ASSERT_EQ(gateway.requests.size(), 2u);
  EXPECT_EQ(gateway.requests[1].method, "DELETE");
  EXPECT_EQ(gateway.requests[1].path, "/api/admin/workers/w-1/credential");
  EXPECT_EQ(gateway.requests[1].body, "");
  EXPECT_EQ(RenderCredentialRevoked(out.reply.Json(), {{out.worker.worker_id, out.worker.name}}),
            "credential of worker w-1 (gpu-box) revoked (account alice, key K3y); the worker was "
            "disconnected\n");
}

TEST(CapWorkerTierTest, ResolvesTheNameAndPatchesTheCredential) {
  ScriptedGateway gateway;
  gateway.answers["GET /api/admin/workers"] = {200, kWorkers.dump(), ""};
  gateway.answers["PATCH /api/admin/workers/w-1/credential"] = {
      200, R"({"worker_id": "w-1", "key": "K3y", "account": "alice", "tier_cap": 2,
               "applied": true})",
      ""};
  WorkerActionOutcome out = CapWorkerTier(gateway.Fn(), "gpu-box", 2);
  EXPECT_TRUE(out.error.empty()) << out.error;
  ASSERT_EQ(gateway.requests.size(), 2u);
  EXPECT_EQ(gateway.requests[1].method, "PATCH");
  EXPECT_EQ(gateway.requests[1].path, "/api/admin/workers/w-1/credential");
  EXPECT_EQ(json::parse(gateway.requests[1].body), json({{"tier_cap", 2}}));
  EXPECT_EQ(RenderTierCap(out.reply.Json(), {{out.worker.worker_id, out.worker.name}}),
            "credential of worker w-1 (gpu-box): tier capped at 2; the connected worker's tier "
            "changed now\n");
  EXPECT_EQ(RenderTierCap(json::parse(R"({"worker_id": "w-9", "tier_cap": 0})")),
            "credential of worker w-9: tier cap removed; applies at its next registration\n");
}

TEST(RevokeWorkerCredentialTest, AmbiguousNameDeletesNothingAndUnknownGoesAsAnId) {
  ScriptedGateway gateway;
  gateway.answers["GET /api/admin/workers"] = {200, kWorkers.dump(), ""};
  WorkerActionOutcome out = RevokeWorkerCredential(gateway.Fn(), "office");
  EXPECT_NE(out.error.find("w-2, w-3"), std::string::npos) << out.error;
  EXPECT_EQ(gateway.requests.size(), 1u);

  out = RevokeWorkerCredential(gateway.Fn(), "w/gone");
  ASSERT_EQ(gateway.requests.size(), 3u);
  EXPECT_EQ(gateway.requests[2].path, "/api/admin/workers/w%2Fgone/credential");
  EXPECT_EQ(out.reply.status, 404);  // the gateway's own answer
  EXPECT_EQ(RenderError(out.reply), "error 404 (not_found): no route\n");
}

TEST(AccountRenderTest, CreatedAndList) {
  EXPECT_EQ(RenderAccountCreated(json::parse(R"({"name": "alice", "role": "member",
                "credits": 0, "created_at": "2030-01-02T03:04:05Z"})")),
            "account alice created: role member, 0 credits\n");
  json doc = json::parse(R"({"accounts": [
      {"name": "alice", "role": "member", "credits": 12.345, "created_at": "2030-01-02T03:04:05Z",
       "keys": 2, "workers": 1},
      {"name": "root", "role": "admin", "credits": 0, "created_at": "2029-12-31T00:00:00Z",
       "keys": 1, "workers": 0}]})");
  EXPECT_EQ(RenderAccounts(doc),
            "NAME   ROLE    CREDITS  KEYS  WORKERS  CREATED\n"
            "alice  member  12.35    2     1        2030-01-02T03:04:05Z\n"
            "root   admin   0        1     0        2029-12-31T00:00:00Z\n"
            "2 account(s)\n");
  EXPECT_EQ(RenderAccounts(json::object()),
            "NAME  ROLE  CREDITS  KEYS  WORKERS  CREATED\n"
            "0 account(s)\n");
}

TEST(AccountRenderTest, ShowSummarisesKeysWorkersAndTasks) {
  json doc = json::parse(R"({"name": "alice", "role": "member", "credits": 4.5,
      "created_at": "2030-01-02T03:04:05Z",
      "keys": [
        {"prefix": "ab12", "name": "laptop", "scopes": ["client", "contributor"],
         "services": ["echo"], "expires_at": null, "revoked": false, "last_used_at": null,
         "created_at": "2030-01-02T03:05:00Z"},
        {"prefix": "cd34", "name": null, "scopes": ["client"], "services": [],
         "expires_at": "2030-02-01T00:00:00Z", "revoked": true,
         "last_used_at": "2030-01-03T00:00:00Z", "created_at": "2030-01-02T03:06:00Z"}],
      "workers": [
        {"key": "Zk3y", "name": "gpu-box", "worker_id": "w-1", "services": ["vllm"],
         "tier_cap": 2, "revoked": false, "first_seen": "2030-01-02T04:00:00Z",
         "last_seen": "2030-01-03T04:00:00Z", "connected": true},
        {"key": "Qk3y", "name": null, "worker_id": null, "services": null, "tier_cap": null,
         "revoked": false, "first_seen": null, "last_seen": null, "connected": false}],
      "tasks": {"completed": 3, "queued": 1}})");
  const std::string out = RenderAccount(doc);
  EXPECT_EQ(out.substr(0, out.find("\n\n") + 1),
            "account  alice\n"
            "role     member\n"
            "credits  4.5\n"
            "created  2030-01-02T03:04:05Z\n"
            "tasks    3 completed, 1 queued\n");
  EXPECT_NE(out.find("2 API key(s)\nPREFIX  NAME    SCOPES"), std::string::npos) << out;
  EXPECT_NE(out.find("ab12    laptop  client,contributor  echo      never"), std::string::npos)
      << out;
  EXPECT_NE(out.find("cd34    -       client              all       2030-02-01T00:00:00Z"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("2 worker credential(s)\nWORKER"), std::string::npos) << out;
  EXPECT_NE(out.find("w-1     gpu-box  Zk3y  vllm      2"), std::string::npos) << out;
  EXPECT_NE(out.find("connected"), std::string::npos) << out;
  EXPECT_NE(out.find("-       -        Qk3y  all"), std::string::npos) << out;
  EXPECT_NE(out.find("offline"), std::string::npos) << out;
}

TEST(CreditsTest, GrantAndLeaderboardRequests) {
  auto grant = CreditsGrantRequest("bob", "-2.5", "adjustment", "refund");
  ASSERT_TRUE(grant.ok());
  EXPECT_EQ(grant->method, "POST");
  EXPECT_EQ(grant->path, "/api/admin/accounts/bob/credits");
  EXPECT_EQ(json::parse(grant->body),
            json({{"amount", -2.5}, {"kind", "adjustment"}, {"note", "refund"}}));
  EXPECT_EQ(json::parse(CreditsGrantRequest("bob", "10", "", "")->body), json({{"amount", 10.0}}));
  EXPECT_FALSE(CreditsGrantRequest("bob", "ten", "", "").ok());
  EXPECT_FALSE(CreditsGrantRequest("bob", "10x", "", "").ok());
  EXPECT_FALSE(CreditsGrantRequest("bob", "", "", "").ok());
  EXPECT_EQ(LeaderboardRequest("", "").path, "/api/leaderboard");
  EXPECT_EQ(LeaderboardRequest("day", "").path, "/api/leaderboard?period=day");
  EXPECT_EQ(LeaderboardRequest("all", "tasks").path, "/api/leaderboard?period=all&by=tasks");
  EXPECT_EQ(LeaderboardRequest("", "compute").path, "/api/leaderboard?by=compute");
}

TEST(CreditsTest, RenderGrantLeaderboardAndTheAccountsCredits) {
  EXPECT_EQ(RenderCreditsGranted(json::parse(
                R"({"account":"bob","amount":10.0,"balance":10.5,"kind":"grant","note":"hi"})")),
            "granted 10 credits to bob (hi); balance 10.5\n");
  const std::string board = RenderLeaderboard(json::parse(R"({"period":"week","by":"credits",
      "accounts":[{"rank":1,"account":"alice","credits":12.5,"tasks":7,"compute_s":8.25,
        "workers":[{"worker_id":"w1","name":"gpu-box","credits":12.5,"tasks":7,"compute_s":8.25}]}]})"));
  EXPECT_NE(board.find("contributors, week, by credits\n"), std::string::npos) << board;
  EXPECT_NE(board.find("1     alice"), std::string::npos) << board;
  EXPECT_NE(board.find("  w1 (gpu-box)"), std::string::npos) << board;
  EXPECT_NE(RenderLeaderboard(json::parse(R"({"period":"day","by":"tasks","accounts":[]})"))
                .find("nobody has earned"),
            std::string::npos);
  const std::string account = RenderAccount(json::parse(R"({"name":"alice","role":"member",
      "credits":3.5,"balance":3.5,"earned":{"today":1.5,"week":2.5,"all":3.5},
      "spent":{"today":0,"week":0,"all":0},"granted":0,"credits_mode":"track",
      "ledger":[{"at":"2030-01-02T03:04:05Z","kind":"earned","amount":1.5,"service":"echo",
                 "task_id":"77","worker_id":"w1","note":""}]})"));
  EXPECT_NE(account.find("earned   1.5 today, 2.5 this week, 3.5 in all"), std::string::npos)
      << account;
  EXPECT_NE(account.find("mode     track"), std::string::npos) << account;
  EXPECT_NE(account.find("latest credit changes\nAT"), std::string::npos) << account;
  EXPECT_NE(account.find("earned  1.5     echo     77"), std::string::npos) << account;
}

TEST(AccountRenderTest, ShowOfANewAccountSaysNone) {
  const std::string out = RenderAccount(json{{"name", "bob"}, {"role", "member"}});
  EXPECT_NE(out.find("tasks    none"), std::string::npos) << out;
  EXPECT_NE(out.find("0 API key(s)\n"), std::string::npos) << out;
  EXPECT_NE(out.find("0 worker credential(s)\n"), std::string::npos) << out;
  EXPECT_EQ(out.find("PREFIX"), std::string::npos) << out;
  EXPECT_NE(RenderAccount(json::array()).find("[]"), std::string::npos);
}

TEST(KeyRenderTest, TheKeyStandsAloneWithTheOnceWarning) {
  json k = json::parse(R"({"key": "rma_ab12_S3cretS3cret", "prefix": "ab12", "account": "alice",
      "scopes": ["client"], "services": ["echo", "ocr"], "expires_at": null, "name": "laptop"})");
  EXPECT_EQ(RenderKeyCreated(k),
            "API key for account alice (prefix ab12; scopes client; services echo,ocr; expires "
            "never; name laptop):\n"
            "\n"
            "    rma_ab12_S3cretS3cret\n"
            "\n"
            "This key is shown only once: store it now. The gateway keeps only its hash; if it is "
            "lost, revoke it (rmactl key revoke ab12) and create another.\n");
  k["name"] = nullptr;
  k["services"] = json::array();
  k["expires_at"] = "2030-01-01T00:00:00Z";
  const std::string out = RenderKeyCreated(k);
  EXPECT_NE(out.find("services all; expires 2030-01-01T00:00:00Z):"), std::string::npos) << out;
  EXPECT_EQ(out.find("name"), std::string::npos) << out;
  EXPECT_EQ(RenderKeyRevoked(json::parse(R"({"prefix": "ab12", "account": "alice",
                "revoked": true})")),
            "key ab12 of account alice revoked\n");
}

TEST(EnrolTokenRenderTest, PrintsTheTokenAndTheWorkerCommand) {
  EXPECT_EQ(RenderEnrolToken(json::parse(kTokenAnswer)),
            "enrolment token for account alice (works once; expires 2030-01-02T03:04:05Z):\n"
            "\n"
            "    rma_enrol_s3cret\n"
            "\n"
            "On the machine to enrol, start the worker with it (and its usual --broker, "
            "--broker-key and --service flags):\n"
            "\n"
            "    rma-worker --enrol rma_enrol_s3cret ...\n");
}

TEST(CredentialRenderTest, SaysWhetherTheWorkerWasConnected) {
  EXPECT_EQ(RenderCredentialRevoked(json::parse(R"({"worker_id": "w-9", "key": "K", "account":
                "bob", "revoked": true, "disconnected": false})")),
            "credential of worker w-9 revoked (account bob, key K); the worker was not "
            "connected\n");
  // An answer of another shape does not throw.
  EXPECT_NE(RenderCredentialRevoked(json::array()).find("revoked"), std::string::npos);
  EXPECT_EQ(RenderTrust(json::parse(R"({"worker_id": "w-9", "trust": "quarantined", "from":
      "good", "state": "quarantined"})"),
                        {{"w-9", "box"}}),
            "worker w-9 (box): trust quarantined, reputation good -> quarantined\n");
}

}  // namespace
}  // namespace rma::cli

namespace rma::cli {
namespace {

TEST(GatewayListTest, SplitsOnCommasAndDropsEmptyEntries) {
  EXPECT_EQ(GatewayList("http://a:1, http://b:2,,http://c:3 "),
            (std::vector<std::string>{"http://a:1", "http://b:2", "http://c:3"}));
  EXPECT_EQ(GatewayList("http://a:1"), (std::vector<std::string>{"http://a:1"}));
}

TEST(GatewayListTest, MovesOnOnlyWhenTheCallSurelyDidNothing) {
  Reply refused;
  refused.not_sent = true;
  EXPECT_TRUE(NextGatewayAfter("POST", refused));
  EXPECT_TRUE(NextGatewayAfter("GET", refused));
  Reply unavailable;
  unavailable.status = 503;
  EXPECT_TRUE(NextGatewayAfter("GET", unavailable));
  // A submission answered 503 was not accepted, but a second gateway is the client's call to make
  // (it may have its own idempotency key): rmactl reports it.
  EXPECT_FALSE(NextGatewayAfter("POST", unavailable));
  Reply timed_out;  // sent, no answer: its outcome is unknown
  timed_out.error = "Timeout was reached";
  EXPECT_FALSE(NextGatewayAfter("POST", timed_out));
  Reply ok;
  ok.status = 200;
  EXPECT_FALSE(NextGatewayAfter("GET", ok));
}

}  // namespace
}  // namespace rma::cli
