// A stand-in for libnvidia-ml.so.1 with two GPUs, loaded by detect_test through the same dlopen
// path the worker uses on a machine with the NVIDIA driver. Only the functions gpu.cc binds are
// here, with nvml.h's C signatures. RMA_FAKE_NVML_FAIL_INIT=1 makes nvmlInit_v2 fail the way it
// does when the kernel driver is not loaded.
#include <cstdlib>
#include <cstring>

namespace {
struct FakeDevice {
  const char* name;
  unsigned long long memory;
  int utilization;  // -1: not supported
};
FakeDevice devices[] = {{"NVIDIA GeForce RTX 4090", 24ULL << 30, 42},
                        {"NVIDIA RTX A2000", 6ULL << 30, -1}};
constexpr int kSuccess = 0;
constexpr int kInvalidArgument = 2;
constexpr int kNotSupported = 3;
constexpr int kDriverNotLoaded = 9;
}  // namespace

extern "C" {

struct nvmlMemory_t {
  unsigned long long total;
  unsigned long long free;
  unsigned long long used;
};
struct nvmlUtilization_t {
  unsigned int gpu;
  unsigned int memory;
};

int nvmlInit_v2() {
  const char* fail = std::getenv("RMA_FAKE_NVML_FAIL_INIT");
  return fail != nullptr && *fail == '1' ? kDriverNotLoaded : kSuccess;
}
int nvmlShutdown() { return kSuccess; }
int nvmlDeviceGetCount_v2(unsigned* count) {
  *count = 2;
  return kSuccess;
}
int nvmlDeviceGetHandleByIndex_v2(unsigned index, void** device) {
  if (index >= 2) return kInvalidArgument;
  *device = &devices[index];
  return kSuccess;
}
int nvmlDeviceGetName(void* device, char* name, unsigned length) {
  std::strncpy(name, static_cast<FakeDevice*>(device)->name, length);
  return kSuccess;
}
int nvmlDeviceGetMemoryInfo(void* device, nvmlMemory_t* memory) {
  memory->total = static_cast<FakeDevice*>(device)->memory;
  memory->free = memory->total / 2;
  memory->used = memory->total - memory->free;
  return kSuccess;
}
int nvmlDeviceGetUtilizationRates(void* device, nvmlUtilization_t* util) {
  int u = static_cast<FakeDevice*>(device)->utilization;
  if (u < 0) return kNotSupported;
  util->gpu = static_cast<unsigned>(u);
  util->memory = 10;
  return kSuccess;
}
const char* nvmlErrorString(int result) {
  return result == kDriverNotLoaded ? "Driver Not Loaded" : "Unknown Error";
}

}  // extern "C"
