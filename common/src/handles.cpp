#include "scenefarm/handles.h"

#include <civetweb.h>
#include <dlfcn.h>
#include <hiredis/hiredis.h>
#include <unistd.h>

namespace scenefarm {

void MgConnectionDeleter::operator()(mg_connection* c) const {
  if (c != nullptr) mg_close_connection(c);
}

void MgContextDeleter::operator()(mg_context* c) const {
  if (c != nullptr) mg_stop(c);
}

void RedisContextDeleter::operator()(redisContext* c) const {
  if (c != nullptr) redisFree(c);
}

void DlCloser::operator()(void* h) const {
  if (h != nullptr) dlclose(h);
}

void UniqueFd::reset(int fd) {
  if (fd_ >= 0) ::close(fd_);
  fd_ = fd;
}

}  // namespace scenefarm
