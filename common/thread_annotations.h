// Clang thread-safety annotations (LevelDB's port/thread_annotations.h): the lock contract of
// shared state written in its declaration, checked by clang's -Wthread-safety and a no-op
// elsewhere.
#pragma once

#if defined(__clang__)
#define RMA_THREAD_ANNOTATION(x) __attribute__((x))
#else
#define RMA_THREAD_ANNOTATION(x)
#endif

#define RMA_GUARDED_BY(x) RMA_THREAD_ANNOTATION(guarded_by(x))
#define RMA_REQUIRES(...) RMA_THREAD_ANNOTATION(requires_capability(__VA_ARGS__))
#define RMA_EXCLUDES(...) RMA_THREAD_ANNOTATION(locks_excluded(__VA_ARGS__))
#define RMA_CAPABILITY(x) RMA_THREAD_ANNOTATION(capability(x))
#define RMA_SCOPED_CAPABILITY RMA_THREAD_ANNOTATION(scoped_lockable)
#define RMA_ACQUIRE(...) RMA_THREAD_ANNOTATION(acquire_capability(__VA_ARGS__))
#define RMA_RELEASE(...) RMA_THREAD_ANNOTATION(release_capability(__VA_ARGS__))
#define RMA_NO_THREAD_SAFETY_ANALYSIS RMA_THREAD_ANNOTATION(no_thread_safety_analysis)
