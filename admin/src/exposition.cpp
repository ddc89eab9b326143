#include "ferry/admin/exposition.hpp"

#include <fmt/format.h>

namespace ferry::admin {

std::string escape_label(std::string_view value) {
    std::string out;
    out.reserve(value.size());
    for (const char c : value) {
        if (c == '\\') out += "\\\\";
        else if (c == '"') out += "\\\"";
        else if (c == '\n') out += "\\n";
        else out += c;
    }
    return out;
}

void exposition::family(std::string_view name, std::string_view type, std::string_view help) {
    fmt::format_to(std::back_inserter(out_), "# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
}

void exposition::start(std::string_view name, std::initializer_list<label> labels) {
    out_ += name;
    if (labels.size() == 0) {
        out_ += ' ';
        return;
    }
    out_ += '{';
    bool first = true;
    for (const auto& [k, v] : labels) {
        if (!first) out_ += ',';
        first = false;
        fmt::format_to(std::back_inserter(out_), "{}=\"{}\"", k, escape_label(v));
    }
    out_ += "} ";
}

void exposition::sample(std::string_view name, std::initializer_list<label> labels, std::uint64_t value) {
    start(name, labels);
    fmt::format_to(std::back_inserter(out_), "{}\n", value);
}

void exposition::sample(std::string_view name, std::initializer_list<label> labels, std::int64_t value) {
    start(name, labels);
    fmt::format_to(std::back_inserter(out_), "{}\n", value);
}

void exposition::sample(std::string_view name, std::initializer_list<label> labels, double value) {
    start(name, labels);
    fmt::format_to(std::back_inserter(out_), "{}\n", value);
}

} // namespace ferry::admin
