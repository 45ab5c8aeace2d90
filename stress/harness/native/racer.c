/* mmrace native racer: N threads race raw mmap/munmap/mprotect system calls for the kernel
 * target (stress/harness/_native.py loads it with ctypes) and for the static native agent
 * (agent.c includes this file).
 *
 * A round: the caller hands over the ops (7 words each: kind, addr, length, prot, flags, fd,
 * offset), plan after plan, with offsets[plans + 1] saying where each plan starts, and an out
 * buffer of 3 words per op (result, call ns, return ns; -1 = not started / not returned).
 *
 * Threads: the caller is thread 0 and runs a plan itself; threads 1 .. N-1 are pthreads
 * created once. The gate (gate.h) is designed for fewer cores than threads. "The group" is
 * threads 0 .. min(N, cores)-1 (each can have a core of its own). Between rounds a worker
 * spins on the round word (adaptively: up to 100 us in the group, 3 us outside it, halved
 * after a spin that was not enough, doubled after one that was), then sleeps in FUTEX_WAIT.
 * mmr_round bumps the round word and wakes the sleepers (one FUTEX_WAKE, only when some thread
 * sleeps); the group then meets (each waits, spinning, at most 20 us for the others: a thread
 * the kernel is slow to run does not hold the round up) and calls at once; the caller runs
 * its own plan, then waits for the workers (adaptive spin of at most 3 us, then FUTEX_WAIT
 * with the caller's deadline). Thread t runs plan (t + rotation) % N, the rotation moving by
 * one each round, so no task is always released first (and none always last).
 * Tuning (environment, read by mmr_open): MMRACE_GATE_SPIN_NS (the group's spin bound),
 * MMRACE_GATE_PATIENCE_NS (the meeting's), MMRACE_GATE_ADAPT_MEET=1 (the meeting adapts too).
 * Stamps are CLOCK_MONOTONIC ns (time.monotonic_ns() in Python), taken right before and after
 * each system call; results use the raw convention (an address or 0, else -errno).
 * A round whose workers miss the deadline returns 1: the racer is then unusable (a thread is
 * stuck in a call) and the caller must never free its buffers or the racer. (A call of the
 * caller's own plan that never returns cannot be timed out: the caller is in it.)
 *
 * Batches (mmr_batch): many rounds per call, so the threads stay awake between rounds (no
 * Python between them). Each round is a race as above (same gate, rotation, stamps, deadline)
 * followed by its tail: serial ops the caller thread runs once every worker finished (the
 * runner's cleanup and footprint check), stamped like the race calls. The batch stops early,
 * before that round's tail, after a race that needs Python: a worker missed the deadline
 * (MMR_HUNG, the racer is stuck as above) or an mmap succeeded at another address than it
 * asked for (MMR_MOVED: the caller must unmap it before later rounds run); and after a tail
 * whose mmap was answered with another address (MMR_STRAY: a footprint-check probe to undo).
 *
 * Debug switches (tests only, mmr_debug): forge_task reports a failed mmap of that task as a
 * success at the requested address (a lie the checker must catch); hang_task never issues its
 * first call when a worker runs it (a hung call); move_task issues its mmaps `length` bytes
 * above the address asked for (the flags ignored: a mapping placed elsewhere) and reports
 * where it landed. This file is part of mmrace (MIT). */
#include "gate.h"

#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define MMR_OP_FIELDS 7
#define MMR_REC_FIELDS 3
#define MMR_ABI 4
#define MMR_PATIENCE 20000 /* ns the threads with a core of their own wait for each other */
enum { MMR_MMAP = 0, MMR_MUNMAP = 1, MMR_MPROTECT = 2 };
enum { MMR_DONE = 0, MMR_HUNG = 1, MMR_MOVED = 2, MMR_STRAY = 3 }; /* why a batch ended */

typedef struct mmr_racer mmr_racer;

typedef struct {
    mmr_racer *racer;
    int index;
    mmr_spin round; /* waiting for the next round */
    mmr_spin meet;  /* the group's meeting */
} mmr_thread_arg;

struct mmr_racer {
    int threads;
    int group;      /* threads 0 .. group-1 have a core each (they meet before calling) */
    int adapt_meet; /* the meeting's patience adapts too */
    mmr_spin done_spin; /* the caller waiting for the workers */
    mmr_word gen;   /* rounds released */
    mmr_word ready; /* the group's arrivals, all rounds together */
    mmr_word done;  /* finished workers, all rounds together */
    mmr_word hang;  /* never changes: a hung thread sleeps on it */
    uint32_t round;
    _Atomic int stop;
    int plans;
    int rotation;
    const uint64_t *ops;
    const int32_t *offsets;
    int64_t *out;
    int forge_task;
    int hang_task;
    int move_task;
    pthread_t *tids;
    mmr_thread_arg *args; /* args[0]: the caller's spins */
};

long mmr_call(const uint64_t *op) {
    long res;
    switch (op[0]) {
    case MMR_MMAP:
        res = syscall(SYS_mmap, op[1], op[2], op[3], op[4], op[5], op[6]);
        break;
    case MMR_MUNMAP:
        res = syscall(SYS_munmap, op[1], op[2]);
        break;
    case MMR_MPROTECT:
        res = syscall(SYS_mprotect, op[1], op[2], op[3]);
        break;
    default:
        return -EINVAL;
    }
    return res == -1 ? -errno : res;
}

static void mmr_run_plan(mmr_racer *r, int plan, int worker) {
    int lo = r->offsets[plan], hi = r->offsets[plan + 1];
    for (int i = lo; i < hi; i++) {
        const uint64_t *op = r->ops + (size_t)i * MMR_OP_FIELDS;
        int64_t *rec = r->out + (size_t)i * MMR_REC_FIELDS;
        int64_t call = mmr_now();
        rec[1] = call;
        if (worker && plan == r->hang_task)
            for (;;) mmr_wait(&r->hang, mmr_differs, 0, 0, 0, NULL);
        long res;
        if (plan == r->move_task && op[0] == MMR_MMAP) {
            uint64_t moved[MMR_OP_FIELDS];
            memcpy(moved, op, sizeof moved);
            moved[1] += moved[2];
            res = mmr_call(moved);
        } else {
            res = mmr_call(op);
        }
        int64_t ret = mmr_now();
        if (plan == r->forge_task && res < 0 && op[0] == MMR_MMAP) res = (long)op[1];
        rec[0] = res;
        rec[2] = ret;
    }
}

/* The group's meeting: wait until the group has arrived in this round (arrivals count up over
 * all rounds), spinning at most t->meet.ns (then go anyway). */
static void mmr_meet(mmr_racer *r, mmr_thread_arg *t, uint32_t round) {
    uint32_t want = round * (uint32_t)r->group;
    uint32_t got = atomic_fetch_add(&r->ready.value, 1) + 1;
    if (mmr_reaches(got, want)) {
        if (r->adapt_meet) mmr_adapt(&t->meet, 1);
        return;
    }
    int met = 0;
    mmr_wait(&r->ready, mmr_reaches, want, t->meet.ns, mmr_now() + t->meet.ns, &met);
    if (r->adapt_meet) mmr_adapt(&t->meet, met);
}

static void *mmr_worker(void *p) {
    mmr_thread_arg *a = p;
    mmr_racer *r = a->racer;
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL); /* signals go to the caller's thread */
    uint32_t seen = 0;
    for (;;) {
        int spun = 0;
        seen = mmr_wait(&r->gen, mmr_differs, seen, a->round.ns, 0, &spun);
        mmr_adapt(&a->round, spun);
        if (atomic_load(&r->stop)) return NULL;
        if (a->index < r->group) mmr_meet(r, a, seen);
        int plan = (a->index + r->rotation) % r->threads;
        if (plan < r->plans) mmr_run_plan(r, plan, 1);
        mmr_bump(&r->done);
    }
}

int mmr_abi(void) { return MMR_ABI; }

void mmr_close(mmr_racer *r);

static int mmr_knob(const char *name, int fallback) {
    const char *text = getenv(name); /* tuning, read once per racer */
    return text && *text ? atoi(text) : fallback;
}

/* A racer of `threads` threads (the caller and threads - 1 workers). NULL if the workers
 * cannot start. */
mmr_racer *mmr_open(int threads) {
    if (threads < 1) return NULL;
    mmr_racer *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    r->threads = threads;
    r->forge_task = r->hang_task = r->move_task = -1;
    r->tids = calloc((size_t)threads, sizeof *r->tids);
    r->args = calloc((size_t)threads, sizeof *r->args);
    if (!r->tids || !r->args) {
        free(r->tids);
        free(r->args);
        free(r);
        return NULL;
    }
    int cores = mmr_cores();
    r->group = cores < threads ? cores : threads;
    int spin_long = mmr_knob("MMRACE_GATE_SPIN_NS", MMR_SPIN_LONG);
    int patience = mmr_knob("MMRACE_GATE_PATIENCE_NS", MMR_PATIENCE);
    r->adapt_meet = mmr_knob("MMRACE_GATE_ADAPT_MEET", 0);
    int done_max = mmr_knob("MMRACE_GATE_DONE_NS", MMR_SPIN_SHORT);
    r->done_spin = (mmr_spin){done_max, done_max};
    for (int i = 0; i < threads; i++) {
        int spin = i < r->group ? spin_long : MMR_SPIN_SHORT;
        r->args[i] = (mmr_thread_arg){r, i, {spin, spin}, {patience, patience}};
    }
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 1 << 16);
    for (int i = 1; i < threads; i++) {
        if (pthread_create(&r->tids[i], &attr, mmr_worker, &r->args[i])) {
            r->threads = i; /* close joins the ones that started */
            pthread_attr_destroy(&attr);
            mmr_close(r);
            return NULL;
        }
    }
    pthread_attr_destroy(&attr);
    return r;
}

void mmr_debug(mmr_racer *r, int forge_task, int hang_task, int move_task) {
    r->forge_task = forge_task;
    r->hang_task = hang_task;
    r->move_task = move_task;
}

/* One round (see the top of the file): 0 when every thread finished, 1 past the deadline
 * (timeout_ns after the release; 0: no deadline). */
int mmr_round(mmr_racer *r, int plans, const uint64_t *ops, const int32_t *offsets, int64_t *out,
              int64_t timeout_ns) {
    memset(out, 0xff, (size_t)offsets[plans] * MMR_REC_FIELDS * sizeof *out);
    r->plans = plans;
    r->ops = ops;
    r->offsets = offsets;
    r->out = out;
    r->rotation = (r->rotation + 1) % r->threads;
    uint32_t round = ++r->round;
    int64_t deadline = timeout_ns > 0 ? mmr_now() + timeout_ns : 0;
    atomic_fetch_add_explicit(&r->gen.value, 1, memory_order_seq_cst);
    mmr_wake(&r->gen); /* only when some worker sleeps */
    mmr_meet(r, &r->args[0], round);
    int plan = r->rotation % r->threads; /* thread 0's plan */
    if (plan < plans) mmr_run_plan(r, plan, 0);
    uint32_t want = round * (uint32_t)(r->threads - 1);
    int spun = 0;
    uint32_t got = mmr_wait(&r->done, mmr_reaches, want, r->done_spin.ns, deadline, &spun);
    mmr_adapt(&r->done_spin, spun);
    return mmr_reaches(got, want) ? 0 : 1;
}

/* Did an mmap among ops lo .. hi-1 succeed at another address than the one it asked for? */
static int mmr_moved(const uint64_t *ops, const int64_t *out, int lo, int hi) {
    for (int i = lo; i < hi; i++) {
        const uint64_t *op = ops + (size_t)i * MMR_OP_FIELDS;
        int64_t res = out[(size_t)i * MMR_REC_FIELDS];
        if (op[0] == MMR_MMAP && res >= 0 && (uint64_t)res != op[1]) return 1;
    }
    return 0;
}

/* `rounds` rounds (see the top of the file). shape, round after round: the round's plan count
 * n, then n + 2 op indices counted from the round's first op (where each plan starts, where the
 * tail starts, where it ends); ops and out hold the rounds one after another. Returns the
 * rounds whose race ran; *why says why it stopped (MMR_DONE: all ran, tails included). Calls
 * never started keep -1 stamps. */
int mmr_batch(mmr_racer *r, int rounds, const int32_t *shape, const uint64_t *ops, int64_t *out,
              int64_t timeout_ns, int32_t *why) {
    *why = MMR_DONE;
    for (int j = 0, pos = 0; j < rounds; j++) {
        int plans = shape[pos];
        const int32_t *offsets = shape + pos + 1;
        int lo = offsets[plans], hi = offsets[plans + 1];
        pos += plans + 3;
        memset(out + (size_t)lo * MMR_REC_FIELDS, 0xff,
               (size_t)(hi - lo) * MMR_REC_FIELDS * sizeof *out);
        if (mmr_round(r, plans, ops, offsets, out, timeout_ns)) {
            *why = MMR_HUNG;
            return j + 1;
        }
        if (mmr_moved(ops, out, 0, lo)) {
            *why = MMR_MOVED;
            return j + 1;
        }
        for (int i = lo; i < hi; i++) {
            int64_t *rec = out + (size_t)i * MMR_REC_FIELDS;
            rec[1] = mmr_now();
            rec[0] = mmr_call(ops + (size_t)i * MMR_OP_FIELDS);
            rec[2] = mmr_now();
        }
        if (mmr_moved(ops, out, lo, hi)) {
            *why = MMR_STRAY;
            return j + 1;
        }
        ops += (size_t)hi * MMR_OP_FIELDS;
        out += (size_t)hi * MMR_REC_FIELDS;
    }
    return rounds;
}

/* Stop and join the workers, free everything (never after a round that timed out). */
void mmr_close(mmr_racer *r) {
    if (!r) return;
    atomic_store(&r->stop, 1);
    mmr_bump(&r->gen);
    for (int i = 1; i < r->threads; i++) pthread_join(r->tids[i], NULL);
    free(r->tids);
    free(r->args);
    free(r);
}
