#include "probe.hpp"

#include <openssl/rand.h>

#include <algorithm>
#include <cstdio>

namespace ferry::probe {
namespace {

std::string json_string(std::string_view s) {
    std::string out = "\"";
    for (const char c : s) {
        switch (c) {
        case '"': out += "\\\""; break;
        case '\\': out += "\\\\"; break;
        case '\n': out += "\\n"; break;
        case '\t': out += "\\t"; break;
        default:
            if (static_cast<unsigned char>(c) < 0x20) {
                char buf[8];
                std::snprintf(buf, sizeof buf, "\\u%04x", c);
                out += buf;
            } else {
                out += c;
            }
        }
    }
    return out + "\"";
}

} // namespace

std::array<std::uint8_t, 12> random_transaction_id() {
    std::array<std::uint8_t, 12> id{};
    ::RAND_bytes(id.data(), static_cast<int>(id.size()));
    return id;
}

report::report(std::string command, std::string target, bool json)
    : command_(std::move(command)), target_(std::move(target)), json_(json) {
    if (!json_) std::printf("ferry-probe %s %s\n", command_.c_str(), target_.c_str());
}

void report::step(std::string name, bool ok, double ms, std::string detail) {
    if (!json_) {
        std::printf("  %-17s %-4s %7.1f ms  %s\n", name.c_str(), ok ? "ok" : "FAIL", ms, detail.c_str());
        std::fflush(stdout);
    }
    steps_.push_back({std::move(name), ok, ms, std::move(detail)});
}

void report::fact(std::string key, std::string value) {
    if (!json_) {
        std::string label = key + ":";
        std::replace(label.begin(), label.end(), '_', ' ');
        std::printf("  %-17s %s\n", label.c_str(), value.c_str());
    }
    facts_.emplace_back(std::move(key), std::move(value));
}

int report::finish(exit_code code, std::string verdict) {
    if (!json_) {
        std::printf("%s: %s\n", code == exit_ok ? "ok" : "FAILED", verdict.c_str());
        return code;
    }
    std::string out = "{\"command\":" + json_string(command_) + ",\"target\":" + json_string(target_) +
                      ",\"ok\":" + (code == exit_ok ? "true" : "false") +
                      ",\"exit_code\":" + std::to_string(static_cast<int>(code)) +
                      ",\"verdict\":" + json_string(verdict) + ",\"steps\":[";
    for (std::size_t i = 0; i < steps_.size(); ++i) {
        char ms[32];
        std::snprintf(ms, sizeof ms, "%.3f", steps_[i].ms);
        out += (i ? "," : "") + std::string("{\"name\":") + json_string(steps_[i].name) +
               ",\"ok\":" + (steps_[i].ok ? "true" : "false") + ",\"ms\":" + ms +
               ",\"detail\":" + json_string(steps_[i].detail) + "}";
    }
    out += "]";
    for (const auto& [k, v] : facts_) out += "," + json_string(k) + ":" + json_string(v);
    out += "}\n";
    std::fputs(out.c_str(), stdout);
    return code;
}

} // namespace ferry::probe
