// Unit tests of direct socket writes: complete writes, slow readers finished by the writer thread,
// gone and stalled clients, and the property the gateway relies on — a dup() keeps naming its own
// socket after the original descriptor number is closed and reused.
#include "gateway/socket_writer.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <functional>
#include <thread>

namespace rma::gateway {
namespace {

// Polls until `pred` holds or `timeout` passes (polling with a deadline, not sleeping to sync).
bool Eventually(const std::function<bool()>& pred,
                std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return pred();
}

struct Pair {
  OwnedFd server;  // the gateway's side (non-blocking, like Pistache's sockets)
  OwnedFd client;
};

Pair MakePair(int sndbuf = 0) {
  int fds[2];
  EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
  ::fcntl(fds[0], F_SETFL, ::fcntl(fds[0], F_GETFL) | O_NONBLOCK);
  if (sndbuf > 0) ::setsockopt(fds[0], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
  return Pair{OwnedFd(fds[0]), OwnedFd(fds[1])};
}

// Reads until EOF or `want` bytes.
std::string ReadAll(int fd, size_t want) {
  std::string out;
  char buf[65536];
  while (out.size() < want) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

TEST(SocketWriterTest, SmallAnswerIsWrittenAtOnce) {
  SocketWriter writer;
  ASSERT_TRUE(writer.Start().ok());
  Pair p = MakePair();
  EXPECT_EQ(writer.Write(p.server.get(), OwnedFd(), "hello", /*close_after=*/false),
            WriteOutcome::kDone);
  EXPECT_EQ(ReadAll(p.client.get(), 5), "hello");
  EXPECT_EQ(writer.pending(), 0u);
}

TEST(SocketWriterTest, SlowReaderGetsEveryByteAndThenEndOfStream) {
  SocketWriter writer;
  ASSERT_TRUE(writer.Start().ok());
  Pair p = MakePair(/*sndbuf=*/4096);
  std::string big(8 << 20, '\0');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>('a' + i % 26);
  // Borrowed descriptor: the writer must take a dup of its own to finish later.
  EXPECT_EQ(writer.Write(p.server.get(), OwnedFd(), big, /*close_after=*/true),
            WriteOutcome::kPending);
  EXPECT_EQ(writer.pending(), 1u);
  p.server.Reset();  // the reactor may close its descriptor: the dup keeps the socket
  std::string got = ReadAll(p.client.get(), big.size() + 1);  // stops at end of stream
  EXPECT_EQ(got.size(), big.size());
  EXPECT_TRUE(got == big);
  EXPECT_TRUE(Eventually([&] { return writer.pending() == 0; }));
  EXPECT_EQ(writer.dropped(), 0u);
}

TEST(SocketWriterTest, GoneClientFailsWithoutSignal) {
  SocketWriter writer;
  ASSERT_TRUE(writer.Start().ok());
  Pair p = MakePair();
  p.client.Reset();
  EXPECT_EQ(writer.Write(p.server.get(), OwnedFd(), "late answer", false), WriteOutcome::kFailed);
  EXPECT_EQ(writer.dropped(), 1u);
}

TEST(SocketWriterTest, StalledClientIsDropped) {
  SocketWriter::Options options;
  options.stall_timeout = Ms(50);
  SocketWriter writer(options);
  ASSERT_TRUE(writer.Start().ok());
  Pair p = MakePair(4096);
  EXPECT_EQ(writer.Write(p.server.get(), OwnedFd(), std::string(4 << 20, 'x'), false),
            WriteOutcome::kPending);
  EXPECT_TRUE(Eventually([&] { return writer.dropped() == 1 && writer.pending() == 0; }));
}

TEST(SocketWriterTest, RefusesMoreThanMaxPendingBytes) {
  SocketWriter::Options options;
  options.max_pending_bytes = 1 << 20;
  SocketWriter writer(options);
  ASSERT_TRUE(writer.Start().ok());
  Pair p = MakePair(4096);
  EXPECT_EQ(writer.Write(p.server.get(), OwnedFd(), std::string(4 << 20, 'x'), false),
            WriteOutcome::kFailed);
  EXPECT_EQ(writer.dropped(), 1u);
}

TEST(SocketWriterTest, StopDropsUnfinishedAnswers) {
  SocketWriter writer;
  ASSERT_TRUE(writer.Start().ok());
  Pair p = MakePair(4096);
  EXPECT_EQ(writer.Write(p.server.get(), OwnedFd(), std::string(4 << 20, 'x'), false),
            WriteOutcome::kPending);
  writer.Stop();
  EXPECT_EQ(writer.pending(), 0u);
  EXPECT_EQ(writer.Write(p.server.get(), OwnedFd(), std::string(4 << 20, 'y'), false),
            WriteOutcome::kFailed);
}

// The reason the gateway answers through dups: Pistache closes a gone client's descriptor and the
// next connection may get the same number; an answer written to the dup still reaches the first
// socket (or nobody), never the new connection.
TEST(SocketWriterTest, DupKeepsItsSocketWhenTheNumberIsReused) {
  SocketWriter writer;
  ASSERT_TRUE(writer.Start().ok());
  Pair first = MakePair();
  auto dup = DupFd(first.server.get());
  ASSERT_TRUE(dup.ok());
  const int old_number = first.server.get();
  first.server.Reset();
  Pair second = MakePair();
  ASSERT_EQ(second.server.get(), old_number) << "the kernel reuses the lowest free number";
  const int dup_fd = dup->get();
  EXPECT_EQ(writer.Write(dup_fd, std::move(*dup), "for the first client", false),
            WriteOutcome::kDone);
  EXPECT_EQ(ReadAll(first.client.get(), 21), "for the first client");
  ::fcntl(second.client.get(), F_SETFL, O_NONBLOCK);
  char c;
  EXPECT_EQ(::read(second.client.get(), &c, 1), -1);
  EXPECT_EQ(errno, EAGAIN) << "the second connection must receive nothing";
}

// ---- AnswerGate: one answer at a time per connection -----------------------------------------

TEST(AnswerGateTest, BytesAfterTheAnswerIsOutAreTheNextRequest) {
  SocketWriter writer;
  ASSERT_TRUE(writer.Start().ok());
  Pair p = MakePair();
  auto gate = std::make_shared<AnswerGate>();
  EXPECT_FALSE(gate->Pipelined());  // nothing outstanding: a first request
  gate->Begin();
  EXPECT_TRUE(gate->KeepAlive(true));
  EXPECT_EQ(writer.Write(p.server.get(), OwnedFd(), "answer", false, gate), WriteOutcome::kDone);
  EXPECT_FALSE(gate->Pipelined());  // the answer is out: the next request is welcome
  EXPECT_EQ(ReadAll(p.client.get(), 6), "answer");
  writer.Stop();
}

TEST(AnswerGateTest, PipelinedBytesCloseTheConnectionAfterTheOutstandingAnswer) {
  SocketWriter writer;
  ASSERT_TRUE(writer.Start().ok());
  Pair p = MakePair();
  auto gate = std::make_shared<AnswerGate>();
  gate->Begin();
  EXPECT_TRUE(gate->Pipelined());       // a second request while the first waits
  EXPECT_FALSE(gate->KeepAlive(true));  // so the answer says Connection: close
  EXPECT_EQ(writer.Write(p.server.get(), OwnedFd(), "first", false, gate), WriteOutcome::kDone);
  EXPECT_EQ(ReadAll(p.client.get(), 100), "first");  // then EOF: the gateway shut it down
  writer.Stop();
}

TEST(AnswerGateTest, AnAnswerFinishedByTheWriterThreadStaysOutstandingUntilItsLastByte) {
  SocketWriter writer;
  ASSERT_TRUE(writer.Start().ok());
  Pair p = MakePair(4096);
  auto gate = std::make_shared<AnswerGate>();
  gate->Begin();
  const std::string big(1 << 20, 'b');
  EXPECT_EQ(writer.Write(p.server.get(), OwnedFd(), big, false, gate), WriteOutcome::kPending);
  // The client has not read it yet: a new request now would be pipelined. Read half first.
  std::string got = ReadAll(p.client.get(), big.size() / 2);
  EXPECT_TRUE(gate->Pipelined());
  got += ReadAll(p.client.get(), big.size());  // the rest, then EOF
  EXPECT_EQ(got.size(), big.size());
  EXPECT_TRUE(Eventually([&] { return writer.pending() == 0; }));
  writer.Stop();
}

// ---- Streams ------------------------------------------------------------------------------------

TEST(SocketStreamTest, PiecesArriveInOrderWhileTheWriterFinishesWhatTheSocketDidNotTake) {
  SocketWriter writer;
  ASSERT_TRUE(writer.Start().ok());
  Pair p = MakePair(/*sndbuf=*/4096);
  auto gate = std::make_shared<AnswerGate>();
  gate->Begin();
  auto stream = writer.OpenStream(std::move(p.server), gate, /*max_buffered=*/1 << 20);
  std::string expected;
  // Pieces larger than the socket takes: later ones queue behind the writer thread's part.
  for (int i = 0; i < 40; ++i) {
    std::string piece(10000, static_cast<char>('a' + i % 26));
    expected += piece;
    ASSERT_TRUE(stream->Append(piece)) << i;
  }
  stream->Finish("END", /*close_after=*/true);
  expected += "END";
  EXPECT_TRUE(gate->Pipelined()) << "the answer is outstanding until its last byte is out";
  std::string got = ReadAll(p.client.get(), expected.size() + 1);  // stops at end of stream
  EXPECT_TRUE(got == expected) << got.size() << " of " << expected.size();
  EXPECT_TRUE(Eventually([&] { return writer.pending() == 0; }));
  EXPECT_FALSE(stream->broken());
}

TEST(SocketStreamTest, AReaderThatFallsBehindPastTheBoundBreaksTheStream) {
  SocketWriter writer;
  ASSERT_TRUE(writer.Start().ok());
  Pair p = MakePair(/*sndbuf=*/4096);
  auto stream = writer.OpenStream(std::move(p.server), nullptr, /*max_buffered=*/64 << 10);
  // Nobody reads: what the kernel does not hold waits in the stream, up to 64 KiB.
  bool accepted = true;
  size_t appended = 0;
  for (int i = 0; i < 1000 && accepted; ++i) {
    accepted = stream->Append(std::string(4096, 'x'));
    if (accepted) appended += 4096;
  }
  EXPECT_FALSE(accepted) << "the stream kept buffering for a reader that does not read";
  EXPECT_TRUE(stream->broken());
  EXPECT_LE(stream->buffered(), 64u << 10);
  EXPECT_LT(appended, 4u << 20) << "bounded by the kernel's buffers plus the stream's own";
  EXPECT_FALSE(stream->Append("more")) << "nothing is written after a break";
  // The client sees the connection end.
  ReadAll(p.client.get(), SIZE_MAX);
  EXPECT_TRUE(Eventually([&] { return writer.pending() == 0; }));
}

TEST(SocketStreamTest, AClientThatIsGoneBreaksTheStream) {
  SocketWriter writer;
  ASSERT_TRUE(writer.Start().ok());
  Pair p = MakePair();
  auto gate = std::make_shared<AnswerGate>();
  gate->Begin();
  auto stream = writer.OpenStream(std::move(p.server), gate, 1 << 20);
  ASSERT_TRUE(stream->Append("first"));
  p.client.Reset();
  EXPECT_FALSE(stream->Append("second"));
  EXPECT_TRUE(stream->broken());
  EXPECT_FALSE(gate->Pipelined()) << "a broken stream's answer is no longer outstanding";
}

}  // namespace
}  // namespace rma::gateway
