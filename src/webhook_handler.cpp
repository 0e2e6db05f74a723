#include "webhook_handler.hpp"

#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>
#include <spdlog/spdlog.h>

#include "clerk_event.hpp"
#include "metrics.hpp"
#include "writer.hpp"

namespace usersync {
namespace {

// Svix sends svix-*; the Standard Webhooks names are webhook-*. Either is accepted.
std::string_view header(const request& req, std::string_view svix_name, std::string_view std_name) {
  auto it = req.find(svix_name);
  if (it == req.end()) it = req.find(std_name);
  if (it == req.end()) return {};
  return it->value();
}

webhook_headers read_headers(const request& req) {
  return {header(req, "svix-id", "webhook-id"), header(req, "svix-timestamp", "webhook-timestamp"),
          header(req, "svix-signature", "webhook-signature")};
}

std::string_view failure_code(storage_failure f) {
  switch (f) {
    case storage_failure::busy: return "database_busy";
    case storage_failure::full: return "disk_full";
    case storage_failure::io: return "io_error";
    case storage_failure::corrupt: return "database_corrupt";
    case storage_failure::other: return "internal_error";
  }
  return "internal_error";
}

reply failure_reply(const write_result& result) {
  const storage_failure f = *result.failure;
  const bool transient =
      f == storage_failure::busy || f == storage_failure::full || f == storage_failure::io;
  if (!transient) {
    return json_error(http::status::internal_server_error, failure_code(f),
                      "the event was not applied; the operator has been alerted in the log");
  }
  reply r = json_error(http::status::service_unavailable, failure_code(f),
                       "the event was not applied; retry later");
  r.res.set(http::field::retry_after, "5");
  return r;
}

void count(metrics& stats, std::string_view type, std::string_view outcome) {
  stats.deliveries.add("type=\"" + metrics::event_type_label(type) + "\",outcome=\"" +
                       std::string(outcome) + "\"");
}

// At most `max` bytes of `text`, never ending inside a UTF-8 character.
std::string_view utf8_prefix(std::string_view text, std::size_t max) {
  if (text.size() <= max) return text;
  while (max > 0 && (static_cast<unsigned char>(text[max]) & 0xc0) == 0x80) --max;
  return text.substr(0, max);
}

reply noted(reply r, std::string_view svix_id, std::string_view type, std::string_view outcome) {
  r.svix_id = svix_id;
  r.event_type = type;
  r.outcome = outcome;
  return r;
}

}  // namespace

reply reply_for(const write_result& result) {
  if (result.failure) return failure_reply(result);
  boost::json::object body;
  body["outcome"] = to_string(*result.outcome);
  return json_reply(http::status::ok, boost::json::serialize(body));
}

webhook_handler::webhook_handler(writer& w, metrics& stats, const swappable<const secret_list>& secrets,
                                 std::chrono::seconds tolerance, clock_fn now)
    : writer_(w),
      stats_(stats),
      secrets_(secrets),
      tolerance_(tolerance),
      now_(std::move(now)) {}

void webhook_handler::operator()(const request& req, const path_params&, responder respond) const {
  const webhook_headers headers = read_headers(req);
  const auto received_at = now_();
  // Verify before parsing: nothing in an unauthenticated body is ever looked at.
  const verify_result verified =
      verify_webhook(*secrets_.get(), headers, req.body(), received_at, tolerance_);
  if (verified != verify_result::ok) {
    reply r = json_error(http::status::unauthorized, to_string(verified),
                         "the request is not signed by a configured webhook secret");
    count(stats_, "unknown", "unauthorized");
    // The id is the sender's claim, not verified: logged, but cut short.
    respond(noted(std::move(r), utf8_prefix(headers.id, 64), "",
                  "unauthorized:" + std::string(to_string(verified))));
    return;
  }
  std::string svix_id(headers.id);
  decode_result decoded = decode_clerk_event(req.body());
  if (!decoded.event) {
    rejected_delivery rejection{svix_id, decoded.error, req.body(), received_at};
    count(stats_, "unknown", "rejected");
    writer_.record_rejected(std::move(rejection), [respond, svix_id, error = decoded.error](write_result r) {
      if (r.failure) spdlog::warn("could not record rejected delivery {}: {}", svix_id, r.error);
      respond(noted(json_error(http::status::bad_request, "malformed_event", error), svix_id, "",
                    "malformed"));
    });
    return;
  }
  const std::string type = decoded.event->type;
  delivery d{svix_id, std::move(*decoded.event), received_at};
  writer_.apply(std::move(d), [respond, svix_id, type, &stats = stats_](write_result r) {
    if (r.failure) spdlog::error("delivery {} not applied: {}", svix_id, r.error);
    count(stats, type, r.failure ? "failed" : to_string(*r.outcome));
    respond(noted(reply_for(r), svix_id, type,
                  r.failure ? failure_code(*r.failure) : to_string(*r.outcome)));
  });
}

}  // namespace usersync
