// reactord: the reactor server, configured by one JSON file.

#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <system_error>

#include "builtin.hpp"
#include "config.hpp"
#include "daemon.hpp"
#include "plugin_loader.hpp"
#include "reactor/log.hpp"
#include "reactor/protocol_registry.hpp"
#include "reactor/version.hpp"

namespace {

constexpr int kExitConfig = 2;

void print_usage(std::FILE* to) {
    std::fprintf(
        to,
        "usage: reactord [--config FILE] [--check-config FILE] [--console] [--help] [--version]\n"
        "\n"
        "  --config FILE        run with this JSON configuration (default: the embedded demo)\n"
        "  --check-config FILE  validate the configuration, print the problem if any, exit 0 or 2\n"
        "  --print-default      print the embedded default configuration\n"
        "  --console            also read admin commands from stdin\n"
        "  --help, --version\n");
}

bool read_file(const std::string& path, std::string& out) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return false;
    std::ostringstream text;
    text << in.rdbuf();
    out = text.str();
    return true;
}

}  // namespace

int main(int argc, char** argv) {
    std::string config_path;
    bool check_only = false;
    bool console = false;
    for (int i = 1; i < argc; ++i) {
        const std::string arg = argv[i];
        if (arg == "--help" || arg == "-h") {
            print_usage(stdout);
            return 0;
        }
        if (arg == "--version") {
            std::printf("reactord %s\n", reactor::version());
            return 0;
        }
        if (arg == "--print-default") {
            std::printf("%s\n", reactord::default_config_text().c_str());
            return 0;
        }
        if (arg == "--console") {
            console = true;
        } else if ((arg == "--config" || arg == "--check-config") && i + 1 < argc) {
            config_path = argv[++i];
            check_only = arg == "--check-config";
        } else {
            std::fprintf(stderr, "reactord: unknown or incomplete argument '%s'\n", arg.c_str());
            print_usage(stderr);
            return kExitConfig;
        }
    }

    std::string text = reactord::default_config_text();
    if (!config_path.empty() && !read_file(config_path, text)) {
        std::fprintf(stderr, "reactord: cannot read %s: %s\n", config_path.c_str(),
                     std::strerror(errno));
        return kExitConfig;
    }
    const std::string source = config_path.empty() ? "default config" : config_path;

    reactord::Config config;
    reactord::Plan plan;
    try {
        config = reactord::parse_config(text);
        reactor::set_log_level(config.log_level);
        reactor::ProtocolRegistry registry;
        reactor::protocols::register_builtin(registry);
        for (std::size_t i = 0; i < config.plugins.size(); ++i) {
            try {
                reactor::protocols::load_protocol_plugin(config.plugins[i], registry);
            } catch (const std::exception& e) {
                throw reactor::ConfigError("plugins[" + std::to_string(i) + "]", e.what());
            }
        }
        plan = reactord::make_plan(config, registry);
    } catch (const reactor::ConfigError& e) {
        std::fprintf(stderr, "reactord: %s: %s\n", source.c_str(), e.describe().c_str());
        return kExitConfig;
    }
    if (check_only) {
        std::printf("%s: OK\n", source.c_str());
        return 0;
    }

    try {
        reactord::Daemon daemon(config, std::move(plan));
        return daemon.run(console);
    } catch (const std::system_error& e) {
        std::fprintf(stderr, "reactord: %s\n", e.what());
        return 1;
    }
}
