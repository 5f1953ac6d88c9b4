// scenefarm validate RUN_DIR: the telemetry contract of seed 001 (docs/telemetry.md).
// Exit 0 when it holds; 2 with one line per violation on stdout; --json prints
// {"run_dir", "valid", "violations": [...]}.
#include <iostream>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "scenefarm/telemetry.h"

namespace scenefarm::cli {

void RegisterValidate(CLI::App& app, Global& g, int* exit_code) {
  auto* cmd = app.add_subcommand(
      "validate", "check a run directory against the telemetry contract (exit 2 on a violation)");
  auto dir = std::make_shared<std::string>();
  cmd->add_option("RUN_DIR", *dir, "ARTIFACTS/<run>")->required();
  cmd->add_flag("--json", g.json, "print the result as JSON");
  cmd->callback([dir, &g, exit_code] {
    const auto violations = telemetry::ValidateRun(*dir);
    if (g.json) {
      std::cout << nlohmann::json{{"run_dir", *dir},
                                  {"valid", violations.empty()},
                                  {"violations", violations}}
                       .dump()
                << "\n";
    } else if (violations.empty()) {
      std::cout << *dir << ": telemetry contract holds\n";
    } else {
      for (const auto& v : violations)
        std::cout << v << "\n";
      std::cerr << "scenefarm: " << violations.size() << " contract violation(s) in " << *dir
                << "\n";
    }
    *exit_code = violations.empty() ? kExitOk : kExitUsage;
  });
}

}  // namespace scenefarm::cli
