// End to end on PostgreSQL (label "pg"): a SUBMIT that asks to be told when its task ends
// (wait_ms, docs/protocol.md §6.1) and POST /api/tasks?wait=S, through real rma-broker --db,
// rma-worker and rma-gateway processes. Every task gets exactly one ACCEPTED (after the commit
// holding it) and one TASK_INFO with its result (which may come first: a result is not held back
// for the disk); every acknowledged task is on record; the HTTP route answers 200 with the result,
// 202 when the wait passes, 400 for a bad wait.
#include <gtest/gtest.h>
#include <pqxx/pqxx>

#include <map>

#include "tests/store/pg_env.h"
#include "tests/support/cluster.h"
#include "tests/support/zmq_peers.h"

namespace rma::testing {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using proto::Command;

class SubmitWaitTest : public ::testing::Test {
 protected:
  void SetUp() override { RMA_REQUIRE_PG(); }
};

TEST_F(SubmitWaitTest, EveryTaskGetsItsAcceptanceAndItsEnd) {
  FreshDatabase db;
  ClusterOptions options;
  options.broker_args = {"--db", db.url()};
  Cluster c(options);
  c.StartWorker("alpha", {"--service", "echo=builtin:echo", "--slots", "64"});
  ASSERT_TRUE(c.WaitForLiveWorkers(1, 20s, "echo")) << c.Logs();

  // Pipelined, so the worker often answers before the commit that holds the task returns.
  constexpr int kTasks = 600;
  ZmqClient client(c.clients_endpoint());
  for (int first = 1; first <= kTasks; first += 50) {
    std::vector<proto::Submit> batch;
    for (int ref = first; ref < first + 50; ++ref) {
      proto::Submit s;
      s.ref = static_cast<uint64_t>(ref);
      s.service = "echo";
      s.payload = "task-" + std::to_string(ref);
      s.wait_ms = 20000;
      batch.push_back(std::move(s));
    }
    ASSERT_TRUE(client.Submit(batch));
  }
  proto::Decoder decoder;
  std::map<uint64_t, TaskId> accepted;
  std::map<uint64_t, proto::TaskView> ended;
  const auto deadline = std::chrono::steady_clock::now() + 60s;
  while ((static_cast<int>(ended.size()) < kTasks || static_cast<int>(accepted.size()) < kTasks) &&
         std::chrono::steady_clock::now() < deadline) {
    ClientMessage m;
    if (!client.Receive(1000ms, &m)) continue;
    for (const std::string& body : m.bodies) {
      if (m.command == Command::kAccepted) {
        proto::Accepted a;
        ASSERT_TRUE(decoder.Decode(body, &a).ok());
        if (ended.count(a.ref) > 0) {
          EXPECT_EQ(ended[a.ref].task_id, a.task_id);
        }
        EXPECT_TRUE(accepted.emplace(a.ref, a.task_id).second) << "two ACCEPTED for " << a.ref;
      } else if (m.command == Command::kTaskInfo) {
        proto::TaskInfo info;
        ASSERT_TRUE(decoder.Decode(body, &info).ok());
        // Only an ended task may be told before its ACCEPTED.
        EXPECT_EQ(info.task.status, proto::TaskStatus::kCompleted);
        if (accepted.count(info.ref) > 0) {
          EXPECT_EQ(accepted[info.ref], info.task.task_id);
        }
        EXPECT_TRUE(ended.emplace(info.ref, info.task).second) << "two TASK_INFO for " << info.ref;
      } else {
        ADD_FAILURE() << "unexpected " << proto::CommandName(m.command);
      }
    }
  }
  ASSERT_EQ(static_cast<int>(ended.size()), kTasks) << c.Logs();
  ASSERT_EQ(static_cast<int>(accepted.size()), kTasks) << c.Logs();
  for (const auto& [ref, task] : ended) {
    EXPECT_EQ(task.status, proto::TaskStatus::kCompleted);
    EXPECT_EQ(task.result, "task-" + std::to_string(ref));
  }
  // Every acknowledged task is on record (its completion may still be on its way).
  pqxx::connection conn(db.url());
  pqxx::nontransaction tx(conn);
  EXPECT_EQ(tx.exec1("SELECT count(*) FROM tasks")[0].as<int>(), kTasks);
}

TEST_F(SubmitWaitTest, PostWithWaitAnswersWithTheResultOrTheTaskAsItStands) {
  FreshDatabase db;
  ClusterOptions options;
  options.broker_args = {"--db", db.url()};
  Cluster c(options);
  c.StartWorker("alpha", {"--service", "echo=builtin:echo"});
  ASSERT_TRUE(c.WaitForLiveWorkers(1, 20s, "echo")) << c.Logs();

  HttpResponse done =
      HttpPostJson(c.Url("/api/tasks?wait=10"), {{"service", "echo"}, {"payload", {{"a", 1}}}});
  ASSERT_EQ(done.status, 200) << done.body;
  EXPECT_EQ(done.Json()["status"], "completed");
  EXPECT_EQ(done.Json()["result"], json({{"a", 1}}));
  const std::string id = done.Json().value("task_id", "");
  EXPECT_EQ(done.Header("location"), "/api/tasks/" + id);
  // The same task, read back.
  HttpResponse read = HttpGet(c.Url("/api/tasks/" + id));
  ASSERT_EQ(read.status, 200);
  EXPECT_EQ(read.Json()["result"], json({{"a", 1}}));

  // Nobody provides "ocr": the wait passes and the task stands queued.
  HttpResponse waiting =
      HttpPostJson(c.Url("/api/tasks?wait=0.3"), {{"service", "ocr"}, {"payload", 1}});
  ASSERT_EQ(waiting.status, 202) << waiting.body;
  EXPECT_EQ(waiting.Json()["status"], "queued");
  EXPECT_EQ(waiting.Json().value("waiting_for_provider", false), true) << waiting.body;
  EXPECT_FALSE(waiting.Json().value("task_id", "").empty());

  // Without wait: the acceptance only, as always.
  HttpResponse plain = HttpPostJson(c.Url("/api/tasks"), {{"service", "echo"}, {"payload", 2}});
  ASSERT_EQ(plain.status, 202) << plain.body;
  EXPECT_FALSE(plain.Json().contains("result"));

  for (const char* bad : {"-1", "abc", "1e9"}) {
    HttpResponse r = HttpPostJson(c.Url(std::string("/api/tasks?wait=") + bad),
                                  {{"service", "echo"}, {"payload", 3}});
    EXPECT_EQ(r.status, 400) << bad << ": " << r.body;
    EXPECT_EQ(r.Json().value("code", ""), "invalid_argument");
  }
}

}  // namespace
}  // namespace rma::testing
