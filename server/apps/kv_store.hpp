#pragma once

// The kv app's data: string keys and values with optional expiry. Loop thread only.
//
// Expiry times are Unix times in milliseconds, as Redis keeps them (so EXAT, PXAT and TTL mean
// what they mean there, and a deadline centuries away is representable); a key is gone once the
// wall clock reaches its time.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

namespace reactord {

class KvStore {
  public:
    // Milliseconds since the Unix epoch.
    using Millis = std::int64_t;
    static Millis now_ms();

    // The live value of key, or null (an expired key is removed on the way).
    const std::string* get(std::string_view key);
    bool exists(std::string_view key) { return get(key) != nullptr; }
    // Stores value with the expiry time expires_at, or with none for nullopt.
    void set(std::string_view key, std::string_view value, std::optional<Millis> expires_at);
    // Stores value, keeping the expiry time the key has (none for a new key).
    void set_keep_ttl(std::string_view key, std::string_view value);
    // For a live key: true, and its expiry time or nullopt for none. False for no such key.
    bool expiry(std::string_view key, std::optional<Millis>& expires_at);
    bool erase(std::string_view key);
    std::size_t size();
    void clear() { entries_.clear(); }

  private:
    struct Entry {
        std::string value;
        std::optional<Millis> expires_at;
    };
    struct Hash {
        using is_transparent = void;
        std::size_t operator()(std::string_view s) const {
            return std::hash<std::string_view>{}(s);
        }
    };
    using Map = std::unordered_map<std::string, Entry, Hash, std::equal_to<>>;

    static bool expired(const Entry& entry, Millis now) {
        return entry.expires_at && *entry.expires_at <= now;
    }
    // The live entry of key, or null (an expired one is removed on the way).
    Entry* find(std::string_view key);
    // Stores value in the key's entry, creating it without expiry; returns the entry.
    Entry& store(std::string_view key, std::string_view value);

    Map entries_;
};

}  // namespace reactord
