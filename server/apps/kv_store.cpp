#include "apps/kv_store.hpp"

#include <chrono>

namespace reactord {

namespace {
// A stored value's buffer is reused for a new value unless it is more than twice as large as the
// new value plus this much.
constexpr std::size_t kReuseSlack = 64;
}  // namespace

KvStore::Millis KvStore::now_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

KvStore::Entry* KvStore::find(std::string_view key) {
    const auto it = entries_.find(key);
    if (it == entries_.end()) return nullptr;
    // The clock is read only for a key that has an expiry time.
    if (it->second.expires_at && expired(it->second, now_ms())) {
        entries_.erase(it);
        return nullptr;
    }
    return &it->second;
}

const std::string* KvStore::get(std::string_view key) {
    const Entry* entry = find(key);
    return entry != nullptr ? &entry->value : nullptr;
}

KvStore::Entry& KvStore::store(std::string_view key, std::string_view value) {
    Entry* entry = find(key);
    if (entry == nullptr) {
        return entries_.emplace(std::string(key), Entry{std::string(value), std::nullopt})
            .first->second;
    }
    std::string& stored = entry->value;
    if (stored.capacity() > 2 * value.size() + kReuseSlack) {
        // assign() (and a move from a short string) would keep the old buffer: a key must not
        // hold on to the memory of the largest value it ever had.
        std::string(value).swap(stored);
    } else {
        stored.assign(value);
    }
    return *entry;
}

void KvStore::set(std::string_view key, std::string_view value, std::optional<Millis> expires_at) {
    store(key, value).expires_at = expires_at;
}

void KvStore::set_keep_ttl(std::string_view key, std::string_view value) {
    store(key, value);
}

bool KvStore::expiry(std::string_view key, std::optional<Millis>& expires_at) {
    const Entry* entry = find(key);
    if (entry == nullptr) return false;
    expires_at = entry->expires_at;
    return true;
}

bool KvStore::erase(std::string_view key) {
    const auto it = entries_.find(key);
    if (it == entries_.end()) return false;
    const bool live = !(it->second.expires_at && expired(it->second, now_ms()));
    entries_.erase(it);
    return live;
}

std::size_t KvStore::size() {
    const Millis now = now_ms();
    std::erase_if(entries_, [now](const auto& kv) { return expired(kv.second, now); });
    return entries_.size();
}

}  // namespace reactord
