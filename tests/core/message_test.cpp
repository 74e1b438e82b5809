// Message::get<T>() hands back the detail a protocol attached only as the type it was attached as.

#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include "reactor/message.hpp"

namespace {

struct Request {
    int number = 0;
};
struct Command {
    int number = 0;
};
// The same layout as Request: types are told apart by identity, not shape.
struct LookAlike {
    int number = 0;
};

}  // namespace

TEST_CASE("a message without a detail has none of any type") {
    const reactor::Message message;
    CHECK(message.get<Request>() == nullptr);
    CHECK(message.get<Command>() == nullptr);
}

TEST_CASE("the detail is reached as its own type only") {
    const Request request{7};
    reactor::Message message;
    message.set(&request);
    REQUIRE(message.get<Request>() == &request);
    CHECK(message.get<Request>()->number == 7);
    CHECK(message.get<const Request>() == &request);
    CHECK(message.get<Command>() == nullptr);
    CHECK(message.get<LookAlike>() == nullptr);
}

TEST_CASE("setting another detail replaces the first") {
    const Request request{1};
    const Command command{2};
    reactor::Message message;
    message.set(&request);
    message.set(&command);
    CHECK(message.get<Request>() == nullptr);
    REQUIRE(message.get<Command>() == &command);
    CHECK(message.get<Command>()->number == 2);
}

TEST_CASE("a null detail of a type reads back as null") {
    reactor::Message message;
    message.set(static_cast<const Request*>(nullptr));
    CHECK(message.get<Request>() == nullptr);
    CHECK(message.get<Command>() == nullptr);
}

TEST_CASE("a copied message keeps its detail") {
    const Command command{3};
    reactor::Message message;
    message.set(&command);
    const reactor::Message copy = message;
    CHECK(copy.get<Command>() == &command);
}
