// End to end through a real rma-broker process: a worker's PARTIAL chunks reach the synchronous
// caller in order, each before the call's TASK_INFO, and an asynchronous task's chunks reach nobody
// (docs/protocol.md §5.15, §6.7). The worker is the test suite's FakeWorker streaming over the wire
// protocol, then a real rma-worker whose http backend streams server-sent events; the caller is a
// ZmqClient, as a gateway would be.
#include <gtest/gtest.h>

#include "tests/support/cluster.h"
#include "tests/support/process.h"
#include "tests/support/test_backend.h"
#include "tests/support/zmq_peers.h"

namespace rma::testing {
namespace {

using namespace std::chrono_literals;
using proto::Command;

TEST(StreamE2eTest, ChunksReachTheSynchronousCallerInOrderBeforeTheEnd) {
  ClusterOptions options;
  options.gateway = false;
  Cluster c(options);
  FakeWorkerOptions w;
  w.endpoint = c.workers_endpoint();
  w.worker_id = "streamer";
  w.services = {"llm"};
  w.stream = [](const proto::TaskAssignment& t) {
    std::vector<std::string> chunks;
    for (int i = 0; i < 20; ++i)
      chunks.push_back("data: " + t.payload.str() + std::to_string(i) + "\n\n");
    return chunks;
  };
  FakeWorker worker(w, nullptr);
  worker.Start();
  ASSERT_TRUE(WaitUntil([&] { return worker.registered(); }, 10s)) << c.Logs();

  ZmqClient client(c.clients_endpoint());
  proto::Decoder decoder;
  for (uint64_t ref : {1, 2, 3}) {
    proto::Submit call;
    call.ref = ref;
    call.service = "llm";
    call.payload = "t" + std::to_string(ref) + "-";
    call.mode = proto::SubmitMode::kSync;
    ASSERT_TRUE(client.Submit({call}));
    std::vector<proto::CallPartial> chunks;
    bool ended = false;
    while (!ended) {
      ClientMessage m;
      ASSERT_TRUE(client.Receive(10000ms, &m)) << "no answer for call " << ref << "\n" << c.Logs();
      for (const std::string& body : m.bodies) {
        if (m.command == Command::kCallPartial) {
          proto::CallPartial p;
          ASSERT_TRUE(decoder.Decode(body, &p).ok());
          ASSERT_EQ(p.ref, ref);
          chunks.push_back(p);
        } else {
          ASSERT_EQ(m.command, Command::kTaskInfo) << proto::CommandName(m.command);
          proto::TaskInfo info;
          ASSERT_TRUE(decoder.Decode(body, &info).ok());
          EXPECT_EQ(info.ref, ref);
          EXPECT_EQ(info.task.status, proto::TaskStatus::kCompleted);
          ended = true;
        }
      }
    }
    ASSERT_EQ(chunks.size(), 20u) << "every chunk before the end";
    for (uint32_t i = 0; i < chunks.size(); ++i) {
      EXPECT_EQ(chunks[i].seq, i);
      EXPECT_EQ(chunks[i].data, "data: t" + std::to_string(ref) + "-" + std::to_string(i) + "\n\n");
    }
    EXPECT_EQ(chunks[0].http_status, 200u);
    EXPECT_EQ(chunks[0].content_type, "text/event-stream");
  }

  // An asynchronous task's chunks are not relayed (nor kept): its client gets ACCEPTED, and the
  // task's end through GET.
  proto::Submit task;
  task.ref = 9;
  task.service = "llm";
  task.payload = "async";
  task.wait_ms = 10000;
  ASSERT_TRUE(client.Submit({task}));
  int answers = 0;
  while (answers < 2) {
    ClientMessage m;
    ASSERT_TRUE(client.Receive(10000ms, &m)) << c.Logs();
    EXPECT_NE(m.command, Command::kCallPartial);
    answers += static_cast<int>(m.bodies.size());
  }
  worker.Stop();
}

TEST(StreamE2eTest, ARealWorkerForwardsItsBackendsEventsAsTheyCome) {
  TestBackend backend;
  Cluster c;
  c.StartWorker("llm-box", {"--service", "llm=" + backend.Url(), "--slots", "2"});
  ASSERT_TRUE(c.WaitForLiveWorkers(1, 20s, "llm")) << c.Logs();
  ZmqClient client(c.clients_endpoint());
  proto::Submit call;
  call.ref = 5;
  call.service = "llm";
  call.mode = proto::SubmitMode::kSync;
  call.request = proto::HttpRequest{"GET", "/stream/5/150", "", {}};  // 5 events, 150 ms apart
  const auto sent = std::chrono::steady_clock::now();
  ASSERT_TRUE(client.Submit({call}));
  proto::Decoder decoder;
  std::string streamed;
  std::chrono::steady_clock::time_point first{};
  std::chrono::steady_clock::time_point end{};
  proto::TaskInfo info;
  while (end == std::chrono::steady_clock::time_point{}) {
    ClientMessage m;
    ASSERT_TRUE(client.Receive(10000ms, &m)) << c.Logs();
    for (const std::string& body : m.bodies) {
      if (m.command == Command::kCallPartial) {
        proto::CallPartial p;
        ASSERT_TRUE(decoder.Decode(body, &p).ok());
        if (streamed.empty()) {
          first = std::chrono::steady_clock::now();
          EXPECT_EQ(p.seq, 0u);
          EXPECT_EQ(p.http_status, 200u);
          EXPECT_EQ(p.content_type.rfind("text/event-stream", 0), 0u) << p.content_type;
        }
        streamed += p.data.str();
      } else {
        ASSERT_EQ(m.command, Command::kTaskInfo) << proto::CommandName(m.command);
        ASSERT_TRUE(decoder.Decode(body, &info).ok());
        end = std::chrono::steady_clock::now();
      }
    }
  }
  EXPECT_EQ(info.task.status, proto::TaskStatus::kCompleted);
  EXPECT_EQ(streamed, info.task.result.str()) << "the chunks are the whole answer, in order";
  ASSERT_NE(first, std::chrono::steady_clock::time_point{}) << "no chunk before the end";
  // The first event reached the caller while the backend was still producing the other four.
  EXPECT_GE(end - first, 400ms)
      << "first chunk after "
      << std::chrono::duration_cast<std::chrono::milliseconds>(first - sent).count() << " ms";

  // Through the gateway the same events make the HTTP answer (gateway_stream_e2e_test.cc shows
  // they arrive as they come).
  HttpResponse r = HttpGet(c.Url("/api/service/llm/stream/3/10"));
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.body, "data: 0\n\ndata: 1\n\ndata: 2\n\n");
}

}  // namespace
}  // namespace rma::testing
