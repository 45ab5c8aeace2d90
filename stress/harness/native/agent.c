/* mmrace static native agent: the agent protocol (docs/targets.md) in one C program, for
 * runtimes that cannot run Python (emulators, sandboxes, library OSes).
 *
 * Built static (musl-gcc -static, else cc -static) into the per-user cache on first use by
 * stress/harness/_native.py, started by the agent target (--target agent --agent native,
 * maybe under --wrapper CMD). It speaks JSON Lines on stdin/stdout, the same messages as
 * `python -m stress.agent`: hello (first, and alone with --hello), open, round (serial or
 * race), bye. The races run on the racer of racer.c (included below); serial batches run on
 * the main thread. Safety as in the kernel target: every call that may change a mapping must
 * lie inside an arena (the space, the declared regions, or a range claimed on first use),
 * each verified free in /proc/self/maps and placed far (>= 1 TiB) or low (< 0x20000); a munmap
 * outside them is allowed only over a mapping one of our non-fixed mmaps placed there. Before
 * each race, anything mapped in an arena that none of our mmaps created is reported as
 * interference (the run is then UNKNOWN). No content oracle (no "content" in answers).
 * Test-only fault injection: MMRACE_AGENT_FAULT=exit:R|kill:R|hang:R after race round R;
 * intrude:R maps a page at the top of the first arena just before race R's interference check.
 * The parser reads the fixed message shapes only. This file is part of mmrace (MIT). */
#include "racer.c"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/utsname.h>

#define PROTOCOL 1
#define LOW_LIMIT 0x20000ULL
#define FAR_LIMIT (1ULL << 40)
#define TASK_SIZE_X86_64 ((1ULL << 47) - 4096)
#define MAP_FIXED_ANY (0x10 | 0x100000)

/* --- a minimal JSON reader ---------------------------------------------------------------- */

enum { J_NULL, J_BOOL, J_NUM, J_STR, J_ARR, J_OBJ };

typedef struct jv {
    int type;
    uint64_t num; /* two's complement for negative numbers */
    char *str;
    int n;
    struct jv *items; /* arrays: n items; objects: 2n (key, value) */
} jv;

static const char *jp;
static int jerr;

static void jws(void) {
    while (*jp && isspace((unsigned char)*jp)) jp++;
}

static int jparse(jv *out);

static int jlist(jv *out, char close, int pairs) {
    int cap = 8, n = 0;
    jv *items = malloc(sizeof(jv) * (size_t)cap * (pairs ? 2 : 1));
    jp++;
    jws();
    if (*jp == close) {
        jp++;
    } else {
        for (;;) {
            if (n == cap) {
                cap *= 2;
                items = realloc(items, sizeof(jv) * (size_t)cap * (pairs ? 2 : 1));
            }
            jv *slot = items + (pairs ? 2 * n : n);
            if (pairs) {
                jws();
                if (*jp != '"' || jparse(slot)) return jerr = 1;
                jws();
                if (*jp++ != ':') return jerr = 1;
                if (jparse(slot + 1)) return 1;
            } else if (jparse(slot)) {
                return 1;
            }
            n++;
            jws();
            if (*jp == ',') {
                jp++;
                continue;
            }
            if (*jp++ != close) return jerr = 1;
            break;
        }
    }
    out->type = pairs ? J_OBJ : J_ARR;
    out->n = n;
    out->items = items;
    return 0;
}

static int jparse(jv *out) {
    memset(out, 0, sizeof *out);
    jws();
    char c = *jp;
    if (c == '{') return jlist(out, '}', 1);
    if (c == '[') return jlist(out, ']', 0);
    if (c == '"') {
        const char *start = ++jp;
        while (*jp && *jp != '"') jp += (*jp == '\\' && jp[1]) ? 2 : 1;
        if (*jp != '"') return jerr = 1;
        out->type = J_STR;
        out->str = strndup(start, (size_t)(jp - start));
        jp++;
        return 0;
    }
    if (c == '-' || isdigit((unsigned char)c)) {
        int neg = c == '-';
        if (neg) jp++;
        uint64_t v = 0;
        if (!isdigit((unsigned char)*jp)) return jerr = 1;
        while (isdigit((unsigned char)*jp)) v = v * 10 + (uint64_t)(*jp++ - '0');
        if (*jp == '.' || *jp == 'e' || *jp == 'E') return jerr = 1; /* integers only */
        out->type = J_NUM;
        out->num = neg ? (uint64_t)0 - v : v;
        return 0;
    }
    if (!strncmp(jp, "true", 4) || !strncmp(jp, "false", 5)) {
        out->type = J_BOOL;
        out->num = *jp == 't';
        jp += out->num ? 4 : 5;
        return 0;
    }
    if (!strncmp(jp, "null", 4)) {
        jp += 4;
        return 0;
    }
    return jerr = 1;
}

static void jfree(jv *v) {
    if (v->type == J_STR) free(v->str);
    if (v->type == J_ARR || v->type == J_OBJ) {
        int n = v->type == J_OBJ ? 2 * v->n : v->n;
        for (int i = 0; i < n; i++) jfree(&v->items[i]);
        free(v->items);
    }
}

static jv *jget(jv *obj, const char *key) {
    if (!obj || obj->type != J_OBJ) return NULL;
    for (int i = 0; i < obj->n; i++)
        if (!strcmp(obj->items[2 * i].str, key)) return &obj->items[2 * i + 1];
    return NULL;
}

/* --- output ------------------------------------------------------------------------------ */

static char *obuf;
static size_t olen, ocap;

static void out(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void out(const char *fmt, ...) {
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(obuf + olen, ocap - olen, fmt, ap);
        va_end(ap);
        if (n >= 0 && olen + (size_t)n < ocap) {
            olen += (size_t)n;
            return;
        }
        ocap = ocap ? 2 * ocap + (size_t)n : 1 << 16;
        obuf = realloc(obuf, ocap);
    }
}

static void send_line(void) {
    out("\n");
    fwrite(obuf, 1, olen, stdout);
    fflush(stdout);
    olen = 0;
}

static void out_str(const char *s) {
    out("\"");
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            out("\\%c", *s);
        else if ((unsigned char)*s < 0x20)
            out("\\u%04x", *s);
        else
            out("%c", *s);
    }
    out("\"");
}

static void send_error(const char *msg) {
    out("{\"type\":\"error\",\"message\":");
    out_str(msg);
    out("}");
    send_line();
}

/* --- ranges, arenas, maps ------------------------------------------------------------------ */

typedef struct {
    uint64_t lo, hi;
} range;

typedef struct {
    range *r;
    int n, cap;
} ranges;

static void add_range(ranges *set, uint64_t lo, uint64_t hi) {
    if (lo >= hi) return;
    if (set->n == set->cap) {
        set->cap = set->cap ? 2 * set->cap : 16;
        set->r = realloc(set->r, sizeof(range) * (size_t)set->cap);
    }
    int i = set->n++;
    while (i > 0 && set->r[i - 1].lo > lo) {
        set->r[i] = set->r[i - 1];
        i--;
    }
    set->r[i] = (range){lo, hi};
    int w = 0; /* merge touching and overlapping ranges */
    for (int j = 1; j < set->n; j++) {
        if (set->r[j].lo <= set->r[w].hi) {
            if (set->r[j].hi > set->r[w].hi) set->r[w].hi = set->r[j].hi;
        } else {
            set->r[++w] = set->r[j];
        }
    }
    set->n = w + 1;
}

static int inside(const ranges *set, uint64_t lo, uint64_t hi) {
    for (int i = 0; i < set->n; i++)
        if (set->r[i].lo <= lo && hi <= set->r[i].hi) return 1;
    return 0;
}

static void remove_range(ranges *set, uint64_t lo, uint64_t hi) {
    ranges kept = {0};
    for (int i = 0; i < set->n; i++) {
        range r = set->r[i];
        add_range(&kept, r.lo, r.hi < lo ? r.hi : lo);     /* the part below [lo, hi) */
        add_range(&kept, r.lo > hi ? r.lo : hi, r.hi);     /* the part above */
    }
    free(set->r);
    *set = kept;
}

static ranges arenas, created, strays;
static uint64_t page = 4096, task_size = TASK_SIZE_X86_64;

/* The mappings of this process from /proc/self/maps. */
static ranges read_maps(void) {
    ranges maps = {0};
    FILE *f = fopen("/proc/self/maps", "r");
    if (!f) return maps;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        unsigned long long lo, hi;
        if (sscanf(line, "%llx-%llx", &lo, &hi) == 2) add_range(&maps, lo, hi);
        if (!strchr(line, '\n')) { /* a long line: skip the rest */
            int c;
            while ((c = fgetc(f)) != EOF && c != '\n') {
            }
        }
    }
    fclose(f);
    return maps;
}

static char message[512];

/* Reserve [lo, hi) as an arena (rules of mm.kernel.Arena.reserve); 0, or -1 with `message`. */
static int reserve(uint64_t lo, uint64_t hi) {
    if (lo % page || hi % page || hi <= lo) {
        snprintf(message, sizeof message, "arena [%#llx, %#llx) is not page-aligned and non-empty",
                 (unsigned long long)lo, (unsigned long long)hi);
        return -1;
    }
    if (hi > TASK_SIZE_X86_64 || !(lo >= FAR_LIMIT || hi <= LOW_LIMIT)) {
        snprintf(message, sizeof message,
                 "arena [%#llx, %#llx) must start at or above %#llx or end at or below %#llx",
                 (unsigned long long)lo, (unsigned long long)hi, FAR_LIMIT, LOW_LIMIT);
        return -1;
    }
    ranges maps = read_maps();
    for (int i = 0; i < maps.n; i++) {
        if (maps.r[i].lo < hi && lo < maps.r[i].hi) {
            snprintf(message, sizeof message,
                     "arena [%#llx, %#llx) is not free: [%#llx, %#llx) is mapped",
                     (unsigned long long)lo, (unsigned long long)hi,
                     (unsigned long long)maps.r[i].lo, (unsigned long long)maps.r[i].hi);
            free(maps.r);
            return -1;
        }
    }
    free(maps.r);
    add_range(&arenas, lo, hi);
    return 0;
}

/* The page range a call may change (mm.kernel.guarded_range); 0 when it cannot change any. */
static int guarded(const uint64_t *op, uint64_t *lo, uint64_t *hi) {
    uint64_t addr = op[1], length = op[2];
    uint64_t aligned = (length + page - 1) & ~(page - 1);
    if (op[0] == MMR_MMAP) {
        if (!(op[4] & MAP_FIXED_ANY)) return 0;
        if (length == 0 || aligned == 0 || aligned > task_size || addr > task_size - aligned)
            return 0;
    } else if (op[0] == MMR_MUNMAP) {
        if (addr > task_size || length > task_size - addr || aligned == 0) return 0;
    } else {
        if (length == 0 || aligned == 0 || addr + aligned < addr) return 0;
    }
    *lo = addr & ~(page - 1);
    *hi = *lo + aligned + (addr != *lo ? page : 0);
    return 1;
}

/* Is the op safe to issue? Claims a free range for it when needed; else -1 with `message`. */
static int fence(const uint64_t *op) {
    uint64_t lo, hi;
    if (!guarded(op, &lo, &hi) || inside(&arenas, lo, hi)) return 0;
    if (op[0] == MMR_MUNMAP && inside(&strays, lo, hi)) return 0;
    uint64_t clo = lo, chi = hi;
    if (hi <= LOW_LIMIT) clo = 0, chi = LOW_LIMIT;
    for (int i = 0; i < arenas.n; i++) /* never overlap an arena partly */
        if (arenas.r[i].lo < chi && clo < arenas.r[i].hi) goto refuse;
    if (reserve(clo, chi) == 0) return 0;
refuse:
    snprintf(message, sizeof message,
             "agent: a call touches [%#llx, %#llx), outside the arenas, and it cannot be claimed",
             (unsigned long long)lo, (unsigned long long)hi);
    return -1;
}

static void note_result(const uint64_t *op, int64_t result) {
    if (result < 0 && result > -4096) return;
    if (op[0] == MMR_MMAP) {
        uint64_t end = (uint64_t)result + ((op[2] + page - 1) & ~(page - 1));
        if (inside(&arenas, (uint64_t)result, end))
            add_range(&created, (uint64_t)result, end);
        else
            add_range(&strays, (uint64_t)result, end);
    } else if (op[0] == MMR_MUNMAP && result == 0) {
        uint64_t lo, hi;
        if (guarded(op, &lo, &hi) && !inside(&arenas, lo, hi)) remove_range(&strays, lo, hi);
    }
}

/* --- messages ------------------------------------------------------------------------------ */

static uint64_t read_sysctl(const char *path, uint64_t fallback) {
    FILE *f = fopen(path, "r");
    unsigned long long v;
    if (!f) return fallback;
    int ok = fscanf(f, "%llu", &v) == 1;
    fclose(f);
    return ok ? v : fallback;
}

static int has_cap_sys_rawio(void) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    int found = 0;
    if (!f) return 0;
    while (fgets(line, sizeof line, f)) {
        unsigned long long caps;
        if (sscanf(line, "CapEff: %llx", &caps) == 1) found = (caps >> 17) & 1;
    }
    fclose(f);
    return found;
}

static uint64_t lsm_min_addr(uint64_t dac) {
    /* A non-fixed one-page mmap hinted at 0x1000 lands at PAGE_ALIGN(max(dac, lsm)) when that
     * page is free (as mm._host probes); the reference value otherwise. */
    long got = syscall(SYS_mmap, 0x1000, page, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    uint64_t lsm = 65536;
    if (got != -1) {
        if ((uint64_t)got < 0x10000000 && (uint64_t)got >= dac) lsm = (uint64_t)got;
        syscall(SYS_munmap, got, page);
    }
    return lsm;
}

static void hello(const char *self) {
    struct utsname u;
    uname(&u);
    uint64_t dac = read_sysctl("/proc/sys/vm/mmap_min_addr", 4096);
    char exe[512] = "";
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    exe[n > 0 ? n : 0] = 0;
    out("{\"type\":\"hello\",\"protocol\":%d,\"pid\":%d,\"uname\":[", PROTOCOL, (int)getpid());
    out_str(u.sysname), out(","), out_str(u.nodename), out(","), out_str(u.release), out(",");
    out_str(u.version), out(","), out_str(u.machine);
    out("],\"python\":null,\"agent\":\"native\",\"executable\":");
    out_str(n > 0 ? exe : self);
    out(",\"now_ns\":%lld,\"params\":{\"page_size\":%llu,\"task_size\":%llu,"
        "\"dac_mmap_min_addr\":%llu,\"lsm_mmap_min_addr\":%llu,\"max_map_count\":%llu,"
        "\"mmap_base\":%llu,\"privileged\":%s}}",
        (long long)mmr_now(), (unsigned long long)page, TASK_SIZE_X86_64,
        (unsigned long long)dac, (unsigned long long)lsm_min_addr(dac),
        (unsigned long long)read_sysctl("/proc/sys/vm/max_map_count", 65530),
        0x7F0000000000ULL, has_cap_sys_rawio() ? "true" : "false");
    send_line();
}

static mmr_racer *racer;
static int tasks;
static char **reported;
static int nreported;

static void out_problems(void) {
    ranges maps = read_maps();
    int first = 1;
    out("[");
    for (int i = 0; i < maps.n; i++) {
        for (int a = 0; a < arenas.n; a++) {
            uint64_t lo = maps.r[i].lo > arenas.r[a].lo ? maps.r[i].lo : arenas.r[a].lo;
            uint64_t hi = maps.r[i].hi < arenas.r[a].hi ? maps.r[i].hi : arenas.r[a].hi;
            if (lo >= hi || inside(&created, lo, hi)) continue;
            char text[256];
            snprintf(text, sizeof text,
                     "interference: [%#llx, %#llx) is mapped inside the arena but this run "
                     "never mapped it",
                     (unsigned long long)lo, (unsigned long long)hi);
            int seen = 0;
            for (int j = 0; j < nreported; j++) seen |= !strcmp(reported[j], text);
            if (seen) continue;
            reported = realloc(reported, sizeof(char *) * (size_t)(nreported + 1));
            reported[nreported++] = strdup(text);
            if (!first) out(",");
            out_str(text);
            first = 0;
        }
    }
    out("]");
    free(maps.r);
}

static void close_all(void) {
    for (int i = 0; i < arenas.n; i++)
        syscall(SYS_munmap, arenas.r[i].lo, arenas.r[i].hi - arenas.r[i].lo);
    for (int i = 0; i < strays.n; i++)
        syscall(SYS_munmap, strays.r[i].lo, strays.r[i].hi - strays.r[i].lo);
    strays.n = 0;
}

static void fault(int round, int before) {
    const char *text = getenv("MMRACE_AGENT_FAULT");
    char kind[8];
    int at;
    if (!text || sscanf(text, "%7[a-z]:%d", kind, &at) != 2 || at != round) return;
    if (before) { /* intrude:R: a page nobody asked for, at the top of the space, before race R */
        if (!strcmp(kind, "intrude") && arenas.n)
            syscall(SYS_mmap, arenas.r[0].hi - page, page, PROT_NONE,
                    MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
        return;
    }
    if (!strcmp(kind, "exit")) _exit(3);
    if (!strcmp(kind, "kill")) kill(getpid(), SIGKILL);
    if (!strcmp(kind, "hang"))
        for (;;) pause();
}

static int do_open(jv *req) {
    jv *space = jget(req, "space"), *n = jget(req, "tasks"), *regions = jget(req, "regions");
    jv *base = jget(space, "base"), *size = jget(space, "size"), *ps = jget(space, "page_size");
    if (racer) return send_error("agent: open sent twice"), 0;
    if (!n || n->type != J_NUM || !base || !size || n->num < 1 || n->num > 4096)
        return send_error("agent: open needs tasks and space {base, size}"), 0;
    if (ps && ps->type == J_NUM && ps->num != page)
        return send_error("agent: the space's page size is not this process's"), 0;
    ranges wanted = {0};
    add_range(&wanted, base->num, base->num + size->num);
    for (int i = 0; regions && regions->type == J_ARR && i < regions->n; i++) {
        jv *r = &regions->items[i];
        if (r->type != J_ARR || r->n != 2) return send_error("agent: bad region"), 0;
        uint64_t lo = r->items[0].num / page * page;
        uint64_t hi = (r->items[1].num + page - 1) / page * page;
        add_range(&wanted, lo, hi);
    }
    for (int i = 0; i < wanted.n; i++) {
        if (reserve(wanted.r[i].lo, wanted.r[i].hi)) {
            char text[600];
            snprintf(text, sizeof text, "--target kernel: %s", message);
            free(wanted.r);
            arenas.n = 0;
            return send_error(text), 0;
        }
    }
    free(wanted.r);
    tasks = (int)n->num;
    racer = mmr_open(tasks);
    if (!racer) return send_error("agent: cannot start the racing threads"), 0;
    out("{\"type\":\"ready\",\"arenas\":[");
    for (int i = 0; i < arenas.n; i++) {
        char text[64];
        snprintf(text, sizeof text, "[%#llx, %#llx)", (unsigned long long)arenas.r[i].lo,
                 (unsigned long long)arenas.r[i].hi);
        if (i) out(",");
        out_str(text);
    }
    out("],\"now_ns\":%lld}", (long long)mmr_now());
    send_line();
    return 0;
}

static int op_kind(const char *s) {
    if (!strcmp(s, "mmap")) return MMR_MMAP;
    if (!strcmp(s, "munmap")) return MMR_MUNMAP;
    if (!strcmp(s, "mprotect")) return MMR_MPROTECT;
    return -1;
}

static void do_round(jv *req) {
    jv *r = jget(req, "round"), *mode = jget(req, "mode"), *plans = jget(req, "plans");
    if (!racer) { send_error("agent: round before open"); return; }
    if (!r || r->type != J_NUM || !plans || plans->type != J_ARR || plans->n > tasks)
        { send_error("agent: a round needs round and at most tasks plans"); return; }
    int serial = mode && mode->type == J_STR && !strcmp(mode->str, "serial");
    int nplans = plans->n, total = 0;
    for (int i = 0; i < nplans; i++) {
        if (plans->items[i].type != J_ARR) { send_error("agent: a plan is a list of ops"); return; }
        total += plans->items[i].n;
    }
    uint64_t *ops = calloc((size_t)total + 1, MMR_OP_FIELDS * sizeof *ops);
    int32_t *offsets = calloc((size_t)nplans + 1, sizeof *offsets);
    int64_t *recs = calloc((size_t)total + 1, MMR_REC_FIELDS * sizeof *recs);
    int k = 0;
    for (int i = 0; i < nplans; i++) {
        offsets[i] = k;
        for (int j = 0; j < plans->items[i].n; j++, k++) {
            jv *op = &plans->items[i].items[j];
            uint64_t *o = ops + (size_t)k * MMR_OP_FIELDS;
            if (op->type != J_ARR || op->n != 5 || op->items[0].type != J_STR ||
                (o[0] = (uint64_t)op_kind(op->items[0].str)) > MMR_MPROTECT) {
                send_error("agent: an op is [kind, addr, length, prot, flags]");
                goto done;
            }
            for (int f = 1; f < 5; f++) o[f] = op->items[f].num;
            o[5] = (uint64_t)-1;
            o[6] = 0;
            if (fence(o)) {
                send_error(message);
                goto done;
            }
        }
    }
    offsets[nplans] = k;
    out("{\"type\":\"result\",\"round\":%lld,\"records\":[", (long long)r->num);
    if (serial) {
        for (int i = 0; i < total; i++) {
            int64_t *rec = recs + (size_t)i * MMR_REC_FIELDS;
            rec[1] = mmr_now();
            rec[0] = mmr_call(ops + (size_t)i * MMR_OP_FIELDS);
            rec[2] = mmr_now();
            note_result(ops + (size_t)i * MMR_OP_FIELDS, rec[0]);
        }
    }
    size_t mark = olen; /* the problems are found before the race but written after */
    char *problems = NULL;
    if (!serial) {
        size_t before = olen;
        fault((int)r->num, 1);
        out_problems();
        problems = strndup(obuf + before, olen - before);
        olen = mark;
        mmr_round(racer, nplans, ops, offsets, recs, 0);
        for (int i = 0; i < total; i++)
            note_result(ops + (size_t)i * MMR_OP_FIELDS, recs[(size_t)i * MMR_REC_FIELDS]);
    }
    int64_t latest_start = 0, earliest_end = INT64_MAX;
    int ran = 0;
    for (int i = 0; i < nplans; i++) {
        out(i ? ",[" : "[");
        for (int j = offsets[i]; j < offsets[i + 1]; j++) {
            int64_t *rec = recs + (size_t)j * MMR_REC_FIELDS;
            out("%s[%lld,%lld,%lld]", j > offsets[i] ? "," : "", (long long)rec[0],
                (long long)rec[1], (long long)rec[2]);
        }
        out("]");
        if (offsets[i + 1] > offsets[i]) {
            ran++;
            int64_t start = recs[(size_t)offsets[i] * MMR_REC_FIELDS + 1];
            int64_t end = recs[(size_t)(offsets[i + 1] - 1) * MMR_REC_FIELDS + 2];
            if (start > latest_start) latest_start = start;
            if (end < earliest_end) earliest_end = end;
        }
    }
    out("],\"problems\":%s,\"overlapped\":%s}", problems ? problems : "[]",
        !serial && ran >= 2 && latest_start < earliest_end ? "true" : "false");
    free(problems);
    if (!serial) fault((int)r->num, 0);
    send_line();
done:
    free(ops);
    free(offsets);
    free(recs);
}

int main(int argc, char **argv) {
    long ps = sysconf(_SC_PAGESIZE);
    if (ps > 0) page = (uint64_t)ps;
    FILE *cpu = fopen("/proc/cpuinfo", "r");
    if (cpu) { /* 5-level paging: a conservative task size, as mm.kernel.guard_task_size */
        char line[4096];
        while (fgets(line, sizeof line, cpu))
            if (!strncmp(line, "flags", 5) && strstr(line, " la57")) task_size = 1ULL << 57;
        fclose(cpu);
    }
    if (argc == 2 && !strcmp(argv[1], "--hello")) {
        hello(argv[0]);
        return 0;
    }
    if (argc != 1) {
        fprintf(stderr, "usage: %s [--hello]\n", argv[0]);
        return 2;
    }
    hello(argv[0]);
    char *line = NULL;
    size_t cap = 0;
    ssize_t got;
    while ((got = getline(&line, &cap, stdin)) > 0) {
        jv req;
        jp = line;
        jerr = 0;
        if (jparse(&req) || req.type != J_OBJ) {
            fprintf(stderr, "agent: a request that is not a JSON object\n");
            close_all();
            return 2;
        }
        jv *type = jget(&req, "type");
        const char *kind = type && type->type == J_STR ? type->str : "";
        if (!strcmp(kind, "bye")) {
            jfree(&req);
            close_all();
            out("{\"type\":\"bye\"}");
            send_line();
            return 0;
        }
        if (!strcmp(kind, "open"))
            do_open(&req);
        else if (!strcmp(kind, "round"))
            do_round(&req);
        else {
            char text[160];
            snprintf(text, sizeof text, "agent: unknown request type '%.100s'", kind);
            send_error(text);
        }
        jfree(&req);
    }
    close_all();
    return 0;
}
