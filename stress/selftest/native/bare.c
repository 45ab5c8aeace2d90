/* mmrace bench: the bare pthread loop the native engine is measured against.
 *
 * N threads; each round the caller releases them through the same gate as the racer (gate.h),
 * each thread calls mmap(base, page, READ|WRITE, PRIVATE|ANONYMOUS|FIXED_NOREPLACE) once,
 * and when all are done the caller unmaps the page (only when a thread's mmap returned it:
 * NOREPLACE never replaces anything, so nothing but our own page is ever unmapped). Nothing is
 * recorded but the counts below. Built as a shared library by `stress.harness.build_native`
 * and called with ctypes; part of mmrace (MIT). */
#include "gate.h"

#include <pthread.h>
#include <stdlib.h>
#include <sys/mman.h>

#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif

typedef struct {
    int threads, spin, index;
    uintptr_t base;
    size_t page;
    mmr_word *gen, *done;
    _Atomic int *stop;
    int64_t *calls, *rets; /* this round's stamps, one per thread */
    long *results;
} bare_arg;

static void *bare_worker(void *p) {
    bare_arg *a = p;
    uint32_t seen = 0;
    for (;;) {
        seen = mmr_wait(a->gen, mmr_differs, seen, a->spin, 0, NULL);
        if (atomic_load(a->stop)) return NULL;
        int64_t call = mmr_now();
        long res = syscall(SYS_mmap, a->base, a->page, PROT_READ | PROT_WRITE,
                           MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
        a->rets[a->index] = mmr_now();
        a->calls[a->index] = call;
        a->results[a->index] = res;
        mmr_bump(a->done);
    }
}

/* Run rounds for `seconds`; out: [rounds, elapsed ns, rounds with all calls in flight at one
 * instant, rounds nobody won, wins of thread 0 .. threads-1]. Returns 0, or -1 if threads
 * cannot start. */
int mmr_bare(int threads, uint64_t base, uint64_t page, double seconds, int64_t *out) {
    mmr_word gen = {0}, done = {0};
    _Atomic int stop = 0;
    pthread_t *tids = calloc((size_t)threads, sizeof *tids);
    bare_arg *args = calloc((size_t)threads, sizeof *args);
    int64_t *calls = calloc((size_t)threads, sizeof *calls);
    int64_t *rets = calloc((size_t)threads, sizeof *rets);
    long *results = calloc((size_t)threads, sizeof *results);
    int spin = mmr_spin_for(threads + 1), wait_spin = spin / 10, started = 0;
    for (int i = 0; i < threads; i++) {
        args[i] = (bare_arg){threads, spin, i, base, page, &gen, &done, &stop, calls, rets, results};
        if (pthread_create(&tids[i], NULL, bare_worker, &args[i])) break;
        started++;
    }
    int64_t rounds = 0, full = 0, none = 0;
    for (int i = 0; i < 4 + threads; i++) out[i] = 0;
    int64_t start = mmr_now(), end = start + (int64_t)(seconds * 1e9), now = start;
    if (started == threads) {
        while (now < end) {
            mmr_bump(&gen);
            uint32_t want = (uint32_t)(rounds + 1) * (uint32_t)threads;
            mmr_wait(&done, mmr_reaches, want, wait_spin, 0, NULL);
            int64_t latest_call = 0, earliest_ret = INT64_MAX;
            int winner = -1;
            for (int i = 0; i < threads; i++) {
                if (calls[i] > latest_call) latest_call = calls[i];
                if (rets[i] < earliest_ret) earliest_ret = rets[i];
                if (results[i] == (long)base) winner = i;
            }
            full += threads >= 2 && latest_call < earliest_ret;
            if (winner >= 0) {
                out[4 + winner]++;
                syscall(SYS_munmap, base, page);
            } else {
                none++;
            }
            rounds++;
            now = mmr_now();
        }
    }
    atomic_store(&stop, 1);
    mmr_bump(&gen);
    for (int i = 0; i < started; i++) pthread_join(tids[i], NULL);
    free(tids);
    free(args);
    free(calls);
    free(rets);
    free(results);
    out[0] = rounds;
    out[1] = now - start;
    out[2] = full;
    out[3] = none;
    return started == threads ? 0 : -1;
}
