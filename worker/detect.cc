// See detect.h.
#include "worker/detect.h"

#include <sys/statvfs.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <charconv>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

namespace rma::worker {

namespace {

std::string ReadFile(const char* path) {
  std::ifstream in(path);
  if (!in) return {};
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r'))
    s.remove_suffix(1);
  return s;
}

// Value of "Key: value" lines, or nullopt.
std::optional<std::string_view> Field(std::string_view text, std::string_view key) {
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(pos, end - pos);
    size_t colon = line.find(':');
    if (colon != std::string_view::npos && Trim(line.substr(0, colon)) == key) {
      return Trim(line.substr(colon + 1));
    }
    pos = end + 1;
  }
  return std::nullopt;
}

std::optional<double> KbField(std::string_view text, std::string_view key) {
  auto v = Field(text, key);
  if (!v) return std::nullopt;
  uint64_t kb = 0;
  auto [ptr, ec] = std::from_chars(v->data(), v->data() + v->size(), kb);
  (void)ptr;
  if (ec != std::errc()) return std::nullopt;
  return static_cast<double>(kb) / (1024.0 * 1024.0);
}

}  // namespace

std::optional<MemInfo> ParseMeminfo(std::string_view text) {
  auto total = KbField(text, "MemTotal");
  if (!total) return std::nullopt;
  MemInfo m;
  m.total_gb = *total;
  // Kernels before 3.14 have no MemAvailable: MemFree is the closest honest figure.
  auto avail = KbField(text, "MemAvailable");
  if (!avail) avail = KbField(text, "MemFree");
  m.available_gb = avail.value_or(0);
  return m;
}

std::string ParseCpuModel(std::string_view text) {
  for (std::string_view key : {"model name", "Model", "Hardware", "cpu model"}) {
    if (auto v = Field(text, key); v && !v->empty()) return std::string(*v);
  }
  return "unknown";
}

std::optional<double> ParseLoadavg(std::string_view text) {
  text = Trim(text);
  size_t space = text.find(' ');
  std::string first(text.substr(0, space));
  try {
    size_t used = 0;
    double v = std::stod(first, &used);
    if (used == 0) return std::nullopt;
    return v;
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

proto::Capabilities DetectCapabilities(const std::string& data_dir) {
  proto::Capabilities c;
  long cores = sysconf(_SC_NPROCESSORS_ONLN);
  c.cpu_cores =
      cores > 0 ? static_cast<uint32_t>(cores) : std::max(1u, std::thread::hardware_concurrency());
  c.cpu_model = ParseCpuModel(ReadFile("/proc/cpuinfo"));
  if (auto m = ParseMeminfo(ReadFile("/proc/meminfo"))) {
    c.ram_gb = m->total_gb;
    c.ram_available_gb = m->available_gb;
  }
  // The data directory may not exist yet: measure the nearest existing ancestor (same file system).
  std::filesystem::path dir =
      data_dir.empty() ? std::filesystem::path(".") : std::filesystem::path(data_dir);
  std::error_code ec;
  while (!std::filesystem::exists(dir, ec) && dir.has_parent_path() && dir.parent_path() != dir) {
    dir = dir.parent_path();
  }
  struct statvfs fs {};
  if (statvfs(dir.c_str(), &fs) == 0) {
    double unit = static_cast<double>(fs.f_frsize);
    c.disk_gb = static_cast<double>(fs.f_blocks) * unit / 1e9;
    c.disk_free_gb = static_cast<double>(fs.f_bavail) * unit / 1e9;
  }
  struct utsname u {};
  if (uname(&u) == 0) {
    c.os = std::string(u.sysname) + " " + u.release;
    c.arch = u.machine;
  }
  return c;
}

Result<proto::Capabilities> SimulatedCapabilities(std::string_view kind) {
  proto::Capabilities c;
  c.os = "simulated";
  c.arch = "x86_64";
  if (kind == "gpu") {
    c.cpu_cores = 16;
    c.cpu_model = "Simulated 16-core CPU";
    c.ram_gb = 64;
    c.ram_available_gb = 48;
    c.disk_gb = 1000;
    c.disk_free_gb = 500;
    c.has_gpu = true;
    c.gpu_type = "Simulated NVIDIA RTX 4090";
    c.gpu_memory_gb = 24;
    c.gpu_count = 1;
    c.worker_type = "gpu";
  } else if (kind == "cpu") {
    c.cpu_cores = 8;
    c.cpu_model = "Simulated 8-core CPU";
    c.ram_gb = 32;
    c.ram_available_gb = 24;
    c.disk_gb = 500;
    c.disk_free_gb = 250;
    c.worker_type = "cpu";
  } else if (kind == "storage") {
    c.cpu_cores = 2;
    c.cpu_model = "Simulated 2-core CPU";
    c.ram_gb = 4;
    c.ram_available_gb = 3;
    c.disk_gb = 4000;
    c.disk_free_gb = 3000;
    c.worker_type = "storage";
  } else {
    return Status::InvalidArgument("--simulate takes gpu, cpu or storage, not '" +
                                   std::string(kind) + "'");
  }
  return c;
}

double LoadPerCore() {
  auto load = ParseLoadavg(ReadFile("/proc/loadavg"));
  long cores = sysconf(_SC_NPROCESSORS_ONLN);
  if (!load || cores <= 0) return 0;
  return *load / static_cast<double>(cores);
}

double AvailableRamGb() {
  auto m = ParseMeminfo(ReadFile("/proc/meminfo"));
  return m ? m->available_gb : 0;
}

}  // namespace rma::worker
