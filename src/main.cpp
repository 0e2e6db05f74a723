// argv -> cli -> exit code; composition only.
#include <sys/stat.h>

#include <exception>
#include <iostream>

#include "cli.hpp"
#include "config.hpp"

extern char** environ;

int main(int argc, char** argv) {
  // Everything usersync creates (database, WAL, backups, credentials) is owner-only.
  ::umask(077);
  try {
    return usersync::run_cli(std::vector<std::string>(argv + 1, argv + argc),
                             usersync::read_environment(environ));
  } catch (const usersync::config_error& e) {
    std::cerr << "usersync: configuration error: " << e.what() << "\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "usersync: " << e.what() << "\n";
    return 1;
  }
}
