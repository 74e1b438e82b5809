#include "apps/kv_store.hpp"

namespace reactord {

namespace {
// A stored value's buffer is reused for a new value unless it is more than twice as large as the
// new value plus this much.
constexpr std::size_t kReuseSlack = 64;
}  // namespace

const std::string* KvStore::get(std::string_view key) {
    const auto it = entries_.find(key);
    if (it == entries_.end()) return nullptr;
    if (it->second.expires_at && *it->second.expires_at <= Clock::now()) {
        entries_.erase(it);
        return nullptr;
    }
    return &it->second.value;
}

void KvStore::set(std::string_view key, std::string_view value,
                  std::optional<Clock::time_point> expires_at) {
    const auto it = entries_.find(key);
    if (it != entries_.end()) {
        std::string& stored = it->second.value;
        if (stored.capacity() > 2 * value.size() + kReuseSlack) {
            // assign() (and a move from a short string) would keep the old buffer: a key must not
            // hold on to the memory of the largest value it ever had.
            std::string(value).swap(stored);
        } else {
            stored.assign(value);
        }
        it->second.expires_at = expires_at;
        return;
    }
    entries_.emplace(std::string(key), Entry{std::string(value), expires_at});
}

bool KvStore::erase(std::string_view key) {
    const auto it = entries_.find(key);
    if (it == entries_.end()) return false;
    const bool live = !(it->second.expires_at && *it->second.expires_at <= Clock::now());
    entries_.erase(it);
    return live;
}

std::size_t KvStore::size() {
    const auto now = Clock::now();
    std::erase_if(entries_, [now](const auto& kv) {
        return kv.second.expires_at && *kv.second.expires_at <= now;
    });
    return entries_.size();
}

}  // namespace reactord
