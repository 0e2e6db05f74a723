#pragma once
// One function per subcommand. Each returns the process exit code; failures an operator can
// fix are thrown as exceptions whose message says what and how, and main prints them.
#include <string>
#include <vector>

#include "config.hpp"

namespace usersync {

int run_cli(const std::vector<std::string>& args, const environment& env);

}  // namespace usersync
