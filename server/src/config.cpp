#include "ferry/server/config.hpp"

#include <yaml-cpp/yaml.h>

#include <fmt/format.h>

#include <algorithm>
#include <fstream>
#include <initializer_list>
#include <sstream>
#include <thread>

namespace ferry::server {
namespace {

// Every error names the file and the line of the offending node.
struct reader {
    std::string name;

    [[noreturn]] void fail(const YAML::Node& n, const std::string& what) const {
        const auto mark = n.Mark();
        if (mark.line >= 0) throw config_error(fmt::format("{}:{}: {}", name, mark.line + 1, what));
        throw config_error(fmt::format("{}: {}", name, what));
    }

    void only_keys(const YAML::Node& map, const std::string& where,
                   std::initializer_list<std::string_view> allowed) const {
        if (!map.IsMap()) fail(map, fmt::format("'{}' must be a mapping", where));
        for (const auto& kv : map) {
            const auto key = kv.first.as<std::string>();
            if (std::find(allowed.begin(), allowed.end(), key) == allowed.end())
                fail(kv.first, where.empty() ? fmt::format("unknown key '{}'", key)
                                             : fmt::format("unknown key '{}' in '{}'", key, where));
        }
    }

    std::string text(const YAML::Node& n, const std::string& key) const {
        if (!n.IsScalar()) fail(n, fmt::format("'{}' must be a string", key));
        return n.Scalar();
    }

    template <class T> T number(const YAML::Node& n, const std::string& key, T lo, T hi) const {
        if (!n.IsScalar()) fail(n, fmt::format("'{}' must be a number", key));
        long long v = 0;
        try {
            std::size_t used = 0;
            v = std::stoll(n.Scalar(), &used, 10);
            if (used != n.Scalar().size()) throw std::invalid_argument("trailing");
        } catch (const std::exception&) {
            fail(n, fmt::format("'{}' must be a whole number, not '{}'", key, n.Scalar()));
        }
        if (v < static_cast<long long>(lo) || v > static_cast<long long>(hi))
            fail(n, fmt::format("'{}' must be between {} and {}", key, lo, hi));
        return static_cast<T>(v);
    }

    bool boolean(const YAML::Node& n, const std::string& key) const {
        bool b = false;
        if (!n.IsScalar() || !YAML::convert<bool>::decode(n, b))
            fail(n, fmt::format("'{}' must be true or false", key));
        return b;
    }

    protocol::ip_address ip(const YAML::Node& n, const std::string& key) const {
        auto s = text(n, key);
        auto a = protocol::ip_address::parse(s);
        if (!a) fail(n, fmt::format("'{}' is not an IP address: '{}'", key, s));
        return *a;
    }
};

log_level parse_level(const reader& r, const YAML::Node& n) {
    const auto s = r.text(n, "log.level");
    for (auto l : {log_level::trace, log_level::debug, log_level::info, log_level::warn,
                   log_level::error})
        if (s == to_string(l)) return l;
    r.fail(n, fmt::format("'log.level' must be one of trace, debug, info, warn, error; not '{}'", s));
}

listen_config parse_listener(const reader& r, const YAML::Node& n) {
    r.only_keys(n, "listen", {"address", "port", "transports"});
    listen_config l;
    if (!n["address"]) r.fail(n, "a listener needs an 'address'");
    l.address = r.ip(n["address"], "listen.address");
    if (n["port"]) l.port = r.number<std::uint16_t>(n["port"], "listen.port", 1, 65535);
    if (const auto& t = n["transports"]) {
        if (!t.IsSequence() || t.size() == 0)
            r.fail(t, "'listen.transports' must be a list such as [udp, tcp]");
        l.udp = l.tcp = false;
        for (const auto& item : t) {
            const auto s = r.text(item, "listen.transports");
            if (s == "udp") l.udp = true;
            else if (s == "tcp") l.tcp = true;
            else r.fail(item, fmt::format("unknown transport '{}' (udp or tcp)", s));
        }
    }
    return l;
}

void validate(const reader& r, const YAML::Node& root, config& c) {
    if (c.listen.empty()) r.fail(root, "'listen' names no listener");
    if (c.nat_discovery.alternate_address) {
        const auto& alt = *c.nat_discovery.alternate_address;
        if (alt.is_unspecified())
            r.fail(root["nat_discovery"], "'nat_discovery.alternate_address' must be a concrete address");
        const bool any = std::any_of(c.listen.begin(), c.listen.end(), [&](const listen_config& l) {
            return l.udp && l.address.family == alt.family && !l.address.is_unspecified() &&
                   l.address != alt;
        });
        if (!any)
            r.fail(root["nat_discovery"],
                   "'nat_discovery' needs a UDP listener on a concrete address of the same family "
                   "as alternate_address, other than it");
    }
}

config parse_root(const reader& r, const YAML::Node& root) {
    config c;
    if (!root || root.IsNull()) {
        c.listen = config::default_listeners();
        return c;
    }
    r.only_keys(root, "", {"threads", "software", "listen", "nat_discovery", "limits", "log"});

    if (const auto& n = root["threads"]) {
        if (n.IsScalar() && n.Scalar() == "auto") c.threads = 0;
        else c.threads = r.number<unsigned>(n, "threads", 1, 1024);
    }
    if (const auto& n = root["software"]) {
        bool off = false;
        if (n.IsNull() || (n.IsScalar() && YAML::convert<bool>::decode(n, off) && !off))
            c.software.clear();
        else c.software = r.text(n, "software");
        if (c.software.size() > 763) r.fail(n, "'software' must be under 128 characters");
    }
    if (const auto& n = root["listen"]) {
        if (!n.IsSequence()) r.fail(n, "'listen' must be a list of listeners");
        for (const auto& item : n) c.listen.push_back(parse_listener(r, item));
    } else {
        c.listen = config::default_listeners();
    }
    if (const auto& n = root["nat_discovery"]) {
        r.only_keys(n, "nat_discovery", {"alternate_address", "alternate_port"});
        if (n["alternate_address"] && !n["alternate_address"].IsNull())
            c.nat_discovery.alternate_address =
                r.ip(n["alternate_address"], "nat_discovery.alternate_address");
        if (n["alternate_port"] && !n["alternate_port"].IsNull())
            c.nat_discovery.alternate_port =
                r.number<std::uint16_t>(n["alternate_port"], "nat_discovery.alternate_port", 1, 65535);
    }
    if (const auto& n = root["limits"]) {
        r.only_keys(n, "limits", {"tcp_idle_timeout"});
        if (n["tcp_idle_timeout"])
            c.limits.tcp_idle_timeout = std::chrono::seconds(
                r.number<unsigned>(n["tcp_idle_timeout"], "limits.tcp_idle_timeout", 1, 86400));
    }
    if (const auto& n = root["log"]) {
        r.only_keys(n, "log", {"level"});
        if (n["level"]) c.log.level = parse_level(r, n["level"]);
    }
    validate(r, root, c);
    return c;
}

} // namespace

std::vector<listen_config> config::default_listeners() {
    return {listen_config{*protocol::ip_address::parse("0.0.0.0")},
            listen_config{*protocol::ip_address::parse("::")}};
}

std::string_view to_string(log_level l) {
    switch (l) {
    case log_level::trace: return "trace";
    case log_level::debug: return "debug";
    case log_level::info: return "info";
    case log_level::warn: return "warn";
    case log_level::error: return "error";
    }
    return "info";
}

config parse_config(const std::string& yaml, const std::string& name) {
    reader r{name};
    YAML::Node root;
    try {
        root = YAML::Load(yaml);
    } catch (const YAML::Exception& e) {
        throw config_error(fmt::format("{}:{}: {}", name, e.mark.line + 1, e.msg));
    }
    try {
        return parse_root(r, root);
    } catch (const YAML::Exception& e) {
        throw config_error(fmt::format("{}:{}: {}", name, e.mark.line + 1, e.msg));
    }
}

config load_config(const std::string& path) {
    std::ifstream in(path);
    if (!in) throw config_error(fmt::format("{}: cannot open the file", path));
    std::stringstream ss;
    ss << in.rdbuf();
    return parse_config(ss.str(), path);
}

} // namespace ferry::server
