// A stand-in for the driver's libnvidia-ml.so.1 implementing the NVML calls scenefarm uses, so
// the NVML path of the GPU readings and the exporter is tested on machines without a GPU.
// FAKE_NVML_GPU_COUNT (default 2) GPUs; GPU i: "NVIDIA Fake H100 80GB", 80 GiB total,
// (60 - 10 i) GiB free, 50 + i degrees, (40 + i) % utilisation, 250.5 + i W, uuid
// "GPU-fake-000i", driver "550.54.15". FAKE_NVML_INIT_ERROR=N makes nvmlInit_v2 return N.
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace {
int Count() {
  const char* c = std::getenv("FAKE_NVML_GPU_COUNT");
  return c ? std::atoi(c) : 2;
}
int Index(void* dev) {
  return static_cast<int>(reinterpret_cast<long>(dev)) - 1;
}
}  // namespace

extern "C" {

struct nvmlMemory_t {
  unsigned long long total, free, used;
};
struct nvmlUtilization_t {
  unsigned int gpu, memory;
};

int nvmlInit_v2() {
  const char* e = std::getenv("FAKE_NVML_INIT_ERROR");
  return e ? std::atoi(e) : 0;
}
int nvmlShutdown() {
  return 0;
}
int nvmlDeviceGetCount_v2(unsigned int* n) {
  *n = static_cast<unsigned int>(Count());
  return 0;
}
int nvmlDeviceGetHandleByIndex_v2(unsigned int i, void** dev) {
  if (static_cast<int>(i) >= Count()) return 2;  // NVML_ERROR_INVALID_ARGUMENT
  *dev = reinterpret_cast<void*>(static_cast<long>(i) + 1);
  return 0;
}
int nvmlDeviceGetName(void*, char* name, unsigned int len) {
  std::snprintf(name, len, "%s", "NVIDIA Fake H100 80GB");
  return 0;
}
int nvmlDeviceGetMemoryInfo(void* dev, nvmlMemory_t* m) {
  const unsigned long long gib = 1ULL << 30;
  m->total = 80 * gib;
  m->free = (60 - 10 * Index(dev)) * gib;
  m->used = m->total - m->free;
  return 0;
}
int nvmlDeviceGetTemperature(void* dev, int, unsigned int* t) {
  *t = 50 + Index(dev);
  return 0;
}
int nvmlDeviceGetUtilizationRates(void* dev, nvmlUtilization_t* u) {
  u->gpu = 40 + Index(dev);
  u->memory = 10;
  return 0;
}
int nvmlDeviceGetPowerUsage(void* dev, unsigned int* mw) {
  *mw = 250500 + 1000 * Index(dev);
  return 0;
}
int nvmlDeviceGetUUID(void* dev, char* uuid, unsigned int len) {
  std::snprintf(uuid, len, "GPU-fake-%04d", Index(dev));
  return 0;
}
int nvmlSystemGetDriverVersion(char* v, unsigned int len) {
  std::snprintf(v, len, "%s", "550.54.15");
  return 0;
}
}
