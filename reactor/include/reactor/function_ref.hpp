#pragma once

#include <functional>
#include <memory>
#include <type_traits>
#include <utility>

namespace reactor {

template <class Signature>
class FunctionRef;

// A non-owning reference to a callable, for a callback that runs before the call taking it returns:
// two pointers, no allocation, unlike std::function. The callable must outlive the reference
// (a lambda passed straight to the call does).
template <class R, class... Args>
class FunctionRef<R(Args...)> {
  public:
    template <class F>
    requires(!std::is_same_v<std::remove_cvref_t<F>, FunctionRef> &&
             std::is_invocable_r_v<R, F&, Args...>) FunctionRef(F&& f)
    noexcept  // implicit, so that a lambda is passed as it is
        : object_(const_cast<void*>(static_cast<const void*>(std::addressof(f)))),
          call_([](void* object, Args... args) -> R {
              return std::invoke(*static_cast<std::remove_reference_t<F>*>(object),
                                 std::forward<Args>(args)...);
          }) {}

    R operator()(Args... args) const { return call_(object_, std::forward<Args>(args)...); }

  private:
    void* object_;
    R (*call_)(void*, Args...);
};

}  // namespace reactor
