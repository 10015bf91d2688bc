"""The worker threads the C loops share their blocks with, as a small C library.

A fused loop (:mod:`.c_fused`) or a loop nest (:mod:`.c_axes`) is cut into blocks; its
``sg_kernel`` hands them to :func:`runner`'s C function ``sg_run(blocks, task, context)``,
which runs ``task(context, b)`` for every block ``b``: the calling thread and the worker
threads take blocks as they come free (an atomic counter), and the call returns as soon
as **every block is done** -- it never waits for a worker that has not taken one.

That is the difference from an OpenMP ``parallel for``, which the loops used before: a
parallel region ends when its *last thread* has arrived, so on a busy machine, where a
woken worker may wait milliseconds for a core, the calling thread waited for it too,
after doing all the work itself (on the 2-core development machine at load average 4,
the W2 gradient at n = 10^6 took 0.5 ms at best and 14 to 20 ms as median with OpenMP's
two threads, 1 ms and 1.6 ms with one).  Here a late worker finds no block left and goes
back to sleep; the most the caller waits for is the blocks workers have started.  Should
the calling thread lose its core to the worker it wakes, or a worker be held up in the
middle of a block (preempted by another process), so that the call took longer than the
calling thread alone would have (the time of its own blocks scaled to all blocks), the
next calls run on the calling thread alone: 1, then 2, 4, ... up to 64
after further such calls, back to the workers after a call that gained (results do not
depend on it: below).

Details: the workers (one fewer than the threads, :func:`thread_count`) are started on
the first parallel call and sleep on a condition variable between calls.  A job is named
by a generation number kept with the next block's index in one 64-bit atomic word, so a
worker that wakes after its job has ended (and another has begun) cannot take a block of
the new job with the old job's task.  One job runs at a time; a call from another thread
meanwhile runs its blocks itself, serially.  In a child process after ``fork`` (which
copies no threads) the workers are started again on first use.  Which block a thread
runs does not change any result: each block writes its own outputs and its own partial
sums, which the kernel adds in block order.
"""
from __future__ import annotations

import ctypes
import os
import threading

from .cbuild import load_c

__all__ = ["RUNTIME_SOURCE", "thread_count", "runner", "forget_slow_calls"]

RUNTIME_SOURCE = r"""
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <time.h>

typedef void (*sg_task)(void*, long);

static pthread_mutex_t job_lock = PTHREAD_MUTEX_INITIALIZER;   /* guards the job's fields */
static pthread_cond_t job_posted = PTHREAD_COND_INITIALIZER;
static pthread_mutex_t caller_lock = PTHREAD_MUTEX_INITIALIZER; /* one job at a time */
static unsigned long job_generation;   /* under job_lock */
static sg_task job_task;
static void* job_context;
static long job_blocks;
static _Atomic unsigned long next_block;  /* (generation << 32) | index of the next block */
static _Atomic long blocks_done;
static int workers_started;
static int at_fork_registered;

/* Take and run blocks of job `generation` until none is left (or another job began);
   the number this thread ran. */
static long run_blocks(unsigned long generation, sg_task task, void* context, long blocks) {
    const unsigned long tag = (generation & 0xffffffffUL) << 32;
    unsigned long ticket = atomic_load(&next_block);
    long ran = 0;
    for (;;) {
        if ((ticket & ~0xffffffffUL) != tag || (long)(ticket & 0xffffffffUL) >= blocks) return ran;
        if (atomic_compare_exchange_weak(&next_block, &ticket, ticket + 1)) {
            task(context, (long)(ticket & 0xffffffffUL));
            atomic_fetch_add(&blocks_done, 1);
            ran++;
            ticket = atomic_load(&next_block);
        }
    }
}

static double seconds(void) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)now.tv_sec + 1e-9 * (double)now.tv_nsec;
}

static void* worker(void* unused) {
    (void)unused;
    unsigned long seen;
    pthread_mutex_lock(&job_lock);
    seen = job_generation;
    for (;;) {
        while (job_generation == seen) pthread_cond_wait(&job_posted, &job_lock);
        seen = job_generation;
        sg_task task = job_task;
        void* context = job_context;
        long blocks = job_blocks;
        pthread_mutex_unlock(&job_lock);
        run_blocks(seen, task, context, blocks);
        pthread_mutex_lock(&job_lock);
    }
    return NULL;
}

static void after_fork_in_child(void) {  /* the child has none of the workers */
    pthread_mutex_init(&job_lock, NULL);
    pthread_cond_init(&job_posted, NULL);
    pthread_mutex_init(&caller_lock, NULL);
    workers_started = 0;
}

/* Start `workers` threads (once; 0 when they could not be created). */
static void start_workers(int workers) {
    if (!at_fork_registered) {
        pthread_atfork(NULL, NULL, after_fork_in_child);
        at_fork_registered = 1;
    }
    workers_started = 1;
    for (int w = 0; w < workers; w++) {
        pthread_t thread;
        pthread_attr_t attributes;
        pthread_attr_init(&attributes);
        pthread_attr_setdetachstate(&attributes, PTHREAD_CREATE_DETACHED);
        pthread_create(&thread, &attributes, worker, NULL);  /* (none started: the caller does all) */
        pthread_attr_destroy(&attributes);
    }
}

static int worker_count = 0;
static long calls_alone = 0;  /* (under caller_lock) calls to run on the calling thread ... */
static long backoff = 0;      /* ... after a call the workers made slower than one thread */

void sg_set_threads(int threads) { worker_count = threads > 1 ? threads - 1 : 0; }

void sg_forget_slow_calls(void) {  /* the next call shares its blocks again */
    pthread_mutex_lock(&caller_lock);
    calls_alone = backoff = 0;
    pthread_mutex_unlock(&caller_lock);
}

void sg_run(long blocks, sg_task task, void* context) {
    if (blocks <= 1 || worker_count == 0 || pthread_mutex_trylock(&caller_lock) != 0) {
        for (long b = 0; b < blocks; b++) task(context, b);  /* another job is running: alone */
        return;
    }
    if (calls_alone > 0) {
        calls_alone--;
        pthread_mutex_unlock(&caller_lock);
        for (long b = 0; b < blocks; b++) task(context, b);
        return;
    }
    if (!workers_started) start_workers(worker_count);
    const double start = seconds();
    pthread_mutex_lock(&job_lock);
    const unsigned long generation = ++job_generation;
    job_task = task;
    job_context = context;
    job_blocks = blocks;
    atomic_store(&blocks_done, 0);
    atomic_store(&next_block, (generation & 0xffffffffUL) << 32);
    pthread_cond_broadcast(&job_posted);
    pthread_mutex_unlock(&job_lock);
    const double posted = seconds();  /* (waking a worker may have cost this thread its core) */
    const long mine = run_blocks(generation, task, context, blocks);
    const double own = seconds() - posted;
    /* only blocks a worker has taken are left: wait for those (yielding, should that
       worker share this core) */
    for (long spins = 0; atomic_load(&blocks_done) < blocks; spins++)
        if (spins > 64) sched_yield();
    /* slower than this thread alone would have been (it lost its core to the worker it
       woke, and so ran no block, or a worker was held up mid-block)?
       then the next calls run alone: 1, 2, 4, ... up to 64 of them, till one gains */
    if (mine == 0 || seconds() - start > own * (double)blocks / (double)mine) {
        backoff = backoff ? (backoff < 64 ? 2 * backoff : 64) : 1;
        calls_alone = backoff;
    } else {
        backoff = 0;
    }
    pthread_mutex_unlock(&caller_lock);
}
"""
"""The C source of the thread pool (compiled once per machine, like every kernel)."""

_FLAGS = ["-O2", "-pthread", "-shared", "-fPIC"]
_lock = threading.Lock()
_runner: list = []  # [address of sg_run, or None when one thread]


def thread_count() -> int:
    """The threads a parallel loop uses: ``OMP_NUM_THREADS`` when it is set to a positive
    integer (the usual knob for native loops: ``OMP_NUM_THREADS=1`` keeps every loop on
    the calling thread), else the cores this process may run on.

    >>> thread_count() >= 1
    True
    """
    setting = os.environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()
    if setting.isdigit() and int(setting) > 0:
        return int(setting)
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # (not on Linux)
        return os.cpu_count() or 1


def runner() -> int | None:
    """The address of the C function ``sg_run`` (see the module docstring) that a kernel
    calls to share its blocks among the threads, or None when there is one thread (the
    kernel then runs its blocks itself).  Compiled, loaded and told the thread count
    once per process (read at the first call: set ``OMP_NUM_THREADS`` before it)."""
    with _lock:
        if not _runner:
            threads = thread_count()
            if threads <= 1:
                _runner.append(None)
            else:
                library, _ = load_c(RUNTIME_SOURCE, _FLAGS)
                library.sg_set_threads.argtypes = [ctypes.c_int]
                library.sg_set_threads(threads)
                _runner.append((library, ctypes.cast(library.sg_run, ctypes.c_void_p).value))
        entry = _runner[0]
    return None if entry is None else entry[1]


def forget_slow_calls() -> None:
    """Share the next loop's blocks with the workers again, however slow the last calls
    with them were (see the module docstring): for tests of the threads, or after the
    machine's load went down."""
    runner()
    with _lock:
        entry = _runner[0]
    if entry is not None:
        entry[0].sg_forget_slow_calls()
