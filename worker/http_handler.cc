// See http_handler.h. libcurl is used through its multi interface even for a single transfer:
// curl_multi_poll can be woken from another thread (curl_multi_wakeup), which is how a cancel
// reaches a transfer that is waiting on a slow backend.
#include "worker/http_handler.h"

#include <curl/curl.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <mutex>
#include <optional>

#include <nlohmann/json.hpp>

#include "common/version.h"
#include "protocol/names.h"
#include "worker/subprocess.h"

namespace rma::worker {

namespace {

constexpr size_t kMaxHeaders = 64;
constexpr size_t kMaxHeaderBytes = 32 * 1024;
constexpr size_t kMaxUrlBytes = 16 * 1024;
// A health answer is read only to be discarded.
constexpr size_t kHealthBodyBytes = 64 * 1024;
// A model list: 256 ids of up to 256 bytes and whatever the backend says about each fit easily.
constexpr size_t kModelListBytes = 1u << 20;
// Backend error bodies quoted in task errors.
constexpr size_t kQuotedBodyBytes = 512;

void InitCurlOnce() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

bool IsHex(char c) { return std::isxdigit(static_cast<unsigned char>(c)) != 0; }

// Characters allowed in a path (RFC 3986 pchar and "/"), with %HH escapes checked.
Status CheckPathChars(std::string_view s, std::string_view what, bool allow_query_chars) {
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (c == '%') {
      if (i + 2 >= s.size() || !IsHex(s[i + 1]) || !IsHex(s[i + 2])) {
        return Status::InvalidArgument(std::string(what) + " has a bad %-escape");
      }
      i += 2;
      continue;
    }
    bool ok = std::isalnum(static_cast<unsigned char>(c)) != 0 ||
              std::string_view("-._~!$&'()*+,;=:@/").find(c) != std::string_view::npos ||
              (allow_query_chars && c == '?');
    if (!ok) {
      return Status::InvalidArgument(std::string(what) + " contains a character that must be " +
                                     "percent-encoded (byte " +
                                     std::to_string(static_cast<unsigned char>(c)) + ")");
    }
  }
  return Status::Ok();
}

// "." and ".." segments (also as %2e) would let a path climb out of the base path once curl or
// the backend normalises it.
bool HasDotSegment(std::string_view path) {
  size_t pos = 0;
  while (pos <= path.size()) {
    size_t end = path.find('/', pos);
    if (end == std::string_view::npos) end = path.size();
    std::string seg(path.substr(pos, end - pos));
    for (char& c : seg) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    size_t p;
    while ((p = seg.find("%2e")) != std::string::npos) seg.replace(p, 3, ".");
    if (seg == "." || seg == "..") return true;
    pos = end + 1;
  }
  return false;
}

Status CheckPath(std::string_view path, std::string_view what) {
  if (path.empty() || path[0] != '/') {
    return Status::InvalidArgument(std::string(what) + " must start with '/'");
  }
  if (path.size() > kMaxUrlBytes) return Status::InvalidArgument(std::string(what) + " too long");
  RMA_RETURN_IF_ERROR(CheckPathChars(path, what, /*allow_query_chars=*/false));
  if (HasDotSegment(path)) {
    return Status::InvalidArgument(std::string(what) + " must not contain '.' or '..' segments");
  }
  return Status::Ok();
}

bool IsTokenChar(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) != 0 ||
         std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// Headers that describe one connection, not the request: never forwarded to the backend.
bool IsHopByHop(std::string_view lower) {
  return lower == "connection" || lower == "keep-alive" || lower == "te" || lower == "trailer" ||
         lower == "trailers" || lower == "transfer-encoding" || lower == "upgrade" ||
         lower == "host" || lower == "content-length" || lower == "expect" ||
         lower == "proxy-connection" || lower.rfind("proxy-", 0) == 0;
}

std::string QuoteBody(std::string_view body) {
  std::string q =
      PrintableTail(body.substr(0, std::min(body.size(), kQuotedBodyBytes)), kQuotedBodyBytes);
  return q.empty() ? "" : ": " + q;
}

struct Exchange {
  long status = 0;
  std::string content_type;
  std::string body;
};

struct TransferLimits {
  Duration total;
  Duration connect;
  size_t max_body;
  bool discard_overflow;  // true: read past the limit without keeping it (health probes)
};

struct BodySink {
  std::string* body;
  size_t max;
  bool discard_overflow;
  bool overflowed = false;
  // Streaming: where chunks go when the answer streams, and the transfer to ask about its headers.
  OutputStream* stream = nullptr;
  CURL* easy = nullptr;
  enum class Streams { kUndecided, kYes, kNo } streams = Streams::kUndecided;
};

// Whether the answer whose body starts now streams: a successful text/event-stream, or one sent
// without a length (chunked), as LLM servers send generation. Anything else is kept whole.
bool AnswerStreams(CURL* easy) {
  long status = 0;
  curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
  if (status < 200 || status > 299) return false;
  char* type = nullptr;
  curl_easy_getinfo(easy, CURLINFO_CONTENT_TYPE, &type);
  if (type != nullptr && Lower(type).rfind("text/event-stream", 0) == 0) return true;
  curl_off_t length = -1;
  curl_easy_getinfo(easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &length);
  return length < 0;
}

void StreamChunk(BodySink& sink, std::string_view data) {
  if (sink.streams == BodySink::Streams::kUndecided) {
    sink.streams = AnswerStreams(sink.easy) ? BodySink::Streams::kYes : BodySink::Streams::kNo;
  }
  if (sink.streams != BodySink::Streams::kYes) return;
  long status = 0;
  curl_easy_getinfo(sink.easy, CURLINFO_RESPONSE_CODE, &status);
  char* type = nullptr;
  curl_easy_getinfo(sink.easy, CURLINFO_CONTENT_TYPE, &type);
  sink.stream->Chunk(data, static_cast<uint32_t>(status), type != nullptr ? type : "");
}

size_t WriteBody(char* data, size_t size, size_t count, void* user) {
  auto* sink = static_cast<BodySink*>(user);
  size_t n = size * count;
  // Forwarded as it arrives; still kept whole below, for the RESULT (within the same limit).
  if (sink->stream != nullptr && sink->body->size() + n <= sink->max) {
    StreamChunk(*sink, std::string_view(data, n));
  }
  if (sink->body->size() + n > sink->max) {
    sink->overflowed = true;
    if (!sink->discard_overflow) return 0;  // aborts the transfer with CURLE_WRITE_ERROR
    sink->body->append(data, sink->max - sink->body->size());
    return n;
  }
  sink->body->append(data, n);
  return n;
}

struct EasyDeleter {
  void operator()(CURL* h) const { curl_easy_cleanup(h); }
};
struct MultiDeleter {
  void operator()(CURLM* m) const { curl_multi_cleanup(m); }
};
struct SlistDeleter {
  void operator()(curl_slist* l) const { curl_slist_free_all(l); }
};

// One connection cache for the whole worker: a backend that keeps connections alive is asked
// over an open connection instead of a new TCP (and TLS) handshake per task, whichever executor
// thread runs the task. libcurl calls the lock functions around every use of the cache. An
// exchange that is cancelled or fails mid-way leaves its connection closed (libcurl keeps only
// connections whose transfer finished), which is what tells a backend to stop generating.
class SharedConnections {
 public:
  SharedConnections() : share_(curl_share_init()) {
    if (share_ == nullptr) return;
    curl_share_setopt(share_, CURLSHOPT_LOCKFUNC, &Lock);
    curl_share_setopt(share_, CURLSHOPT_UNLOCKFUNC, &Unlock);
    curl_share_setopt(share_, CURLSHOPT_USERDATA, this);
    curl_share_setopt(share_, CURLSHOPT_SHARE, CURL_LOCK_DATA_CONNECT);
    curl_share_setopt(share_, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
  }
  // Never destroyed: executor threads may still be finishing exchanges while the process exits.
  static SharedConnections& Get() {
    static auto* shared = new SharedConnections();
    return *shared;
  }
  CURLSH* share() const { return share_; }

 private:
  static void Lock(CURL*, curl_lock_data data, curl_lock_access, void* self) {
    static_cast<SharedConnections*>(self)->MutexFor(data).lock();
  }
  static void Unlock(CURL*, curl_lock_data data, void* self) {
    static_cast<SharedConnections*>(self)->MutexFor(data).unlock();
  }
  std::mutex& MutexFor(curl_lock_data data) {
    return mutexes_[static_cast<size_t>(data) % mutexes_.size()];
  }
  CURLSH* share_;
  std::array<std::mutex, CURL_LOCK_DATA_LAST> mutexes_;
};

// The libcurl handles of one thread, kept from one exchange to the next (a thread runs one
// exchange at a time, so they are never shared).
struct ThreadHandles {
  std::unique_ptr<CURL, EasyDeleter> easy{curl_easy_init()};
  std::unique_ptr<CURLM, MultiDeleter> multi{curl_multi_init()};
};

// One HTTP exchange. Cancelled when `cancel` is cancelled; never longer than limits.total.
Result<Exchange> Perform(const OutgoingRequest& req, std::string_view body,
                         const TransferLimits& limits, const CancelToken* cancel,
                         OutputStream* stream = nullptr) {
  thread_local ThreadHandles handles;
  if (!handles.easy || !handles.multi)
    return Status::Internal("libcurl could not allocate a handle");
  // Every option of the last exchange goes; the connections stay in the shared cache.
  curl_easy_reset(handles.easy.get());
  std::unique_ptr<curl_slist, SlistDeleter> headers;
  for (const std::string& h : req.headers) {
    curl_slist* next = curl_slist_append(headers.get(), h.c_str());
    if (next == nullptr) return Status::Internal("libcurl could not allocate a header");
    (void)headers.release();
    headers.reset(next);
  }
  Exchange ex;
  BodySink sink{&ex.body, limits.max_body, limits.discard_overflow};
  char error[CURL_ERROR_SIZE] = {};
  CURL* h = handles.easy.get();
  if (CURLSH* share = SharedConnections::Get().share(); share != nullptr) {
    curl_easy_setopt(h, CURLOPT_SHARE, share);
  }
  sink.stream = stream;
  sink.easy = h;
  curl_easy_setopt(h, CURLOPT_URL, req.url.c_str());
  curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);  // redirects are the caller's business
  curl_easy_setopt(h, CURLOPT_ERRORBUFFER, error);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, &WriteBody);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &sink);
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers.get());
  const long total_ms = std::max<long>(1, static_cast<long>(ToMs(limits.total)));
  const long connect_ms =
      std::max<long>(1, std::min(total_ms, static_cast<long>(ToMs(limits.connect))));
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, total_ms);
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, connect_ms);
  const bool has_body =
      !body.empty() || req.method == "POST" || req.method == "PUT" || req.method == "PATCH";
  if (req.method == "HEAD") {
    curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
  } else if (req.method == "GET" && body.empty()) {
    curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
  } else {
    if (has_body) {
      curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
      curl_easy_setopt(h, CURLOPT_POSTFIELDS, body.data());
    }
    if (req.method != "POST") curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, req.method.c_str());
  }

  if (curl_multi_add_handle(handles.multi.get(), h) != CURLM_OK) {
    return Status::Internal("libcurl could not start the transfer");
  }
  CURLM* m = handles.multi.get();
  // Ends with this exchange: once it is gone the callback cannot wake a later exchange's poll.
  CancelToken::Subscription subscription;
  if (cancel != nullptr) subscription = cancel->OnCancel([m] { curl_multi_wakeup(m); });
  int running = 1;
  CURLcode result = CURLE_OK;
  bool cancelled = false;
  for (;;) {
    CURLMcode mc = curl_multi_perform(m, &running);
    if (mc != CURLM_OK) {
      curl_multi_remove_handle(m, h);
      return Status::Internal(std::string("libcurl: ") + curl_multi_strerror(mc));
    }
    if (running == 0) break;
    if (cancel != nullptr && cancel->cancelled()) {
      cancelled = true;
      break;
    }
    // libcurl shortens the wait to its own next timeout (connect or total deadline).
    mc = curl_multi_poll(m, nullptr, 0, 1000, nullptr);
    if (mc != CURLM_OK) {
      curl_multi_remove_handle(m, h);
      return Status::Internal(std::string("libcurl: ") + curl_multi_strerror(mc));
    }
    if (cancel != nullptr && cancel->cancelled()) {
      cancelled = true;
      break;
    }
  }
  if (!cancelled) {
    int left = 0;
    while (CURLMsg* msg = curl_multi_info_read(m, &left)) {
      if (msg->msg == CURLMSG_DONE && msg->easy_handle == h) result = msg->data.result;
    }
  }
  curl_multi_remove_handle(m, h);
  if (cancelled) return Status::Cancelled(cancel->reason());

  const std::string detail = error[0] != '\0' ? error : curl_easy_strerror(result);
  switch (result) {
    case CURLE_OK:
      break;
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
      return Status::Unavailable("backend is not reachable: " + detail);
    case CURLE_OPERATION_TIMEDOUT:
      return Status::DeadlineExceeded("backend did not answer within " + std::to_string(total_ms) +
                                      " ms: " + detail);
    case CURLE_WRITE_ERROR:
      if (sink.overflowed) {
        return Status::ResourceExhausted("backend answered with more than " +
                                         std::to_string(limits.max_body) + " bytes");
      }
      return Status::Unavailable("reading the backend's answer failed: " + detail);
    default:
      return Status::Unavailable("backend exchange failed: " + detail);
  }
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &ex.status);
  char* content_type = nullptr;
  curl_easy_getinfo(h, CURLINFO_CONTENT_TYPE, &content_type);
  if (content_type != nullptr) ex.content_type = content_type;
  return ex;
}

class HttpHandler final : public Handler {
 public:
  HttpHandler(HttpTarget target, HandlerOptions options)
      : target_(std::move(target)), options_(std::move(options)) {
    if (!options_.health_path.empty()) {
      health_path_ = options_.health_path;
    } else if (!target_.health_path.empty()) {
      health_path_ = target_.health_path;
    } else {
      health_path_ = "/health";
    }
  }

  std::string_view kind() const override { return "http"; }
  bool probed() const override { return true; }
  std::string Describe() const override {
    return target_.BaseUrl() + " (health " + health_path_ + ")";
  }

  Result<HandlerOutput> Run(const proto::TaskAssignment& task, const CancelToken& cancel) override {
    return Call(task, cancel, nullptr);
  }
  Result<HandlerOutput> RunStreaming(const proto::TaskAssignment& task, const CancelToken& cancel,
                                     OutputStream& stream) override {
    return Call(task, cancel, &stream);
  }

  Result<HandlerOutput> Call(const proto::TaskAssignment& task, const CancelToken& cancel,
                             OutputStream* stream) {
    RMA_ASSIGN_OR_RETURN(OutgoingRequest req, BuildRequest(target_, task));
    TransferLimits limits;
    limits.total = task.timeout_ms > 0 ? Ms(task.timeout_ms) : options_.default_timeout;
    limits.connect = options_.connect_timeout;
    limits.max_body = options_.max_output_bytes;
    limits.discard_overflow = false;
    auto ex = Perform(req, task.payload, limits, &cancel, stream);
    if (!ex.ok()) {
      if (ex.status().code() == StatusCode::kCancelled) return ex.status();
      return ex.status().WithContext(req.method + " " + req.url);
    }
    HandlerOutput out;
    out.http_status = static_cast<uint32_t>(ex->status);
    out.content_type =
        ex->content_type.empty() ? "application/octet-stream" : std::move(ex->content_type);
    if (!req.relay_status && (ex->status < 200 || ex->status > 299)) {
      std::string why = "backend answered HTTP " + std::to_string(ex->status) + QuoteBody(ex->body);
      bool retry = ex->status >= 500 || ex->status == 408 || ex->status == 429;
      return retry ? Status::Unavailable(why) : Status::InvalidArgument(why);
    }
    out.body = std::move(ex->body);
    return out;
  }

  Status CheckHealth() override {
    OutgoingRequest req;
    req.method = "GET";
    req.url = target_.Origin() + health_path_;
    req.headers = {"User-Agent: rma-worker/" + std::string(kVersion), "Expect:"};
    TransferLimits limits{options_.health_timeout, options_.connect_timeout, kHealthBodyBytes,
                          /*discard_overflow=*/true};
    auto ex = Perform(req, {}, limits, nullptr);
    if (!ex.ok()) return ex.status();
    if (ex->status < 200 || ex->status > 299) {
      return Status::Unavailable("GET " + health_path_ + " answered HTTP " +
                                 std::to_string(ex->status));
    }
    return Status::Ok();
  }

  bool lists_models() const override { return true; }
  Result<std::vector<std::string>> ListModels() override {
    OutgoingRequest req;
    req.method = "GET";
    req.url = ModelsUrl(target_);
    req.headers = {"User-Agent: rma-worker/" + std::string(kVersion), "Accept: application/json",
                   "Expect:"};
    // Bounded like a health probe: its timeout, and a body cap past which the transfer stops.
    TransferLimits limits{options_.health_timeout, options_.connect_timeout, kModelListBytes,
                          /*discard_overflow=*/false};
    auto ex = Perform(req, {}, limits, nullptr);
    if (!ex.ok()) {
      // A list larger than any real one is no list (the backend answered, so it is not transient).
      if (ex.status().code() == StatusCode::kResourceExhausted) {
        return Status::InvalidArgument("GET " + req.url + ": " + ex.status().message());
      }
      return ex.status().WithContext("GET " + req.url);
    }
    if (ex->status < 200 || ex->status > 299) {
      const std::string why = "GET " + req.url + " answered HTTP " + std::to_string(ex->status);
      // 404 and the like: no model list here. 5xx and 429: a backend in trouble, try again.
      if (ex->status >= 500 || ex->status == 408 || ex->status == 429) {
        return Status::Unavailable(why);
      }
      return Status::NotFound(why);
    }
    auto models = ParseModelList(ex->body);
    if (!models.ok()) return models.status().WithContext("GET " + req.url);
    return models;
  }

 private:
  const HttpTarget target_;
  const HandlerOptions options_;
  std::string health_path_;
};

}  // namespace

std::string ModelsUrl(const HttpTarget& target) {
  const std::string_view base = target.base_path;
  const bool ends_in_v1 = base.size() >= 3 && base.substr(base.size() - 3) == "/v1";
  return target.BaseUrl() + (ends_in_v1 ? "/models" : "/v1/models");
}

Result<std::vector<std::string>> ParseModelList(std::string_view body) {
  nlohmann::json doc;
  try {
    doc = nlohmann::json::parse(body.begin(), body.end());
  } catch (const nlohmann::json::exception&) {
    return Status::InvalidArgument("the answer is not JSON");
  }
  auto data = doc.is_object() ? doc.find("data") : doc.end();
  if (!doc.is_object() || data == doc.end() || !data->is_array()) {
    return Status::InvalidArgument("the answer is not an OpenAI model list (no \"data\" array)");
  }
  std::vector<std::string> out;
  for (const nlohmann::json& entry : *data) {
    if (out.size() >= proto::kMaxModelsPerService) break;
    if (!entry.is_object()) continue;
    auto id = entry.find("id");
    if (id == entry.end() || !id->is_string()) continue;
    const std::string& name = id->get_ref<const std::string&>();
    if (proto::IsModelName(name)) out.push_back(name);
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

Result<HttpTarget> ParseHttpSpec(std::string_view spec) {
  HttpTarget t;
  size_t sep = spec.find("://");
  if (sep == std::string_view::npos) return Status::InvalidArgument("expected http://HOST:PORT");
  t.scheme = std::string(spec.substr(0, sep));
  if (t.scheme != "http" && t.scheme != "https") {
    return Status::InvalidArgument("scheme must be http or https, not '" + t.scheme + "'");
  }
  std::string_view rest = spec.substr(sep + 3);
  if (size_t hash = rest.find('#'); hash != std::string_view::npos) {
    std::string_view health = rest.substr(hash + 1);
    RMA_RETURN_IF_ERROR(CheckPath(health, "the health path (after '#')"));
    t.health_path = std::string(health);
    rest = rest.substr(0, hash);
  }
  if (rest.find('?') != std::string_view::npos) {
    return Status::InvalidArgument("a backend URL takes no query ('?')");
  }
  size_t slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
  std::string_view path = slash == std::string_view::npos ? "" : rest.substr(slash);
  if (authority.empty()) return Status::InvalidArgument("the backend URL has no host");
  if (authority.find('@') != std::string_view::npos) {
    return Status::InvalidArgument("the backend URL must not carry user credentials");
  }
  std::string_view host = authority;
  std::optional<std::string_view> port;
  if (authority[0] == '[') {
    size_t close = authority.find(']');
    if (close == std::string_view::npos) return Status::InvalidArgument("unclosed '[' in host");
    host = authority.substr(1, close - 1);
    std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after[0] != ':') return Status::InvalidArgument("junk after ']' in host");
      port = after.substr(1);
    }
    if (host.empty() || host.find_first_not_of("0123456789abcdefABCDEF:.") != std::string::npos) {
      return Status::InvalidArgument("bad IPv6 address in host");
    }
  } else {
    if (size_t colon = authority.find(':'); colon != std::string_view::npos) {
      host = authority.substr(0, colon);
      port = authority.substr(colon + 1);
    }
    bool host_ok = !host.empty() && std::all_of(host.begin(), host.end(), [](char c) {
      return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '-' || c == '.' || c == '_';
    });
    if (!host_ok) return Status::InvalidArgument("bad host '" + PrintableTail(host, 64) + "'");
  }
  if (port) {
    int value = 0;
    auto [ptr, ec] = std::from_chars(port->data(), port->data() + port->size(), value);
    if (port->empty() || ec != std::errc() || ptr != port->data() + port->size() || value < 1 ||
        value > 65535) {
      return Status::InvalidArgument("port must be a number from 1 to 65535");
    }
  }
  t.authority = std::string(authority);
  while (!path.empty() && path.back() == '/') path.remove_suffix(1);
  if (!path.empty()) RMA_RETURN_IF_ERROR(CheckPath(path, "the base path"));
  t.base_path = std::string(path);
  return t;
}

Result<OutgoingRequest> BuildRequest(const HttpTarget& target, const proto::TaskAssignment& task) {
  OutgoingRequest req;
  std::string content_type = task.content_type;
  std::vector<std::string> forwarded;
  if (task.request) {
    const proto::HttpRequest& r = *task.request;
    req.relay_status = true;
    req.method = r.method.empty() ? "GET" : r.method;
    if (req.method.size() > 16 || !std::all_of(req.method.begin(), req.method.end(),
                                               [](char c) { return c >= 'A' && c <= 'Z'; })) {
      return Status::InvalidArgument("bad HTTP method '" + PrintableTail(req.method, 32) + "'");
    }
    std::string path = r.path.empty() ? "/" : r.path;
    RMA_RETURN_IF_ERROR(CheckPath(path, "the request path"));
    req.url = target.BaseUrl() + path;
    if (!r.query.empty()) {
      if (r.query.size() > kMaxUrlBytes) return Status::InvalidArgument("the query is too long");
      RMA_RETURN_IF_ERROR(CheckPathChars(r.query, "the query", /*allow_query_chars=*/true));
      req.url += "?" + r.query;
    }
    if (r.headers.size() > kMaxHeaders) {
      return Status::InvalidArgument("more than " + std::to_string(kMaxHeaders) + " headers");
    }
    size_t bytes = 0;
    for (const auto& [name, value] : r.headers) {
      if (name.empty() || !std::all_of(name.begin(), name.end(), IsTokenChar)) {
        return Status::InvalidArgument("bad header name '" + PrintableTail(name, 64) + "'");
      }
      if (value.find_first_of(std::string_view("\r\n\0", 3)) != std::string::npos) {
        return Status::InvalidArgument("header '" + name + "' has a line break or NUL");
      }
      bytes += name.size() + value.size();
      std::string lower = Lower(name);
      if (IsHopByHop(lower) || lower.rfind("x-rma-", 0) == 0) continue;
      if (lower == "content-type") {
        content_type = value;
        continue;
      }
      std::string line = name;
      line += ": ";
      line += value;
      forwarded.push_back(std::move(line));
    }
    if (bytes > kMaxHeaderBytes) return Status::InvalidArgument("the headers are too large");
  } else {
    req.relay_status = false;
    req.method = "POST";
    req.url = target.base_path.empty() ? target.Origin() + "/" : target.BaseUrl();
  }
  if (content_type.find_first_of(std::string_view("\r\n\0", 3)) != std::string::npos) {
    return Status::InvalidArgument("the content type has a line break or NUL");
  }
  req.headers = std::move(forwarded);
  // An empty value makes libcurl leave the header out instead of inventing a form content type.
  req.headers.push_back(content_type.empty() ? "Content-Type:" : "Content-Type: " + content_type);
  req.headers.push_back("Expect:");  // no 100-continue round trip on a local backend
  req.headers.push_back("User-Agent: rma-worker/" + std::string(kVersion));
  req.headers.push_back("X-RMA-Task-Id: " + ToString(task.task_id));
  req.headers.push_back("X-RMA-Attempt: " + std::to_string(task.attempt));
  return req;
}

Result<std::shared_ptr<Handler>> MakeHttpHandler(const std::string& spec,
                                                 const HandlerOptions& options) {
  auto target = ParseHttpSpec(spec);
  if (!target.ok()) return target.status().WithContext("'" + spec + "'");
  if (!options.health_path.empty()) {
    RMA_RETURN_IF_ERROR(CheckPath(options.health_path, "the health path"));
  }
  InitCurlOnce();
  return std::shared_ptr<Handler>(std::make_shared<HttpHandler>(std::move(*target), options));
}

}  // namespace rma::worker
