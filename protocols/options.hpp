#pragma once

// Reads a protocol's JSON options: typed getters with defaults, and an error naming the option for
// a wrong type, a value out of range, or a key nobody read.

#include <cstdint>
#include <nlohmann/json.hpp>
#include <set>
#include <string>

#include "reactor/config_error.hpp"

namespace reactor::protocols {

class Options {
  public:
    explicit Options(const nlohmann::json& json);

    // A positive integer in [min, max]; "expected an integer from MIN to MAX" otherwise.
    std::uint64_t integer(const std::string& key, std::uint64_t fallback, std::uint64_t min,
                          std::uint64_t max);
    // An integer in [min, max] that may be negative; same message as integer() otherwise.
    std::int64_t signed_integer(const std::string& key, std::int64_t fallback, std::int64_t min,
                                std::int64_t max);
    bool boolean(const std::string& key, bool fallback);
    std::string string(const std::string& key, const std::string& fallback);
    // A string that is one of choices.
    std::string choice(const std::string& key, const std::string& fallback,
                       const std::set<std::string>& choices);

    // The raw value of key (marking it read), or null when absent.
    const nlohmann::json* get(const std::string& key);
    bool has(const std::string& key) const { return json_.contains(key); }

    // Throws for the first key that no getter read ("unknown option").
    void finish() const;

  private:
    const nlohmann::json& json_;
    std::set<std::string> read_;
};

}  // namespace reactor::protocols
