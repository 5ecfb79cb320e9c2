// See detect.h.
#include "worker/detect.h"

#include <spdlog/spdlog.h>
#include <sys/statvfs.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <charconv>
#include <filesystem>
#include <fstream>
#include <thread>

namespace rma::worker {

namespace {

// /proc files are small, but a bound costs nothing: 4 MiB covers /proc/cpuinfo of a 1000-core box.
std::string ReadFile(const char* path) {
  constexpr size_t kMaxBytes = 4u << 20;
  std::ifstream in(path, std::ios::binary);
  std::string out;
  char buf[16 * 1024];
  while (in && out.size() < kMaxBytes) {
    in.read(buf, sizeof buf);
    out.append(buf, static_cast<size_t>(in.gcount()));
  }
  return out;
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
  m.available_gb = std::min(avail.value_or(0), m.total_gb);
  return m;
}

std::string ParseCpuModel(std::string_view text) {
  auto board = Field(text, "Model");
  auto processor = Field(text, "model name");
  if (board && !board->empty()) {
    if (processor && !processor->empty() && *processor != *board) {
      return std::string(*board) + " (" + std::string(*processor) + ")";
    }
    return std::string(*board);
  }
  for (std::string_view key : {"model name", "Hardware", "cpu model"}) {
    if (auto v = Field(text, key); v && !v->empty()) return std::string(*v);
  }
  return "unknown";
}

std::optional<double> ParseLoadavg(std::string_view text) {
  text = Trim(text);
  std::string_view first = text.substr(0, text.find(' '));
  double v = 0;
  auto [ptr, ec] = std::from_chars(first.data(), first.data() + first.size(), v);
  if (first.empty() || ec != std::errc() || ptr != first.data() + first.size() || !(v >= 0)) {
    return std::nullopt;
  }
  return v;
}

proto::Capabilities DetectCapabilities(const std::string& data_dir, GpuSource* gpus,
                                       std::vector<GpuInfo>* found) {
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
  if (gpus != nullptr) {
    auto list = gpus->Query();
    if (list.ok()) {
      ApplyGpus(*list, &c);
      if (found != nullptr) *found = *list;
    } else {
      spdlog::warn("GPU query through {} failed: {}; reporting no GPU", gpus->name(),
                   list.status().message());
    }
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

namespace {

class SystemSampler final : public Sampler {
 public:
  explicit SystemSampler(std::shared_ptr<GpuSource> gpus) : gpus_(std::move(gpus)) {}
  Readings Sample() override {
    Readings r;
    auto load = ParseLoadavg(ReadFile("/proc/loadavg"));
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    if (load && cores > 0) r.load = *load / static_cast<double>(cores);
    if (auto m = ParseMeminfo(ReadFile("/proc/meminfo"))) r.ram_available_gb = m->available_gb;
    if (gpus_) {
      auto list = gpus_->Query();
      if (list.ok()) {
        r.gpu_util = MeanUtilization(*list);
        gpu_warned_ = false;
      } else if (!gpu_warned_) {
        spdlog::warn("GPU utilisation through {} unavailable: {}", gpus_->name(),
                     list.status().message());
        gpu_warned_ = true;  // once per outage, not every interval
      }
    }
    return r;
  }

 private:
  std::shared_ptr<GpuSource> gpus_;
  bool gpu_warned_ = false;
};

class FixedSampler final : public Sampler {
 public:
  explicit FixedSampler(Readings r) : readings_(r) {}
  Readings Sample() override { return readings_; }

 private:
  Readings readings_;
};

}  // namespace

std::unique_ptr<Sampler> MakeSystemSampler(std::shared_ptr<GpuSource> gpus) {
  return std::make_unique<SystemSampler>(std::move(gpus));
}

std::unique_ptr<Sampler> MakeFixedSampler(Readings readings) {
  return std::make_unique<FixedSampler>(readings);
}

}  // namespace rma::worker
