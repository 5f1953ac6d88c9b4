#include "scenefarm/handles.h"

#include <civetweb.h>

namespace scenefarm {

void MgConnectionDeleter::operator()(mg_connection* c) const {
  if (c != nullptr) mg_close_connection(c);
}

void MgContextDeleter::operator()(mg_context* c) const {
  if (c != nullptr) mg_stop(c);
}

}  // namespace scenefarm
