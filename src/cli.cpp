#include "cli.hpp"

#include <spdlog/spdlog.h>

#include <iostream>

#include "data_dir.hpp"
#include "logging.hpp"
#include "server.hpp"
#include "store.hpp"
#include "version.hpp"

namespace usersync {
namespace {

constexpr const char* usage =
    "usersync: keeps a local SQLite mirror of an identity provider's users, fed by its\n"
    "signed webhooks (Clerk, delivered by Svix).\n\n"
    "usage: usersync COMMAND [OPTIONS]\n\n"
    "commands:\n"
    "  serve     receive webhooks over HTTPS and apply them to the database\n"
    "  migrate   create the database or bring its schema up to date, then exit\n\n"
    "  usersync COMMAND --help   options of a command (flags, USERSYNC_* variables, config keys)\n"
    "  usersync --version\n";

void configure_logging(const config& cfg) {
  usersync::configure_logging(cfg.runtime.log_format == "json" ? log_format::json : log_format::text,
                              cfg.runtime.log_level);
}

// serve alone needs its arguments again: SIGHUP re-reads the configuration from them.
int serve(const std::vector<std::string>& args, const environment& env, const config& cfg) {
  return run_server(cfg, [args, env] { return parse_command("serve", args, env).cfg; });
}

int migrate(const config& cfg) {
  prepare_data_dir(cfg.storage.data_dir);
  data_dir_lock lock(cfg.storage.data_dir);
  store db(database_path(cfg.storage.data_dir), store_options{cfg.storage.busy_timeout});
  const migration_report report = db.migrate();
  if (report.applied.empty()) {
    std::cout << db.file().string() << ": schema is up to date (version " << report.to_version
              << ")\n";
  } else {
    std::cout << db.file().string() << ": migrated from schema version " << report.from_version
              << " to " << report.to_version << "\n";
  }
  return 0;
}

using command_fn = int (*)(const config&);

command_fn find_command(const std::string& name) {
  if (name == "migrate") return migrate;
  return nullptr;
}

}  // namespace

int run_cli(const std::vector<std::string>& args, const environment& env) {
  if (args.empty() || args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
    std::cout << usage;
    return args.empty() ? 2 : 0;
  }
  if (args[0] == "--version" || args[0] == "version") {
    std::cout << "usersync " << version << "\n";
    return 0;
  }
  const command_fn command = find_command(args[0]);
  if (command == nullptr && args[0] != "serve") {
    std::cerr << "usersync: unknown command '" << args[0] << "'\n\n" << usage;
    return 2;
  }
  const std::vector<std::string> rest(args.begin() + 1, args.end());
  const parsed_command parsed = parse_command(args[0], rest, env);
  if (parsed.help) {
    std::cout << "usage: usersync " << args[0] << " [OPTIONS]\n\n" << parsed.help_text;
    return 0;
  }
  configure_logging(parsed.cfg);
  if (args[0] == "serve") return serve(rest, env, parsed.cfg);
  return command(parsed.cfg);
}

}  // namespace usersync
