// RAII owners for the C handles scenefarm uses. Each is a move-only std::unique_ptr with a
// deleter that accepts nullptr.
#pragma once

#include <dlfcn.h>

#include <memory>

struct mg_connection;
struct mg_context;
struct redisContext;

namespace scenefarm {

struct MgConnectionDeleter {
  void operator()(mg_connection* c) const;
};
// A civetweb client connection (mg_connect_websocket_client); closed on destruction.
using MgClientConnection = std::unique_ptr<mg_connection, MgConnectionDeleter>;

struct MgContextDeleter {
  void operator()(mg_context* c) const;
};
// A civetweb server context (mg_start); stopped on destruction.
using MgContext = std::unique_ptr<mg_context, MgContextDeleter>;

struct RedisContextDeleter {
  void operator()(redisContext* c) const;
};
// A hiredis connection (redisConnectWithTimeout); freed on destruction.
using RedisContext = std::unique_ptr<redisContext, RedisContextDeleter>;

struct DlCloser {
  void operator()(void* h) const;
};
// A dlopen handle; dlclose on destruction (the library stays while others hold it).
using DlHandle = std::unique_ptr<void, DlCloser>;

// *fn = the symbol's address in a dlopen'ed library, as F (nullptr when it lacks the symbol).
template <typename F>
void BindSymbol(void* lib, const char* symbol, F* fn) {
  *fn = reinterpret_cast<F>(dlsym(lib, symbol));
}

// A file descriptor (inotify_init1, socket, open), closed on destruction; -1 = none.
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(UniqueFd&& o) noexcept : fd_(o.release()) {}
  UniqueFd& operator=(UniqueFd&& o) noexcept {
    if (this != &o) reset(o.release());
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd() { reset(); }

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  int release() {
    const int fd = fd_;
    fd_ = -1;
    return fd;
  }
  void reset(int fd = -1);

 private:
  int fd_ = -1;
};

}  // namespace scenefarm
