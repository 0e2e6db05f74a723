// Backup names and manifests: how a backup describes itself on disk.
#include <boost/json.hpp>

#include <cstdio>

#include "backup.hpp"
#include "backup_internal.hpp"
#include "time_format.hpp"

namespace usersync {
namespace json = boost::json;
namespace {

constexpr std::string_view name_prefix = "usersync-";
constexpr std::string_view name_suffix = ".db";
constexpr std::size_t compact_time_size = 16;  // YYYYMMDDTHHMMSSZ
constexpr const char* manifest_format = "usersync-backup-manifest/1";

bool is_label_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '-';
}

bool all_digits(std::string_view s) {
  for (char c : s) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

int number(std::string_view digits) {
  int n = 0;
  for (char c : digits) n = n * 10 + (c - '0');
  return n;
}

// "20260102T030405Z" -> time; nullopt unless the text is exactly that form and a real date.
std::optional<sys_time> parse_compact_utc(std::string_view t) {
  if (t.size() != compact_time_size || t[8] != 'T' || t[15] != 'Z') return std::nullopt;
  if (!all_digits(t.substr(0, 8)) || !all_digits(t.substr(9, 6))) return std::nullopt;
  using namespace std::chrono;
  const year_month_day date{year{number(t.substr(0, 4))}, month{static_cast<unsigned>(number(t.substr(4, 2)))},
                            day{static_cast<unsigned>(number(t.substr(6, 2)))}};
  const int h = number(t.substr(9, 2)), m = number(t.substr(11, 2)), s = number(t.substr(13, 2));
  if (!date.ok() || h > 23 || m > 59 || s > 59) return std::nullopt;
  return sys_days{date} + hours{h} + minutes{m} + seconds{s};
}

// "2026-01-02T03:04:05.678Z" -> time (the manifest's created_at).
sys_time parse_iso8601_ms(const std::string& text) {
  int y = 0, mo = 0, d = 0, h = 0, mi = 0, s = 0, ms = 0;
  if (std::sscanf(text.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d.%3dZ", &y, &mo, &d, &h, &mi, &s, &ms) != 7) {
    throw std::runtime_error("created_at '" + text + "' is not an ISO-8601 UTC time");
  }
  using namespace std::chrono;
  return sys_days{year{y} / month{static_cast<unsigned>(mo)} / day{static_cast<unsigned>(d)}} +
         hours{h} + minutes{mi} + seconds{s} + milliseconds{ms};
}

}  // namespace

bool valid_backup_label(std::string_view label) {
  if (label.empty() || label.size() > 64) return false;
  for (char c : label) {
    if (!is_label_char(c)) return false;
  }
  return true;
}

std::string backup_file_name(sys_time created_at, std::string_view label) {
  std::string name = std::string(name_prefix) + backup_detail::compact_utc(created_at);
  if (!label.empty()) name += "-" + std::string(label);
  return name + std::string(name_suffix);
}

std::optional<backup_name> parse_backup_file_name(std::string_view file_name) {
  if (!file_name.starts_with(name_prefix) || !file_name.ends_with(name_suffix)) return std::nullopt;
  std::string_view rest = file_name.substr(name_prefix.size());
  rest.remove_suffix(name_suffix.size());
  if (rest.size() < compact_time_size) return std::nullopt;
  const auto created = parse_compact_utc(rest.substr(0, compact_time_size));
  if (!created) return std::nullopt;
  rest.remove_prefix(compact_time_size);
  if (rest.empty()) return backup_name{*created, {}};
  if (rest[0] != '-' || !valid_backup_label(rest.substr(1))) return std::nullopt;
  return backup_name{*created, std::string(rest.substr(1))};
}

std::filesystem::path manifest_path(const std::filesystem::path& backup_file) {
  return backup_file.string() + ".json";
}

std::string_view to_string(backup_state state) {
  switch (state) {
    case backup_state::verified: return "verified";
    case backup_state::unverified: return "unverified";
    case backup_state::damaged: return "damaged";
  }
  return "unknown";
}

namespace backup_detail {

std::string compact_utc(sys_time t) {
  // iso8601_utc is thread-safe (no gmtime); drop its punctuation and milliseconds.
  const std::string iso = iso8601_utc(std::chrono::floor<std::chrono::seconds>(t));
  std::string out;
  for (char c : iso.substr(0, 19)) {
    if (c != '-' && c != ':') out += c;
  }
  return out + "Z";
}

std::string manifest_to_json(const backup_manifest& m) {
  const json::object o = {
      {"format", manifest_format},
      {"file", m.file.filename().string()},
      {"created_at", iso8601_utc(m.created_at)},
      {"label", m.label},
      {"source", m.source.string()},
      {"size_bytes", m.size_bytes},
      {"page_size", m.page_size},
      {"page_count", m.page_count},
      {"schema_version", m.schema_version},
      {"user_count", m.user_count},
      {"sha256", m.sha256},
      {"integrity_check", m.integrity},
      {"duration_ms", m.duration.count()},
      {"compression", "none"},
      {"usersync_version", m.usersync_version},
  };
  // One key per line, so the manifest reads well with cat and diffs well.
  std::string out = "{\n";
  bool first = true;
  for (const auto& [key, value] : o) {
    if (!first) out += ",\n";
    first = false;
    out += "  " + json::serialize(json::string(key)) + ": " + json::serialize(value);
  }
  return out + "\n}\n";
}

backup_manifest manifest_from_json(const std::string& text, const std::filesystem::path& file) {
  try {
    const json::object o = json::parse(text).as_object();
    if (o.at("format").as_string() != manifest_format) {
      throw std::runtime_error("unknown format " + json::serialize(o.at("format")));
    }
    backup_manifest m;
    m.file = file;
    m.created_at = parse_iso8601_ms(std::string(o.at("created_at").as_string()));
    m.label = std::string(o.at("label").as_string());
    m.source = std::string(o.at("source").as_string());
    m.size_bytes = json::value_to<std::uint64_t>(o.at("size_bytes"));
    m.page_size = json::value_to<std::int64_t>(o.at("page_size"));
    m.page_count = json::value_to<std::int64_t>(o.at("page_count"));
    m.schema_version = json::value_to<int>(o.at("schema_version"));
    m.user_count = json::value_to<std::int64_t>(o.at("user_count"));
    m.sha256 = std::string(o.at("sha256").as_string());
    m.integrity = std::string(o.at("integrity_check").as_string());
    m.duration = std::chrono::milliseconds(json::value_to<std::int64_t>(o.at("duration_ms")));
    m.usersync_version = std::string(o.at("usersync_version").as_string());
    return m;
  } catch (const std::exception& e) {
    throw std::runtime_error("manifest " + manifest_path(file).string() + " is unreadable: " + e.what());
  }
}

std::string human_size(std::uint64_t bytes) {
  const char* units[] = {"B", "kB", "MB", "GB", "TB"};
  double value = static_cast<double>(bytes);
  std::size_t unit = 0;
  while (value >= 1000 && unit + 1 < std::size(units)) {
    value /= 1000;
    ++unit;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, unit == 0 ? "%.0f %s" : "%.1f %s", value, units[unit]);
  return buf;
}

std::string human_age(std::chrono::seconds age) {
  using namespace std::chrono;
  if (age < seconds{0}) return "in the future";
  const auto d = duration_cast<days>(age);
  const auto h = duration_cast<hours>(age - d);
  const auto m = duration_cast<minutes>(age - d - h);
  if (d.count() > 0) return std::to_string(d.count()) + "d " + std::to_string(h.count()) + "h";
  if (h.count() > 0) return std::to_string(h.count()) + "h " + std::to_string(m.count()) + "m";
  if (m.count() > 0) return std::to_string(m.count()) + "m";
  return std::to_string(age.count()) + "s";
}

}  // namespace backup_detail
}  // namespace usersync
