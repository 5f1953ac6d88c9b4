#include "server.h"

#include <CivetServer.h>
#include <arpa/inet.h>
#include <civetweb.h>
#include <dlfcn.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <prometheus/exposer.h>
#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "scenefarm/log.h"
#include "ui.h"

namespace scenefarm::exporter {
namespace {

// civetweb's callbacks carry no pointer of ours (the Exposer owns the CivetServer), so the one
// Server of the process is found here.
std::atomic<Server*> g_server{nullptr};

int Reply(mg_connection* conn, int status, const char* reason, const std::string& type,
          const std::string& body, const std::string& extra = "") {
  mg_printf(conn,
            "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%sConnection: "
            "close\r\n\r\n",
            status, reason, type.c_str(), body.size(), extra.c_str());
  mg_write(conn, body.data(), body.size());
  return status;
}

const char kLanding[] =
    "<html><head><title>scenefarm exporter</title></head><body><h1>scenefarm exporter</h1>"
    "<ul><li><a href=\"/metrics\">/metrics</a>: the farm for Prometheus</li>"
    "<li><a href=\"/healthz\">/healthz</a>: the process is alive, no collector stuck</li>"
    "<li><a href=\"/readyz\">/readyz</a>: Redis answers</li>"
    "<li><a href=\"/api/queues\">/api/</a>: the JSON API (docs/api.md)</li>"
    "<li><a href=\"/ui/\">/ui/</a>: the farm's pages (unless "
    "--web.disable-ui)</li></ul></body></html>\n";

// ssl_shim.c says why. Found next to this binary, or where SCENEFARM_SSL_SHIM says. The handle
// is the Server's, closed after civetweb stopped (civetweb's own dlopen keeps it loaded).
Result<DlHandle> LoadSslShim() {
  std::string path;
  if (const char* env = std::getenv("SCENEFARM_SSL_SHIM"); env && *env) {
    path = env;
  } else {
    char exe[4096] = {0};
    const ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n > 0)
      path = (std::filesystem::path(std::string(exe, n)).parent_path() / "libscenefarm-ssl-shim.so")
                 .string();
  }
  DlHandle shim(dlopen(path.c_str(), RTLD_NOW | RTLD_GLOBAL));
  if (shim == nullptr) {
    const char* e = dlerror();
    return Status::FailedPrecondition("TLS needs " + path +
                                      " (built with the exporter): " + (e ? e : "cannot load"));
  }
  return shim;
}

}  // namespace

int Server::BeginRequest(mg_connection* conn) {
  Server* self = g_server.load();
  if (self == nullptr) return 0;
  const mg_request_info* ri = mg_get_request_info(conn);
  const std::string path = ri->local_uri ? ri->local_uri : "/";
  if (self->auth_ && self->auth_->enabled() &&
      !self->auth_->Check(mg_get_header(conn, "Authorization"))) {
    return Reply(conn, 401, "Unauthorized", "text/plain", "Unauthorized\n",
                 "WWW-Authenticate: Basic realm=\"scenefarm\"\r\n");
  }
  if (const int ui = ui::HandleRequest(conn); ui != 0) return ui;  // /ui/, artifact files
  if (path == "/") return Reply(conn, 200, "OK", "text/html", kLanding);
  if (path == "/api" || path.rfind("/api/", 0) == 0)
    return self->api_->Handle(
        conn, self->auth_->enabled() ? BasicAuthUser(mg_get_header(conn, "Authorization")) : "");
  if (path == "/healthz") {
    // A collector running far past every timeout will not come back: say so, so that a
    // liveness probe restarts the process.
    const auto stuck = self->collectors_->RunningLongerThan(self->stuck_);
    if (stuck.empty()) return Reply(conn, 200, "OK", "text/plain", "ok\n");
    std::string body = "stuck:";
    for (const auto& [name, secs] : stuck)
      body += " " + name + " (running " + std::to_string(static_cast<int64_t>(secs)) + " s)";
    return Reply(conn, 503, "Service Unavailable", "text/plain", body + "\n");
  }
  if (path == "/readyz") {
    bool up = false;
    {
      std::lock_guard<std::mutex> lock(self->redis_->mu);
      auto r = self->redis_->client.Command({"PING"});
      up = r.ok() && !r->is_error();
    }
    return up ? Reply(conn, 200, "OK", "text/plain", "ready\n")
              : Reply(conn, 503, "Service Unavailable", "text/plain", "redis unreachable\n");
  }
  if (path == "/metrics") {
    // metrics_ exists before civetweb starts (Start): a request that comes early is served.
    return self->metrics_->Serve(conn);  // metrics_endpoint.h; the Exposer serves no /metrics
  }
  return 0;  // civetweb's 404
}

Result<std::unique_ptr<Server>> Server::Start(const ExporterOptions& options,
                                              std::shared_ptr<CollectorSet> collectors,
                                              std::shared_ptr<SharedRedis> redis) {
  std::unique_ptr<Server> s(new Server());
  s->collectors_ = std::move(collectors);
  s->redis_ = std::move(redis);
  s->stuck_ = options.stuck();
  ui::Configure(ui::FromExporterOptions(options), s->redis_);
  if (!options.web_config.empty()) {
    auto web = LoadWebConfig(options.web_config);
    if (!web.ok()) return web.status();
    s->web_ = std::move(web).value();
  }
  s->auth_ = std::make_unique<BasicAuth>(s->web_.users);
  s->api_ = std::make_unique<Api>(options, s->web_);
  s->metrics_ = std::make_unique<MetricsEndpoint>(s->collectors_);
  std::vector<std::string> opts = {
      "listening_ports",    options.listen + (s->web_.tls() ? "s" : ""),
      "num_threads",        "4",
      "tcp_nodelay",        "1",
      "request_timeout_ms", "30000"};
  if (s->web_.tls()) {
    // civetweb wants the key and the certificate in one PEM file.
    std::ostringstream pem;
    for (const auto& f : {s->web_.key_file, s->web_.cert_file}) {
      std::ifstream in(f);
      if (!in) return Status::InvalidArgument("web config: cannot read " + f);
      pem << in.rdbuf() << "\n";
    }
    char tmpl[] = "/tmp/scenefarm-exporter-XXXXXX.pem";
    const int fd = mkstemps(tmpl, 4);
    if (fd < 0) return Status::Internal("cannot create the TLS key file");
    const std::string data = pem.str();
    const bool written = write(fd, data.data(), data.size()) == static_cast<ssize_t>(data.size());
    close(fd);
    s->pem_path_ = tmpl;
    if (!written) return Status::Internal("cannot write the TLS key file");
    opts.insert(opts.end(), {"ssl_certificate", s->pem_path_, "ssl_protocol_version", "4"});
    auto shim = LoadSslShim();
    if (!shim.ok()) return shim.status();
    s->ssl_shim_ = std::move(shim).value();
    mg_init_library(MG_FEATURES_SSL);
  }
  static CivetCallbacks callbacks;
  callbacks.begin_request = &Server::BeginRequest;
  g_server = s.get();
  try {
    s->exposer_ = std::make_unique<prometheus::Exposer>(opts, &callbacks);
  } catch (const std::exception& e) {
    g_server = nullptr;
    return Status::Unavailable("cannot listen on " + options.listen + ": " + e.what());
  }
  const auto ports = s->exposer_->GetListeningPorts();
  s->port_ = ports.empty() ? 0 : ports.front();
  return s;
}

Server::~Server() {
  g_server = nullptr;
  // civetweb's master thread notices the stop only at its next poll (up to 2 s) unless a
  // connection wakes it: knock until the Exposer is gone.
  std::atomic<bool> done{false};
  std::thread knock([&] {
    while (!done && port_ > 0) {
      const int fd = socket(AF_INET, SOCK_STREAM, 0);
      sockaddr_in a{};
      a.sin_family = AF_INET;
      a.sin_port = htons(static_cast<uint16_t>(port_));
      a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      (void)!connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a));
      close(fd);
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  });
  exposer_.reset();
  done = true;
  knock.join();
  if (!pem_path_.empty()) unlink(pem_path_.c_str());
}

}  // namespace scenefarm::exporter
