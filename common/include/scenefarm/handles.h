// RAII owners for the C handles scenefarm uses. Each is a move-only std::unique_ptr with a
// deleter that accepts nullptr.
#pragma once

#include <curl/curl.h>

#include <memory>

struct mg_connection;
struct mg_context;

namespace scenefarm {

struct CurlEasyDeleter {
  void operator()(CURL* h) const { curl_easy_cleanup(h); }
};
using CurlEasy = std::unique_ptr<CURL, CurlEasyDeleter>;

struct CurlSlistDeleter {
  void operator()(curl_slist* l) const { curl_slist_free_all(l); }
};
using CurlSlist = std::unique_ptr<curl_slist, CurlSlistDeleter>;

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

}  // namespace scenefarm
