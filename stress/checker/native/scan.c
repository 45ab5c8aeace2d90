/* The fast scan of a history file (stress/checker/_fast.py): read, cut and set aside repeats.
 *
 * Fed the bytes of a history after its header, this reads the operation lines, round records
 * and trailer of the strict, common form (ASCII, no escapes in keys, integers within int64),
 * cuts the calls at the same clean cuts as `_mm_partition.time_segments` at the same candidate
 * points as `StreamCheck`, and gives each complete segment a *key*: its calls in call order
 * with addresses relative to its lowest page when the segment is movable (`_mm_shift`), its
 * tasks numbered in order of appearance, and its real-time order (which call returned before
 * which call was invoked). Two segments with one key have the same linearizability: the
 * second is the first moved by whole pages, with tasks renamed and the same real-time order.
 * A segment whose key belongs to a segment the Python checker proved linearizable is counted
 * and dropped here; every other segment is handed to Python to judge (`mms_queue`).
 *
 * This never judges anything, and it reads only what it fully understands: any line outside
 * the strict form (a mistake, a rarity, non-ASCII bytes, a float, a value out of range) stops
 * the scan with MMS_FALLBACK, and the caller reads the whole file with the Python reader,
 * which accepts what it should and names every problem. A call that starts before a cut
 * already taken gives MMS_OUT_OF_ORDER (the caller checks the file whole, as StreamCheck's
 * OutOfOrder makes it do).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MMS_ABI 1
enum { MMS_MORE = 0, MMS_JUDGE = 1, MMS_FALLBACK = 2, MMS_OUT_OF_ORDER = 3 };
enum { K_MMAP = 0, K_MUNMAP = 1, K_MPROTECT = 2 };
enum { FIELDS = 13 }; /* the fields of a queued call, in `mms_queue`'s array */

#define I64_MAX INT64_MAX
typedef unsigned __int128 u128;
static const u128 U64 = (u128)1 << 64;

typedef struct {
    int64_t task, round, addr, len, prot, flags, fd, off, call, ret, result;
    int64_t seq; /* position in the file: stable sorting */
    int32_t kind, has_ret;
} op_t;

typedef struct { u128 lo, hi; } range_t;

typedef struct {
    void *p;
    size_t n, cap, size;
} vec_t;

static int vec_reserve(vec_t *v, size_t n) {
    if (n <= v->cap) return 0;
    size_t cap = v->cap ? v->cap : 64;
    while (cap < n) cap *= 2;
    void *p = realloc(v->p, cap * v->size);
    if (!p) return -1;
    v->p = p;
    v->cap = cap;
    return 0;
}

static int vec_push(vec_t *v, const void *item) {
    if (vec_reserve(v, v->n + 1)) return -1;
    memcpy((char *)v->p + v->n * v->size, item, v->size);
    v->n++;
    return 0;
}

typedef struct {
    uint64_t hash;
    uint64_t off; /* in the arena; UINT64_MAX: empty slot */
    uint32_t len;
} slot_t;

typedef struct {
    /* params */
    int64_t page, floor, task_size, fixed_flags, growsdown;
    int64_t batch;  /* queue this many calls before MMS_JUDGE */
    int64_t cut_at; /* look for cuts at a candidate point once this many calls are open */
    /* the file */
    int64_t lineno, ops, rounds;
    int trailer;
    char *trailer_text;
    size_t trailer_len;
    const char *why; /* MMS_FALLBACK: a static reason */
    int64_t why_line;
    /* the open calls (not cut yet) */
    vec_t buf;       /* op_t */
    int64_t retry_at;
    int64_t committed; /* the latest return of a call cut off */
    /* segments for Python */
    vec_t queue;     /* op_t */
    vec_t seg_ends;  /* int64_t: end offset of each queued segment in queue */
    vec_t qkeys;     /* uint8_t: the keys of queued segments, back to back */
    vec_t qkey_ends; /* int64_t: end offset of each key (equal to the start: no key) */
    int64_t queued_calls;
    /* keys proved: open addressing over an arena */
    slot_t *slots;
    size_t nslots, used;
    vec_t arena; /* uint8_t */
    size_t arena_cap;
    /* counts */
    int64_t segments, repeated, repeated_calls, largest;
    /* scratch */
    vec_t order, made, trail, merged, key, times, tasks;
    vec_t out; /* int64_t: the queue laid out for Python */
} scan_t;

int mms_abi(void) { return MMS_ABI; }

static void vec_init(vec_t *v, size_t size) { memset(v, 0, sizeof *v); v->size = size; }

scan_t *mms_new(int64_t page, int64_t floor, int64_t task_size, int64_t fixed_flags,
                int64_t growsdown, int64_t batch, int64_t cut_at, int64_t arena_bytes) {
    scan_t *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->page = page;
    s->floor = floor;
    s->task_size = task_size;
    s->fixed_flags = fixed_flags;
    s->growsdown = growsdown;
    s->batch = batch;
    s->cut_at = cut_at;
    s->lineno = 1; /* the header */
    s->committed = -1;
    vec_init(&s->buf, sizeof(op_t));
    vec_init(&s->queue, sizeof(op_t));
    vec_init(&s->seg_ends, sizeof(int64_t));
    vec_init(&s->qkeys, 1);
    vec_init(&s->qkey_ends, sizeof(int64_t));
    vec_init(&s->arena, 1);
    vec_init(&s->order, sizeof(op_t *));
    vec_init(&s->made, sizeof(range_t));
    vec_init(&s->trail, sizeof(range_t));
    vec_init(&s->merged, sizeof(range_t));
    vec_init(&s->key, 1);
    vec_init(&s->times, sizeof(int64_t));
    vec_init(&s->tasks, sizeof(int64_t));
    vec_init(&s->out, sizeof(int64_t));
    s->arena_cap = (size_t)arena_bytes;
    s->nslots = 1 << 12;
    s->slots = malloc(s->nslots * sizeof(slot_t));
    if (!s->slots) { free(s); return NULL; }
    for (size_t i = 0; i < s->nslots; i++) s->slots[i].off = UINT64_MAX;
    return s;
}

void mms_free(scan_t *s) {
    if (!s) return;
    vec_t *all[] = {&s->buf, &s->queue, &s->seg_ends, &s->qkeys, &s->qkey_ends, &s->arena,
                    &s->order, &s->made, &s->trail, &s->merged, &s->key, &s->times,
                    &s->tasks, &s->out};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) free(all[i]->p);
    free(s->slots);
    free(s->trailer_text);
    free(s);
}

/* --- the table of keys proved linearizable ---------------------------------------------- */

static uint64_t hash_bytes(const uint8_t *p, size_t n) {
    uint64_t h = 0x9E3779B97F4A7C15ull ^ n;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        h = (h ^ w) * 0xFF51AFD7ED558CCDull;
        h ^= h >> 32;
    }
    for (; i < n; i++) h = (h ^ p[i]) * 0x100000001B3ull;
    h ^= h >> 29;
    h *= 0xC4CEB9FE1A85EC53ull;
    return h ^ (h >> 32);
}

static slot_t *find_slot(scan_t *s, uint64_t h, const uint8_t *k, size_t n) {
    size_t mask = s->nslots - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        slot_t *slot = &s->slots[i];
        if (slot->off == UINT64_MAX) return slot;
        if (slot->hash == h && slot->len == n &&
            !memcmp((uint8_t *)s->arena.p + slot->off, k, n))
            return slot;
    }
}

static int known(scan_t *s, const uint8_t *k, size_t n) {
    return find_slot(s, hash_bytes(k, n), k, n)->off != UINT64_MAX;
}

static void forget_all(scan_t *s) {
    for (size_t i = 0; i < s->nslots; i++) s->slots[i].off = UINT64_MAX;
    s->used = 0;
    s->arena.n = 0;
}

static int grow_slots(scan_t *s) {
    size_t n = s->nslots * 2;
    slot_t *old = s->slots, *fresh = malloc(n * sizeof(slot_t));
    if (!fresh) return -1;
    for (size_t i = 0; i < n; i++) fresh[i].off = UINT64_MAX;
    size_t oldn = s->nslots;
    s->slots = fresh;
    s->nslots = n;
    for (size_t i = 0; i < oldn; i++) {
        if (old[i].off == UINT64_MAX) continue;
        size_t mask = n - 1, j = old[i].hash & mask;
        while (fresh[j].off != UINT64_MAX) j = (j + 1) & mask;
        fresh[j] = old[i];
    }
    free(old);
    return 0;
}

static int remember(scan_t *s, const uint8_t *k, size_t n) {
    if (s->arena.n + n > s->arena_cap) forget_all(s); /* bounded: start afresh */
    if (2 * (s->used + 1) > s->nslots && grow_slots(s)) return -1;
    uint64_t h = hash_bytes(k, n);
    slot_t *slot = find_slot(s, h, k, n);
    if (slot->off != UINT64_MAX) return 0;
    if (vec_reserve(&s->arena, s->arena.n + n)) return -1;
    memcpy((uint8_t *)s->arena.p + s->arena.n, k, n);
    slot->hash = h;
    slot->off = s->arena.n;
    slot->len = (uint32_t)n;
    s->arena.n += n;
    s->used++;
    return 0;
}

/* --- geometry (mm/_geometry.py) ---------------------------------------------------------- */

static u128 page_length(scan_t *s, int64_t length) {
    u128 len = (uint64_t)length, page = (uint64_t)s->page;
    u128 r = (len + page - 1) / page * page;
    return r < U64 ? r : U64;
}

static range_t page_range(scan_t *s, const op_t *o) {
    range_t r;
    r.lo = (uint64_t)o->addr;
    r.hi = r.lo + page_length(s, o->len);
    if (r.hi > U64) r.hi = U64;
    return r;
}

static int is_mmap_fixed(scan_t *s, const op_t *o) {
    return o->kind == K_MMAP && (o->flags & s->fixed_flags);
}

/* --- cutting (`_mm_partition.time_segments`) --------------------------------------------- */

static int by_call(const void *a, const void *b) {
    const op_t *x = *(op_t *const *)a, *y = *(op_t *const *)b;
    if (x->call != y->call) return x->call < y->call ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static int by_lo(const void *a, const void *b) {
    const range_t *x = a, *y = b;
    if (x->lo != y->lo) return x->lo < y->lo ? -1 : 1;
    return x->hi < y->hi ? -1 : x->hi > y->hi;
}

static size_t merge_ranges(range_t *r, size_t n) { /* in place: sorted, touching joined */
    if (!n) return 0;
    qsort(r, n, sizeof *r, by_lo);
    size_t m = 0;
    for (size_t i = 1; i < n; i++) {
        if (r[i].lo <= r[m].hi) {
            if (r[i].hi > r[m].hi) r[m].hi = r[i].hi;
        } else {
            r[++m] = r[i];
        }
    }
    return m + 1;
}

static int covered(scan_t *s) { /* `_covered(made, trail)` */
    if (vec_reserve(&s->merged, s->trail.n)) return -1;
    range_t *m = s->merged.p, *made = s->made.p;
    memcpy(m, s->trail.p, s->trail.n * sizeof(range_t));
    size_t nm = merge_ranges(m, s->trail.n);
    for (size_t i = 0; i < s->made.n; i++) {
        if (made[i].lo >= made[i].hi) continue;
        size_t lo = 0, hi = nm; /* the last merged range starting at or before made[i].lo */
        while (lo < hi) {
            size_t mid = (lo + hi) / 2;
            if (m[mid].lo <= made[i].lo) lo = mid + 1; else hi = mid;
        }
        if (!lo || m[lo - 1].hi < made[i].hi) return 0;
    }
    return 1;
}

static int take_segment(scan_t *s, op_t **ev, size_t n);

/* Cut the open calls at clean cuts; every complete segment (all but the last) is taken. */
static int cut(scan_t *s, int keep_last) {
    size_t n = s->buf.n;
    if (!n) return 0;
    if (vec_reserve(&s->order, n)) return -1;
    op_t **order = s->order.p, *ops = s->buf.p;
    for (size_t i = 0; i < n; i++) order[i] = &ops[i];
    qsort(order, n, sizeof *order, by_call);
    s->made.n = s->trail.n = 0;
    int64_t max_ret = -1;
    size_t first = 0, compact_at = 64;
    for (size_t k = 0; k < n; k++) {
        op_t *e = order[k];
        int has_unmapped = e->kind == K_MUNMAP && e->has_ret && e->result == 0;
        if (has_unmapped && e->call > max_ret) {
            range_t r = page_range(s, e);
            if (vec_push(&s->trail, &r)) return -1;
        } else {
            s->trail.n = 0;
            range_t r;
            int made = 0;
            if (e->kind == K_MMAP) {
                if (!e->has_ret && !is_mmap_fixed(s, e)) {
                    r.lo = 0, r.hi = U64, made = 1; /* may have mapped anywhere */
                } else if (!is_mmap_fixed(s, e)) {
                    if (e->result >= 0) {
                        r.lo = (uint64_t)e->result;
                        r.hi = r.lo + page_length(s, e->len);
                        if (r.hi > U64) r.hi = U64;
                        made = 1;
                    }
                } else if (!e->has_ret || e->result >= 0) {
                    r = page_range(s, e), made = 1;
                }
            }
            if (made) {
                if (vec_push(&s->made, &r)) return -1;
                if (s->made.n > compact_at) {
                    s->made.n = merge_ranges(s->made.p, s->made.n);
                    compact_at = 2 * s->made.n + 64;
                }
            }
        }
        if (!e->has_ret) max_ret = I64_MAX;
        else if (e->ret > max_ret) max_ret = e->ret;
        if (!s->trail.n || k + 1 == n) continue;
        op_t *nxt = order[k + 1];
        if (max_ret >= nxt->call) continue;
        if (nxt->has_ret && nxt->kind == K_MUNMAP && nxt->result == 0) continue;
        int c = covered(s);
        if (c < 0) return -1;
        if (c) {
            if (take_segment(s, order + first, k + 1 - first)) return -1;
            first = k + 1;
            s->made.n = s->trail.n = 0;
            compact_at = 64;
        }
    }
    size_t rest = n - first;
    if (!keep_last && rest) {
        if (take_segment(s, order + first, rest)) return -1;
        rest = 0;
    }
    /* the last segment stays open, in call order */
    if (first) {
        vec_t kept;
        vec_init(&kept, sizeof(op_t));
        if (vec_reserve(&kept, rest > 64 ? rest : 64)) return -1;
        for (size_t i = 0; i < rest; i++) ((op_t *)kept.p)[i] = *order[first + i];
        kept.n = rest;
        free(s->buf.p);
        s->buf = kept;
    } else if (!rest) {
        s->buf.n = 0;
    }
    return (int)first;
}

/* --- keys -------------------------------------------------------------------------------- */

static int put(scan_t *s, const void *p, size_t n) {
    if (vec_reserve(&s->key, s->key.n + n)) return -1;
    memcpy((uint8_t *)s->key.p + s->key.n, p, n);
    s->key.n += n;
    return 0;
}

static int put64(scan_t *s, int64_t v) { return put(s, &v, 8); }

#define MATRIX_MAX 64    /* segments up to this long: the real-time order as a bit matrix */
#define KEYED_MAX 4096   /* longer segments get no key: always judged */

static int by_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static int64_t rank_of(const int64_t *t, size_t n, int64_t v) {
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (t[mid] < v) lo = mid + 1; else hi = mid;
    }
    return (int64_t)lo;
}

/* The key of a segment (in call order) into s->key; 0: none (it is always judged).
 *
 * Sound when equal keys mean equal linearizability. The key holds every call's arguments and
 * result (moved by whole pages to the segment's lowest page when every call is movable, the
 * condition and proof of `_mm_shift`), its task's number in order of first appearance, and
 * the real-time order. Only *regular* segments get one: each task's calls follow each other
 * in real time (each returned before its task's next call), so program order is part of the
 * real-time order and tasks matter only as names. Then the linearizations of two segments
 * with one key correspond call for call, and so do their results and states. */
static int make_key(scan_t *s, op_t **ev, size_t n) {
    s->key.n = 0;
    if (n > KEYED_MAX) return 0;
    /* tasks numbered in order of appearance; regular: a task's previous call returned before */
    if (vec_reserve(&s->tasks, 4 * n)) return -1;
    int64_t *slot = s->tasks.p; /* pairs (task + 1, index of its latest call), open addressing */
    size_t cap = 1;
    while (cap < 2 * n) cap *= 2;
    for (size_t i = 0; i < cap; i++) slot[2 * i] = 0;
    int64_t names = 0;
    int64_t lo = INT64_MAX, hi = 0;
    int movable = 1;
    for (size_t i = 0; i < n; i++) {
        op_t *e = ev[i];
        size_t j = ((uint64_t)e->task * 0x9E3779B97F4A7C15ull >> 20) & (cap - 1);
        while (slot[2 * j] && slot[2 * j] != e->task + 1) j = (j + 1) & (cap - 1);
        if (slot[2 * j]) {
            op_t *prev = ev[slot[2 * j + 1] >> 20];
            if (!prev->has_ret || prev->ret >= e->call) return 0; /* irregular */
            slot[2 * j + 1] = ((int64_t)i << 20) | (slot[2 * j + 1] & 0xFFFFF);
        } else {
            slot[2 * j] = e->task + 1;
            slot[2 * j + 1] = ((int64_t)i << 20) | names++;
        }
        if (movable) { /* `_mm_shift.movable_span` and the results `Mover.move` accepts */
            if (e->kind == K_MMAP &&
                (!(e->flags & s->fixed_flags) || (e->flags & s->growsdown))) {
                movable = 0;
            } else {
                range_t r = page_range(s, e);
                if (e->addr % s->page || r.lo < (u128)s->floor || r.lo >= r.hi ||
                    r.hi > (u128)s->task_size) {
                    movable = 0;
                } else if (e->has_ret && e->result >= 0 &&
                           e->result != (e->kind == K_MMAP ? e->addr : 0)) {
                    movable = 0;
                } else {
                    if ((int64_t)r.lo < lo) lo = (int64_t)r.lo;
                    if ((int64_t)r.hi > hi) hi = (int64_t)r.hi; /* (hi <= task_size < 2^63) */
                }
            }
        }
    }
    int matrix = n <= MATRIX_MAX;
    uint8_t head[2] = {(uint8_t)(movable ? 1 : 0), (uint8_t)(matrix ? 1 : 0)};
    int64_t d = movable ? lo : 0;
    if (put(s, head, 2) || put64(s, (int64_t)n)) return -1;
    for (size_t i = 0; i < n; i++) {
        op_t *e = ev[i];
        size_t j = ((uint64_t)e->task * 0x9E3779B97F4A7C15ull >> 20) & (cap - 1);
        while (slot[2 * j] != e->task + 1) j = (j + 1) & (cap - 1);
        int64_t result = e->result;
        if (movable && e->has_ret && e->kind == K_MMAP && result >= 0) result -= d;
        int64_t row[10] = {slot[2 * j + 1] & 0xFFFFF, e->kind, e->has_ret, e->addr - d,
                           e->len, e->prot, e->flags, e->fd, e->off,
                           e->has_ret ? result : 0};
        if (put(s, row, sizeof row)) return -1;
    }
    if (matrix) { /* row i: the calls that returned before call i was invoked */
        for (size_t i = 0; i < n; i++) {
            uint64_t bits = 0;
            for (size_t j = 0; j < n; j++)
                if (ev[j]->has_ret && ev[j]->ret < ev[i]->call) bits |= 1ull << j;
            if (put(s, &bits, 8)) return -1;
        }
    } else { /* the ranks of every call and return time among the segment's times */
        if (vec_reserve(&s->times, 2 * n)) return -1;
        int64_t *t = s->times.p;
        size_t m = 0;
        for (size_t i = 0; i < n; i++) {
            t[m++] = ev[i]->call;
            if (ev[i]->has_ret) t[m++] = ev[i]->ret;
        }
        qsort(t, m, sizeof *t, by_i64);
        size_t u = 0;
        for (size_t i = 0; i < m; i++)
            if (!u || t[i] != t[u - 1]) t[u++] = t[i];
        for (size_t i = 0; i < n; i++) {
            int64_t r[2] = {rank_of(t, u, ev[i]->call),
                            ev[i]->has_ret ? rank_of(t, u, ev[i]->ret) : -1};
            if (put(s, r, sizeof r)) return -1;
        }
    }
    return 1;
}

static int put_key_queued(scan_t *s) {
    if (vec_reserve(&s->qkeys, s->qkeys.n + s->key.n)) return -1;
    memcpy((uint8_t *)s->qkeys.p + s->qkeys.n, s->key.p, s->key.n);
    s->qkeys.n += s->key.n;
    return 0;
}

static int take_segment(scan_t *s, op_t **ev, size_t n) {
    s->segments++;
    if ((int64_t)n > s->largest) s->largest = (int64_t)n;
    for (size_t i = 0; i < n; i++)
        if (ev[i]->has_ret && ev[i]->ret > s->committed) s->committed = ev[i]->ret;
    int keyed = make_key(s, ev, n);
    if (keyed < 0) return -1;
    if (keyed && known(s, s->key.p, s->key.n)) {
        s->repeated++;
        s->repeated_calls += (int64_t)n;
        return 0;
    }
    if (vec_reserve(&s->queue, s->queue.n + n)) return -1;
    for (size_t i = 0; i < n; i++) ((op_t *)s->queue.p)[s->queue.n++] = *ev[i];
    int64_t end = (int64_t)s->queue.n;
    if (vec_push(&s->seg_ends, &end)) return -1;
    if (keyed && put_key_queued(s)) return -1;
    end = (int64_t)s->qkeys.n;
    if (vec_push(&s->qkey_ends, &end)) return -1;
    s->queued_calls += (int64_t)n;
    return 0;
}

/* --- reading lines ----------------------------------------------------------------------- */

typedef struct {
    const char *p, *end;
} cur_t;

static inline __attribute__((always_inline)) void ws(cur_t *c) {
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n')) c->p++;
}

static inline __attribute__((always_inline)) int eat(cur_t *c, char ch) {
    ws(c);
    if (c->p < c->end && *c->p == ch) { c->p++; return 1; }
    return 0;
}

static inline __attribute__((always_inline)) int hexval(char ch) {
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
    return -1;
}

/* A string at c->p (after ws): printable ASCII and the JSON escapes; an escaped surrogate
 * (where the two readers differ) is refused. *plain: it had no escape. Returns its body. */
static inline __attribute__((always_inline)) int string(cur_t *c, const char **body, size_t *len, int *plain) {
    ws(c);
    if (c->p >= c->end || *c->p != '"') return 0;
    const char *start = ++c->p;
    *plain = 1;
    while (c->p < c->end) {
        unsigned char ch = (unsigned char)*c->p;
        if (ch == '"') {
            *body = start, *len = (size_t)(c->p - start);
            c->p++;
            return 1;
        }
        if (ch < 0x20 || ch >= 0x7F) return 0;
        if (ch == '\\') {
            *plain = 0;
            if (++c->p >= c->end) return 0;
            char esc = *c->p;
            if (esc == 'u') {
                if (c->end - c->p < 5) return 0;
                int v = 0;
                for (int i = 1; i <= 4; i++) {
                    int h = hexval(c->p[i]);
                    if (h < 0) return 0;
                    v = v * 16 + h;
                }
                if (v >= 0xD800 && v <= 0xDFFF) return 0;
                c->p += 4;
            } else if (!strchr("\"\\/bfnrt", esc) || !esc) {
                return 0;
            }
        }
        c->p++;
    }
    return 0;
}

/* A JSON number; *is_int: no fraction or exponent; then *neg and *mag (saturating at
 * UINT64_MAX, *big when it did). */
static inline __attribute__((always_inline)) int number(cur_t *c, int *is_int, int *neg, uint64_t *mag, int *big) {
    ws(c);
    const char *p = c->p, *end = c->end;
    *neg = 0, *mag = 0, *big = 0, *is_int = 1;
    if (p < end && *p == '-') *neg = 1, p++;
    if (p >= end || *p < '0' || *p > '9') return 0;
    if (*p == '0') {
        p++;
    } else {
        while (p < end && *p >= '0' && *p <= '9') {
            uint64_t digit = (uint64_t)(*p - '0');
            if (*mag > UINT64_MAX / 10 || (*mag == UINT64_MAX / 10 && digit > UINT64_MAX % 10))
                *big = 1, *mag = UINT64_MAX;
            else if (!*big) *mag = *mag * 10 + digit;
            p++;
        }
    }
    if (p < end && *p == '.') {
        *is_int = 0, p++;
        if (p >= end || *p < '0' || *p > '9') return 0;
        while (p < end && *p >= '0' && *p <= '9') p++;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        *is_int = 0, p++;
        if (p < end && (*p == '+' || *p == '-')) p++;
        if (p >= end || *p < '0' || *p > '9') return 0;
        while (p < end && *p >= '0' && *p <= '9') p++;
    }
    c->p = p;
    return 1;
}

static int word(cur_t *c, const char *w) {
    size_t n = strlen(w);
    ws(c);
    if ((size_t)(c->end - c->p) < n || memcmp(c->p, w, n)) return 0;
    c->p += n;
    return 1;
}

#define DEPTH_MAX 64

static int value(cur_t *c, int depth) { /* any JSON value, validated and skipped */
    ws(c);
    if (c->p >= c->end || depth > DEPTH_MAX) return 0;
    char ch = *c->p;
    const char *body;
    size_t len;
    int plain, is_int, neg, big;
    uint64_t mag;
    if (ch == '"') return string(c, &body, &len, &plain);
    if (ch == '{' || ch == '[') {
        char close = ch == '{' ? '}' : ']';
        c->p++;
        if (eat(c, close)) return 1;
        do {
            if (ch == '{' && (!string(c, &body, &len, &plain) || !eat(c, ':'))) return 0;
            if (!value(c, depth + 1)) return 0;
        } while (eat(c, ','));
        return eat(c, close);
    }
    if (ch == 't') return word(c, "true");
    if (ch == 'f') return word(c, "false");
    if (ch == 'n') return word(c, "null");
    return number(c, &is_int, &neg, &mag, &big);
}

/* The keys the scan knows; a second one of these on a line sends the file to Python. */
enum { F_T, F_R, F_K, F_A, F_N, F_P, F_F, F_FD, F_O, F_C, F_E, F_X, F_ROUND, F_END, F_COUNT };
static const char *const NAMES[F_COUNT] = {"t", "r", "k",  "a", "n", "p",     "f",
                                           "fd", "o", "c", "e", "x", "round", "end"};

typedef struct {
    int seen, odd; /* bit sets over the keys: present; present with an unusual value */
    int64_t v[F_COUNT];
    int is_null[F_COUNT];
    uint64_t round;
    int kind;
    int end_ok; /* the trailer object: its operations count (or none) */
    uint64_t end_ops;
    int end_has_ops;
} line_t;

static int field(const char *body, size_t len) {
    if (len == 1) {
        switch (body[0]) {
        case 't': return F_T;
        case 'r': return F_R;
        case 'k': return F_K;
        case 'a': return F_A;
        case 'n': return F_N;
        case 'p': return F_P;
        case 'f': return F_F;
        case 'o': return F_O;
        case 'c': return F_C;
        case 'e': return F_E;
        case 'x': return F_X;
        }
        return -1;
    }
    for (int i = F_FD; i < F_COUNT; i++)
        if (strlen(NAMES[i]) == len && !memcmp(NAMES[i], body, len)) return i;
    return -1;
}

/* The trailer's object: validated, with its "operations" when it is a plain integer. */
static int end_object(cur_t *c, line_t *L) {
    L->end_ok = 0;
    if (!eat(c, '{')) return value(c, 1); /* not an object: Python says so */
    if (eat(c, '}')) { L->end_ok = 1; return 1; }
    int odd = 0, seen = 0;
    do {
        const char *body;
        size_t len;
        int plain;
        if (!string(c, &body, &len, &plain) || !eat(c, ':')) return 0;
        if (!plain) odd = 1;
        if (plain && len == 10 && !memcmp(body, "operations", 10)) {
            int is_int, neg, big;
            uint64_t mag;
            ws(c);
            cur_t at = *c;
            if (seen) odd = 1;
            seen = 1;
            if (number(&at, &is_int, &neg, &mag, &big) && is_int && !neg && !big) {
                *c = at;
                L->end_has_ops = 1, L->end_ops = mag;
                continue;
            }
            odd = 1;
        }
        if (!value(c, 2)) return 0;
    } while (eat(c, ','));
    if (!eat(c, '}')) return 0;
    L->end_ok = !odd;
    return 1;
}

/* One line: 1 parsed into *L, 0 not of the strict form. */
static int parse_line(const char *p, const char *end, line_t *L) {
    cur_t c = {p, end};
    memset(L, 0, sizeof *L);
    if (!eat(&c, '{')) return 0;
    if (eat(&c, '}')) return 1;
    do {
        const char *body;
        size_t len;
        int plain;
        if (!string(&c, &body, &len, &plain) || !eat(&c, ':')) return 0;
        int f = plain ? field(body, len) : -2;
        if (f == -2) return 0; /* an escaped key: may spell a known one */
        if (f >= 0) {
            if (L->seen & (1 << f)) return 0; /* a duplicate: the last one wins, in Python */
            L->seen |= 1 << f;
        }
        ws(&c);
        if (f == F_K) {
            cur_t at = c;
            if (string(&at, &body, &len, &plain) && plain) {
                c = at;
                if (len == 4 && !memcmp(body, "mmap", 4)) L->kind = K_MMAP;
                else if (len == 6 && !memcmp(body, "munmap", 6)) L->kind = K_MUNMAP;
                else if (len == 8 && !memcmp(body, "mprotect", 8)) L->kind = K_MPROTECT;
                else L->odd |= 1 << f;
                continue;
            }
            L->odd |= 1 << f;
        } else if (f == F_END) {
            if (!end_object(&c, L)) return 0;
            continue;
        } else if (f >= 0) {
            if ((f == F_E || f == F_X) && word(&c, "null")) {
                L->is_null[f] = 1;
                continue;
            }
            int is_int, neg, big;
            uint64_t mag;
            cur_t at = c;
            if (c.p < c.end && (*c.p == '-' || (*c.p >= '0' && *c.p <= '9')) &&
                number(&at, &is_int, &neg, &mag, &big)) {
                c = at;
                if (!is_int || big) {
                    L->odd |= 1 << f;
                } else if (f == F_ROUND) {
                    if (neg && mag) L->odd |= 1 << f;
                    L->round = neg ? 0 : mag;
                } else {
                    int64_t lo = f == F_FD ? -1 : f == F_X ? -4095 : 0;
                    int64_t hi = f == F_FD ? ((int64_t)1 << 31) - 1 : I64_MAX;
                    if (mag > (uint64_t)I64_MAX) {
                        L->odd |= 1 << f;
                    } else {
                        int64_t v = neg ? -(int64_t)mag : (int64_t)mag;
                        if (v < lo || v > hi) L->odd |= 1 << f;
                        L->v[f] = v;
                    }
                }
                continue;
            }
            L->odd |= 1 << f;
        }
        if (!value(&c, 1)) return 0;
    } while (eat(&c, ','));
    if (!eat(&c, '}')) return 0;
    ws(&c);
    return c.p == c.end;
}

static int fallback(scan_t *s, const char *why) {
    s->why = why;
    s->why_line = s->lineno;
    return MMS_FALLBACK;
}

/* A candidate point (`StreamCheck.point`): cut when enough calls are open. */
static int point(scan_t *s) {
    int64_t n = (int64_t)s->buf.n;
    if (n < (s->retry_at > 2 ? s->retry_at : 2) || n < s->cut_at) return 0;
    int first = cut(s, 1);
    if (first < 0) return -1;
    s->retry_at = first ? 0 : 2 * n;
    return 0;
}

#define POINT_EVERY 4096 /* without round records: a candidate point every this many calls */

/* One complete line (without its newline). */
static int line(scan_t *s, const char *p, const char *end) {
    const char *q = p;
    while (q < end && (*q == ' ' || *q == '\t')) q++;
    if (q == end) return MMS_MORE; /* blank */
    line_t L;
    if (!parse_line(p, end, &L)) return fallback(s, "a line outside the scan's strict form");
    if (s->trailer) return fallback(s, "a line after the trailer");
    if (L.seen & (1 << F_K)) {
        int need = (1 << F_K) | (1 << F_T) | (1 << F_A) | (1 << F_N) | (1 << F_C);
        int opk = (1 << F_END) - 1 - (1 << F_ROUND); /* the operation's own keys */
        if ((L.seen & need) != need || (L.odd & opk))
            return fallback(s, "an operation line the scan does not take");
        int has_e = (L.seen >> F_E & 1) && !L.is_null[F_E];
        int has_x = (L.seen >> F_X & 1) && !L.is_null[F_X];
        if (has_e != has_x) return fallback(s, "'e' without 'x' or the reverse");
        op_t o;
        o.task = L.v[F_T], o.round = L.v[F_R], o.kind = L.kind;
        o.addr = L.v[F_A], o.len = L.v[F_N];
        o.prot = L.v[F_P], o.flags = L.v[F_F];
        o.fd = (L.seen >> F_FD & 1) ? L.v[F_FD] : -1;
        o.off = L.v[F_O], o.call = L.v[F_C];
        o.has_ret = has_e, o.ret = has_e ? L.v[F_E] : 0, o.result = has_x ? L.v[F_X] : 0;
        if (has_e && o.ret < o.call) return fallback(s, "a return before its call");
        if (o.call <= s->committed) return MMS_OUT_OF_ORDER;
        o.seq = s->ops++;
        if (vec_push(&s->buf, &o)) return fallback(s, "out of memory");
        if (!s->rounds && !(s->ops % POINT_EVERY) && point(s))
            return fallback(s, "out of memory");
        return MMS_MORE;
    }
    if (L.seen & (1 << F_ROUND)) {
        if (L.odd & (1 << F_ROUND)) return fallback(s, "a round record the scan does not take");
        s->rounds++;
        if (point(s)) return fallback(s, "out of memory");
        return MMS_MORE;
    }
    if (L.seen & (1 << F_END)) {
        if (!L.end_ok || (L.end_has_ops && L.end_ops != (uint64_t)s->ops))
            return fallback(s, "a trailer the scan does not take");
        free(s->trailer_text);
        s->trailer_len = (size_t)(end - p);
        s->trailer_text = malloc(s->trailer_len + 1);
        if (!s->trailer_text) return fallback(s, "out of memory");
        memcpy(s->trailer_text, p, s->trailer_len);
        s->trailer_text[s->trailer_len] = 0;
        s->trailer = 1;
        return MMS_MORE;
    }
    return fallback(s, "a line that is no operation, round record or trailer");
}

/* Every byte printable ASCII or a tab? (eight at a time: no high bit, none below 0x20) */
static int plain_ascii(const char *p, const char *end) {
    const uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
    for (; end - p >= 8; p += 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        /* (b | 0x80) - 0x20 keeps its high bit unless b < 0x20 (and never borrows) */
        if ((w & highs) | (~((w | highs) - 0x20 * ones) & highs)) break;
    }
    for (; p < end; p++) {
        unsigned char ch = (unsigned char)*p;
        if (ch >= 0x80 || (ch < 0x20 && ch != '\t')) return 0;
    }
    return 1;
}

/* Read the complete lines of buf[0:len) (with ``eof``, a last line without a newline too).
 * *used: the bytes consumed. Stops early with MMS_JUDGE when segments are queued for Python
 * (`batch` calls or more), MMS_FALLBACK or MMS_OUT_OF_ORDER. */
int mms_feed(scan_t *s, const char *buf, int64_t len, int eof, int64_t *used) {
    const char *p = buf, *end = buf + len;
    int rc = MMS_MORE;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl && !eof) break;
        const char *stop = nl ? nl : end;
        s->lineno++;
        if (!plain_ascii(p, stop)) {
            *used = p - buf;
            return fallback(s, "a byte the scan does not read (not printable ASCII)");
        }
        rc = line(s, p, stop);
        if (rc == MMS_FALLBACK || rc == MMS_OUT_OF_ORDER) {
            *used = p - buf;
            return rc;
        }
        p = nl ? nl + 1 : end;
        if (!nl) s->why_line = -1; /* (a last line without its newline, read) */
        if (s->queued_calls >= s->batch) {
            *used = p - buf;
            return MMS_JUDGE;
        }
    }
    *used = p - buf;
    return MMS_MORE;
}

/* The end of the file: the open calls cut, the last segment taken too when ``complete`` (else
 * left unjudged: a history without its trailer may lack calls of it). Returns the calls
 * queued (then MMS_JUDGE is due), or -1. */
int64_t mms_finish(scan_t *s, int complete) {
    if (s->buf.n) {
        if (cut(s, !complete) < 0) return -1;
        s->buf.n = 0;
    }
    return s->queued_calls;
}

/* The queue for Python: calls as FIELDS int64 each (task, round, kind, addr, length, prot,
 * flags, fd, offset, call, has_ret, ret, result), the end of each segment. */
int64_t mms_queue(scan_t *s, int64_t **calls, int64_t **ends, int64_t *segments) {
    size_t n = s->queue.n;
    if (vec_reserve(&s->out, n * FIELDS + 1)) return -1;
    int64_t *o = s->out.p;
    op_t *q = s->queue.p;
    for (size_t i = 0; i < n; i++, o += FIELDS) {
        int64_t row[FIELDS] = {q[i].task, q[i].round, q[i].kind, q[i].addr, q[i].len,
                               q[i].prot, q[i].flags, q[i].fd,   q[i].off,  q[i].call,
                               q[i].has_ret, q[i].ret, q[i].result};
        memcpy(o, row, sizeof row);
    }
    *calls = s->out.p;
    *ends = s->seg_ends.p;
    *segments = (int64_t)s->seg_ends.n;
    return (int64_t)n;
}

/* The queue was judged: with ``ok`` (every segment linearizable) its keys are remembered, so
 * later segments with one of them are counted, not judged. The queue is emptied. */
int mms_settle(scan_t *s, int ok) {
    if (ok) {
        const uint8_t *k = s->qkeys.p;
        const int64_t *ends = s->qkey_ends.p;
        int64_t at = 0;
        for (size_t i = 0; i < s->qkey_ends.n; i++) {
            if (ends[i] > at && remember(s, k + at, (size_t)(ends[i] - at))) return -1;
            at = ends[i];
        }
    }
    s->queue.n = s->seg_ends.n = s->qkeys.n = s->qkey_ends.n = 0;
    s->queued_calls = 0;
    return 0;
}

/* The counts: operations, rounds, trailer read, segments, repeated segments and their calls,
 * the largest segment, the line of a fallback, the keys remembered. */
void mms_counts(scan_t *s, int64_t *out) {
    int64_t v[9] = {s->ops, s->rounds, s->trailer, s->segments, s->repeated,
                    s->repeated_calls, s->largest, s->why_line, (int64_t)s->used};
    memcpy(out, v, sizeof v);
}

const char *mms_why(scan_t *s) { return s->why ? s->why : ""; }
const char *mms_trailer(scan_t *s) { return s->trailer_text ? s->trailer_text : ""; }
