#include "logging.hpp"

#include <spdlog/pattern_formatter.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <cstdio>

namespace usersync {
namespace {

std::atomic<bool> json_mode{false};

// Marks a message whose payload is already JSON members (a request record).
constexpr char fields_marker = '\x1e';

// The length of the valid UTF-8 sequence starting at text[i], or 0 when it is not one.
std::size_t utf8_length(std::string_view text, std::size_t i) {
  const auto lead = static_cast<unsigned char>(text[i]);
  const std::size_t n = lead >= 0xf0 && lead <= 0xf4 ? 4 : lead >= 0xe0 ? 3 : lead >= 0xc2 && lead < 0xe0 ? 2 : 0;
  if (n == 0 || i + n > text.size()) return 0;
  for (std::size_t k = 1; k < n; ++k) {
    if ((static_cast<unsigned char>(text[i + k]) & 0xc0) != 0x80) return 0;
  }
  return n;
}

// JSON string content: quotes, backslashes and controls escaped; bytes that are not valid
// UTF-8 (a sender's header, cut mid-character) become U+FFFD so every line stays JSON.
void append_escaped(spdlog::memory_buf_t& dest, std::string_view text) {
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (static_cast<unsigned char>(c) >= 0x80) {
      const std::size_t n = utf8_length(text, i);
      if (n == 0) {
        dest.append(std::string_view("\\ufffd"));
      } else {
        dest.append(text.substr(i, n));
        i += n - 1;
      }
      continue;
    }
    switch (c) {
      case '"': dest.append(std::string_view("\\\"")); break;
      case '\\': dest.append(std::string_view("\\\\")); break;
      case '\n': dest.append(std::string_view("\\n")); break;
      case '\r': dest.append(std::string_view("\\r")); break;
      case '\t': dest.append(std::string_view("\\t")); break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(c));
          dest.append(std::string_view(buf));
        } else {
          dest.push_back(c);
        }
    }
  }
}

// %* in the JSON pattern: "msg":"<escaped>", or a request record's members as they are.
class json_message_flag final : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg& msg, const std::tm&, spdlog::memory_buf_t& dest) override {
    const std::string_view payload(msg.payload.data(), msg.payload.size());
    if (!payload.empty() && payload.front() == fields_marker) {
      dest.append(payload.substr(1));
      return;
    }
    dest.append(std::string_view("\"msg\":\""));
    append_escaped(dest, payload);
    dest.push_back('"');
  }
  std::unique_ptr<custom_flag_formatter> clone() const override {
    return std::make_unique<json_message_flag>();
  }
};

std::string json_string(std::string_view text) {
  spdlog::memory_buf_t buf;
  append_escaped(buf, text);
  return "\"" + std::string(buf.data(), buf.size()) + "\"";
}

}  // namespace

void configure_logging(log_format format, const std::string& level) {
  spdlog::set_level(spdlog::level::from_str(level));
  json_mode = format == log_format::json;
  if (format == log_format::text) {
    spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%eZ %^%l%$ %v", spdlog::pattern_time_type::utc);
    return;
  }
  auto formatter = std::make_unique<spdlog::pattern_formatter>(spdlog::pattern_time_type::utc);
  formatter->add_flag<json_message_flag>('*').set_pattern(
      R"({"time":"%Y-%m-%dT%H:%M:%S.%eZ","level":"%l",%*})");
  spdlog::set_formatter(std::move(formatter));
}

void log_request(const request_record& r) {
  if (!json_mode) {
    std::string extra;
    if (!r.svix_id.empty()) extra += " svix_id=" + std::string(r.svix_id);
    if (!r.event_type.empty()) extra += " type=" + std::string(r.event_type);
    if (!r.outcome.empty()) extra += " outcome=" + std::string(r.outcome);
    spdlog::info("{} {} {} {} {:.2f}ms{}", r.remote, r.method, r.path, r.status, r.milliseconds, extra);
    return;
  }
  std::string fields = std::string(1, fields_marker) + "\"msg\":\"request\",\"remote\":" +
                       json_string(r.remote) + ",\"method\":" + json_string(r.method) +
                       ",\"path\":" + json_string(r.path) + ",\"status\":" + std::to_string(r.status) +
                       ",\"ms\":" + fmt::format("{:.3f}", r.milliseconds);
  if (!r.svix_id.empty()) fields += ",\"svix_id\":" + json_string(r.svix_id);
  if (!r.event_type.empty()) fields += ",\"type\":" + json_string(r.event_type);
  if (!r.outcome.empty()) fields += ",\"outcome\":" + json_string(r.outcome);
  spdlog::info("{}", fields);
}

}  // namespace usersync
