// scenefarm watch [--interval S] [--exporter URL]: a live full-screen view of the queue, the
// workers, recent outcomes and (from the exporter) the GPUs, redrawn in place on the terminal's
// alternate screen; q, Ctrl-C or SIGTERM leave it and restore the terminal as it was.
#include <poll.h>
#include <termios.h>
#include <unistd.h>

#include <csignal>
#include <iostream>
#include <sstream>

#include "commands.h"
#include "scenefarm/http_client.h"

namespace scenefarm::cli {
namespace {

using json = nlohmann::json;
volatile std::sig_atomic_t g_stop = 0;
void OnSignal(int) {
  g_stop = 1;
}

// The terminal in raw-ish mode (keys without Enter, no echo) on the alternate screen, restored
// on destruction whatever happens.
class Screen {
 public:
  Screen() : tty_(isatty(STDIN_FILENO) && isatty(STDOUT_FILENO)) {
    if (!tty_) return;
    tcgetattr(STDIN_FILENO, &saved_);
    termios raw = saved_;
    raw.c_lflag &= ~static_cast<tcflag_t>(ICANON | ECHO);
    raw.c_cc[VMIN] = 0;
    raw.c_cc[VTIME] = 0;
    tcsetattr(STDIN_FILENO, TCSANOW, &raw);
    std::cout << "\x1b[?1049h\x1b[?25l" << std::flush;  // alternate screen, hide cursor
  }
  ~Screen() {
    if (!tty_) return;
    std::cout << "\x1b[?25h\x1b[?1049l" << std::flush;  // cursor back, primary screen back
    tcsetattr(STDIN_FILENO, TCSANOW, &saved_);
  }
  bool tty() const { return tty_; }
  void Draw(const std::string& frame) {
    if (tty_) std::cout << "\x1b[H\x1b[2J";
    std::cout << frame << std::flush;
  }
  // Waits up to `ms` for a key; true when it was q.
  bool WaitForQuit(int ms) {
    if (!tty_) {
      usleep(static_cast<useconds_t>(ms) * 1000);
      return false;
    }
    pollfd p{STDIN_FILENO, POLLIN, 0};
    if (poll(&p, 1, ms) > 0) {
      char c = 0;
      if (read(STDIN_FILENO, &c, 1) == 1 && (c == 'q' || c == 'Q')) return true;
    }
    return false;
  }

 private:
  bool tty_;
  termios saved_{};
};

std::string Age(double seconds) {
  std::ostringstream s;
  if (seconds < 120)
    s << static_cast<int>(seconds) << " s";
  else if (seconds < 7200)
    s << static_cast<int>(seconds / 60) << " min";
  else
    s << static_cast<int>(seconds / 3600) << " h";
  return s.str();
}

std::string Frame(QueueHandle& h, const std::string& exporter) {
  std::ostringstream f;
  f << "scenefarm watch   queue " << h.queue.name() << "   (q quits)\n\n";
  auto now = h.queue.TimeMs();  // the Redis server's clock, the one heartbeats are recorded by
  auto st = now.ok() ? h.queue.GetStatus(std::chrono::seconds(30))
                     : Result<queue::QueueStatus>(now.status());
  if (!st.ok()) {
    f << "Redis: " << st.status().message() << "\n";
    return f.str();
  }
  f << "pending " << st->depth.pending << "   delayed " << st->depth.delayed << "   leased "
    << st->depth.leased << "   dead " << st->depth.dead << "   oldest pending "
    << Age(st->oldest_pending_age_seconds) << "   runs in progress " << st->runs_in_progress.size()
    << "\n";
  f << "succeeded " << st->outcomes["succeeded"] << "   failed " << st->outcomes["failed"]
    << "   retried " << st->outcomes["retried"] << "   dead-lettered "
    << st->outcomes["dead_lettered"] << "   cancelled " << st->outcomes["cancelled"] << "\n\n";
  // Workers: the freshest 10 heartbeats.
  f << "workers  live " << st->workers_live << "  busy " << st->workers_busy << "\n";
  for (const auto& w : WorkerList(h.client, *now, 10)) {
    const double age = w["heartbeat_age_seconds"];
    f << "  " << w["id"].get<std::string>() << "  "
      << (w["busy"].get<bool>() ? "busy " + w["scene"].get<std::string>() : "idle")
      << "  heartbeat " << Age(age) << " ago" << (age > 30 ? "  (gone?)" : "") << "\n";
  }
  f << "\nrecent\n";
  auto ev = h.client.Command(
      {"XREVRANGE", keys::QueueKeys(h.queue.name()).Events(), "+", "-", "COUNT", "8"});
  if (ev.ok()) {
    for (const auto& e : ev->elements) {
      if (e.elements.size() < 2) continue;
      std::map<std::string, std::string> kv;
      for (size_t i = 0; i + 1 < e.elements[1].elements.size(); i += 2)
        kv[e.elements[1].elements[i].str] = e.elements[1].elements[i + 1].str;
      const double age =
          (*now - std::stod(e.elements[0].str.substr(0, e.elements[0].str.find('-')))) / 1000.0;
      f << "  " << Age(age) << " ago  " << kv["scene"] << "  " << kv["event"]
        << (kv["worker"].empty() ? "" : "  by " + kv["worker"])
        << (kv["reason"].empty() ? "" : "  " + kv["reason"].substr(0, 60)) << "\n";
    }
  }
  if (!exporter.empty()) {
    f << "\nGPU (" << exporter << ")\n";
    http::Client c(exporter, {std::chrono::milliseconds(1000), std::chrono::milliseconds(2000)});
    auto m = c.Get("/metrics");
    if (!m.ok() || m->status != 200) {
      f << "  exporter unreachable\n";
    } else {
      std::istringstream in(m->body);
      for (std::string line; std::getline(in, line);) {
        for (const char* name :
             {"scenefarm_gpu_memory_free_bytes", "scenefarm_gpu_temperature_celsius",
              "scenefarm_gpu_utilization_ratio"}) {
          if (line.rfind(name, 0) == 0) f << "  " << line << "\n";
        }
      }
    }
  }
  return f.str();
}

}  // namespace

void RegisterWatch(CLI::App& app, Global& g, int* exit_code) {
  auto* cmd = app.add_subcommand("watch", "a live full-screen view; q quits");
  struct Opts {
    double interval = 2;
    std::string exporter;
    int iterations = 0;
  };
  auto o = std::make_shared<Opts>();
  cmd->add_option("--interval", o->interval, "seconds between redraws")->capture_default_str();
  cmd->add_option("--exporter", o->exporter, "exporter URL, for the GPU lines");
  cmd->add_option("--iterations", o->iterations, "stop after N frames (0: until q)");
  cmd->callback([&g, o, exit_code] {
    std::signal(SIGINT, OnSignal);
    std::signal(SIGTERM, OnSignal);
    QueueHandle h(g);
    {
      Screen screen;
      for (int i = 0; !g_stop && (o->iterations == 0 || i < o->iterations); ++i) {
        screen.Draw(Frame(h, o->exporter));
        if (!screen.tty()) std::cout << "\n";
        if (screen.WaitForQuit(static_cast<int>(o->interval * 1000))) break;
      }
    }
    *exit_code = kExitOk;
  });
}

}  // namespace scenefarm::cli
