// See identity.h.
#include "worker/identity.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/files.h"
#include "common/random.h"

namespace rma::worker {

std::string DefaultDataDir() {
  if (const char* xdg = std::getenv("XDG_DATA_HOME"); xdg != nullptr && *xdg != '\0') {
    return std::string(xdg) + "/rma-worker";
  }
  if (const char* home = std::getenv("HOME"); home != nullptr && *home != '\0') {
    return std::string(home) + "/.local/share/rma-worker";
  }
  return "./rma-worker-data";
}

Result<std::string> LoadOrCreateWorkerId(const std::string& data_dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::create_directories(data_dir, ec);
  if (ec)
    return Status::Unavailable("cannot create data directory '" + data_dir + "': " + ec.message());
  const fs::path file = fs::path(data_dir) / "worker_id";
  {
    std::ifstream in(file);
    std::string id;
    if (in && std::getline(in, id) && id.size() >= 3 && id.size() <= 128) return id;
  }
  std::random_device rd;
  uint64_t bits = (static_cast<uint64_t>(rd()) << 32) ^ rd();
  std::string id = fmt::format("w-{:016x}", bits);
  const fs::path tmp = file.string() + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    if (!out || !(out << id << "\n")) return Status::Unavailable("cannot write " + tmp.string());
  }
  fs::rename(tmp, file, ec);  // atomic: a crash never leaves half an id
  if (ec) return Status::Unavailable("cannot write " + file.string() + ": " + ec.message());
  return id;
}

Result<std::string> LoadOrCreateWorkerSecret(const std::string& data_dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::create_directories(data_dir, ec);
  if (ec)
    return Status::Unavailable("cannot create data directory '" + data_dir + "': " + ec.message());
  const fs::path file = fs::path(data_dir) / "worker_secret";
  if (fs::exists(file)) return ReadSecretFile(file.string());
  SecureRandom random;
  const std::string secret = random.Hex(32);
  const fs::path tmp = file.string() + ".tmp";
  {
    // Created private: umask or not, nobody else reads it.
    int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
      return Status::Unavailable("cannot write " + tmp.string() + ": " + std::strerror(errno));
    const std::string line = secret + "\n";
    const bool written = write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size());
    close(fd);
    if (!written) return Status::Unavailable("cannot write " + tmp.string());
  }
  fs::rename(tmp, file, ec);
  if (ec) return Status::Unavailable("cannot write " + file.string() + ": " + ec.message());
  return secret;
}

namespace {

std::string WorkerKeyPath(const std::string& data_dir) {
  return (std::filesystem::path(data_dir) / "worker.key").string();
}

}  // namespace

Result<proto::CurveKeypair> LoadOrCreateWorkerKey(const std::string& data_dir) {
  return proto::LoadOrCreateSecretKeyFile(WorkerKeyPath(data_dir));
}

Result<proto::CurveKeypair> ReplaceWorkerKey(const std::string& data_dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::create_directories(data_dir, ec);
  if (ec)
    return Status::Unavailable("cannot create data directory '" + data_dir + "': " + ec.message());
  RMA_ASSIGN_OR_RETURN(proto::CurveKeypair keys, proto::GenerateCurveKeypair());
  const std::string path = WorkerKeyPath(data_dir);
  // The secret first: it is what the worker reads, and the public key is derived from it.
  RMA_RETURN_IF_ERROR(WritePrivateFileAtomically(
      path, "# rma CURVE secret key: keep it private\n" + keys.secret_key + "\n"));
  RMA_RETURN_IF_ERROR(WriteFileAtomically(path + ".pub", keys.public_key + "\n"));
  return keys;
}

}  // namespace rma::worker
