// See names.h.
#include "protocol/names.h"

#include <string>

namespace rma::proto {

namespace {
bool IsAlnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

// The name as it may appear in an error message: printable ASCII only, at most 64 characters.
std::string Printable(std::string_view name) {
  std::string out;
  for (char c : name.substr(0, kMaxServiceNameBytes)) {
    out += (c >= 0x20 && c < 0x7f) ? c : '?';
  }
  return out;
}
}  // namespace

Status CheckServiceName(std::string_view name) {
  if (name.empty() || name.size() > kMaxServiceNameBytes) {
    return Status::InvalidArgument("a service name has 1 to 64 characters");
  }
  if (!IsAlnum(name[0])) {
    return Status::InvalidArgument("service name '" + Printable(name) +
                                   "' must start with a letter or digit");
  }
  for (char c : name) {
    if (!IsAlnum(c) && c != '.' && c != '_' && c != '-') {
      return Status::InvalidArgument("service name '" + Printable(name) +
                                     "' may hold only letters, digits, '.', '_' and '-'");
    }
  }
  return Status::Ok();
}

Status CheckModelName(std::string_view name) {
  if (name.empty() || name.size() > kMaxModelBytes) {
    return Status::InvalidArgument("a model name has 1 to " + std::to_string(kMaxModelBytes) +
                                   " characters");
  }
  for (char c : name) {
    // Printable ASCII without spaces: a model name goes into log lines, JSON and error messages.
    if (c <= ' ' || c > '~') {
      return Status::InvalidArgument("model name '" + Printable(name) +
                                     "' may hold only printable ASCII characters without spaces");
    }
  }
  return Status::Ok();
}

}  // namespace rma::proto
