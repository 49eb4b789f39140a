// informer/core/thread_annotations.hpp
//
// Lock discipline written in the code: macros over clang's thread-safety attributes, in Abseil's
// manner. Under clang with `-Wthread-safety` the compiler checks that a member marked
// `INFORMER_GUARDED_BY(mu_)` is touched only with `mu_` held, that a function marked
// `INFORMER_REQUIRES(mu_)` (the `_locked` functions) is called only with it held, and so on. On
// other compilers every macro expands to nothing.
//
// The analysis follows only lock types that carry these annotations: use `informer::mutex`,
// `informer::shared_mutex` and the scoped locks of "informer/core/mutex.hpp", not the std ones.
//
// Reference: https://clang.llvm.org/docs/ThreadSafetyAnalysis.html
//
// Thread safety: macros only.
#pragma once

#if defined(__clang__) && defined(__has_attribute)
#if __has_attribute(capability)
#define INFORMER_INTERNAL_THREAD_ANNOTATION(x) __attribute__((x))
#endif
#endif
#ifndef INFORMER_INTERNAL_THREAD_ANNOTATION
#define INFORMER_INTERNAL_THREAD_ANNOTATION(x)
#endif

/// On a data member: reading or writing it requires holding `x` (reading: at least shared).
#define INFORMER_GUARDED_BY(x) INFORMER_INTERNAL_THREAD_ANNOTATION(guarded_by(x))
/// On a pointer member: what it points to is guarded by `x` (the pointer itself is not).
#define INFORMER_PT_GUARDED_BY(x) INFORMER_INTERNAL_THREAD_ANNOTATION(pt_guarded_by(x))

/// On a mutex member: it is acquired after / before the named mutexes (lock order).
#define INFORMER_ACQUIRED_AFTER(...) INFORMER_INTERNAL_THREAD_ANNOTATION(acquired_after(__VA_ARGS__))
#define INFORMER_ACQUIRED_BEFORE(...) INFORMER_INTERNAL_THREAD_ANNOTATION(acquired_before(__VA_ARGS__))

/// On a function: the caller must hold the capabilities exclusively / at least shared.
#define INFORMER_REQUIRES(...) INFORMER_INTERNAL_THREAD_ANNOTATION(requires_capability(__VA_ARGS__))
#define INFORMER_REQUIRES_SHARED(...) INFORMER_INTERNAL_THREAD_ANNOTATION(requires_shared_capability(__VA_ARGS__))

/// On a function: it acquires the capabilities (exclusively / shared) and returns holding them.
/// With no argument on a member of a capability or scoped-capability type: acquires `*this`.
#define INFORMER_ACQUIRE(...) INFORMER_INTERNAL_THREAD_ANNOTATION(acquire_capability(__VA_ARGS__))
#define INFORMER_ACQUIRE_SHARED(...) INFORMER_INTERNAL_THREAD_ANNOTATION(acquire_shared_capability(__VA_ARGS__))

/// On a function: it releases capabilities the caller holds (exclusively / shared / either way).
#define INFORMER_RELEASE(...) INFORMER_INTERNAL_THREAD_ANNOTATION(release_capability(__VA_ARGS__))
#define INFORMER_RELEASE_SHARED(...) INFORMER_INTERNAL_THREAD_ANNOTATION(release_shared_capability(__VA_ARGS__))
#define INFORMER_RELEASE_GENERIC(...) INFORMER_INTERNAL_THREAD_ANNOTATION(release_generic_capability(__VA_ARGS__))

/// On a function returning bool: it acquires the capabilities when it returns `value`.
#define INFORMER_TRY_ACQUIRE(...) INFORMER_INTERNAL_THREAD_ANNOTATION(try_acquire_capability(__VA_ARGS__))
#define INFORMER_TRY_ACQUIRE_SHARED(...) INFORMER_INTERNAL_THREAD_ANNOTATION(try_acquire_shared_capability(__VA_ARGS__))

/// On a function: the caller must not hold the capabilities (the function takes them itself).
#define INFORMER_EXCLUDES(...) INFORMER_INTERNAL_THREAD_ANNOTATION(locks_excluded(__VA_ARGS__))

/// On a function: it checks at run time that the capability is held; the analysis trusts it after.
#define INFORMER_ASSERT_CAPABILITY(x) INFORMER_INTERNAL_THREAD_ANNOTATION(assert_capability(x))
#define INFORMER_ASSERT_SHARED_CAPABILITY(x) INFORMER_INTERNAL_THREAD_ANNOTATION(assert_shared_capability(x))

/// On a function: it returns a reference to the capability `x`.
#define INFORMER_RETURN_CAPABILITY(x) INFORMER_INTERNAL_THREAD_ANNOTATION(lock_returned(x))

/// On a class: its objects are capabilities (mutexes); `x` names the kind in diagnostics.
#define INFORMER_CAPABILITY(x) INFORMER_INTERNAL_THREAD_ANNOTATION(capability(x))
/// On a class: an RAII type that acquires capabilities in its constructor and releases them in
/// its destructor.
#define INFORMER_SCOPED_CAPABILITY INFORMER_INTERNAL_THREAD_ANNOTATION(scoped_lockable)

/// On a function: do not check it. Every use says why the analysis cannot see the locking.
#define INFORMER_NO_THREAD_SAFETY_ANALYSIS INFORMER_INTERNAL_THREAD_ANNOTATION(no_thread_safety_analysis)
