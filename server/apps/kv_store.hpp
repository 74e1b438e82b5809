#pragma once

// The kv app's data: string keys and values with optional expiry. Loop thread only.

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

namespace reactord {

class KvStore {
  public:
    using Clock = std::chrono::steady_clock;

    // The live value of key, or null (an expired key is removed on the way).
    const std::string* get(std::string_view key);
    bool exists(std::string_view key) { return get(key) != nullptr; }
    // expires_at: a time point, or nullopt to keep none.
    void set(std::string_view key, std::string_view value,
             std::optional<Clock::time_point> expires_at);
    bool erase(std::string_view key);
    std::size_t size();
    void clear() { entries_.clear(); }

  private:
    struct Entry {
        std::string value;
        std::optional<Clock::time_point> expires_at;
    };
    struct Hash {
        using is_transparent = void;
        std::size_t operator()(std::string_view s) const {
            return std::hash<std::string_view>{}(s);
        }
    };
    std::unordered_map<std::string, Entry, Hash, std::equal_to<>> entries_;
};

}  // namespace reactord
