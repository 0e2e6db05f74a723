#include "config.hpp"

#include <boost/asio/ip/address.hpp>
#include <boost/program_options.hpp>

#include <algorithm>
#include <cctype>
#include <fstream>
#include <sstream>
#include <thread>

#include "backup.hpp"
#include "svix_verify.hpp"

namespace usersync {
namespace po = boost::program_options;
namespace {

constexpr const char* env_prefix = "USERSYNC_";

std::string env_name(const std::string& option) {
  std::string name = env_prefix;
  for (char c : option) name += c == '-' ? '_' : static_cast<char>(std::toupper(c));
  return name;
}

// Raw values as the user wrote them; converted and validated into `config` afterwards.
struct raw_values {
  std::string config_file, data_dir, listen, admin_listen, tls_cert, tls_key, secret_file, log_level,
      log_format;
  std::vector<std::string> secrets, query_tokens;
  std::string sign_id, sign_timestamp, sign_file;
  std::string query_token_file;
  bool plain_http = false;
  long long body_limit = 0, header_limit = 0, read_timeout = 0, idle_timeout = 0,
            write_timeout = 0, max_connections = 0, tolerance = 0, retention_days = 0,
            busy_timeout_ms = 0, queue_limit = 0, max_batch = 0, batch_wait_us = 0, threads = 0,
            shutdown_timeout = 0;
};

// Adds an option whose help line also names its environment variable and config-file key.
class option_adder {
 public:
  explicit option_adder(po::options_description& desc) : desc_(desc) {}
  option_adder& operator()(const char* name, const po::value_semantic* value, const char* text) {
    const std::string help = std::string(text) + "\n  env " + env_name(name) + ", file key '" +
                             name + "'";
    desc_.add_options()(name, value, help.c_str());
    return *this;
  }

 private:
  po::options_description& desc_;
};

unsigned default_threads() { return std::max(2u, std::thread::hardware_concurrency()); }

void add_common_options(po::options_description& desc, raw_values& v) {
  option_adder add(desc);
  add("config", po::value(&v.config_file)->value_name("FILE"),
     "read settings from FILE (key = value lines); flags and env win over it")
    ("data-dir", po::value(&v.data_dir)->value_name("DIR"),
     "where the database, lock and dev credentials live (default: $STATE_DIRECTORY, else "
     "$XDG_DATA_HOME/usersync, else ~/.local/share/usersync); created 0700")
    ("busy-timeout-ms", po::value(&v.busy_timeout_ms)->default_value(5000),
     "how long a write waits for another process's SQLite lock before answering 503")
    ("log-level", po::value(&v.log_level)->default_value("info"),
     "trace, debug, info, warn, error, critical or off")
    ("log-format", po::value(&v.log_format)->default_value("text"),
     "text, or json for one JSON object per line");
}

// The webhook signing secrets: serve verifies with them, sign signs with the first.
void add_secret_options(po::options_description& desc, raw_values& v) {
  option_adder add(desc);
  add("webhook-secret", po::value(&v.secrets)->composing()->value_name("whsec_..."),
      "Svix signing secret; repeat (or separate with spaces) to accept several while rotating. "
      "Prefer --webhook-secret-file: arguments are visible to other local users")
    ("webhook-secret-file", po::value(&v.secret_file)->value_name("FILE"),
     "file with one signing secret per line (default: a dev secret made in the data dir)");
}

// `usersync sign FILE`: what to put in the svix-id and svix-timestamp headers.
void add_sign_options(po::options_description& desc, po::options_description& hidden,
                      po::positional_options_description& positional, raw_values& v) {
  option_adder add(desc);
  add("id", po::value(&v.sign_id)->value_name("MSG_ID"), "svix-id to sign (default: a new random msg_...)")
    ("timestamp", po::value(&v.sign_timestamp)->value_name("SECONDS"),
     "svix-timestamp to sign, in Unix seconds (default: now)");
  hidden.add_options()("body-file", po::value(&v.sign_file));
  positional.add("body-file", 1);
}

void add_serve_options(po::options_description& desc, raw_values& v) {
  option_adder add(desc);
  add("listen", po::value(&v.listen)->default_value("0.0.0.0:8443")->value_name("HOST:PORT"),
     "address to serve webhooks on ([::1]:8443 for IPv6; port 0 picks a free one)")
    ("admin-listen", po::value(&v.admin_listen)->default_value("127.0.0.1:9445")->value_name("HOST:PORT"),
     "plain-HTTP address for /metrics, /readyz and /healthz (keep it private); 'none' serves "
     "them on --listen instead")
    ("plain-http", po::bool_switch(&v.plain_http),
     "serve plain HTTP instead of HTTPS; only behind a TLS-terminating proxy")
    ("tls-cert", po::value(&v.tls_cert)->value_name("FILE"),
     "PEM certificate chain (default: a self-signed dev certificate made in the data dir)")
    ("tls-key", po::value(&v.tls_key)->value_name("FILE"), "PEM private key for --tls-cert")
    ("query-token", po::value(&v.query_tokens)->composing()->value_name("TOKEN"),
     "bearer token for the /v1 query API; repeat (or separate with spaces) for several. "
     "Prefer --query-token-file")
    ("query-token-file", po::value(&v.query_token_file)->value_name("FILE"),
     "file with one query token per line (default: a dev token made in the data dir)")
    ("timestamp-tolerance", po::value(&v.tolerance)->default_value(300),
     "seconds a svix-timestamp may be away from now, either way")
    ("delivery-retention-days", po::value(&v.retention_days)->default_value(14),
     "how long svix-ids are remembered so redeliveries change nothing")
    ("threads", po::value(&v.threads)->default_value(default_threads()),
     "HTTP worker threads")
    ("max-body-bytes", po::value(&v.body_limit)->default_value(1024 * 1024),
     "largest request body accepted (413 beyond)")
    ("max-header-bytes", po::value(&v.header_limit)->default_value(16 * 1024),
     "largest request header block accepted (431 beyond)")
    ("read-timeout", po::value(&v.read_timeout)->default_value(10),
     "seconds for a TLS handshake, and for one whole request once it has started")
    ("idle-timeout", po::value(&v.idle_timeout)->default_value(60),
     "seconds a kept-alive connection may wait for its next request")
    ("write-timeout", po::value(&v.write_timeout)->default_value(10),
     "seconds to write a response")
    ("max-connections", po::value(&v.max_connections)->default_value(1024),
     "concurrent connections; more are closed at once")
    ("writer-queue-limit", po::value(&v.queue_limit)->default_value(10000),
     "events waiting for the writer before new ones get 503")
    ("writer-max-batch", po::value(&v.max_batch)->default_value(256),
     "events committed together in one transaction (group commit); 1 turns it off")
    ("writer-batch-wait-us", po::value(&v.batch_wait_us)->default_value(0),
     "microseconds the writer waits for a fuller batch; 0 adds no latency when idle")
    ("shutdown-timeout", po::value(&v.shutdown_timeout)->default_value(10),
     "seconds SIGTERM waits for in-flight requests before stopping");
}

[[noreturn]] void invalid(const std::string& option, const std::string& problem) {
  throw config_error("invalid --" + option + " (" + env_name(option) + "): " + problem);
}

long long in_range(const std::string& option, long long value, long long min, long long max) {
  if (value < min || value > max) {
    invalid(option, "must be between " + std::to_string(min) + " and " + std::to_string(max) +
                        ", got " + std::to_string(value));
  }
  return value;
}

template <class T>
T in_range_as(const std::string& option, long long value, long long min, long long max) {
  return static_cast<T>(in_range(option, value, min, max));
}

// HOST:PORT into `address` and `port`; `option` names the flag in messages.
void parse_address(const std::string& option, const std::string& text, std::string& address,
                   std::uint16_t& port_out) {
  const auto colon = text.rfind(':');
  if (colon == std::string::npos || colon + 1 == text.size()) {
    invalid(option, "expected HOST:PORT such as 0.0.0.0:8443 or [::1]:8443, got '" + text + "'");
  }
  std::string host = text.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  boost::system::error_code ec;
  boost::asio::ip::make_address(host, ec);
  if (ec) invalid(option, "'" + host + "' is not an IP address (use 0.0.0.0, 127.0.0.1 or ::)");
  const std::string port = text.substr(colon + 1);
  if (port.size() > 5 || !std::all_of(port.begin(), port.end(), ::isdigit)) {
    invalid(option, "port '" + port + "' is not a number");
  }
  address = host;
  port_out = in_range_as<std::uint16_t>(option, std::stoll(port), 0, 65535);
}

void parse_listen(const raw_values& v, listen_config& out) {
  parse_address("listen", v.listen, out.address, out.port);
  out.admin_enabled = v.admin_listen != "none";
  if (out.admin_enabled) parse_address("admin-listen", v.admin_listen, out.admin_address, out.admin_port);
}

// Splits values on whitespace and commas, so one variable can carry several secrets or tokens.
std::vector<std::string> split_values(const std::vector<std::string>& values) {
  std::vector<std::string> out;
  for (const std::string& value : values) {
    std::string item;
    std::istringstream in(value);
    while (std::getline(in, item, ',')) {
      std::istringstream words(item);
      std::string word;
      while (words >> word) out.push_back(word);
    }
  }
  return out;
}

// One value per line; '#' starts a comment line. `option` names the flag in messages.
std::vector<std::string> read_list_file(const std::filesystem::path& file, const std::string& option) {
  std::ifstream in(file);
  if (!in) {
    throw config_error("cannot read --" + option + " " + file.string() +
                       ": check the path and that this user may read it");
  }
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) {
    if (!line.empty() && line[0] != '#') lines.push_back(line);
  }
  auto values = split_values(lines);
  if (values.empty()) throw config_error("--" + option + " " + file.string() + " is empty: put one value per line");
  return values;
}

void convert_query_tokens(const raw_values& v, config& cfg) {
  cfg.query.tokens = split_values(v.query_tokens);
  if (!v.query_token_file.empty()) {
    cfg.query.token_file = v.query_token_file;
    auto from_file = read_list_file(v.query_token_file, "query-token-file");
    cfg.query.tokens.insert(cfg.query.tokens.end(), from_file.begin(), from_file.end());
  }
  for (const auto& token : cfg.query.tokens) {
    if (token.size() < 16) invalid("query-token", "tokens must be at least 16 characters (use `openssl rand -hex 24`)");
    // One credential per purpose: a webhook secret must never open the query API.
    if (std::find(cfg.webhook.secrets.begin(), cfg.webhook.secrets.end(), token) != cfg.webhook.secrets.end()) {
      invalid("query-token", "a query token must differ from every webhook secret");
    }
  }
}

void check_secrets(const std::vector<std::string>& secrets, const std::string& source) {
  for (std::size_t i = 0; i < secrets.size(); ++i) {
    try {
      webhook_secret::parse(secrets[i]);
    } catch (const std::invalid_argument& e) {
      throw config_error("webhook secret #" + std::to_string(i + 1) + " from " + source + ": " +
                         e.what() + "; copy it again from the provider's webhook settings");
    }
  }
}

void check_log_level(const std::string& level) {
  static const std::vector<std::string> levels = {"trace", "debug", "info", "warn",
                                                  "error", "critical", "off"};
  if (std::find(levels.begin(), levels.end(), level) == levels.end()) {
    invalid("log-level", "'" + level + "' is not one of trace, debug, info, warn, error, off");
  }
}

void convert_common(const raw_values& v, const environment& env, config& cfg) {
  cfg.storage.data_dir = v.data_dir.empty() ? default_data_dir(env) : std::filesystem::path(v.data_dir);
  cfg.storage.busy_timeout =
      std::chrono::milliseconds(in_range("busy-timeout-ms", v.busy_timeout_ms, 0, 600000));
  check_log_level(v.log_level);
  cfg.runtime.log_level = v.log_level;
  if (v.log_format != "text" && v.log_format != "json") invalid("log-format", "must be text or json");
  cfg.runtime.log_format = v.log_format;
}

void convert_secrets(const raw_values& v, config& cfg) {
  cfg.webhook.secrets = split_values(v.secrets);
  check_secrets(cfg.webhook.secrets, "--webhook-secret/" + env_name("webhook-secret"));
  if (!v.secret_file.empty()) {
    cfg.webhook.secret_file = v.secret_file;
    auto from_file = read_list_file(v.secret_file, "webhook-secret-file");
    check_secrets(from_file, v.secret_file);
    cfg.webhook.secrets.insert(cfg.webhook.secrets.end(), from_file.begin(), from_file.end());
  }
}

void convert_sign(const raw_values& v, config& cfg) {
  if (v.sign_file.empty()) throw config_error("usage: usersync sign [--id MSG_ID] [--timestamp SECONDS] FILE (- for stdin)");
  cfg.sign.body_file = v.sign_file;
  cfg.sign.id = v.sign_id;
  if (!v.sign_timestamp.empty()) {
    if (v.sign_timestamp.size() > 12 || !std::all_of(v.sign_timestamp.begin(), v.sign_timestamp.end(), ::isdigit)) {
      invalid("timestamp", "must be Unix seconds, e.g. $(date +%s)");
    }
    cfg.sign.timestamp = std::stoll(v.sign_timestamp);
  }
}

void convert_serve(const raw_values& v, config& cfg) {
  parse_listen(v, cfg.listen);
  cfg.listen.plain_http = v.plain_http;
  if (v.tls_cert.empty() != v.tls_key.empty()) {
    invalid(v.tls_cert.empty() ? "tls-cert" : "tls-key",
            "--tls-cert and --tls-key go together; give both, or neither for a dev certificate");
  }
  cfg.listen.tls_cert = v.tls_cert;
  cfg.listen.tls_key = v.tls_key;
  convert_query_tokens(v, cfg);
  cfg.webhook.tolerance = std::chrono::seconds(in_range("timestamp-tolerance", v.tolerance, 1, 3600));
  cfg.webhook.delivery_retention =
      std::chrono::hours(24 * in_range("delivery-retention-days", v.retention_days, 1, 3650));
  cfg.runtime.threads = in_range_as<unsigned>("threads", v.threads, 1, 256);
  cfg.runtime.shutdown_timeout =
      std::chrono::seconds(in_range("shutdown-timeout", v.shutdown_timeout, 0, 3600));
  auto& l = cfg.limits;
  l.body_limit = in_range_as<std::size_t>("max-body-bytes", v.body_limit, 1024, 64LL << 20);
  l.header_limit = in_range_as<std::size_t>("max-header-bytes", v.header_limit, 1024, 1LL << 20);
  l.read_timeout = std::chrono::seconds(in_range("read-timeout", v.read_timeout, 1, 3600));
  l.idle_timeout = std::chrono::seconds(in_range("idle-timeout", v.idle_timeout, 1, 3600));
  l.write_timeout = std::chrono::seconds(in_range("write-timeout", v.write_timeout, 1, 3600));
  l.max_connections = in_range_as<std::size_t>("max-connections", v.max_connections, 1, 1000000);
  cfg.storage.writer_queue_limit =
      in_range_as<std::size_t>("writer-queue-limit", v.queue_limit, 1, 10000000);
  cfg.storage.writer_max_batch = in_range_as<std::size_t>("writer-max-batch", v.max_batch, 1, 100000);
  cfg.storage.writer_batch_wait =
      std::chrono::microseconds(in_range("writer-batch-wait-us", v.batch_wait_us, 0, 1000000));
}

// Backup settings, and the arguments of the backup commands (hidden positional operands).
struct raw_backup_values {
  std::string dir, name;
  long long interval = 0, keep = 0, keep_daily_days = 0;
  std::vector<std::string> operands;
};

bool takes_backup_options(const std::string& subcommand) {
  return subcommand == "serve" || subcommand == "backup" || subcommand == "backups" ||
         subcommand == "restore";
}

void add_backup_options(const std::string& subcommand, po::options_description& desc,
                        po::options_description& hidden, po::positional_options_description& positional,
                        raw_backup_values& b) {
  if (!takes_backup_options(subcommand)) return;
  option_adder add(desc);
  add("backup-dir", po::value(&b.dir)->value_name("DIR"),
      "where backups are kept (default: DATA_DIR/backups); created 0700");
  if (subcommand == "serve") {
    add("backup-interval", po::value(&b.interval)->default_value(3600),
        "seconds between verified backups taken while serving; 0 turns them off");
  }
  if (subcommand == "serve" || subcommand == "backup") {
    add("backup-keep", po::value(&b.keep)->default_value(10),
        "retention: keep the newest N backups (the newest verified one is never removed)")
      ("backup-keep-daily-days", po::value(&b.keep_daily_days)->default_value(0),
       "retention: also keep the newest verified backup of each of the last D days; 0: off");
  }
  if (subcommand == "backup") {
    desc.add_options()("name", po::value(&b.name)->value_name("LABEL"),
                       "label added to the backup's file name (letters, digits, '_', '-')");
  }
  if (subcommand == "backup" || subcommand == "restore") {
    hidden.add_options()("operand", po::value(&b.operands)->composing());
    positional.add("operand", -1);
  }
}

void convert_backup(const std::string& subcommand, const raw_backup_values& b, config& cfg) {
  if (!takes_backup_options(subcommand)) return;
  auto& out = cfg.backup;
  out.dir = b.dir.empty() ? cfg.storage.data_dir / "backups" : std::filesystem::path(b.dir);
  if (subcommand == "serve") out.interval = std::chrono::seconds(in_range("backup-interval", b.interval, 0, 366LL * 86400));
  if (subcommand == "serve" || subcommand == "backup") {
    out.keep_last = in_range_as<std::size_t>("backup-keep", b.keep, 1, 100000);
    out.keep_daily_days = in_range_as<int>("backup-keep-daily-days", b.keep_daily_days, 0, 3650);
  }
  if (!b.name.empty() && !valid_backup_label(b.name)) {
    invalid("name", "'" + b.name + "' is not a label: use 1 to 64 letters, digits, '_' or '-'");
  }
  out.label = b.name;
  const auto& ops = b.operands;
  if (subcommand == "backup") {
    if (ops.size() == 2 && ops[0] == "verify" && b.name.empty()) {
      out.verify = true;
      out.file = ops[1];
    } else if (!ops.empty()) {
      throw config_error("usage: usersync backup [--name LABEL], or usersync backup verify FILE");
    }
  } else if (subcommand == "restore") {
    if (ops.size() != 1) throw config_error("usage: usersync restore FILE (see usersync backups)");
    out.file = ops[0];
  }
}

// Maps USERSYNC_DATA_DIR to data-dir; other variables are not ours and are skipped.
std::string env_to_option(const po::options_description& desc, const std::string& variable) {
  if (variable.rfind(env_prefix, 0) != 0) return {};
  std::string option;
  for (char c : variable.substr(std::string(env_prefix).size())) {
    option += c == '_' ? '-' : static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  // Positional operands come from the command line only.
  if (option == "operand" || option == "body-file") return {};
  return desc.find_nothrow(option, false) ? option : std::string{};
}

// A config file written for serve also serves the other commands: for them, keys they do not
// use are skipped (serve and check-config still refuse unknown keys).
void store_all_sources(bool strict_file, const po::options_description& desc,
                       const po::positional_options_description& positional,
                       const std::vector<std::string>& args,
                       const environment& env, po::variables_map& vm) {
  po::store(po::command_line_parser(args).options(desc).positional(positional).run(), vm);
  po::parsed_options from_env(&desc);
  for (const auto& [name, value] : env) {
    const std::string option = env_to_option(desc, name);
    if (option.empty()) continue;
    po::option opt(option, {value});
    from_env.options.push_back(opt);
  }
  po::store(from_env, vm);
  if (vm.count("config")) {
    const auto file = vm["config"].as<std::string>();
    std::ifstream in(file);
    if (!in) throw config_error("cannot read --config file " + file + ": check the path");
    try {
      po::store(po::parse_config_file(in, desc, !strict_file), vm);
    } catch (const po::error& e) {
      throw config_error("config file " + file + ": " + e.what() +
                         "; keys are the long option names, see --help");
    }
  }
}

}  // namespace

environment read_environment(char** envp) {
  environment env;
  for (char** p = envp; p && *p; ++p) {
    std::string entry(*p);
    const auto eq = entry.find('=');
    if (eq != std::string::npos) env.emplace(entry.substr(0, eq), entry.substr(eq + 1));
  }
  return env;
}

std::filesystem::path default_data_dir(const environment& env) {
  auto get = [&](const char* name) -> std::string {
    auto it = env.find(name);
    return it == env.end() ? std::string{} : it->second;
  };
  // systemd's StateDirectory= may list several, separated by ':'; the first is ours.
  if (auto state = get("STATE_DIRECTORY"); !state.empty()) return state.substr(0, state.find(':'));
  if (auto xdg = get("XDG_DATA_HOME"); !xdg.empty()) return std::filesystem::path(xdg) / "usersync";
  if (auto home = get("HOME"); !home.empty()) {
    return std::filesystem::path(home) / ".local" / "share" / "usersync";
  }
  throw config_error("cannot choose a data directory: HOME is not set; pass --data-dir DIR");
}

parsed_command parse_command(const std::string& subcommand, const std::vector<std::string>& args,
                             const environment& env) {
  raw_values v;
  raw_backup_values b;
  const bool serve = subcommand == "serve";
  const bool sign = subcommand == "sign";
  po::options_description desc("usersync " + subcommand + " options", 100, 50);
  desc.add_options()("help,h", "show this help");
  add_common_options(desc, v);
  if (serve || sign) add_secret_options(desc, v);
  if (serve) add_serve_options(desc, v);
  po::options_description hidden;
  po::positional_options_description positional;
  if (sign) add_sign_options(desc, hidden, positional, v);
  add_backup_options(subcommand, desc, hidden, positional, b);
  po::options_description all;
  all.add(desc).add(hidden);

  parsed_command out;
  po::variables_map vm;
  try {
    store_all_sources(serve, all, positional, args, env, vm);
    po::notify(vm);
  } catch (const po::error& e) {
    throw config_error(std::string(e.what()) + "; see usersync " + subcommand + " --help");
  }
  std::ostringstream help;
  help << desc;
  out.help_text = help.str();
  out.help = vm.count("help") > 0;
  if (out.help) return out;
  convert_common(v, env, out.cfg);
  if (serve || sign) convert_secrets(v, out.cfg);
  if (serve) convert_serve(v, out.cfg);
  if (sign) convert_sign(v, out.cfg);
  convert_backup(subcommand, b, out.cfg);
  return out;
}

}  // namespace usersync
