#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <string>

#include "apps/kv_store.hpp"

using reactord::KvStore;

TEST_CASE("kv store: set, get, overwrite, erase") {
    KvStore store;
    CHECK(store.get("k") == nullptr);
    store.set("k", "one", std::nullopt);
    REQUIRE(store.get("k") != nullptr);
    CHECK(*store.get("k") == "one");
    store.set("k", "two", std::nullopt);
    CHECK(*store.get("k") == "two");
    CHECK(store.size() == 1);
    CHECK(store.erase("k"));
    CHECK_FALSE(store.erase("k"));
    CHECK(store.size() == 0);
}

TEST_CASE("kv store: a key does not keep the memory of the largest value it ever held") {
    KvStore store;
    const std::string big(64 * 1024, 'x');
    store.set("k", big, std::nullopt);
    REQUIRE(store.get("k")->capacity() >= big.size());
    store.set("k", "small", std::nullopt);
    CHECK(*store.get("k") == "small");
    CHECK(store.get("k")->capacity() < 1024);
    // A value of about the same size reuses the buffer.
    store.set("k", std::string(60 * 1024, 'y'), std::nullopt);
    const auto* before = store.get("k")->data();
    store.set("k", std::string(50 * 1024, 'z'), std::nullopt);
    CHECK(store.get("k")->data() == before);
}

TEST_CASE("kv store: an expired key is gone") {
    KvStore store;
    store.set("k", "v", KvStore::now_ms() - 1);
    CHECK(store.get("k") == nullptr);
    CHECK_FALSE(store.exists("k"));
    std::optional<KvStore::Millis> at;
    CHECK_FALSE(store.expiry("k", at));
}

TEST_CASE("kv store: expiry times far away and kept") {
    KvStore store;
    // 10^10 seconds from now: past what a nanosecond clock can count, not past Unix milliseconds.
    const KvStore::Millis far = KvStore::now_ms() + 10'000'000'000LL * 1000;
    store.set("k", "v", far);
    std::optional<KvStore::Millis> at;
    REQUIRE(store.expiry("k", at));
    CHECK(at == far);
    CHECK(*store.get("k") == "v");
    store.set_keep_ttl("k", "w");
    REQUIRE(store.expiry("k", at));
    CHECK(at == far);
    CHECK(*store.get("k") == "w");
    store.set("k", "x", std::nullopt);
    REQUIRE(store.expiry("k", at));
    CHECK_FALSE(at.has_value());
    // A new key set keeping its expiry has none; so has one whose expiry had passed.
    store.set_keep_ttl("new", "1");
    REQUIRE(store.expiry("new", at));
    CHECK_FALSE(at.has_value());
    store.set("old", "1", KvStore::now_ms() - 1);
    store.set_keep_ttl("old", "2");
    REQUIRE(store.expiry("old", at));
    CHECK_FALSE(at.has_value());
    CHECK(store.size() == 3);
}
