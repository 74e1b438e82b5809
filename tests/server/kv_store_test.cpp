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
    store.set("k", "v", KvStore::Clock::now() - std::chrono::milliseconds(1));
    CHECK(store.get("k") == nullptr);
    CHECK_FALSE(store.exists("k"));
}
