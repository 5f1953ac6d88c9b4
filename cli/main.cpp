// scenefarm: the operator's tool for the queue.
#include <iostream>

#include "commands.h"
#include "scenefarm/log.h"

int main(int argc, char** argv) {
  using namespace scenefarm::cli;
  Global g;
  int exit_code = kExitOk;
  CLI::App app{
      "scenefarm: the operator's tool for a scenefarm render farm\n"
      "Exit codes: 0 success, 1 failure, 2 usage error"};
  app.require_subcommand(1);
  app.add_option(
         "--redis-url", g.redis_url,
         "redis://[[user]:password@]host:port[/db] or redis+sentinel://host:port[,...]/MASTER[/db]")
      ->envname("SCENEFARM_REDIS_URL")
      ->capture_default_str();
  app.add_option("--queue", g.queue)->envname("SCENEFARM_QUEUE")->capture_default_str();
  RegisterEnqueue(app, g, &exit_code);
  RegisterStatus(app, g, &exit_code);
  RegisterJobs(app, g, &exit_code);
  RegisterValidate(app, g, &exit_code);
  RegisterControl(app, g, &exit_code);
  RegisterRepair(app, g, &exit_code);
  RegisterHealth(app, g, &exit_code);
  RegisterReport(app, g, &exit_code);
  RegisterWatch(app, g, &exit_code);
  RegisterRerun(app, g, &exit_code);
  RegisterDocStorage(app, g, &exit_code);
  scenefarm::log::Init("cli", "warn");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);
    return rc == 0 ? kExitOk : kExitUsage;
  }
  return exit_code;
}
