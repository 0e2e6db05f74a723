#pragma once
// One config struct of per-component structs, parsed and validated once at start-up and
// passed down by const&. Only this module reads argv, the environment and the config file.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace usersync {

struct listen_config {
  std::string address = "0.0.0.0";
  std::uint16_t port = 8443;
  bool plain_http = false;             // only behind a TLS-terminating proxy
  std::filesystem::path tls_cert;      // empty: a self-signed dev certificate in the data dir
  std::filesystem::path tls_key;
  // /metrics and /readyz (and /healthz) on a separate plain-HTTP address, loopback by
  // default so they are not public; disabled: served on the main listener instead.
  bool admin_enabled = true;
  std::string admin_address = "127.0.0.1";
  std::uint16_t admin_port = 9445;
};

struct limits_config {
  std::size_t body_limit = 1024 * 1024;  // 413 beyond
  std::size_t header_limit = 16 * 1024;  // 431 beyond
  std::chrono::seconds read_timeout{10};  // TLS handshake, and one whole request once started
  std::chrono::seconds idle_timeout{60};  // a kept-alive connection waiting for its next request
  std::chrono::seconds write_timeout{10};
  std::size_t max_connections = 1024;
};

struct webhook_config {
  std::vector<std::string> secrets;     // whsec_... ; several while rotating
  std::filesystem::path secret_file;    // one secret per line
  std::chrono::seconds tolerance{300};
  std::chrono::hours delivery_retention{24 * 14};  // how long svix-ids are remembered
};

struct query_config {
  std::vector<std::string> tokens;  // bearer tokens for /v1; several while rotating
  std::filesystem::path token_file; // one token per line
};

struct storage_config {
  std::filesystem::path data_dir;
  std::chrono::milliseconds busy_timeout{5000};
  std::size_t writer_queue_limit = 10000;  // beyond: 503 so the sender backs off
  std::size_t writer_max_batch = 256;      // deliveries per transaction; 1: no group commit
  std::chrono::microseconds writer_batch_wait{0};
};

struct runtime_config {
  unsigned threads = 2;
  std::string log_level = "info";
  std::string log_format = "text";  // text or json
  std::chrono::seconds shutdown_timeout{10};
};

// Backups: the job in `serve`, and what `backup`, `backup verify` and `restore` act on.
struct backup_config {
  std::filesystem::path dir;            // default DATA_DIR/backups
  std::chrono::seconds interval{3600};  // between scheduled backups in serve; 0: none
  std::size_t keep_last = 10;           // retention: the newest N
  int keep_daily_days = 0;              // and one a day for D days; 0: off
  std::string label;                    // backup --name LABEL
  bool verify = false;                  // backup verify FILE
  std::filesystem::path file;           // the FILE of backup verify and restore
};

// `usersync sign`: the body to sign and the headers to sign it with.
struct sign_config {
  std::filesystem::path body_file;  // "-" for stdin
  std::string id;                   // empty: a new random msg_ id
  std::optional<std::int64_t> timestamp;  // empty: now
};

struct config {
  listen_config listen;
  limits_config limits;
  webhook_config webhook;
  query_config query;
  storage_config storage;
  runtime_config runtime;
  backup_config backup;
  sign_config sign;
};

// A configuration problem an operator can fix; the message names the setting and the fix.
class config_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

using environment = std::map<std::string, std::string>;

// The process environment as a map (read once, in main).
environment read_environment(char** envp);

// What a subcommand's command line asked for.
struct parsed_command {
  config cfg;
  bool help = false;
  std::string help_text;  // every option with its default, env variable and config key
};

// Parses `args` (the subcommand's arguments, without the program and subcommand names), then
// USERSYNC_* variables from `env`, then the --config file; earlier sources win. Resolves the
// data directory and validates every value. Throws config_error.
parsed_command parse_command(const std::string& subcommand, const std::vector<std::string>& args,
                             const environment& env);

// --data-dir, else $STATE_DIRECTORY (systemd), else $XDG_DATA_HOME/usersync, else
// ~/.local/share/usersync.
std::filesystem::path default_data_dir(const environment& env);

}  // namespace usersync
