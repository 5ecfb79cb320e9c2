// See http_wire.h.
#include "gateway/http_wire.h"

#include <algorithm>
#include <cctype>
#include <cstdio>

namespace rma::gateway {

namespace {

bool SafeHeaderText(std::string_view s) {
  for (char c : s) {
    if (c == '\r' || c == '\n' || c == '\0') return false;
  }
  return true;
}

bool SafeHeaderName(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u >= 0x7f || c == ':') return false;
  }
  return true;
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

std::string_view ReasonPhrase(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 201:
      return "Created";
    case 202:
      return "Accepted";
    case 204:
      return "No Content";
    case 206:
      return "Partial Content";
    case 301:
      return "Moved Permanently";
    case 302:
      return "Found";
    case 304:
      return "Not Modified";
    case 307:
      return "Temporary Redirect";
    case 308:
      return "Permanent Redirect";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 406:
      return "Not Acceptable";
    case 408:
      return "Request Timeout";
    case 409:
      return "Conflict";
    case 410:
      return "Gone";
    case 411:
      return "Length Required";
    case 413:
      return "Payload Too Large";
    case 414:
      return "URI Too Long";
    case 415:
      return "Unsupported Media Type";
    case 422:
      return "Unprocessable Entity";
    case 429:
      return "Too Many Requests";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 501:
      return "Not Implemented";
    case 502:
      return "Bad Gateway";
    case 503:
      return "Service Unavailable";
    case 504:
      return "Gateway Timeout";
    default:
      return "Unknown";
  }
}

namespace {

// The status line and the headers every answer has, up to (not including) its framing header.
void AppendHead(const HttpReply& reply, int status, bool no_body, bool keep_alive,
                std::string* out_ptr) {
  std::string& out = *out_ptr;
  out += "HTTP/1.1 ";
  out += std::to_string(status);
  out += ' ';
  out += ReasonPhrase(status);
  out += "\r\n";
  if (!reply.content_type.empty() && !no_body && SafeHeaderText(reply.content_type)) {
    out += "Content-Type: ";
    out += reply.content_type;
    out += "\r\n";
  }
  for (const auto& [name, value] : reply.headers) {
    if (!SafeHeaderName(name) || !SafeHeaderText(value)) continue;
    out += name;
    out += ": ";
    out += value;
    out += "\r\n";
  }
  out += keep_alive ? "Connection: keep-alive\r\n" : "Connection: close\r\n";
}

}  // namespace

std::string SerializeResponse(const HttpReply& reply, bool keep_alive, bool head_only) {
  const int status = reply.status >= 100 && reply.status <= 999 ? reply.status : 500;
  // 1xx, 204 and 304 answers have no body by definition.
  const bool no_body = status < 200 || status == 204 || status == 304;
  std::string out;
  out.reserve(160 + reply.body.size() + reply.headers.size() * 48);
  AppendHead(reply, status, no_body, keep_alive, &out);
  if (!no_body) {
    out += "Content-Length: ";
    out += std::to_string(reply.body.size());
    out += "\r\n";
  }
  out += "\r\n";
  if (!head_only && !no_body) out += reply.body;
  return out;
}

std::string SerializeStreamHead(const HttpReply& head, bool keep_alive) {
  std::string out;
  out.reserve(192 + head.headers.size() * 48);
  const int status = head.status >= 200 && head.status <= 599 ? head.status : 500;
  AppendHead(head, status, /*no_body=*/false, keep_alive, &out);
  out += "Transfer-Encoding: chunked\r\n\r\n";
  return out;
}

void AppendChunk(std::string_view data, std::string* out) {
  if (data.empty()) return;  // an empty chunk would end the body
  char size[24];
  const int n = std::snprintf(size, sizeof size, "%zx\r\n", data.size());
  out->append(size, static_cast<size_t>(n));
  out->append(data);
  out->append("\r\n");
}

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) !=
        std::tolower(static_cast<unsigned char>(b[i]))) {
      return false;
    }
  }
  return true;
}

bool IsJsonMediaType(std::string_view content_type) {
  std::string_view type = content_type.substr(0, content_type.find(';'));
  while (!type.empty() && (type.front() == ' ' || type.front() == '\t')) type.remove_prefix(1);
  while (!type.empty() && (type.back() == ' ' || type.back() == '\t')) type.remove_suffix(1);
  return EqualsIgnoreCase(type, "application/json");
}

bool KeepAlive(bool http11, std::string_view connection) {
  // The header is a comma-separated list of tokens ("keep-alive, Upgrade").
  bool close = false;
  bool keep = false;
  size_t pos = 0;
  while (pos <= connection.size()) {
    size_t comma = connection.find(',', pos);
    if (comma == std::string_view::npos) comma = connection.size();
    std::string_view token = connection.substr(pos, comma - pos);
    while (!token.empty() && (token.front() == ' ' || token.front() == '\t'))
      token.remove_prefix(1);
    while (!token.empty() && (token.back() == ' ' || token.back() == '\t')) token.remove_suffix(1);
    if (EqualsIgnoreCase(token, "close")) close = true;
    if (EqualsIgnoreCase(token, "keep-alive")) keep = true;
    pos = comma + 1;
  }
  if (close) return false;
  return http11 || keep;
}

std::optional<RequestTarget> SplitTarget(std::string_view target) {
  if (target.empty() || target.front() != '/' || target.size() > 8192) return std::nullopt;
  for (char c : target) {
    auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u == 0x7f) return std::nullopt;
  }
  size_t hash = target.find('#');
  if (hash != std::string_view::npos) target = target.substr(0, hash);
  size_t q = target.find('?');
  if (q == std::string_view::npos) return RequestTarget{std::string(target), ""};
  return RequestTarget{std::string(target.substr(0, q)), std::string(target.substr(q + 1))};
}

std::optional<std::string_view> RequestHead::Header(std::string_view name) const {
  for (const auto& [n, v] : headers) {
    if (EqualsIgnoreCase(n, name)) return std::string_view(v);
  }
  return std::nullopt;
}

size_t FindHeadEnd(std::string_view bytes, size_t from) {
  // A head may start with empty lines (RFC 9112, 2.2): skip them before looking for the blank line.
  size_t start = 0;
  while (start < bytes.size() && (bytes[start] == '\r' || bytes[start] == '\n')) ++start;
  size_t pos = std::max(from, start);
  while (pos < bytes.size()) {
    size_t nl = bytes.find('\n', pos);
    if (nl == std::string_view::npos) return std::string_view::npos;
    // A line feed followed by an optional CR and another line feed ends the head.
    size_t next = nl + 1;
    if (next < bytes.size() && bytes[next] == '\r') ++next;
    if (next < bytes.size() && bytes[next] == '\n') return next + 1;
    if (next >= bytes.size()) return std::string_view::npos;
    pos = nl + 1;
  }
  return std::string_view::npos;
}

std::optional<RequestHead> ParseRequestHead(std::string_view head) {
  RequestHead out;
  std::vector<std::string_view> lines;
  size_t pos = 0;
  while (pos < head.size()) {
    size_t nl = head.find('\n', pos);
    if (nl == std::string_view::npos) nl = head.size();
    std::string_view line = head.substr(pos, nl - pos);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    pos = nl + 1;
    if (line.empty()) {
      if (lines.empty()) continue;  // empty lines before the request line
      break;                        // the blank line that ends the head
    }
    lines.push_back(line);
  }
  if (lines.empty() || lines.size() > 201) return std::nullopt;
  std::string_view request_line = lines[0];
  size_t sp1 = request_line.find(' ');
  size_t sp2 = request_line.rfind(' ');
  if (sp1 == std::string_view::npos || sp1 == 0 || sp2 == sp1) return std::nullopt;
  out.method = std::string(request_line.substr(0, sp1));
  out.target = std::string(request_line.substr(sp1 + 1, sp2 - sp1 - 1));
  std::string_view version = request_line.substr(sp2 + 1);
  if (out.target.empty() || out.target.find(' ') != std::string::npos) return std::nullopt;
  for (char c : out.method) {
    if (!std::isupper(static_cast<unsigned char>(c))) return std::nullopt;
  }
  if (version == "HTTP/1.1") {
    out.http11 = true;
  } else if (version == "HTTP/1.0") {
    out.http11 = false;
  } else {
    return std::nullopt;
  }
  for (size_t i = 1; i < lines.size(); ++i) {
    std::string_view line = lines[i];
    size_t colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0) return std::nullopt;
    std::string_view name = line.substr(0, colon);
    for (char c : name) {
      auto u = static_cast<unsigned char>(c);
      if (u <= 0x20 || u >= 0x7f) return std::nullopt;  // no whitespace before the colon
    }
    std::string_view value = line.substr(colon + 1);
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t'))
      value.remove_prefix(1);
    while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
    for (char c : value) {
      auto u = static_cast<unsigned char>(c);
      if ((u < 0x20 && c != '\t') || u == 0x7f) return std::nullopt;
    }
    out.headers.emplace_back(std::string(name), std::string(value));
  }
  return out;
}

namespace {

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

}  // namespace

std::variant<BodyFraming, FramingError> FramingOf(const RequestHead& head) {
  std::optional<std::string_view> length;
  size_t codings = 0;
  std::string_view coding;
  for (const auto& [name, value] : head.headers) {
    if (EqualsIgnoreCase(name, "Content-Length")) {
      if (value.empty() || value.size() > 19 ||
          value.find_first_not_of("0123456789") != std::string::npos) {
        return FramingError{400, "malformed Content-Length"};
      }
      if (length && *length != value) {
        return FramingError{400, "conflicting Content-Length headers"};
      }
      length = value;
    } else if (EqualsIgnoreCase(name, "Transfer-Encoding")) {
      ++codings;
      coding = value;
    }
  }
  if (codings > 0) {
    if (length) return FramingError{400, "both Transfer-Encoding and Content-Length"};
    if (!head.http11) return FramingError{400, "Transfer-Encoding in an HTTP/1.0 request"};
    if (codings > 1 || !EqualsIgnoreCase(Trim(coding), "chunked")) {
      return FramingError{501, "only Transfer-Encoding: chunked is supported"};
    }
    return BodyFraming{BodyFraming::Kind::kChunked, 0};
  }
  if (!length) return BodyFraming{};
  uint64_t n = 0;
  for (char c : *length) n = n * 10 + static_cast<uint64_t>(c - '0');  // 19 digits fit
  return BodyFraming{BodyFraming::Kind::kLength, n};
}

ChunkedDecoder::State ChunkedDecoder::Fail(std::string message) {
  error_ = std::move(message);
  return State::kError;
}

ChunkedDecoder::State ChunkedDecoder::Feed(std::string_view in, std::string* body, size_t max_body,
                                           size_t* consumed) {
  constexpr size_t kMaxLine = 4096;          // one extension or trailer line
  constexpr size_t kMaxTrailer = 16 * 1024;  // all trailer lines
  size_t i = 0;
  auto done = [&](State s) {
    *consumed = i;
    return s;
  };
  if (!error_.empty()) return done(State::kError);
  while (i < in.size()) {
    const char c = in[i];
    switch (step_) {
      case Step::kSize: {
        const int v = HexValue(c);
        if (v >= 0) {
          if (++digits_ > 16) return done(Fail("chunk size too long"));
          size_ = size_ * 16 + static_cast<uint64_t>(v);
          ++i;
        } else if (digits_ == 0) {
          return done(Fail("chunk size expected"));
        } else if (c == ';') {
          step_ = Step::kExtension;
          line_bytes_ = 0;
          ++i;
        } else if (c == '\r') {
          step_ = Step::kSizeLf;
          ++i;
        } else {
          return done(Fail("bad character in chunk size"));
        }
        break;
      }
      case Step::kExtension:
        if (c == '\r') {
          step_ = Step::kSizeLf;
        } else if (c == '\n' || ++line_bytes_ > kMaxLine) {
          return done(Fail("malformed chunk extension"));
        }
        ++i;
        break;
      case Step::kSizeLf:
        if (c != '\n') return done(Fail("chunk size line must end with CRLF"));
        ++i;
        digits_ = 0;
        if (size_ == 0) {
          step_ = Step::kTrailer;
          line_bytes_ = 0;
        } else {
          if (size_ > max_body || body->size() > max_body - size_) {
            return done(State::kTooLarge);
          }
          remaining_ = size_;
          step_ = Step::kData;
        }
        size_ = 0;
        break;
      case Step::kData: {
        const size_t take = static_cast<size_t>(std::min<uint64_t>(remaining_, in.size() - i));
        body->append(in.data() + i, take);
        i += take;
        remaining_ -= take;
        if (remaining_ == 0) step_ = Step::kDataCr;
        break;
      }
      case Step::kDataCr:
        if (c != '\r') return done(Fail("chunk data must end with CRLF"));
        step_ = Step::kDataLf;
        ++i;
        break;
      case Step::kDataLf:
        if (c != '\n') return done(Fail("chunk data must end with CRLF"));
        step_ = Step::kSize;
        ++i;
        break;
      case Step::kTrailer:
        // A trailer line, or the empty line that ends the body.
        if (c == '\r') {
          step_ = Step::kTrailerLf;
        } else if (c == '\n' || ++line_bytes_ > kMaxLine || ++trailer_bytes_ > kMaxTrailer) {
          return done(Fail("malformed trailer"));
        }
        ++i;
        break;
      case Step::kTrailerLf:
        if (c != '\n') return done(Fail("trailer line must end with CRLF"));
        ++i;
        if (line_bytes_ == 0) {
          step_ = Step::kSize;  // ready for another body, should the decoder be reused
          trailer_bytes_ = 0;
          return done(State::kDone);
        }
        line_bytes_ = 0;
        step_ = Step::kTrailer;
        break;
    }
  }
  return done(State::kMore);
}

std::string EscapeForLog(std::string_view s, size_t max) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  const bool cut = s.size() > max;
  if (cut) s = s.substr(0, max);
  out.reserve(s.size() + 8);
  for (char c : s) {
    auto u = static_cast<unsigned char>(c);
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (u < 0x20 || u == 0x7f) {
      out += "\\x";
      out += kHex[u >> 4];
      out += kHex[u & 15];
    } else {
      out += c;
    }
  }
  if (cut) out += "...";
  return out;
}

std::vector<std::string_view> PathSegments(std::string_view path) {
  std::vector<std::string_view> parts;
  size_t pos = 0;
  while (pos < path.size()) {
    size_t next = path.find('/', pos);
    if (next == std::string_view::npos) next = path.size();
    if (next > pos) parts.push_back(path.substr(pos, next - pos));
    pos = next + 1;
  }
  return parts;
}

std::optional<std::string> PercentDecode(std::string_view s, bool plus_as_space) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (c == '%') {
      if (i + 2 >= s.size()) return std::nullopt;
      int hi = HexValue(s[i + 1]);
      int lo = HexValue(s[i + 2]);
      if (hi < 0 || lo < 0) return std::nullopt;
      out += static_cast<char>(hi * 16 + lo);
      i += 2;
    } else if (c == '+' && plus_as_space) {
      out += ' ';
    } else {
      out += c;
    }
  }
  return out;
}

std::optional<std::string> ServicePathProblem(std::string_view path) {
  if (path.find('\\') != std::string_view::npos) return "'\\' is not allowed in a call's path";
  if (path.find('\0') != std::string_view::npos) return "NUL is not allowed in a call's path";
  for (std::string_view seg : PathSegments(path)) {
    auto decoded = PercentDecode(seg, false);
    if (!decoded) return "bad percent-encoding in a call's path";
    if (*decoded == "." || *decoded == "..") {
      return "'.' and '..' path segments are not allowed in a call";
    }
    if (decoded->find_first_of(std::string_view("/\\\0", 3)) != std::string::npos) {
      return "encoded '/', '\\' and NUL are not allowed in a call's path";
    }
  }
  return std::nullopt;
}

std::optional<std::string> QueryParam(std::string_view query, std::string_view name) {
  size_t pos = 0;
  while (pos <= query.size()) {
    size_t amp = query.find('&', pos);
    if (amp == std::string_view::npos) amp = query.size();
    std::string_view pair = query.substr(pos, amp - pos);
    size_t eq = pair.find('=');
    std::string_view key = pair.substr(0, eq);
    auto decoded_key = PercentDecode(key, true);
    if (decoded_key && *decoded_key == name) {
      if (eq == std::string_view::npos) return std::string();
      return PercentDecode(pair.substr(eq + 1), true);
    }
    pos = amp + 1;
  }
  return std::nullopt;
}

}  // namespace rma::gateway
