// See gpu.h. The NVML declarations below are the few this file needs, copied in the shape of
// nvml.h (a stable C ABI): the CUDA toolkit is not a build dependency.
#include "worker/gpu.h"

#include <dlfcn.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>

#include "worker/subprocess.h"

namespace rma::worker {

namespace {

constexpr size_t kMaxGpus = 64;
constexpr double kMiB = 1024.0 * 1024.0;
constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) {
    s.remove_suffix(1);
  }
  return s;
}

// A reading that may be "[N/A]" or "[Not Supported]" (counted as 0).
Result<double> ParseReading(std::string_view field, std::string_view what, double max) {
  field = Trim(field);
  if (field == "[N/A]" || field == "N/A" || field == "[Not Supported]" || field == "[Unknown]") {
    return 0.0;
  }
  double v = 0;
  auto [ptr, ec] = std::from_chars(field.data(), field.data() + field.size(), v);
  if (field.empty() || ec != std::errc() || ptr != field.data() + field.size() || !(v >= 0) ||
      v > max) {
    return Status::InvalidArgument("nvidia-smi: bad " + std::string(what) + " '" +
                                   std::string(field.substr(0, 40)) + "'");
  }
  return v;
}

// ---- NVML ------------------------------------------------------------------------------------

using NvmlReturn = int;  // nvmlReturn_t
constexpr NvmlReturn kNvmlSuccess = 0;
struct NvmlDeviceOpaque;
using NvmlDevice = NvmlDeviceOpaque*;  // nvmlDevice_t
struct NvmlMemory {                    // nvmlMemory_t
  unsigned long long total;
  unsigned long long free;
  unsigned long long used;
};
struct NvmlUtilization {  // nvmlUtilization_t
  unsigned int gpu;
  unsigned int memory;
};
constexpr unsigned kNvmlNameBytes = 96;  // NVML_DEVICE_NAME_V2_BUFFER_SIZE

class NvmlSource final : public GpuSource {
 public:
  static std::unique_ptr<GpuSource> Open(const std::string& library, std::string* why) {
    void* lib = dlopen(library.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (lib == nullptr) {
      const char* err = dlerror();
      if (why != nullptr) *why = err != nullptr ? err : "cannot load " + library;
      return nullptr;
    }
    std::unique_ptr<NvmlSource> s(new NvmlSource(lib));
    std::string missing;
    if (!s->Resolve(&missing)) {
      if (why != nullptr) *why = library + " lacks " + missing;
      return nullptr;
    }
    NvmlReturn rc = s->init_();
    if (rc != kNvmlSuccess) {
      if (why != nullptr) *why = "nvmlInit failed: " + s->Error(rc);
      return nullptr;
    }
    s->initialised_ = true;
    return s;
  }

  ~NvmlSource() override {
    if (initialised_) shutdown_();
    dlclose(lib_);
  }

  std::string_view name() const override { return "NVML"; }

  Result<std::vector<GpuInfo>> Query() override {
    unsigned count = 0;
    if (NvmlReturn rc = get_count_(&count); rc != kNvmlSuccess) {
      return Status::Unavailable("nvmlDeviceGetCount: " + Error(rc));
    }
    std::vector<GpuInfo> gpus;
    for (unsigned i = 0; i < count && i < kMaxGpus; ++i) {
      NvmlDevice device = nullptr;
      if (NvmlReturn rc = get_handle_(i, &device); rc != kNvmlSuccess) {
        return Status::Unavailable("nvmlDeviceGetHandleByIndex(" + std::to_string(i) +
                                   "): " + Error(rc));
      }
      GpuInfo g;
      char name[kNvmlNameBytes] = {};
      if (get_name_(device, name, kNvmlNameBytes) == kNvmlSuccess) {
        name[kNvmlNameBytes - 1] = '\0';
        g.name = name;
      }
      if (g.name.empty()) g.name = "NVIDIA GPU " + std::to_string(i);
      NvmlMemory memory{};
      if (get_memory_(device, &memory) == kNvmlSuccess) {
        g.memory_gb = static_cast<double>(memory.total) / kGiB;
      }
      NvmlUtilization util{};
      // Not every device reports utilisation (NVML_ERROR_NOT_SUPPORTED): 0 then.
      if (get_utilization_(device, &util) == kNvmlSuccess) {
        g.utilization = std::min(100u, util.gpu) / 100.0;
      }
      gpus.push_back(std::move(g));
    }
    return gpus;
  }

 private:
  explicit NvmlSource(void* lib) : lib_(lib) {}

  template <typename Fn>
  bool Bind(const char* symbol, Fn* out, std::string* missing) {
    void* p = dlsym(lib_, symbol);
    if (p == nullptr) {
      *missing = symbol;
      return false;
    }
    *out = reinterpret_cast<Fn>(p);
    return true;
  }

  bool Resolve(std::string* missing) {
    return Bind("nvmlInit_v2", &init_, missing) && Bind("nvmlShutdown", &shutdown_, missing) &&
           Bind("nvmlDeviceGetCount_v2", &get_count_, missing) &&
           Bind("nvmlDeviceGetHandleByIndex_v2", &get_handle_, missing) &&
           Bind("nvmlDeviceGetName", &get_name_, missing) &&
           Bind("nvmlDeviceGetMemoryInfo", &get_memory_, missing) &&
           Bind("nvmlDeviceGetUtilizationRates", &get_utilization_, missing) &&
           Bind("nvmlErrorString", &error_string_, missing);
  }

  std::string Error(NvmlReturn rc) const {
    const char* s = error_string_ != nullptr ? error_string_(rc) : nullptr;
    return s != nullptr ? s : "NVML error " + std::to_string(rc);
  }

  void* lib_;
  bool initialised_ = false;
  NvmlReturn (*init_)() = nullptr;
  NvmlReturn (*shutdown_)() = nullptr;
  NvmlReturn (*get_count_)(unsigned*) = nullptr;
  NvmlReturn (*get_handle_)(unsigned, NvmlDevice*) = nullptr;
  NvmlReturn (*get_name_)(NvmlDevice, char*, unsigned) = nullptr;
  NvmlReturn (*get_memory_)(NvmlDevice, NvmlMemory*) = nullptr;
  NvmlReturn (*get_utilization_)(NvmlDevice, NvmlUtilization*) = nullptr;
  const char* (*error_string_)(NvmlReturn) = nullptr;
};

// ---- nvidia-smi --------------------------------------------------------------------------------

class NvidiaSmi final : public GpuSource {
 public:
  NvidiaSmi(std::string program, Duration timeout)
      : program_(std::move(program)), timeout_(timeout) {}
  std::string_view name() const override { return "nvidia-smi"; }

  Result<std::vector<GpuInfo>> Query() override {
    SubprocessRequest req;
    req.argv = {program_, "--query-gpu=name,memory.total,utilization.gpu",
                "--format=csv,noheader,nounits"};
    req.max_output_bytes = 64 * 1024;
    req.timeout = timeout_;
    req.kill_grace = Ms(500);
    RMA_ASSIGN_OR_RETURN(SubprocessResult r, RunSubprocess(req));
    if (r.end == SubprocessEnd::kExited && r.exit_code == 0) return ParseNvidiaSmi(r.output);
    // With the driver but no device nvidia-smi says so and exits non-zero: no GPU, not an error.
    if (r.output.find("No devices were found") != std::string::npos ||
        r.error_tail.find("No devices were found") != std::string::npos) {
      return std::vector<GpuInfo>{};
    }
    std::string detail = PrintableTail(r.error_tail.empty() ? r.output : r.error_tail, 300);
    if (r.end == SubprocessEnd::kTimedOut) {
      return Status::DeadlineExceeded(program_ + " did not answer within " +
                                      std::to_string(ToMs(timeout_)) + " ms");
    }
    if (r.end == SubprocessEnd::kExited && r.exit_code == 127) {
      return Status::Unavailable(program_ + " is not installed");
    }
    return Status::Unavailable(
        program_ + " failed" +
        (r.exit_code >= 0 ? " with status " + std::to_string(r.exit_code) : std::string()) +
        (detail.empty() ? "" : ": " + detail));
  }

 private:
  const std::string program_;
  const Duration timeout_;
};

}  // namespace

Result<std::vector<GpuInfo>> ParseNvidiaSmi(std::string_view text) {
  std::vector<GpuInfo> gpus;
  size_t pos = 0;
  int line_no = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = Trim(text.substr(pos, end - pos));
    pos = end + 1;
    ++line_no;
    if (line.empty()) continue;
    if (gpus.size() == kMaxGpus) {
      return Status::InvalidArgument("nvidia-smi: more than " + std::to_string(kMaxGpus) + " GPUs");
    }
    // The name may hold commas; the two readings are the last two fields.
    size_t util_comma = line.rfind(',');
    size_t mem_comma = util_comma == std::string_view::npos || util_comma == 0
                           ? std::string_view::npos
                           : line.rfind(',', util_comma - 1);
    if (mem_comma == std::string_view::npos) {
      return Status::InvalidArgument("nvidia-smi line " + std::to_string(line_no) +
                                     ": expected 'name, memory, utilisation'");
    }
    GpuInfo g;
    g.name = std::string(Trim(line.substr(0, mem_comma)));
    if (g.name.empty()) {
      return Status::InvalidArgument("nvidia-smi line " + std::to_string(line_no) +
                                     ": empty GPU name");
    }
    RMA_ASSIGN_OR_RETURN(
        double mib,
        ParseReading(line.substr(mem_comma + 1, util_comma - mem_comma - 1), "memory", 1e8));
    RMA_ASSIGN_OR_RETURN(double util,
                         ParseReading(line.substr(util_comma + 1), "utilisation", 100));
    g.memory_gb = mib * kMiB / kGiB;
    g.utilization = util / 100.0;
    gpus.push_back(std::move(g));
  }
  return gpus;
}

std::unique_ptr<GpuSource> OpenNvml(const std::string& library, std::string* why) {
  return NvmlSource::Open(library, why);
}

std::unique_ptr<GpuSource> NvidiaSmiSource(std::string program, Duration timeout) {
  return std::make_unique<NvidiaSmi>(std::move(program), timeout);
}

std::unique_ptr<GpuSource> FindGpuSource() {
  std::string why;
  if (auto nvml = OpenNvml("libnvidia-ml.so.1", &why)) return nvml;
  spdlog::debug("NVML not available: {}", why);
  auto smi = NvidiaSmiSource();
  auto probe = smi->Query();
  if (probe.ok()) return smi;
  spdlog::debug("nvidia-smi not usable: {}", probe.status().message());
  return nullptr;
}

void ApplyGpus(const std::vector<GpuInfo>& gpus, proto::Capabilities* caps) {
  caps->has_gpu = !gpus.empty();
  caps->gpu_count = static_cast<uint32_t>(gpus.size());
  caps->gpu_type.clear();
  caps->gpu_memory_gb = 0;
  for (const GpuInfo& g : gpus) {
    caps->gpu_memory_gb = std::max(caps->gpu_memory_gb, g.memory_gb);
    // Alike GPUs are named once (gpu_count says how many); a mixed machine lists each model.
    if (caps->gpu_type.find(g.name) == std::string::npos) {
      caps->gpu_type += (caps->gpu_type.empty() ? "" : " + ") + g.name;
    }
  }
}

double MeanUtilization(const std::vector<GpuInfo>& gpus) {
  if (gpus.empty()) return 0;
  double sum = 0;
  for (const GpuInfo& g : gpus) sum += g.utilization;
  return sum / static_cast<double>(gpus.size());
}

}  // namespace rma::worker
