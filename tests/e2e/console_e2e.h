// The operator's console API (issue 19, docs/http-api.md "Console") through real processes: one
// scenario run by console_e2e_test (broker without a database) and console_pg_e2e_test (on
// PostgreSQL, where the history and a broker restart are checked too).
#pragma once

#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

#include "tests/support/cluster.h"

namespace rma::testing {

using json = nlohmann::json;
using namespace std::chrono_literals;

inline const char* const kJsonType = "Content-Type: application/json";

inline std::string Submit(Cluster& c, const std::string& service, const json& payload,
                          int max_attempts = 0, bool wait = true) {
  json body = {{"service", service}, {"payload", payload}};
  if (max_attempts > 0) body["max_attempts"] = max_attempts;
  HttpResponse r =
      HttpCall("POST", c.Url(wait ? "/api/tasks?wait=20" : "/api/tasks"), body.dump(), {kJsonType});
  EXPECT_TRUE(r.status == 200 || r.status == 202) << r.body;
  return r.Json().value("task_id", "");
}

inline json Get(Cluster& c, const std::string& path, long expect = 200) {
  HttpResponse r = HttpGet(c.Url(path));
  EXPECT_EQ(r.status, expect) << path << ": " << r.body;
  return r.Json();
}

inline json Post(Cluster& c, const std::string& path, const json& body, long expect = 200) {
  HttpResponse r = HttpCall("POST", c.Url(path), body.is_null() ? "" : body.dump(), {kJsonType});
  EXPECT_EQ(r.status, expect) << path << ": " << r.body;
  return r.Json();
}

// Task browser: filters and cursor paging, newest first, no task twice.
inline void CheckTaskBrowser(Cluster& c) {
  std::vector<std::string> ids;
  for (int i = 0; i < 5; ++i) ids.push_back(Submit(c, "echo", json{{"n", i}}));
  std::vector<std::string> seen;
  std::string cursor;
  int pages = 0;
  do {
    json page =
        Get(c, "/api/tasks?service=echo&limit=2" + (cursor.empty() ? "" : "&cursor=" + cursor));
    ASSERT_TRUE(page["tasks"].is_array()) << page.dump();
    EXPECT_EQ(page["count"], page["tasks"].size());
    for (const json& t : page["tasks"]) seen.push_back(t["task_id"]);
    cursor = page["next_cursor"].is_null() ? "" : page["next_cursor"].get<std::string>();
    ASSERT_LT(++pages, 10);
  } while (!cursor.empty());
  EXPECT_EQ(pages, 3);
  ASSERT_EQ(seen.size(), 5u);
  EXPECT_EQ(std::set<std::string>(seen.begin(), seen.end()).size(), 5u);
  EXPECT_EQ(seen.front(), ids.back()) << "newest first";
  EXPECT_EQ(seen.back(), ids.front());

  EXPECT_EQ(Get(c, "/api/tasks?service=echo&worker=w1")["count"], 5);
  EXPECT_EQ(Get(c, "/api/tasks?worker=nobody")["count"], 0);
  EXPECT_EQ(Get(c, "/api/tasks?service=echo&since=2100-01-01T00:00:00Z")["count"], 0);
  EXPECT_EQ(Get(c, "/api/tasks?service=echo&until=2100-01-01T00:00:00Z&status=completed")["count"],
            5);
  EXPECT_EQ(Get(c, "/api/tasks?service=echo&since=0&limit=1000")["count"], 5);
  Get(c, "/api/tasks?limit=5000", 400);
  Get(c, "/api/tasks?cursor=nonsense", 400);
  Get(c, "/api/tasks?since=tomorrow", 400);
}

// Task page: payload, attempt log and the raw downloads.
inline void CheckTaskPage(Cluster& c) {
  const std::string id = Submit(c, "echo", json{{"hello", "console"}});
  json t = Get(c, "/api/tasks/" + id + "?detail=1");
  EXPECT_EQ(t["payload"], (json{{"hello", "console"}})) << t.dump();
  EXPECT_EQ(t["payload_truncated"], false);
  EXPECT_GT(t["payload_bytes"].get<int>(), 0);
  ASSERT_EQ(t["attempt_log"].size(), 1u) << t.dump();
  EXPECT_EQ(t["attempt_log"][0]["outcome"], "completed");
  EXPECT_EQ(t["attempt_log"][0]["worker_id"], "w1");
  EXPECT_EQ(t["attempt_log"][0]["attempt"], 1);
  EXPECT_FALSE(t["attempt_log"][0]["ended_at"].is_null());

  HttpResponse payload = HttpGet(c.Url("/api/tasks/" + id + "/payload"));
  EXPECT_EQ(payload.status, 200);
  EXPECT_EQ(json::parse(payload.body), (json{{"hello", "console"}}));
  EXPECT_EQ(payload.Header("content-disposition"),
            "attachment; filename=\"task-" + id + "-payload.bin\"");
  HttpResponse result = HttpGet(c.Url("/api/tasks/" + id + "/result"));
  EXPECT_EQ(result.status, 200);
  EXPECT_EQ(json::parse(result.body), (json{{"hello", "console"}}));
  EXPECT_EQ(result.Header("content-disposition"),
            "attachment; filename=\"task-" + id + "-result.bin\"");
  Get(c, "/api/tasks/123/payload", 404);
}

// Dead letters: groups, bulk retry (the attempt log grows), bulk discard.
inline void CheckDeadLetters(Cluster& c) {
  std::vector<std::string> dead;
  for (int i = 0; i < 3; ++i) dead.push_back(Submit(c, "job", "x", /*max_attempts=*/1));
  json groups = Get(c, "/api/admin/dead-letters");
  ASSERT_EQ(groups["total"], 3) << groups.dump();
  ASSERT_EQ(groups["groups"].size(), 1u);
  EXPECT_EQ(groups["groups"][0]["service"], "job");
  EXPECT_EQ(groups["groups"][0]["error_code"], "handler_error");
  EXPECT_EQ(groups["groups"][0]["count"], 3);
  EXPECT_TRUE(groups["groups"][0]["oldest"].is_string());
  EXPECT_EQ(Get(c, "/api/tasks?status=dead&service=job&error_code=handler_error")["count"], 3);
  json t = Get(c, "/api/tasks/" + dead[0] + "?detail=1");
  ASSERT_EQ(t["attempt_log"].size(), 1u);
  EXPECT_EQ(t["attempt_log"][0]["outcome"], "failed");
  EXPECT_EQ(t["attempt_log"][0]["error_code"], "handler_error");

  HttpResponse no_type = HttpCall("POST", c.Url("/api/admin/tasks/retry"), "{}");
  EXPECT_EQ(no_type.status, 415);
  Post(c, "/api/admin/tasks/retry", json{{"limit", 0}}, 400);
  json retried = Post(c, "/api/admin/tasks/retry", json{{"task_ids", {dead[0], dead[1]}}});
  EXPECT_EQ(retried["action"], "retry");
  EXPECT_EQ(retried["matched"], 2) << retried.dump();
  EXPECT_EQ(retried["done"], 2);
  // The fail handler fails them again: dead again, with two attempts each in their logs.
  ASSERT_TRUE(WaitUntil(
      [&] {
        json g = HttpGet(c.Url("/api/tasks/" + dead[0] + "?detail=1")).Json();
        json h = HttpGet(c.Url("/api/tasks/" + dead[1] + "?detail=1")).Json();
        return g.value("status", "") == "dead" && g["attempt_log"].size() == 2 &&
               h.value("status", "") == "dead" && h["attempt_log"].size() == 2;
      },
      20s))
      << c.Logs();
  json discarded = Post(c, "/api/admin/tasks/discard", json{{"service", "job"}});
  EXPECT_EQ(discarded["action"], "discard");
  EXPECT_EQ(discarded["matched"], 3) << discarded.dump();
  EXPECT_EQ(discarded["done"], 3);
  EXPECT_EQ(Get(c, "/api/admin/dead-letters")["total"], 0);
  Get(c, "/api/tasks/" + dead[2], 404);
}

// Worker page and queue purge: one slot busy with a long task, three more queued behind it.
inline void CheckWorkerPageAndPurge(Cluster& c) {
  const std::string running = Submit(c, "slow", 60000, 0, /*wait=*/false);
  ASSERT_TRUE(WaitUntil(
      [&] {
        return HttpGet(c.Url("/api/tasks/" + running)).Json().value("status", "") == "running";
      },
      20s));
  for (int i = 0; i < 3; ++i) Submit(c, "slow", 60000, 0, /*wait=*/false);

  json w = Get(c, "/api/admin/workers/w1");
  EXPECT_EQ(w["worker_id"], "w1");
  EXPECT_TRUE(w.contains("reputation")) << "the same object as in the workers list";
  EXPECT_EQ(w["service_health"].size(), 3u) << w.dump();
  ASSERT_EQ(w["current_attempts"].size(), 1u) << w.dump();
  EXPECT_EQ(w["current_attempts"][0]["task_id"], running);
  EXPECT_EQ(w["current_attempts"][0]["service"], "slow");
  EXPECT_EQ(w["current_attempts"][0]["attempt"], 1);
  ASSERT_FALSE(w["connections"].empty());
  EXPECT_EQ(w["connections"][0]["event"], "connected");
  Get(c, "/api/admin/workers/nobody", 404);

  json purged = Post(c, "/api/admin/services/slow/purge", nullptr);
  EXPECT_EQ(purged["service"], "slow");
  EXPECT_EQ(purged["action"], "purge");
  EXPECT_EQ(purged["purged"], 3) << purged.dump();
  EXPECT_EQ(purged["ok"], true);
  EXPECT_EQ(Get(c, "/api/tasks?status=cancelled&error_code=purged")["count"], 3);
  EXPECT_EQ(Get(c, "/api/tasks/" + running)["status"], "running");
  Post(c, "/api/admin/services/nosuchservice/purge", nullptr, 404);

  Post(c, "/api/admin/workers/w1/drain", nullptr);
  Post(c, "/api/admin/workers/w1/undrain", nullptr);
  w = Get(c, "/api/admin/workers/w1");
  ASSERT_GE(w["connections"].size(), 3u);
  EXPECT_EQ(w["connections"][0]["event"], "undrained") << w.dump();
  EXPECT_EQ(w["connections"][1]["event"], "drained");

  HttpResponse cancel = HttpCall("DELETE", c.Url("/api/tasks/" + running), "", {kJsonType});
  EXPECT_EQ(cancel.status, 200) << cancel.body;
  json t = Get(c, "/api/tasks/" + running + "?detail=1");
  ASSERT_EQ(t["attempt_log"].size(), 1u);
  EXPECT_EQ(t["attempt_log"][0]["outcome"], "cancelled");
}

inline void StartConsoleWorker(Cluster& c) {
  c.StartWorker("w1", {"--service", "echo=builtin:echo", "--service", "job=builtin:fail",
                       "--service", "slow=builtin:sleep", "--slots", "1"});
  ASSERT_TRUE(WaitForService(c, "echo")) << c.Logs();
  ASSERT_TRUE(WaitForService(c, "slow")) << c.Logs();
}

}  // namespace rma::testing
