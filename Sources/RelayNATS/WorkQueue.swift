// A FIFO handed from any thread to one dedicated pthread, and that thread.

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An unbounded FIFO guarded by a pthread mutex, with a condition variable its single consumer
/// sleeps on. `push` never blocks beyond the mutex; the consumer takes everything queued at once.
///
/// `@unchecked Sendable`: `jobs` and `closed` are only touched with `mutex` held; the mutex and
/// condition live at fixed heap addresses for the object's lifetime.
final class WorkQueue<Job: Sendable>: @unchecked Sendable {
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let condition = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    private var jobs: [Job] = []
    private var closed = false

    init() {
        pthread_mutex_init(mutex, nil)
        var attributes = pthread_condattr_t()
        pthread_condattr_init(&attributes)
        #if os(Linux)
        // Timed waits measure on the monotonic clock, immune to wall-clock steps.
        pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC)
        #endif
        pthread_cond_init(condition, &attributes)
        pthread_condattr_destroy(&attributes)
    }

    deinit {
        pthread_cond_destroy(condition)
        pthread_mutex_destroy(mutex)
        condition.deallocate()
        mutex.deallocate()
    }

    /// Appends `job`; false (and dropped) once the queue is closed.
    @discardableResult
    func push(_ job: Job) -> Bool {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        guard !closed else { return false }
        jobs.append(job)
        if jobs.count == 1 { pthread_cond_signal(condition) }
        return true
    }

    /// Stops accepting jobs and wakes the consumer; what was queued can still be taken.
    func close() {
        pthread_mutex_lock(mutex)
        closed = true
        pthread_cond_signal(condition)
        pthread_mutex_unlock(mutex)
    }

    /// Everything queued, in order, waiting until there is something, the queue is closed, or
    /// `timeoutMillis` passed (nil waits without limit). `closed` is true once the queue is closed.
    func takeAll(timeoutMillis: Int64?) -> (jobs: [Job], closed: Bool) {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        if jobs.isEmpty && !closed {
            if let timeoutMillis {
                var deadline = timespec()
                #if os(Linux)
                clock_gettime(CLOCK_MONOTONIC, &deadline)
                #else
                clock_gettime(CLOCK_REALTIME, &deadline)
                #endif
                let nanoseconds = Int64(deadline.tv_nsec) + (timeoutMillis % 1000) * 1_000_000
                deadline.tv_sec += Int(timeoutMillis / 1000 + nanoseconds / 1_000_000_000)
                deadline.tv_nsec = Int(nanoseconds % 1_000_000_000)
                while jobs.isEmpty && !closed {
                    if pthread_cond_timedwait(condition, mutex, &deadline) == ETIMEDOUT { break }
                }
            } else {
                while jobs.isEmpty && !closed { pthread_cond_wait(condition, mutex) }
            }
        }
        var taken: [Job] = []
        swap(&taken, &jobs)
        return (taken, closed)
    }
}

/// Starts a detached pthread named `name` (at most 15 bytes on Linux) running `body`.
/// Returns false when the system refuses a new thread.
func startThread(name: String, _ body: @escaping @Sendable () -> Void) -> Bool {
    final class Box {
        let name: String
        let body: @Sendable () -> Void
        init(name: String, body: @escaping @Sendable () -> Void) {
            self.name = name
            self.body = body
        }
    }
    let box = Unmanaged.passRetained(Box(name: name, body: body)).toOpaque()
    #if os(Linux)
    var thread = pthread_t()
    #else
    var thread: pthread_t?
    #endif
    let result = pthread_create(
        &thread, nil,
        { raw in
            let box = Unmanaged<Box>.fromOpaque(raw!).takeRetainedValue()
            setCurrentThreadName(box.name)
            box.body()
            return nil
        }, box)
    guard result == 0 else {
        Unmanaged<Box>.fromOpaque(box).release()
        return false
    }
    #if os(Linux)
    pthread_detach(thread)
    #else
    if let thread { pthread_detach(thread) }
    #endif
    return true
}

/// Names the calling thread (visible in `top -H`, gdb, crash reports). Glibc declares
/// `pthread_setname_np` only under `_GNU_SOURCE`, which Swift's Glibc module does not set, so it
/// is looked up at run time.
private func setCurrentThreadName(_ name: String) {
    #if os(Linux)
    typealias SetName = @convention(c) (pthread_t, UnsafePointer<CChar>) -> Int32
    guard let symbol = dlsym(nil, "pthread_setname_np") else { return }
    let setName = unsafeBitCast(symbol, to: SetName.self)
    _ = setName(pthread_self(), String(decoding: name.utf8.prefix(15), as: UTF8.self))
    #else
    pthread_setname_np(name)
    #endif
}
