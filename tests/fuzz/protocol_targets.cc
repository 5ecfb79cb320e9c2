// See protocol_targets.h.
#include "tests/fuzz/protocol_targets.h"

#include <zmq.hpp>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <optional>

#include <msgpack.hpp>

#include "protocol/admin_reply.h"
#include "protocol/codec.h"
#include "protocol/frames.h"

namespace rma::fuzz {
namespace {

[[noreturn]] void Fail(const std::string& what, std::string_view input) {
  std::fprintf(stderr, "fuzz property failed: %s (input of %zu bytes)\n", what.c_str(),
               input.size());
  std::abort();
}

// One decoder type: decode, and when accepted check that encoding and decoding agree.
template <typename T>
int TryDecode(proto::Decoder& decoder, std::string_view body, const char* name) {
  T first;
  if (!decoder.Decode(body, &first).ok()) return 0;
  const std::string encoded = proto::Encode(first);
  if (encoded.size() > decoder.limits().max_frame_bytes) {
    Fail(std::string(name) + ": accepted a body that encodes over the frame limit", body);
  }
  T second;
  Status again = decoder.Decode(encoded, &second);
  if (!again.ok()) Fail(std::string(name) + ": re-encoding refused: " + again.message(), body);
  if (proto::Encode(second) != encoded) Fail(std::string(name) + ": encode/decode disagree", body);
  return 1;
}

}  // namespace

int CodecOneInput(std::string_view body) {
  // Small limits, so that the mutations reach them.
  static proto::Limits limits = [] {
    proto::Limits l;
    l.max_frame_bytes = 1 << 20;
    l.max_payload_bytes = 64 << 10;
    l.max_string_bytes = 4 << 10;
    l.max_array = 64;
    l.max_map = 32;
    l.max_objects = 4096;
    return l;
  }();
  static proto::Decoder decoder(limits);
  int accepted = 0;
#define RMA_FUZZ_DECODE(Type, wire_name) \
  accepted += TryDecode<proto::Type>(decoder, body, wire_name);
  RMA_PROTOCOL_MESSAGES(RMA_FUZZ_DECODE)
#undef RMA_FUZZ_DECODE
  return accepted;
}

// The bodies one body frame holds by docs/protocol.md section 3 — one body, or (a frame that starts
// with a map) several whole msgpack maps one after the other — measured with msgpack-c's own
// parser, not frames.cc's. nullopt: the frame must be refused. *unsure: msgpack-c gave up (its own
// depth or size limits), so the input is not judged.
std::optional<std::vector<std::string>> BodiesOfFrame(const std::string& f, bool* unsure) {
  auto is_map = [&](size_t at) {
    const auto b = static_cast<uint8_t>(f[at]);
    return (b >= 0x80 && b <= 0x8f) || b == 0xde || b == 0xdf;
  };
  if (f.empty() || !is_map(0)) return std::vector<std::string>{f};
  std::vector<std::string> bodies;
  size_t offset = 0;
  while (offset < f.size()) {
    const size_t start = offset;
    if (!is_map(start)) return std::nullopt;
    try {
      // Counts and lengths bounded by the frame: anything larger cannot fit, so it is a truncated
      // object (size_overflow below), and msgpack-c never allocates for a lie.
      const size_t n = f.size();
      msgpack::object_handle h = msgpack::unpack(f.data(), f.size(), offset, nullptr, nullptr,
                                                 msgpack::unpack_limit(n, n, n, n, n, n + 1));
      (void)h;
    } catch (const msgpack::insufficient_bytes&) {
      if (start == 0) return std::vector<std::string>{f};
      return std::nullopt;
    } catch (const msgpack::size_overflow&) {
      if (start == 0) return std::vector<std::string>{f};
      return std::nullopt;
    } catch (const msgpack::parse_error&) {
      if (start == 0) return std::vector<std::string>{f};
      return std::nullopt;
    } catch (const std::exception&) {
      *unsure = true;
      return std::nullopt;
    }
    bodies.push_back(f.substr(start, offset - start));
  }
  return bodies;
}

bool FramesOneInput(const std::vector<std::string>& frames) {
  struct Pair {
    zmq::context_t context{1};
    zmq::socket_t router{context, zmq::socket_type::router};
    zmq::socket_t dealer{context, zmq::socket_type::dealer};
    proto::Limits limits;
    Pair() {
      limits.max_bodies = 8;
      limits.max_frame_bytes = 4096;
      proto::ConfigureSocket(router, limits, /*is_router=*/true);
      proto::ConfigureSocket(dealer, limits, /*is_router=*/false);
      router.bind("inproc://fuzz-frames");
      dealer.connect("inproc://fuzz-frames");
    }
  };
  static Pair* pair = new Pair();  // one pair for the whole run (never destroyed: no linger)
  if (frames.empty()) return false;
  for (size_t i = 0; i < frames.size(); ++i) {
    zmq::message_t m(frames[i].data(), frames[i].size());
    pair->dealer.send(m, i + 1 < frames.size() ? zmq::send_flags::sndmore : zmq::send_flags::none);
  }
  // A known-good message right behind it: it must come out intact whatever the first one was.
  const std::string sentinel = proto::Encode(proto::Heartbeat{0.5, 1, 2, 0});
  pair->dealer.send(zmq::buffer(proto::kProtocolHeader), zmq::send_flags::sndmore);
  pair->dealer.send(zmq::message_t("\x07", 1), zmq::send_flags::sndmore);
  pair->dealer.send(zmq::buffer(sentinel), zmq::send_flags::none);

  // Inproc delivery is synchronous with the send, but poll anyway rather than assume it.
  auto receive = [&](proto::InMessage* msg) -> Result<bool> {
    zmq::pollitem_t item{static_cast<void*>(pair->router), 0, ZMQ_POLLIN, 0};
    zmq::poll(&item, 1, std::chrono::milliseconds(1000));
    return proto::ReceiveMessage(pair->router, /*has_identity=*/true, pair->limits, msg);
  };
  std::string flat;
  for (const std::string& f : frames) flat += f;

  // The envelope rules of docs/protocol.md section 3, independently of frames.cc.
  const bool too_large = std::any_of(frames.begin(), frames.end(), [&](const std::string& f) {
    return f.size() > pair->limits.max_frame_bytes;
  });
  bool expected = frames.size() >= 2 && frames[0] == proto::kProtocolHeader &&
                  frames[1].size() == 1 &&
                  proto::IsKnownCommand(static_cast<uint8_t>(frames[1][0])) &&
                  frames.size() - 2 <= pair->limits.max_bodies;
  bool unsure = false;
  std::vector<std::string> bodies;  // what ReceiveMessage must hand out when it accepts
  for (size_t i = 2; expected && i < frames.size(); ++i) {
    auto in_frame = BodiesOfFrame(frames[i], &unsure);
    if (!in_frame) {
      expected = false;
      break;
    }
    bodies.insert(bodies.end(), in_frame->begin(), in_frame->end());
  }
  if (bodies.size() > pair->limits.max_bodies) expected = false;
  proto::InMessage msg;
  if (!too_large) {
    // (An oversized frame makes ZeroMQ drop the message before the broker sees it; over inproc
    // the limit is not applied, so such inputs are only checked for not crashing.)
    Result<bool> got = receive(&msg);
    if (got.ok() && !*got) Fail("a message that was sent did not arrive", flat);
    const bool accepted = got.ok();
    if (unsure) {
      // msgpack-c could not judge this input: only that nothing crashed is checked.
    } else if (accepted != expected) {
      Fail(std::string("envelope verdict ") + (accepted ? "accepted" : "refused") +
               " but the rules say " + (expected ? "accept" : "refuse"),
           flat);
    }
    if (accepted && !unsure) {
      if (msg.body_count() != bodies.size()) Fail("wrong number of bodies", flat);
      for (size_t i = 0; i < msg.body_count(); ++i) {
        if (msg.body(i) != bodies[i]) Fail("a body changed on the way", flat);
      }
    }
  } else {
    (void)receive(&msg);
  }
  // Whatever came before, the sentinel parses (drain anything left of the input first).
  for (int tries = 0; tries < 3; ++tries) {
    Result<bool> got = receive(&msg);
    if (got.ok() && *got && msg.command() == proto::Command::kHeartbeat && msg.body_count() == 1 &&
        msg.body(0) == sentinel) {
      return !too_large && expected && !unsure;
    }
  }
  Fail("the message after this input was lost or damaged", flat);
}

std::vector<std::string> SplitFrames(std::string_view data) {
  std::vector<std::string> frames;
  size_t at = 0;
  while (at < data.size() && frames.size() < 64) {
    size_t n = static_cast<unsigned char>(data[at++]);
    n = std::min(n, data.size() - at);
    frames.emplace_back(data.substr(at, n));
    at += n;
  }
  return frames;
}

std::vector<std::string> SampleBodies() {
  using namespace proto;
  Ready ready;
  ready.worker_id = "w-1";
  ready.worker_secret = "0123456789abcdef";
  ready.slots = 4;
  ready.capabilities.cpu_cores = 8;
  ready.capabilities.ram_gb = 15.5;
  ready.capabilities.labels = {{"zone", "home"}};
  ready.services = {{"echo", "builtin"}, {"rag", "http"}};
  ready.running = {{TaskId(7), 2}};
  TaskAssignment task{TaskId(42),
                      1,
                      "rag",
                      Bytes(std::string("{\"q\":1}")),
                      "application/json",
                      30000,
                      HttpRequest{"POST", "/v1/x", "a=b", {{"x-k", "v"}}}};
  TaskResult result;
  result.task_id = TaskId(42);
  result.result = Bytes(std::string("done"));
  result.content_type = "text/plain";
  result.http_status = 200;
  Submit submit;
  submit.ref = 9;
  submit.service = "echo";
  submit.payload = Bytes(std::string("hello"));
  submit.idempotency_key = "k-1";
  submit.owner = "alice";
  submit.request = HttpRequest{"GET", "/", "", {}};
  TaskInfo info;
  info.ref = 3;
  info.task.task_id = TaskId(42);
  info.task.service = "echo";
  info.task.status = TaskStatus::kCompleted;
  info.task.result = Bytes(std::string("r"));
  TaskList list;
  list.tasks = {info.task, info.task};
  return {Encode(ready),
          Encode(Welcome{"w-1", 2, 3000, 3, {{"rag", 1, "img", 8000, "why"}}}),
          Encode(task),
          Encode(result),
          Encode(Progress{TaskId(42), 1, 0.5, "half"}),
          Encode(CancelAttempt{TaskId(42), 1, "timeout"}),
          Encode(Heartbeat{0.25, 3, 7.5, 0.1}),
          Encode(Manifest{{{"echo", "builtin"}}, 2}),
          Encode(Disconnect{"bye", false}),
          Encode(submit),
          Encode(Accepted{9, TaskId(42), TaskStatus::kQueued, true, false}),
          Encode(info),
          Encode(Get{4, TaskId(42), 1000, "alice", false}),
          Encode(CancelTask{5, TaskId(42), "alice", true}),
          Encode(List{6, "echo", "queued", 10, "alice", false}),
          Encode(list),
          Encode(Admin{7, "drain", "", "w-1"}),
          Encode(Error{8, "invalid_argument", "no", {"echo"}, "try echo"})};
}

std::vector<std::string> CodecDictionary() {
  std::vector<std::string> words = {"\x80",
                                    "\x81",
                                    "\x8f",
                                    "\x90",
                                    "\x9f",
                                    "\xc0",
                                    "\xc2",
                                    "\xc3",
                                    "\xc4\x01",
                                    "\xc4\xff",
                                    "\xc5\xff\xff",
                                    "\xc6\xff\xff\xff\xff",
                                    "\xcb\x7f\xf0\0\0\0\0\0\0",
                                    "\xcb\x7f\xf8\0\0\0\0\0\1",
                                    "\xcc\xff",
                                    "\xcd\xff\xff",
                                    "\xce\xff\xff\xff\xff",
                                    "\xcf\xff\xff\xff\xff\xff\xff\xff\xff",
                                    "\xd3\x80\0\0\0\0\0\0\0",
                                    "\xdc\xff\xff",
                                    "\xdd\xff\xff\xff\xff",
                                    "\xde\xff\xff",
                                    "\xdf\xff\xff\xff\xff",
                                    "\xd9\xff",
                                    "\xda\xff\xff",
                                    "\xdb\xff\xff\xff\xff",
                                    "\xff",
                                    "\xe0"};
  for (const char* key :
       {"worker_id", "task_id", "attempt",      "payload", "result",  "services",
        "running",   "slots",   "capabilities", "labels",  "headers", "request",
        "owner",     "admin",   "ref",          "tasks",   "outcome", "status",
        "mode",      "wait_ms", "data",         "query",   "service", "content_type"}) {
    std::string w(1, static_cast<char>(0xa0 | std::string_view(key).size()));
    words.push_back(w + key);
  }
  return words;
}

}  // namespace rma::fuzz
