#include "cli.hpp"

#include <spdlog/spdlog.h>

#include <iostream>

#include "cli_backup.hpp"
#include "cli_sign.hpp"
#include "data_dir.hpp"
#include "logging.hpp"
#include "server.hpp"
#include "store.hpp"
#include "tls.hpp"
#include "version.hpp"

namespace usersync {
namespace {

constexpr const char* usage =
    "usersync: keeps a local SQLite mirror of an identity provider's users, fed by its\n"
    "signed webhooks (Clerk, delivered by Svix).\n\n"
    "usage: usersync COMMAND [OPTIONS]\n\n"
    "commands:\n"
    "  serve     receive webhooks over HTTPS and apply them to the database\n"
    "  migrate   create the database or bring its schema up to date, then exit\n"
    "  backup [--name LABEL]   take a verified backup now (while serve runs or not)\n"
    "  backup verify FILE      recompute a backup's SHA-256 and integrity check\n"
    "  backups   list backups with age, size, schema version and verification state\n"
    "  restore FILE            replace the database with a verified backup (serve stopped)\n"
    "  check-config [OPTIONS]  validate serve's settings and files without starting\n"
    "  sign FILE               print svix-* headers signing FILE (for test events)\n\n"
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

// Validates what serve would load: every setting, the secret and token files, the TLS pair.
int check_config(const config& cfg) {
  if (!cfg.listen.plain_http && !cfg.listen.tls_cert.empty()) {
    make_tls_context(cfg.listen.tls_cert, cfg.listen.tls_key);
  }
  std::cout << "configuration OK\n"
            << "  data directory   " << cfg.storage.data_dir.string() << "\n"
            << "  webhooks         " << (cfg.listen.plain_http ? "http" : "https") << "://"
            << cfg.listen.address << ":" << cfg.listen.port << "/webhooks/clerk\n"
            << "  TLS              "
            << (cfg.listen.plain_http ? "off (--plain-http)"
                : cfg.listen.tls_cert.empty() ? "dev self-signed certificate" : cfg.listen.tls_cert.string())
            << "\n  webhook secrets  "
            << (cfg.webhook.secrets.empty() ? std::string("dev secret in the data directory")
                                            : std::to_string(cfg.webhook.secrets.size()) + " configured")
            << "\n  query tokens     "
            << (cfg.query.tokens.empty() ? std::string("dev token in the data directory")
                                         : std::to_string(cfg.query.tokens.size()) + " configured")
            << "\n  admin endpoints  "
            << (cfg.listen.admin_enabled ? cfg.listen.admin_address + ":" + std::to_string(cfg.listen.admin_port)
                                         : std::string("on the main listener"))
            << "\n  backups          "
            << (cfg.backup.interval.count() == 0 ? std::string("off")
                                                 : "every " + std::to_string(cfg.backup.interval.count()) + " s to " + cfg.backup.dir.string())
            << "\n";
  return 0;
}

using command_fn = int (*)(const config&);

command_fn find_command(const std::string& name) {
  if (name == "migrate") return migrate;
  if (name == "check-config") return check_config;
  if (name == "sign") return sign_command;
  if (name == "backup") return backup_command;
  if (name == "backups") return backups_command;
  if (name == "restore") return restore_command;
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
  // check-config takes exactly serve's settings.
  const parsed_command parsed = parse_command(args[0] == "check-config" ? "serve" : args[0], rest, env);
  if (parsed.help) {
    std::cout << "usage: usersync " << args[0] << " [OPTIONS]\n\n" << parsed.help_text;
    return 0;
  }
  configure_logging(parsed.cfg);
  if (args[0] == "serve") return serve(rest, env, parsed.cfg);
  return command(parsed.cfg);
}

}  // namespace usersync
