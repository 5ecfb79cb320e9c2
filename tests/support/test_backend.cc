// See test_backend.h.
#include "tests/support/test_backend.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>

namespace rma::testing {

namespace {

constexpr size_t kMaxHead = 64 * 1024;
constexpr size_t kMaxBody = 64u << 20;

std::string Reason(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 400:
      return "Bad Request";
    case 404:
      return "Not Found";
    case 500:
      return "Internal Server Error";
    case 503:
      return "Service Unavailable";
    default:
      return "Status";
  }
}

bool SendAll(int fd, const std::string& data) {
  size_t sent = 0;
  while (sent < data.size()) {
    ssize_t n = send(fd, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    sent += static_cast<size_t>(n);
  }
  return true;
}

void Respond(int fd, int status, const std::string& content_type, const std::string& body) {
  std::string head = "HTTP/1.1 " + std::to_string(status) + " " + Reason(status) + "\r\n";
  if (!content_type.empty()) head += "Content-Type: " + content_type + "\r\n";
  head += "Content-Length: " + std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n";
  if (SendAll(fd, head)) SendAll(fd, body);
}

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// ---- OpenAI's wire format ----

constexpr int64_t kDefaultTokens = 8;
constexpr int64_t kMaxTokens = 100000;
constexpr int64_t kModelCreated = 1700000000;
constexpr const char* kMissingModel = "missing-model";

void RespondJson(int fd, int status, const nlohmann::json& body) {
  Respond(fd, status, "application/json", body.dump());
}

// {"error":{"message","type","param","code"}}, as OpenAI answers.
void RespondError(int fd, int status, const std::string& message, const std::string& type,
                  const nlohmann::json& param, const nlohmann::json& code) {
  RespondJson(
      fd, status,
      {{"error", {{"message", message}, {"type", type}, {"param", param}, {"code", code}}}});
}

bool SendChunk(int fd, const std::string& data) {
  char size[32];
  std::snprintf(size, sizeof size, "%zx\r\n", data.size());
  return SendAll(fd, size + data + "\r\n");
}

std::string Event(const nlohmann::json& j) { return "data: " + j.dump() + "\n\n"; }

int64_t Words(const std::string& text) {
  std::istringstream in(text);
  std::string word;
  int64_t n = 0;
  while (in >> word) ++n;
  return n;
}

// Prompt "tokens": words of a string, of each string in an array, of the text parts of a chat
// message's content; token ids count one each.
int64_t PromptTokens(const nlohmann::json& j) {
  if (j.is_string()) return Words(j.get<std::string>());
  if (j.is_number_integer()) return 1;
  int64_t n = 0;
  if (j.is_array()) {
    for (const auto& item : j) n += PromptTokens(item);
  } else if (j.is_object()) {
    if (auto it = j.find("content"); it != j.end()) n += PromptTokens(*it);
    if (auto it = j.find("text"); it != j.end()) n += PromptTokens(*it);
  }
  return n;
}

std::string Token(int64_t i) { return (i == 0 ? "tok" : " tok") + std::to_string(i); }

uint64_t Fnv1a(const std::string& s) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

uint64_t SplitMix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// A deterministic vector for one input item: values k/1024, exact in float32 and short in JSON.
std::vector<float> Embedding(const nlohmann::json& item, int64_t dims) {
  const uint64_t seed = Fnv1a(item.dump());
  std::vector<float> v;
  for (int64_t i = 0; i < dims; ++i) {
    const int64_t k = static_cast<int64_t>(SplitMix(seed + static_cast<uint64_t>(i)) % 2049) - 1024;
    v.push_back(static_cast<float>(k) / 1024.0f);
  }
  return v;
}

std::string Base64(const std::string& bytes) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  size_t i = 0;
  for (; i + 2 < bytes.size(); i += 3) {
    const uint32_t n = (static_cast<uint8_t>(bytes[i]) << 16) |
                       (static_cast<uint8_t>(bytes[i + 1]) << 8) |
                       static_cast<uint8_t>(bytes[i + 2]);
    for (int shift : {18, 12, 6, 0}) out += kAlphabet[(n >> shift) & 63];
  }
  if (i + 1 == bytes.size()) {
    const uint32_t n = static_cast<uint8_t>(bytes[i]) << 16;
    out += kAlphabet[(n >> 18) & 63];
    out += kAlphabet[(n >> 12) & 63];
    out += "==";
  } else if (i + 2 == bytes.size()) {
    const uint32_t n =
        (static_cast<uint8_t>(bytes[i]) << 16) | (static_cast<uint8_t>(bytes[i + 1]) << 8);
    out += kAlphabet[(n >> 18) & 63];
    out += kAlphabet[(n >> 12) & 63];
    out += kAlphabet[(n >> 6) & 63];
    out += '=';
  }
  return out;
}

// Little-endian float32, as OpenAI's base64 embeddings.
std::string Float32Bytes(const std::vector<float>& v) {
  std::string bytes;
  for (float f : v) {
    uint32_t u;
    std::memcpy(&u, &f, sizeof u);
    for (int b = 0; b < 4; ++b) bytes += static_cast<char>((u >> (8 * b)) & 0xff);
  }
  return bytes;
}

int64_t Clamp(const nlohmann::json& j, const char* key, int64_t fallback, int64_t lo, int64_t hi) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_number_integer()) return fallback;
  return std::clamp(it->get<int64_t>(), lo, hi);
}

// A field of the expected type, or the fallback (never throws, whatever the client sent).
bool BoolField(const nlohmann::json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_boolean() && it->get<bool>();
}

std::string StringField(const nlohmann::json& j, const char* key, const std::string& fallback) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : fallback;
}

double MonoMs(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double, std::milli>(t.time_since_epoch()).count();
}

}  // namespace

TestBackend::TestBackend(Options options)
    : healthy_(options.healthy),
      token_delay_ms_(options.token_delay_ms),
      strict_models_(options.strict_models),
      models_(std::move(options.models)) {
  listen_fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (listen_fd_ < 0) throw std::runtime_error("socket failed");
  int one = 1;
  setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(options.port));
  if (bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      listen(listen_fd_, 128) != 0) {
    std::string err = std::strerror(errno);
    close(listen_fd_);
    throw std::runtime_error("cannot listen on 127.0.0.1:" + std::to_string(options.port) + ": " +
                             err);
  }
  socklen_t len = sizeof addr;
  getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
  port_ = ntohs(addr.sin_port);
  stop_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  acceptor_ = std::thread([this] { Accept(); });
}

TestBackend::~TestBackend() { Stop(); }

void TestBackend::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return;
    stopping_ = true;
    for (int fd : open_fds_) shutdown(fd, SHUT_RDWR);
  }
  cv_.notify_all();
  uint64_t one = 1;
  (void)!write(stop_fd_, &one, sizeof one);
  acceptor_.join();
  std::vector<Connection> connections;
  {
    std::lock_guard<std::mutex> lock(mu_);
    connections.swap(connections_);
  }
  for (Connection& c : connections) c.thread.join();
  close(listen_fd_);
  close(stop_fd_);
}

std::vector<TestBackend::Request> TestBackend::Requests() const {
  std::lock_guard<std::mutex> lock(mu_);
  return requests_;
}

size_t TestBackend::Count(const std::string& prefix) const {
  std::lock_guard<std::mutex> lock(mu_);
  return static_cast<size_t>(
      std::count_if(requests_.begin(), requests_.end(),
                    [&](const Request& r) { return r.path.rfind(prefix, 0) == 0; }));
}

void TestBackend::SetModels(std::vector<std::string> models) {
  std::lock_guard<std::mutex> lock(mu_);
  models_ = std::move(models);
}

std::vector<std::string> TestBackend::Models() const {
  std::lock_guard<std::mutex> lock(mu_);
  return models_;
}

std::vector<TestBackend::Stream> TestBackend::Streams() const {
  std::lock_guard<std::mutex> lock(mu_);
  return streams_;
}

size_t TestBackend::AbortedStreams() const {
  std::lock_guard<std::mutex> lock(mu_);
  return static_cast<size_t>(
      std::count_if(streams_.begin(), streams_.end(), [](const Stream& s) { return s.aborted; }));
}

bool TestBackend::WaitForAbortedStreams(size_t count, std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  return cv_.wait_for(lock, timeout, [&] {
    return static_cast<size_t>(std::count_if(streams_.begin(), streams_.end(),
                                             [](const Stream& s) { return s.aborted; })) >= count;
  });
}

void TestBackend::HoldStreams(bool hold) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    hold_streams_ = hold;
  }
  cv_.notify_all();
}

bool TestBackend::Pause(int64_t ms) {
  std::unique_lock<std::mutex> lock(mu_);
  return !cv_.wait_for(lock, std::chrono::milliseconds(ms), [&] { return stopping_; });
}

void TestBackend::Accept() {
  for (;;) {
    pollfd fds[2] = {{listen_fd_, POLLIN, 0}, {stop_fd_, POLLIN, 0}};
    if (poll(fds, 2, -1) < 0 && errno != EINTR) return;
    if (fds[1].revents & POLLIN) return;
    if (!(fds[0].revents & POLLIN)) continue;
    int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) {
      close(fd);
      return;
    }
    // Join the connections that are done, so a long test does not pile up finished threads.
    for (auto it = connections_.begin(); it != connections_.end();) {
      if (it->done->load()) {
        it->thread.join();
        it = connections_.erase(it);
      } else {
        ++it;
      }
    }
    open_fds_.push_back(fd);
    auto done = std::make_shared<std::atomic<bool>>(false);
    connections_.push_back({std::thread([this, fd, done] {
                              Serve(fd);
                              done->store(true);
                            }),
                            done});
  }
}

void TestBackend::Serve(int fd) {
  timeval tv{10, 0};  // a client that never finishes its request cannot hold the thread forever
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  std::string data;
  size_t head_end = std::string::npos;
  char buf[64 * 1024];
  while ((head_end = data.find("\r\n\r\n")) == std::string::npos && data.size() < kMaxHead) {
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    data.append(buf, static_cast<size_t>(n));
  }
  Request req;
  bool ok = head_end != std::string::npos;
  size_t content_length = 0;
  if (ok) {
    std::string head = data.substr(0, head_end);
    size_t line_end = head.find("\r\n");
    std::string line = head.substr(0, line_end);
    size_t sp1 = line.find(' ');
    size_t sp2 = line.find(' ', sp1 + 1);
    ok = sp1 != std::string::npos && sp2 != std::string::npos;
    if (ok) {
      req.method = line.substr(0, sp1);
      std::string target = line.substr(sp1 + 1, sp2 - sp1 - 1);
      size_t q = target.find('?');
      req.path = target.substr(0, q);
      if (q != std::string::npos) req.query = target.substr(q + 1);
    }
    size_t pos = line_end == std::string::npos ? head.size() : line_end + 2;
    while (ok && pos < head.size()) {
      size_t end = head.find("\r\n", pos);
      if (end == std::string::npos) end = head.size();
      std::string h = head.substr(pos, end - pos);
      pos = end + 2;
      size_t colon = h.find(':');
      if (colon == std::string::npos) continue;
      std::string value = h.substr(colon + 1);
      value.erase(0, value.find_first_not_of(' '));
      req.headers[Lower(h.substr(0, colon))] = value;
    }
    if (auto it = req.headers.find("content-length"); it != req.headers.end()) {
      const std::string& v = it->second;
      auto [ptr, ec] = std::from_chars(v.data(), v.data() + v.size(), content_length);
      (void)ptr;
      if (ec != std::errc()) content_length = 0;
      content_length = std::min(content_length, kMaxBody);
    }
    req.body = data.substr(head_end + 4);
    while (ok && req.body.size() < content_length) {
      ssize_t n = recv(fd, buf, sizeof buf, 0);
      if (n <= 0) break;
      req.body.append(buf, static_cast<size_t>(n));
    }
  }
  if (ok) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      requests_.push_back(req);
    }
    std::string path = req.path;
    if (path.rfind("/v1/", 0) == 0) path = path.substr(3);
    auto number_after = [&](const std::string& prefix) -> int64_t {
      try {
        return std::stoll(path.substr(prefix.size()));
      } catch (const std::exception&) {
        return 0;
      }
    };
    if (path == "/health") {
      if (healthy()) {
        Respond(fd, 200, "text/plain", "ok");
      } else {
        Respond(fd, 503, "text/plain", "unhealthy");
      }
    } else if (path == "/control/health/up" || path == "/control/health/down") {
      SetHealthy(path.back() == 'p');
      Respond(fd, 200, "text/plain", healthy() ? "up" : "down");
    } else if (path == "/control/models" && req.method == "POST") {
      nlohmann::json j = nlohmann::json::parse(req.body, nullptr, false);
      bool valid = j.is_array() && std::all_of(j.begin(), j.end(), [](const nlohmann::json& m) {
                     return m.is_string();
                   });
      if (valid) {
        SetModels(j.get<std::vector<std::string>>());
        RespondJson(fd, 200, j);
      } else {
        Respond(fd, 400, "text/plain", "expected a JSON array of model ids");
      }
    } else if (path == "/control/streams") {
      nlohmann::json list = nlohmann::json::array();
      size_t aborted = 0;
      for (const Stream& st : Streams()) {
        nlohmann::json times = nlohmann::json::array();
        for (auto t : st.chunk_times) times.push_back(MonoMs(t));
        list.push_back({{"path", st.path},
                        {"model", st.model},
                        {"mono_ms", times},
                        {"finished", st.finished},
                        {"aborted", st.aborted}});
        aborted += st.aborted ? 1 : 0;
      }
      RespondJson(fd, 200, {{"aborted", aborted}, {"streams", list}});
    } else if ((path == "/chat/completions" || path == "/completions") && req.method == "POST") {
      ServeCompletion(fd, req, path == "/chat/completions");
    } else if (path == "/embeddings" && req.method == "POST") {
      ServeEmbeddings(fd, req);
    } else if ((path == "/models" || path.rfind("/models/", 0) == 0) && req.method == "GET") {
      ServeModels(fd, path == "/models" ? "" : path.substr(8));
    } else if (path.rfind("/echo", 0) == 0) {
      nlohmann::json j = {{"method", req.method},
                          {"path", req.path},
                          {"query", req.query},
                          {"headers", req.headers},
                          {"body", req.body}};
      Respond(fd, 200, "application/json", j.dump());
    } else if (path.rfind("/status/", 0) == 0) {
      int status = static_cast<int>(number_after("/status/"));
      Respond(fd, status, "text/plain", "status " + std::to_string(status));
    } else if (path.rfind("/slow/", 0) == 0) {
      int64_t ms = number_after("/slow/");
      if (Pause(ms)) Respond(fd, 200, "text/plain", "slow " + std::to_string(ms));
    } else if (path.rfind("/big/", 0) == 0) {
      Respond(fd, 200, "application/octet-stream",
              std::string(static_cast<size_t>(number_after("/big/")), 'x'));
    } else if (path.rfind("/stream/", 0) == 0) {
      // N server-sent events MS apart, chunked, the way a streaming backend answers.
      const int64_t count = number_after("/stream/");
      const size_t slash = path.find('/', 8);
      int64_t ms = 0;
      if (slash != std::string::npos) {
        if (std::from_chars(path.data() + slash + 1, path.data() + path.size(), ms).ec !=
            std::errc()) {
          ms = 0;
        }
      }
      bool open = SendAll(fd,
                          "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                          "Cache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n"
                          "Connection: close\r\n\r\n");
      if (open) {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [&] { return stopping_ || !hold_streams_; });
        open = !stopping_;
      }
      for (int64_t i = 0; open && i < count; ++i) {
        if (i > 0 && !Pause(ms)) {
          open = false;
          break;
        }
        const std::string event = "data: " + std::to_string(i) + "\n\n";
        char size[32];
        std::snprintf(size, sizeof size, "%zx\r\n", event.size());
        open = SendAll(fd, size + event + "\r\n");
      }
      if (open) SendAll(fd, "0\r\n\r\n");
    } else if (path == "/" && req.method == "POST") {
      auto ct = req.headers.find("content-type");
      Respond(fd, 200, ct == req.headers.end() ? "application/octet-stream" : ct->second, req.body);
    } else {
      Respond(fd, 404, "text/plain", "no route for " + req.path);
    }
  }
  std::lock_guard<std::mutex> lock(mu_);
  open_fds_.erase(std::remove(open_fds_.begin(), open_fds_.end(), fd), open_fds_.end());
  close(fd);
}

TestBackend::Wait TestBackend::WaitForToken(int fd, int64_t ms) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
  for (;;) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_) return Wait::kStopped;
    }
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                          deadline - std::chrono::steady_clock::now())
                          .count();
    // The stop eventfd is never drained, so once written it wakes every waiter.
    pollfd fds[2] = {{fd, POLLRDHUP, 0}, {stop_fd_, POLLIN, 0}};
    int n = poll(fds, 2, static_cast<int>(std::max<int64_t>(left, 0)));
    if (n < 0 && errno == EINTR) continue;
    if (fds[1].revents & POLLIN) return Wait::kStopped;
    if (fds[0].revents & (POLLRDHUP | POLLHUP | POLLERR)) {
      std::lock_guard<std::mutex> lock(mu_);
      return stopping_ ? Wait::kStopped : Wait::kGone;  // Stop() shuts every socket down
    }
    if (fds[0].revents & POLLIN) {
      // A client that sends more after its request: read it away; end of stream means gone.
      char buf[4096];
      ssize_t r = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
      if (r == 0) return Wait::kGone;
    }
    if (n == 0 && left <= 0) return Wait::kGo;
  }
}

bool TestBackend::RejectModel(int fd, const std::string& model) {
  bool known = model != kMissingModel;
  if (known && strict_models_) {
    std::vector<std::string> models = Models();
    known = std::find(models.begin(), models.end(), model) != models.end();
  }
  if (!known) {
    RespondError(fd, 404,
                 "The model `" + model + "` does not exist or you do not have access to it.",
                 "invalid_request_error", nullptr, "model_not_found");
  }
  return !known;
}

void TestBackend::ServeCompletion(int fd, const Request& req, bool chat) {
  const nlohmann::json body = nlohmann::json::parse(req.body, nullptr, false);
  if (!body.is_object()) {
    RespondError(fd, 400, "The request body is not a JSON object.", "invalid_request_error",
                 nullptr, nullptr);
    return;
  }
  auto model_it = body.find("model");
  if (model_it == body.end() || !model_it->is_string()) {
    RespondError(fd, 400, "you must provide a model parameter", "invalid_request_error", nullptr,
                 nullptr);
    return;
  }
  const std::string model = model_it->get<std::string>();
  if (RejectModel(fd, model)) return;
  int64_t tokens = Clamp(body, "max_tokens", kDefaultTokens, 0, kMaxTokens);
  if (chat) tokens = Clamp(body, "max_completion_tokens", tokens, 0, kMaxTokens);
  int64_t delay = token_delay_ms_.load();
  if (auto it = req.headers.find("x-test-token-delay-ms"); it != req.headers.end()) {
    int64_t v = 0;
    const std::string& s = it->second;
    if (std::from_chars(s.data(), s.data() + s.size(), v).ec == std::errc()) delay = v;
  }
  delay = std::clamp<int64_t>(delay, 0, 60000);
  const int64_t prompt_tokens = PromptTokens(chat ? body.value("messages", nlohmann::json())
                                                  : body.value("prompt", nlohmann::json()));
  const nlohmann::json usage = {{"prompt_tokens", prompt_tokens},
                                {"completion_tokens", tokens},
                                {"total_tokens", prompt_tokens + tokens}};
  const int64_t created = std::chrono::duration_cast<std::chrono::seconds>(
                              std::chrono::system_clock::now().time_since_epoch())
                              .count();
  static std::atomic<uint64_t> next_id{1};
  const std::string id = (chat ? "chatcmpl-rma" : "cmpl-rma") + std::to_string(next_id++);
  const char* object = chat ? "chat.completion" : "text_completion";

  if (!BoolField(body, "stream")) {
    std::string text;
    for (int64_t i = 0; i < tokens; ++i) {
      if (!Pause(delay)) return;
      text += Token(i);
    }
    nlohmann::json choice = {{"index", 0}, {"logprobs", nullptr}, {"finish_reason", "stop"}};
    if (chat) {
      choice["message"] = {{"role", "assistant"}, {"content", text}, {"refusal", nullptr}};
    } else {
      choice["text"] = text;
    }
    RespondJson(fd, 200,
                {{"id", id},
                 {"object", object},
                 {"created", created},
                 {"model", model},
                 {"system_fingerprint", "fp_rma_test"},
                 {"choices", nlohmann::json::array({choice})},
                 {"usage", usage}});
    return;
  }

  bool include_usage = false;
  if (auto it = body.find("stream_options"); it != body.end() && it->is_object()) {
    include_usage = BoolField(*it, "include_usage");
  }
  size_t index;
  {
    std::lock_guard<std::mutex> lock(mu_);
    index = streams_.size();
    streams_.push_back({req.path, model, std::chrono::steady_clock::now(), {}, false, false});
  }
  // Every chunk has the same id, created and model; with include_usage every one but the last
  // carries "usage": null.
  auto chunk = [&](nlohmann::json choice) {
    nlohmann::json j = {{"id", id},
                        {"object", chat ? "chat.completion.chunk" : "text_completion"},
                        {"created", created},
                        {"model", model},
                        {"system_fingerprint", "fp_rma_test"},
                        {"choices", nlohmann::json::array({std::move(choice)})}};
    if (include_usage) j["usage"] = nullptr;
    return Event(j);
  };
  auto token_choice = [&](int64_t i, bool last) {
    nlohmann::json choice = {{"index", 0},
                             {"logprobs", nullptr},
                             {"finish_reason", last ? nlohmann::json("stop") : nullptr}};
    if (chat) {
      if (last) {
        choice["delta"] = nlohmann::json::object();
      } else if (i == 0) {
        choice["delta"] = {{"role", "assistant"}, {"content", Token(i)}};
      } else {
        choice["delta"] = {{"content", Token(i)}};
      }
    } else {
      choice["text"] = last ? "" : Token(i);
    }
    return choice;
  };
  auto end = [&](bool finished, bool aborted) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      streams_[index].finished = finished;
      streams_[index].aborted = aborted && !stopping_;
    }
    cv_.notify_all();
  };

  if (!SendAll(fd,
               "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\n"
               "Cache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n"
               "Connection: close\r\n\r\n")) {
    end(false, true);
    return;
  }
  for (int64_t i = 0; i < tokens; ++i) {
    Wait w = WaitForToken(fd, delay);
    if (w != Wait::kGo) {
      end(false, w == Wait::kGone);
      return;
    }
    const std::string event = chunk(token_choice(i, false));
    // Taken before the write, so no client can have the token before its recorded time.
    const auto written = std::chrono::steady_clock::now();
    if (!SendChunk(fd, event)) {
      end(false, true);
      return;
    }
    std::lock_guard<std::mutex> lock(mu_);
    streams_[index].chunk_times.push_back(written);
  }
  std::string tail = chunk(token_choice(tokens, true));
  if (include_usage) {
    tail += Event({{"id", id},
                   {"object", chat ? "chat.completion.chunk" : "text_completion"},
                   {"created", created},
                   {"model", model},
                   {"system_fingerprint", "fp_rma_test"},
                   {"choices", nlohmann::json::array()},
                   {"usage", usage}});
  }
  tail += "data: [DONE]\n\n";
  bool ok = SendChunk(fd, tail) && SendAll(fd, "0\r\n\r\n");
  end(ok, !ok);
}

void TestBackend::ServeEmbeddings(int fd, const Request& req) {
  const nlohmann::json body = nlohmann::json::parse(req.body, nullptr, false);
  if (!body.is_object() || !body.contains("input") || !body.contains("model") ||
      !body["model"].is_string()) {
    RespondError(fd, 400, "The request needs a model and an input.", "invalid_request_error",
                 nullptr, nullptr);
    return;
  }
  const std::string model = body["model"].get<std::string>();
  if (RejectModel(fd, model)) return;
  const nlohmann::json& input = body["input"];
  // One item: a string or an array of token ids; otherwise an array of items.
  std::vector<nlohmann::json> items;
  const bool token_list = input.is_array() && !input.empty() && input[0].is_number_integer();
  if (input.is_string() || token_list) {
    items.push_back(input);
  } else if (input.is_array() && !input.empty()) {
    items.assign(input.begin(), input.end());
  } else {
    RespondError(fd, 400, "'input' must be a string, an array of strings or of token ids.",
                 "invalid_request_error", "input", nullptr);
    return;
  }
  const int64_t dims = Clamp(body, "dimensions", 8, 1, 4096);
  const bool base64 = StringField(body, "encoding_format", "float") == "base64";
  nlohmann::json data = nlohmann::json::array();
  int64_t prompt_tokens = 0;
  for (size_t i = 0; i < items.size(); ++i) {
    std::vector<float> v = Embedding(items[i], dims);
    prompt_tokens += PromptTokens(items[i]);
    data.push_back(
        {{"object", "embedding"},
         {"index", i},
         {"embedding", base64 ? nlohmann::json(Base64(Float32Bytes(v))) : nlohmann::json(v)}});
  }
  RespondJson(fd, 200,
              {{"object", "list"},
               {"data", data},
               {"model", model},
               {"usage", {{"prompt_tokens", prompt_tokens}, {"total_tokens", prompt_tokens}}}});
}

void TestBackend::ServeModels(int fd, const std::string& id) {
  auto entry = [](const std::string& m) {
    return nlohmann::json{
        {"id", m}, {"object", "model"}, {"created", kModelCreated}, {"owned_by", "rma-test"}};
  };
  std::vector<std::string> models = Models();
  if (id.empty()) {
    nlohmann::json data = nlohmann::json::array();
    for (const std::string& m : models) data.push_back(entry(m));
    RespondJson(fd, 200, {{"object", "list"}, {"data", data}});
  } else if (std::find(models.begin(), models.end(), id) != models.end()) {
    RespondJson(fd, 200, entry(id));
  } else {
    RespondError(fd, 404, "The model `" + id + "` does not exist or you do not have access to it.",
                 "invalid_request_error", nullptr, "model_not_found");
  }
}

}  // namespace rma::testing
