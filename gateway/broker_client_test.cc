// BrokerClient, the gateway's link to the broker, against a broker reduced to a ROUTER socket in
// the test: the test reads what the gateway sends and answers by hand. Time inside the client is a
// FakeClock, so "handling these answers took seconds" is a clock advance in a callback, not a load
// that may or may not happen on the machine.
#include "gateway/broker_client.h"

#include <gtest/gtest.h>

#include <zmq.hpp>

#include <condition_variable>
#include <functional>
#include <mutex>
#include <optional>

#include "common/clock.h"
#include "protocol/codec.h"
#include "protocol/frames.h"
#include "tests/support/process.h"

namespace rma::gateway {
namespace {

using proto::Command;
using namespace std::chrono_literals;

// What the client's callbacks saw, for the test thread to wait on.
class Observed {
 public:
  void Chunk() {
    std::lock_guard<std::mutex> lock(mu_);
    ++chunks_;
    changed_.notify_all();
  }
  void Answer(const Result<BrokerAnswer>& answer) {
    std::lock_guard<std::mutex> lock(mu_);
    answer_ = answer.ok() ? Status::Ok() : answer.status();
    changed_.notify_all();
  }
  bool WaitForChunks(int n) {
    std::unique_lock<std::mutex> lock(mu_);
    return changed_.wait_for(lock, 20s, [&] { return chunks_ >= n; });
  }
  bool WaitForAnswer() {
    std::unique_lock<std::mutex> lock(mu_);
    return changed_.wait_for(lock, 20s, [&] { return answer_.has_value(); });
  }
  std::optional<Status> answer() {
    std::lock_guard<std::mutex> lock(mu_);
    return answer_;
  }

 private:
  std::mutex mu_;
  std::condition_variable changed_;
  int chunks_ = 0;
  std::optional<Status> answer_;
};

class FakeBroker {
 public:
  FakeBroker() : socket_(context_, zmq::socket_type::router) {
    socket_.set(zmq::sockopt::linger, 0);
    socket_.bind("tcp://127.0.0.1:*");
  }
  std::string endpoint() { return socket_.get(zmq::sockopt::last_endpoint); }
  zmq::socket_t& socket() { return socket_; }

  // Waits (up to 20 s) for the next message with `command`, skipping others (pings); `idle` runs
  // whenever 20 ms pass without it.
  bool Expect(Command command, proto::InMessage* msg, const std::function<void()>& idle = {}) {
    const auto deadline = std::chrono::steady_clock::now() + 20s;
    while (std::chrono::steady_clock::now() < deadline) {
      zmq::pollitem_t items[] = {{socket_.handle(), 0, ZMQ_POLLIN, 0}};
      if (zmq::poll(items, 1, 20ms) == 0 && idle) idle();
      while (true) {
        auto got = proto::ReceiveMessage(socket_, /*has_identity=*/true, {}, msg);
        if (!got.ok() || !*got) break;
        if (msg->command() == command) return true;
      }
    }
    return false;
  }

 private:
  zmq::context_t context_{1};
  zmq::socket_t socket_;
};

// A flood of streamed chunks whose handling takes longer than the liveness window (a gateway
// starved of CPU under 100,000 chunks/s) is the broker talking, not the broker gone: the client
// must not declare it unreachable once the flood is handled and fail every request. It used to,
// because the broker counted as heard at the moment the poll returned, before the flood.
TEST(BrokerClientTest, AFloodOfChunksHandledSlowerThanTheLivenessWindowKeepsTheBroker) {
  FakeClock clock;
  FakeBroker broker;
  BrokerClientOptions options;
  options.endpoint = broker.endpoint();
  options.heartbeat = Ms(100);
  options.liveness = 3;  // 300 ms of the fake clock without a word and the broker is gone
  options.clock = &clock;
  BrokerClient client(options);
  ASSERT_TRUE(client.Start().ok());

  proto::InMessage msg;
  // The first ping may leave before the connection is up (and is dropped): the client pings
  // again every 50 ms of its clock until the broker answers.
  ASSERT_TRUE(broker.Expect(Command::kHeartbeat, &msg, [&] { clock.Advance(Ms(50)); }));
  const std::string gateway = msg.identity();
  ASSERT_TRUE(proto::SendEmpty(broker.socket(), gateway, Command::kHeartbeat).ok());
  // Requests are refused at once (503) until the broker's first answer is in.
  ASSERT_TRUE(testing::WaitUntil([&] { return client.broker_reachable(); }, 20s));

  constexpr int kChunks = 64;
  Observed seen;
  proto::Submit call;
  call.service = "llm";
  call.mode = proto::SubmitMode::kSync;
  client.Request(
      Command::kSubmit, call, Seconds(600), [&](const Result<BrokerAnswer>& a) { seen.Answer(a); },
      [&](StreamEvent) {
        clock.Advance(Ms(100));  // each chunk takes 100 ms to hand on: 6.4 s for the flood
        seen.Chunk();
      });
  ASSERT_TRUE(broker.Expect(Command::kSubmit, &msg));
  proto::Decoder decoder;
  proto::Submit sent;
  ASSERT_TRUE(decoder.Decode(msg.body(0), &sent).ok());

  proto::OutMessage flood(Command::kCallPartial);
  for (int i = 0; i < kChunks; ++i) {
    proto::CallPartial p;
    p.ref = sent.ref;
    p.task_id = TaskId(7);
    p.seq = static_cast<uint32_t>(i);
    p.data = Bytes(std::string("token "));
    flood.Add(p);
  }
  ASSERT_TRUE(std::move(flood).Send(broker.socket(), gateway).ok());
  ASSERT_TRUE(seen.WaitForChunks(kChunks));

  // Two more requests, each sent by a later turn of the client's loop than the one before: once
  // the second reaches the broker, the turn after the flood has run its liveness check.
  proto::Get get;
  get.task_id = TaskId(7);
  client.Request(Command::kGet, get, Seconds(600), [](Result<BrokerAnswer>) {});
  ASSERT_TRUE(broker.Expect(Command::kGet, &msg));
  client.Request(Command::kGet, get, Seconds(600), [](Result<BrokerAnswer>) {});
  ASSERT_TRUE(broker.Expect(Command::kGet, &msg));

  EXPECT_FALSE(seen.answer().has_value()) << "the call was failed: " << seen.answer()->message();
  EXPECT_TRUE(client.broker_reachable());

  // And the call still ends with the broker's answer.
  proto::TaskInfo done;
  done.ref = sent.ref;
  done.task.task_id = TaskId(7);
  done.task.status = proto::TaskStatus::kCompleted;
  ASSERT_TRUE(proto::SendOne(broker.socket(), gateway, Command::kTaskInfo, done).ok());
  ASSERT_TRUE(seen.WaitForAnswer());
  EXPECT_TRUE(seen.answer()->ok()) << seen.answer()->message();
  client.Stop();
}

// High availability: with several endpoints, a standby's not_leader sends the client on (straight
// to the endpoint it names), a request the standby refused is answered 503 (nothing was done), and
// the leader's answer makes the broker reachable there.
TEST(BrokerClientTest, SeveralBrokersAStandbySendsTheClientToTheLeader) {
  FakeBroker other;  // listed first: never answers
  FakeBroker standby;
  FakeBroker leader;
  BrokerClientOptions options;
  options.endpoint = standby.endpoint() + "," + other.endpoint() + "," + leader.endpoint();
  options.heartbeat = Ms(200);
  BrokerClient client(options);
  ASSERT_TRUE(client.Start().ok());
  EXPECT_EQ(client.current_endpoint(), standby.endpoint());

  proto::InMessage msg;
  ASSERT_TRUE(standby.Expect(Command::kHeartbeat, &msg));
  const std::string hint =
      "this broker is a standby (--ha); the leader is " + leader.endpoint() + " (clients), epoch 3";
  ASSERT_TRUE(proto::SendOne(standby.socket(), msg.identity(), Command::kError,
                             proto::Error{0, std::string(proto::kNotLeaderCode), hint, {}, {}})
                  .ok());
  ASSERT_TRUE(leader.Expect(Command::kHeartbeat, &msg));
  EXPECT_EQ(client.current_endpoint(), leader.endpoint());
  EXPECT_FALSE(client.broker_reachable());
  ASSERT_TRUE(proto::SendEmpty(leader.socket(), msg.identity(), Command::kHeartbeat).ok());
  ASSERT_TRUE(testing::WaitUntil([&] { return client.broker_reachable(); }, 20s));
  EXPECT_GE(client.broker_switches(), 1u);
  client.Stop();
}

TEST(BrokerClientTest, ARequestAStandbyRefusedIsAnsweredAsNotDone) {
  FakeBroker standby;
  FakeBroker leader;
  BrokerClientOptions options;
  options.endpoint = standby.endpoint() + "," + leader.endpoint();
  options.heartbeat = Ms(200);
  BrokerClient client(options);
  ASSERT_TRUE(client.Start().ok());
  proto::InMessage msg;
  // The standby answers pings as if it led (it has not learned otherwise yet), then refuses.
  ASSERT_TRUE(standby.Expect(Command::kHeartbeat, &msg));
  const std::string gateway = msg.identity();
  ASSERT_TRUE(proto::SendEmpty(standby.socket(), gateway, Command::kHeartbeat).ok());
  ASSERT_TRUE(testing::WaitUntil([&] { return client.broker_reachable(); }, 20s));
  Observed seen;
  proto::Submit submit;
  submit.service = "echo";
  client.Request(Command::kSubmit, submit, Seconds(10),
                 [&](const Result<BrokerAnswer>& a) { seen.Answer(a); });
  ASSERT_TRUE(standby.Expect(Command::kSubmit, &msg));
  proto::Decoder decoder;
  proto::Submit sent;
  ASSERT_TRUE(decoder.Decode(msg.body(0), &sent).ok());
  ASSERT_TRUE(proto::SendOne(standby.socket(), gateway, Command::kError,
                             proto::Error{sent.ref,
                                          std::string(proto::kNotLeaderCode),
                                          "this broker is a standby (--ha)",
                                          {},
                                          {}})
                  .ok());
  ASSERT_TRUE(seen.WaitForAnswer());
  EXPECT_EQ(seen.answer()->code(), StatusCode::kUnavailable) << seen.answer()->message();
  ASSERT_TRUE(leader.Expect(Command::kHeartbeat, &msg));
  client.Stop();
}

}  // namespace
}  // namespace rma::gateway
