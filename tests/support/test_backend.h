// Test support: TestBackend, a small real HTTP/1.1 server on 127.0.0.1 standing in for a service
// backend (rag, ocr, an OpenAI-compatible LLM server, ...) in worker and end-to-end tests. One
// thread accepts, one thread serves each connection (Connection: close, Content-Length bodies
// only), so a slow request never delays the health endpoint. The rma-test-backend program
// (test_backend_main.cc) runs the same server on its own for end-to-end tests.
//
// Routes (an optional "/v1" prefix is ignored, to test base paths; so /v1/models and /models are
// the same route):
//   GET  /health                 200 "ok", or 503 while unhealthy
//   POST /control/health/up|down  switch the health answer
//   POST /control/models          body a JSON array of model ids: SetModels (re-advertisement)
//   GET  /control/streams         JSON {"aborted":N,"streams":[{"path","model","mono_ms":[..],
//                                 "finished","aborted"}]}: Streams() for tests of another process
//   ANY  /echo...                200 JSON {"method","path","query","headers","body"}
//   ANY  /status/N               status N, text/plain "status N"
//   ANY  /slow/MS                200 after MS milliseconds (cut short when the server stops)
//   ANY  /big/N                  200 with N bytes of 'x'
//   ANY  /stream/N/MS            200 text/event-stream, chunked: N events "data: i", MS apart;
//                                while HoldStreams(true), the first event waits for the release
//   POST /v1/chat/completions    OpenAI's chat completion (below)
//   POST /v1/completions         OpenAI's legacy text completion (below)
//   POST /v1/embeddings          OpenAI's embeddings (below)
//   GET  /v1/models              {"object":"list","data":[{"id","object":"model","created",
//                                "owned_by"}]} for models()
//   GET  /v1/models/ID           that model, or 404 model_not_found
//   POST /                       200 with the request body and content type (asynchronous tasks)
//   anything else                404
//
// The OpenAI routes follow OpenAI's wire format. A completion "generates" N deterministic tokens:
// the words "tok0 tok1 ... tok{N-1}" (deltas "tok0", " tok1", ...), N = max_tokens (chat also
// takes max_completion_tokens; default 8, at most 100000), each after the token delay: the request
// header X-Test-Token-Delay-Ms if present, else SetTokenDelayMs / Options::token_delay_ms (default
// 0). The answer echoes the request's "model"; finish_reason is "stop"; usage counts prompt tokens
// as whitespace-separated words. With "stream": true the answer is text/event-stream, chunked, one
// `data: {json}\n\n` event per token written as soon as it is generated ("chat.completion.chunk"
// with choices[0].delta, the first delta carrying role "assistant"; "text_completion" with
// choices[0].text), then a chunk with finish_reason "stop" (an empty delta / text ""), then, when
// the request has stream_options.include_usage, a chunk with "choices":[] and "usage" (every
// earlier chunk then carries "usage":null), then `data: [DONE]\n\n`. Embeddings: input a string,
// an array of strings, an array of token ids or an array of those; each item gets a deterministic
// vector of "dimensions" (default 8) values k/1024 in [-1, 1], as JSON floats or, with
// "encoding_format":"base64" (the openai SDK's default), base64 of little-endian float32.
// Errors use OpenAI's shape {"error":{"message","type","param","code"}}: model "missing-model"
// (and, with Options::strict_models, any model not advertised) answers 404 code model_not_found;
// a body that is not a JSON object or lacks "model" answers 400 invalid_request_error.
//
// Every streamed completion is recorded (Streams()): when each token's event was written, whether
// it finished, and whether the client went away first (its socket closed or a write failed; the
// backend notices between tokens, at once, and stops generating), so tests can prove that the
// first token reached a client while the backend was still generating and that a client's
// disconnect aborted the backend's request.
// Thread-safe.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace rma::testing {

class TestBackend {
 public:
  struct Options {
    int port = 0;  // 0: any free port
    bool healthy = true;
    std::vector<std::string> models = {"test-model"};  // what GET /v1/models lists
    int64_t token_delay_ms = 0;  // before each generated token, unless the request's header says
    bool strict_models = false;  // 404 for every model not in `models`, not only "missing-model"
  };
  // One streamed completion (stream: true), as the backend wrote it.
  struct Stream {
    std::string path;                               // as requested, e.g. "/v1/chat/completions"
    std::string model;                              // the request's
    std::chrono::steady_clock::time_point started;  // when the request had been read
    // When each token's event was written to the socket (taken just before the write, so a
    // client never has a token before its time; steady_clock is CLOCK_MONOTONIC, the clock node's
    // process.hrtime reads, so a client's arrival times compare with these). Only tokens whose
    // write succeeded.
    std::vector<std::chrono::steady_clock::time_point> chunk_times;
    bool finished = false;  // every token, the final chunks and "data: [DONE]" were written
    bool aborted = false;   // the client went away before the end (not by Stop())
  };
  struct Request {
    std::string method;
    std::string path;
    std::string query;
    std::map<std::string, std::string> headers;  // names in lower case
    std::string body;
  };

  // Listens at once; throws std::runtime_error when it cannot.
  explicit TestBackend(Options options);
  TestBackend() : TestBackend(Options{}) {}
  ~TestBackend();
  TestBackend(const TestBackend&) = delete;
  TestBackend& operator=(const TestBackend&) = delete;

  int port() const { return port_; }
  std::string Url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  void SetHealthy(bool healthy) { healthy_.store(healthy); }
  bool healthy() const { return healthy_.load(); }
  // Every request received so far (once its body is read), oldest first.
  std::vector<Request> Requests() const;
  // How many requests with a path starting with `prefix` arrived.
  size_t Count(const std::string& prefix) const;
  // What GET /v1/models lists, from now on.
  void SetModels(std::vector<std::string> models);
  std::vector<std::string> Models() const;
  // The pause before each generated token for requests without X-Test-Token-Delay-Ms.
  void SetTokenDelayMs(int64_t ms) { token_delay_ms_.store(ms); }
  // While held, /stream/N/MS sends its headers and then waits (until released or Stop()) before
  // its first event, so a test can attach an observer before any output exists.
  void HoldStreams(bool hold);
  // Every streamed completion so far (begun, finished or aborted), oldest first.
  std::vector<Stream> Streams() const;
  // How many streamed completions ended because their client went away.
  size_t AbortedStreams() const;
  // Waits until at least `count` streams were aborted by their client, or `timeout`; returns
  // whether they were.
  bool WaitForAbortedStreams(size_t count, std::chrono::milliseconds timeout);
  // Closes the listening socket and every connection, and joins the threads. Idempotent.
  void Stop();

 private:
  void Accept();
  void Serve(int fd);
  // Waits up to `ms` or until Stop(); false when stopped.
  bool Pause(int64_t ms);
  // The OpenAI routes (see the header comment).
  void ServeCompletion(int fd, const Request& req, bool chat);
  void ServeEmbeddings(int fd, const Request& req);
  void ServeModels(int fd, const std::string& id);
  // Between two streamed tokens: waits `ms` while watching the client's socket. kGone when the
  // client closed it, kStopped on Stop().
  enum class Wait { kGo, kGone, kStopped };
  Wait WaitForToken(int fd, int64_t ms);
  // Whether the request names a model this backend does not serve; answers 404 if so.
  bool RejectModel(int fd, const std::string& model);

  std::atomic<bool> healthy_;
  std::atomic<int64_t> token_delay_ms_;
  const bool strict_models_;
  int listen_fd_ = -1;
  int stop_fd_ = -1;
  int port_ = 0;
  std::thread acceptor_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  bool hold_streams_ = false;
  struct Connection {
    std::thread thread;
    std::shared_ptr<std::atomic<bool>> done;
  };
  std::vector<Connection> connections_;
  std::vector<int> open_fds_;
  std::vector<Request> requests_;
  std::vector<std::string> models_;
  std::vector<Stream> streams_;
};

}  // namespace rma::testing
