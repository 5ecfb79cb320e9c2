// See curve_keys.h.
#include "protocol/curve_keys.h"

#include <sys/stat.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>

#include "common/files.h"

namespace rma::proto {

namespace {

constexpr size_t kZ85KeyChars = 40;
constexpr size_t kBinaryKeyBytes = 32;

std::string Trim(const std::string& line) {
  const auto first = line.find_first_not_of(" \t\r");
  if (first == std::string::npos) return {};
  const auto last = line.find_last_not_of(" \t\r");
  return line.substr(first, last - first + 1);
}

// A line holding a key: its first 40 characters are a Z85 key, followed by nothing or by whitespace
// and a comment (who the key is). Z85 has '#' among its characters (never the first of a group of
// five, so never a key's first): a '#' inside a key does not start a comment.
std::optional<std::string> KeyOfLine(const std::string& trimmed) {
  if (trimmed.size() < kZ85KeyChars) return std::nullopt;
  if (trimmed.size() > kZ85KeyChars && trimmed[kZ85KeyChars] != ' ' &&
      trimmed[kZ85KeyChars] != '\t') {
    return std::nullopt;
  }
  std::string key = trimmed.substr(0, kZ85KeyChars);
  if (!IsZ85Key(key)) return std::nullopt;
  return key;
}

// The key on the first line of `in` that is neither blank nor a comment ("" when that line holds
// no key, or there is none).
std::string FirstKey(std::istream& in) {
  std::string line;
  while (std::getline(in, line)) {
    std::string t = Trim(line);
    if (t.empty()) continue;
    if (auto key = KeyOfLine(t)) return *key;
    if (t[0] == '#') continue;
    return {};
  }
  return {};
}

}  // namespace

bool CurveAvailable() { return zmq_has("curve") != 0; }

bool IsZ85Key(std::string_view text) {
  if (text.size() != kZ85KeyChars) return false;
  const std::string z(text);
  std::array<uint8_t, kBinaryKeyBytes> out{};
  return zmq_z85_decode(out.data(), z.c_str()) != nullptr;
}

std::string Z85FromBinaryKey(std::string_view binary) {
  if (binary.size() != kBinaryKeyBytes) return {};
  std::array<char, kZ85KeyChars + 1> out{};
  if (zmq_z85_encode(out.data(), reinterpret_cast<const uint8_t*>(binary.data()), binary.size()) ==
      nullptr) {
    return {};
  }
  return std::string(out.data(), kZ85KeyChars);
}

Result<CurveKeypair> GenerateCurveKeypair() {
  if (!CurveAvailable()) return Status::FailedPrecondition("this libzmq has no CURVE support");
  std::array<char, kZ85KeyChars + 1> pub{};
  std::array<char, kZ85KeyChars + 1> sec{};
  if (zmq_curve_keypair(pub.data(), sec.data()) != 0) {
    return Status::Internal(std::string("cannot make a CURVE keypair: ") + zmq_strerror(errno));
  }
  return CurveKeypair{pub.data(), sec.data()};
}

Result<CurveKeypair> KeypairFromSecret(const std::string& secret_key) {
  if (!IsZ85Key(secret_key)) {
    return Status::InvalidArgument("not a CURVE secret key (40 Z85 characters)");
  }
  std::array<char, kZ85KeyChars + 1> pub{};
  if (zmq_curve_public(pub.data(), secret_key.c_str()) != 0) {
    return Status::InvalidArgument(std::string("cannot derive the public key: ") +
                                   zmq_strerror(errno));
  }
  return CurveKeypair{pub.data(), secret_key};
}

Result<CurveKeypair> ReadSecretKeyFile(const std::string& path) {
  struct stat st {};
  if (stat(path.c_str(), &st) != 0) {
    return Status::NotFound("cannot read the key file " + path + ": " + std::strerror(errno));
  }
  if ((st.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
    return Status::PermissionDenied("the key file " + path +
                                    " may be read or written by others: chmod 600 " + path);
  }
  std::ifstream in(path);
  if (!in) return Status::NotFound("cannot read the key file " + path);
  auto keys = KeypairFromSecret(FirstKey(in));
  if (!keys.ok()) return keys.status().WithContext(path);
  return keys;
}

Result<CurveKeypair> LoadOrCreateSecretKeyFile(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (fs::exists(path, ec)) return ReadSecretKeyFile(path);
  const fs::path parent = fs::path(path).parent_path();
  if (!parent.empty()) {
    fs::create_directories(parent, ec);
    if (ec) return Status::Unavailable("cannot create " + parent.string() + ": " + ec.message());
  }
  RMA_ASSIGN_OR_RETURN(CurveKeypair keys, GenerateCurveKeypair());
  RMA_RETURN_IF_ERROR(WritePrivateFileAtomically(
      path, "# rma CURVE secret key: keep it private\n" + keys.secret_key + "\n"));
  RMA_RETURN_IF_ERROR(WriteFileAtomically(path + ".pub", keys.public_key + "\n"));
  return keys;
}

Result<CurveKeypair> WriteNewKeypair(const std::string& dir, const std::string& name) {
  namespace fs = std::filesystem;
  const std::string secret = (fs::path(dir) / (name + ".key")).string();
  const std::string pub = (fs::path(dir) / (name + ".pub")).string();
  std::error_code ec;
  for (const std::string& p : {secret, pub}) {
    if (fs::exists(p, ec)) {
      return Status::AlreadyExists(p + " exists; remove it first to make a new key");
    }
  }
  fs::create_directories(dir, ec);
  if (ec) return Status::Unavailable("cannot create " + dir + ": " + ec.message());
  RMA_ASSIGN_OR_RETURN(CurveKeypair keys, GenerateCurveKeypair());
  RMA_RETURN_IF_ERROR(WritePrivateFileAtomically(
      secret, "# rma CURVE secret key: keep it private\n" + keys.secret_key + "\n"));
  RMA_RETURN_IF_ERROR(WriteFileAtomically(pub, keys.public_key + "\n"));
  return keys;
}

Result<std::set<std::string>> ReadKeyList(const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    return Status::NotFound("cannot read the key list " + path + ": " + std::strerror(errno));
  }
  std::set<std::string> keys;
  std::string line;
  for (int number = 1; std::getline(in, line); ++number) {
    std::string t = Trim(line);
    if (t.empty()) continue;
    std::optional<std::string> key = KeyOfLine(t);
    if (!key && t[0] == '#') continue;
    if (!key) {
      return Status::InvalidArgument(path + " line " + std::to_string(number) +
                                     ": not a CURVE public key (40 Z85 characters, then an "
                                     "optional comment after a space)");
    }
    keys.insert(*key);
  }
  return keys;
}

Result<std::string> ResolvePublicKey(const std::string& key_or_file) {
  // A path of 40 characters may well be valid Z85 ('/' and '.' are Z85 characters): a file wins.
  std::error_code ec;
  if (IsZ85Key(key_or_file) && !std::filesystem::exists(key_or_file, ec)) return key_or_file;
  std::ifstream in(key_or_file);
  if (!in) {
    return Status::InvalidArgument("'" + key_or_file +
                                   "' is neither a CURVE public key (40 Z85 characters) nor a "
                                   "readable file holding one");
  }
  std::string key = FirstKey(in);
  if (!IsZ85Key(key)) {
    return Status::InvalidArgument(key_or_file + ": no CURVE public key (40 Z85 characters)");
  }
  return key;
}

void UseCurveClient(zmq::socket_t& socket, const CurveKeypair& mine,
                    const std::string& server_public_key) {
  socket.set(zmq::sockopt::curve_serverkey, server_public_key);
  socket.set(zmq::sockopt::curve_publickey, mine.public_key);
  socket.set(zmq::sockopt::curve_secretkey, mine.secret_key);
}

void UseCurveServer(zmq::socket_t& socket, const CurveKeypair& keys) {
  socket.set(zmq::sockopt::curve_server, 1);
  socket.set(zmq::sockopt::curve_secretkey, keys.secret_key);
}

}  // namespace rma::proto
