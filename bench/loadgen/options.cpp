#include "options.hpp"

#include <boost/program_options.hpp>

#include <chrono>
#include <fstream>
#include <sstream>

#include "svix_verify.hpp"

namespace loadgen {
namespace po = boost::program_options;
namespace {

struct raw_values {
  std::string url, secret, secret_file, cafile, verify_db, run_id, label;
  long long connections = 0, threads = 0, events = 0, users = 0, window = 0;
  double duration = 0, rate = 0, delete_fraction = 0, timeout = 0;
  bool insecure = false, json = false;
};

void add_options(po::options_description& desc, raw_values& v) {
  desc.add_options()
    ("help,h", "show this help")
    ("url", po::value(&v.url)->default_value("https://127.0.0.1:8443/webhooks/clerk"),
     "webhook endpoint (http or https; loopback addresses only)")
    ("secret", po::value(&v.secret)->value_name("whsec_..."), "Svix signing secret")
    ("secret-file", po::value(&v.secret_file)->value_name("FILE"),
     "file whose first non-comment line is the signing secret")
    ("connections,c", po::value(&v.connections)->default_value(16),
     "keep-alive connections, one request in flight on each")
    ("threads,t", po::value(&v.threads)->default_value(1), "client I/O threads")
    ("events,n", po::value(&v.events)->default_value(100000),
     "events to send at most; all are built and signed before the clock starts")
    ("duration,d", po::value(&v.duration)->default_value(0),
     "seconds the timed phase may last at most; 0: until the events are sent")
    ("rate,r", po::value(&v.rate)->default_value(0),
     "events/s over all connections (fixed-rate mode, latency from the scheduled send "
     "time); 0: as fast as the server answers")
    ("users,u", po::value(&v.users)->default_value(10000), "distinct users")
    ("delete-fraction", po::value(&v.delete_fraction)->default_value(0.1),
     "share of users whose last event is user.deleted (needs 2+ events per user)")
    ("window", po::value(&v.window)->default_value(1024),
     "users whose lifecycles are in progress at once (sets the event mix over time)")
    ("run-id", po::value(&v.run_id)->value_name("TAG"),
     "1-8 letters or digits put in every clerk_id and svix-id (default: from the clock)")
    ("insecure,k", po::bool_switch(&v.insecure), "do not verify the server's certificate")
    ("cafile", po::value(&v.cafile)->value_name("PEM"),
     "verify the server's certificate against this CA or self-signed certificate")
    ("timeout", po::value(&v.timeout)->default_value(10), "seconds per request")
    ("verify-db", po::value(&v.verify_db)->value_name("FILE"),
     "afterwards, check every acknowledged effect is in this SQLite database")
    ("label", po::value(&v.label), "a name for this run, printed with its figures")
    ("json", po::bool_switch(&v.json), "print one JSON object instead of text");
}

[[noreturn]] void invalid(const std::string& option, const std::string& problem) {
  throw usage_error("--" + option + ": " + problem);
}

std::string read_secret_file(const std::string& file) {
  std::ifstream in(file);
  if (!in) invalid("secret-file", "cannot read " + file);
  for (std::string line; std::getline(in, line);) {
    std::istringstream words(line);
    std::string word;
    if (words >> word && word[0] != '#') return word;
  }
  invalid("secret-file", file + " has no secret in it");
}

std::string default_run_id() {
  static constexpr char digits[] = "0123456789abcdefghijklmnopqrstuvwxyz";
  auto t = static_cast<std::uint64_t>(
      std::chrono::system_clock::now().time_since_epoch() / std::chrono::milliseconds(1));
  std::string id;
  for (int i = 0; i < 8; ++i, t /= 36) id.insert(id.begin(), digits[t % 36]);
  return id;
}

void check_run_id(const std::string& id) {
  const bool ok = !id.empty() && id.size() <= 8 &&
                  id.find_first_not_of("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ") ==
                      std::string::npos;
  if (!ok) invalid("run-id", "use 1 to 8 letters or digits, got '" + id + "'");
}

void convert_counts(const raw_values& v, options& out) {
  if (v.connections < 1 || v.connections > 10000) invalid("connections", "must be 1 to 10000");
  if (v.threads < 1 || v.threads > 64) invalid("threads", "must be 1 to 64");
  if (v.events < 1 || v.events > 50'000'000) invalid("events", "must be 1 to 50000000");
  if (v.users < 1 || v.users > 100'000'000) invalid("users", "must be 1 to 100000000");
  if (v.window < 1 || v.window > 10'000'000) invalid("window", "must be 1 to 10000000");
  if (v.duration < 0 || v.duration > 3600) invalid("duration", "must be 0 to 3600 seconds");
  if (v.rate < 0 || v.rate > 10'000'000) invalid("rate", "must be 0 to 10000000 events/s");
  if (v.timeout <= 0 || v.timeout > 600) invalid("timeout", "must be above 0, at most 600");
  if (v.delete_fraction < 0 || v.delete_fraction > 1) invalid("delete-fraction", "must be 0 to 1");
  out.connections = static_cast<unsigned>(v.connections);
  out.threads = static_cast<unsigned>(v.threads);
  out.events = static_cast<std::uint64_t>(v.events);
  out.users = static_cast<std::uint64_t>(v.users);
  out.window = static_cast<std::uint32_t>(v.window);
  out.duration_s = v.duration;
  out.rate = v.rate;
  out.timeout_s = v.timeout;
  out.delete_fraction = v.delete_fraction;
}

void convert_target(const raw_values& v, options& out) {
  auto url = parse_url(v.url);
  if (!url) invalid("url", "expected http(s)://HOST[:PORT]/PATH, got '" + v.url + "'");
  try {
    resolve_loopback(*url);
  } catch (const std::runtime_error& e) {
    invalid("url", e.what());
  }
  out.url = *url;
  if (!v.cafile.empty() && v.insecure) invalid("cafile", "--cafile and --insecure exclude each other");
  out.insecure = v.insecure;
  out.cafile = v.cafile;
}

void convert_secret(const raw_values& v, options& out) {
  if (v.secret.empty() == v.secret_file.empty()) invalid("secret", "give one of --secret or --secret-file");
  out.secret = v.secret.empty() ? read_secret_file(v.secret_file) : v.secret;
  try {
    usersync::webhook_secret::parse(out.secret);
  } catch (const std::invalid_argument& e) {
    invalid(v.secret.empty() ? "secret-file" : "secret", e.what());
  }
}

}  // namespace

options parse_options(const std::vector<std::string>& args) {
  raw_values v;
  po::options_description desc("usersync-loadgen: signed Clerk webhooks against a loopback endpoint", 100, 50);
  add_options(desc, v);
  options out;
  try {
    po::variables_map vm;
    po::store(po::command_line_parser(args).options(desc).run(), vm);
    po::notify(vm);
    out.help = vm.count("help") > 0;
  } catch (const po::error& e) {
    throw usage_error(std::string(e.what()) + "; see --help");
  }
  std::ostringstream help;
  help << desc;
  out.help_text = help.str();
  if (out.help) return out;
  convert_counts(v, out);
  convert_target(v, out);
  convert_secret(v, out);
  out.run_id = v.run_id.empty() ? default_run_id() : v.run_id;
  check_run_id(out.run_id);
  out.verify_db = v.verify_db;
  out.label = v.label;
  out.json = v.json;
  return out;
}

}  // namespace loadgen
