/* mmrace native racer: the start gate and the stamps, shared by racer.c and the bench's bare loop.
 *
 * The gate is built for machines with fewer cores than threads (CI has 2): a waiting thread
 * spins on an atomic word for a bounded time (long when it has a core of its own, short
 * otherwise), then sleeps in FUTEX_WAIT on that word; the releaser bumps the word and issues one
 * FUTEX_WAKE only when some thread announced that it sleeps. No sched_yield (erratic when
 * threads outnumber cores) and nothing is pinned. This file is part of mmrace (MIT); it is
 * compiled on first use into a per-user cache, never shipped as a binary. */
#ifndef MMRACE_GATE_H
#define MMRACE_GATE_H
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define MMR_SPIN_LONG 100000 /* ns a waiter with a core of its own spins, at most */
#define MMR_SPIN_SHORT 3000   /* ns a waiter spins when threads outnumber cores, at most */

static inline int64_t mmr_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static inline void mmr_pause(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ volatile("yield");
#endif
}

static inline long mmr_futex(_Atomic uint32_t *word, int op, uint32_t val,
                             const struct timespec *timeout) {
    return syscall(SYS_futex, (uint32_t *)word, op | FUTEX_PRIVATE_FLAG, val, timeout, NULL, 0);
}

/* A word threads wait on, with the count of those asleep on it. */
typedef struct {
    _Atomic uint32_t value;
    _Atomic uint32_t sleepers;
} mmr_word;

static inline void mmr_wake(mmr_word *w) {
    if (atomic_load_explicit(&w->sleepers, memory_order_seq_cst))
        mmr_futex(&w->value, FUTEX_WAKE, INT_MAX, NULL);
}

/* Bump the word (a new round, one more thread done...) and wake its sleepers. */
static inline uint32_t mmr_bump(mmr_word *w) {
    uint32_t now = atomic_fetch_add_explicit(&w->value, 1, memory_order_seq_cst) + 1;
    mmr_wake(w);
    return now;
}

/* Wait while `pred(value, arg)` is false, spinning `spin` ns first, then sleeping; returns the
 * value seen. deadline_ns 0: no deadline; else returns early (pred still false) once
 * CLOCK_MONOTONIC passes it. *spun (unless NULL): 1 when the spin was enough. */
static inline uint32_t mmr_wait(mmr_word *w, int (*pred)(uint32_t, uint32_t), uint32_t arg,
                                int spin, int64_t deadline_ns, int *spun) {
    uint32_t v = atomic_load_explicit(&w->value, memory_order_acquire);
    if (!pred(v, arg) && spin > 0) {
        int64_t until = mmr_now() + spin;
        do {
            for (int i = 0; i < 16 && !pred(v, arg); i++) {
                mmr_pause();
                v = atomic_load_explicit(&w->value, memory_order_acquire);
            }
        } while (!pred(v, arg) && mmr_now() < until);
    }
    if (spun) *spun = pred(v, arg);
    while (!pred(v, arg)) {
        struct timespec ts, *tp = NULL;
        if (deadline_ns) {
            int64_t left = deadline_ns - mmr_now();
            if (left <= 0) return v;
            ts.tv_sec = left / 1000000000;
            ts.tv_nsec = left % 1000000000;
            tp = &ts;
        }
        atomic_fetch_add_explicit(&w->sleepers, 1, memory_order_seq_cst);
        v = atomic_load_explicit(&w->value, memory_order_seq_cst);
        if (!pred(v, arg)) mmr_futex(&w->value, FUTEX_WAIT, v, tp);
        atomic_fetch_sub_explicit(&w->sleepers, 1, memory_order_seq_cst);
        v = atomic_load_explicit(&w->value, memory_order_acquire);
    }
    return v;
}

static inline int mmr_differs(uint32_t v, uint32_t seen) { return v != seen; }
static inline int mmr_reaches(uint32_t v, uint32_t want) { return (int32_t)(v - want) >= 0; }

static inline int mmr_cores(void) {
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    return cores > 0 ? (int)cores : 1;
}

/* Spin ns for a waiter: long when all `threads` have a core each, else short. */
static inline int mmr_spin_for(int threads) {
    return mmr_cores() >= threads ? MMR_SPIN_LONG : MMR_SPIN_SHORT;
}

/* An adaptive spin (as adaptive mutexes do): doubled (plus 1 us) up to `max` after a wait the
 * spin was enough for, halved after one that had to sleep or gave up. On idle cores it stays
 * long; on a loaded machine, where a spinning thread only delays the ones that need the core
 * (and is scheduled late itself once it sleeps), it shrinks towards pure futex waits. */
typedef struct {
    int ns, max;
} mmr_spin;

static inline void mmr_adapt(mmr_spin *s, int enough) {
    if (enough)
        s->ns = s->ns * 2 + 1000 > s->max ? s->max : s->ns * 2 + 1000;
    else
        s->ns /= 2;
}

#endif
