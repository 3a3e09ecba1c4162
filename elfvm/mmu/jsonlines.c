/* The per-address loop of `translate --addresses FILE --format jsonl|json` (driven by elfvm/mmu/bulk_native.py).

   The MMU model (Python) answers each page once; what it answers is handed here as an entry: the
   text of an address's line after its "linear" value, as a template whose bytes \1..\4 stand for
   what changes address by address (the page offset, the physical address, the address in hex,
   the section and symbol; in a hole, \5 and \6 the page's number and the index of the
   not-present entry its walk stops at; below a stack that cannot grow, \7 and \10 the stack's
   new start and size in hex, start = linear & smask, size = send - start). This file only reads the address lines, finds each address's entry and
   fills the template in; an address it cannot answer (not a plain number it parses exactly as
   Python's int(x, 0) does, or on a page the model has not described yet) stops the loop, and
   Python answers that line, so there is one behaviour. */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

enum { OP_OFF = 1, OP_PHYS = 2, OP_HEX = 3, OP_LABELS = 4, OP_PID = 5, OP_IDX = 6, OP_START = 7, OP_SIZE = 8,
       OP_LAST = 8 };
enum { RUN_DONE = 0, RUN_MISS = 1, RUN_FULL = 2 };

typedef struct {            /* a stretch of a page with one section and one nearest symbol */
    uint64_t start, at;     /* where it starts; the symbol's run-time address */
    uint32_t off, len;      /* its text: section JSON + ,"symbol": + (null | "name, left open) */
    int32_t sym;            /* 1: a symbol (then "+0x..." and the closing quote follow) */
} Stretch;

typedef struct { uint32_t off, len, op; } Seg;   /* a literal run of the template, then an op */

typedef struct {
    uint64_t mask;          /* page offset = linear & mask */
    int64_t phys;           /* the frame's base, or -1: no physical address */
    char *tmpl;             /* the line after "linear":N, with OP_ bytes */
    uint32_t tlen, nst;
    Stretch *st;
    char *strs;             /* the stretches' texts */
    uint32_t slen;          /* the longest stretch text */
    uint32_t nops;          /* how many OP_ bytes the template has */
    Seg *seg;               /* the template cut at its ops (the last run has op 0) */
    /* a hole's run of not-present entries at one walk level (xl_hole): the entry's index is
       (linear >> kshift) & kmask; each entry is a page of its own (the compact format's page
       number, pids[(linear - base) >> kshift], -1 until its record is written) */
    int kshift;
    uint64_t kmask, base;
    uint32_t npid, rlen, rops;
    int64_t *pids;          /* npid 0 with a record: each address is a page of its own */
    char *rec;              /* the record's template (OP_PID, OP_IDX, ...), NULL: no records */
    uint64_t smask, send;   /* OP_START, OP_SIZE (xl_stack) */
    Seg *rseg;
} Entry;

typedef struct { uint64_t lo, hi; uint32_t entry; } Span;

typedef struct {
    uint64_t limit;         /* the highest address answered here; above: Python */
    int shift;              /* page = linear >> shift */
    Entry *ent;
    uint32_t nent, capent;
    uint64_t *hkeys;        /* page -> entry: open addressing, key page + 1 (0: empty) */
    uint32_t *hvals, hcap, hcount;
    Span *spans;            /* address ranges (holes) -> entry, sorted, disjoint */
    uint32_t nspan, capspan;
    char sep[4];
    uint32_t seplen;
    int64_t next_pid;       /* the compact format's next page number (Python's too: xl_next_id) */
} Ctx;

static void hex_table(void);

static int grow(void **p, uint32_t *cap, uint32_t need, size_t size)
{
    if (need <= *cap)
        return 0;
    uint32_t c = *cap ? *cap : 64;
    while (c < need)
        c *= 2;
    void *q = realloc(*p, c * size);
    if (!q)
        return -1;
    *p = q;
    *cap = c;
    return 0;
}

void *xl_new(uint64_t limit, int shift, const char *sep, uint32_t seplen)
{
    Ctx *c = calloc(1, sizeof *c);
    if (!c || seplen > sizeof c->sep)
        return NULL;
    hex_table();
    c->limit = limit;
    c->shift = shift;
    memcpy(c->sep, sep, seplen);
    c->seplen = seplen;
    return c;
}

void xl_clear(void *ctx)
{
    Ctx *c = ctx;
    for (uint32_t i = 0; i < c->nent; i++) {
        free(c->ent[i].tmpl);
        free(c->ent[i].st);
        free(c->ent[i].strs);
        free(c->ent[i].seg);
        free(c->ent[i].pids);
        free(c->ent[i].rec);
        free(c->ent[i].rseg);
    }
    c->nent = c->nspan = c->hcount = 0;
    if (c->hcap)
        memset(c->hkeys, 0, c->hcap * sizeof *c->hkeys);
}

void xl_free(void *ctx)
{
    Ctx *c = ctx;
    xl_clear(c);
    free(c->ent);
    free(c->hkeys);
    free(c->hvals);
    free(c->spans);
    free(c);
}

/* How many of the n elements (of `size` bytes, sorted by the uint64_t they start with) start at
   or below x: a bisect_right. */
static inline uint32_t upto(const void *base, uint32_t n, size_t size, uint64_t x)
{
    uint32_t lo = 0, hi = n;
    while (lo < hi) {
        uint32_t mid = (lo + hi) / 2;
        if (*(const uint64_t *)((const char *)base + (size_t)mid * size) <= x)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static inline uint32_t slot(uint64_t key, uint32_t cap)
{
    return (uint32_t)((key * 0x9E3779B97F4A7C15ull) >> 32) & (cap - 1);
}

static int hash_put(Ctx *c, uint64_t page, uint32_t e)
{
    if ((c->hcount + 1) * 2 > c->hcap) {
        uint32_t ncap = c->hcap ? c->hcap * 2 : 1024;
        uint64_t *k = calloc(ncap, sizeof *k);
        uint32_t *v = malloc(ncap * sizeof *v);
        if (!k || !v) {
            free(k);
            free(v);
            return -1;
        }
        for (uint32_t i = 0; i < c->hcap; i++)
            if (c->hkeys[i]) {
                uint32_t j = slot(c->hkeys[i], ncap);
                while (k[j])
                    j = (j + 1) & (ncap - 1);
                k[j] = c->hkeys[i];
                v[j] = c->hvals[i];
            }
        free(c->hkeys);
        free(c->hvals);
        c->hkeys = k;
        c->hvals = v;
        c->hcap = ncap;
    }
    uint64_t key = page + 1;
    uint32_t j = slot(key, c->hcap);
    while (c->hkeys[j] && c->hkeys[j] != key)
        j = (j + 1) & (c->hcap - 1);
    if (!c->hkeys[j])
        c->hcount++;
    c->hkeys[j] = key;
    c->hvals[j] = e;
    return 0;
}

static inline Entry *find(Ctx *c, uint64_t lin)
{
    if (c->hcap) {
        uint64_t key = (lin >> c->shift) + 1;
        uint32_t j = slot(key, c->hcap);
        while (c->hkeys[j]) {
            if (c->hkeys[j] == key)
                return &c->ent[c->hvals[j]];
            j = (j + 1) & (c->hcap - 1);
        }
    }
    uint32_t n = upto(c->spans, c->nspan, sizeof(Span), lin);   /* the last span starting at or below lin */
    if (n && lin < c->spans[n - 1].hi)
        return &c->ent[c->spans[n - 1].entry];
    return NULL;
}

int xl_known(void *ctx, uint64_t lin) { return find(ctx, lin) != NULL; }

/* Where a new range [lo, hi) goes among the sorted ranges, room made for it; -1: it is empty,
   overlaps one or finds no memory. */
static long span_slot(Ctx *c, uint64_t lo, uint64_t hi)
{
    uint32_t a = 0, b = c->nspan;
    while (a < b) {
        uint32_t mid = (a + b) / 2;
        if (c->spans[mid].lo < lo)
            a = mid + 1;
        else
            b = mid;
    }
    if ((a < c->nspan && c->spans[a].lo < hi) || (a && c->spans[a - 1].hi > lo) || lo >= hi)
        return -1;
    if (grow((void **)&c->spans, &c->capspan, c->nspan + 1, sizeof(Span)))
        return -1;
    return a;
}

static void span_put(Ctx *c, uint32_t pos, uint64_t lo, uint64_t hi, uint32_t entry)
{
    memmove(&c->spans[pos + 1], &c->spans[pos], (c->nspan - pos) * sizeof(Span));
    Span s = {lo, hi, entry};
    c->spans[pos] = s;
    c->nspan++;
}

/* A new entry for [lo, hi): a page (is_page: lo is its first address, the page is lo >> shift)
   or a range of addresses (a hole), which must not overlap one already known. The stretches:
   4 numbers each in `meta` (start, symbol's address, symbol?, where its text in `strs` ends).
   Returns 0, or -1 (out of memory, an overlap: nothing is added). */
int xl_add(void *ctx, int is_page, uint64_t lo, uint64_t hi, uint64_t mask, int64_t phys,
           const char *tmpl, uint32_t tlen, uint32_t nst, const uint64_t *meta, const char *strs)
{
    Ctx *c = ctx;
    long pos = is_page ? 0 : span_slot(c, lo, hi);
    if (pos < 0)
        return -1;
    if (grow((void **)&c->ent, &c->capent, c->nent + 1, sizeof(Entry)))
        return -1;
    Entry e = {mask, phys, malloc(tlen ? tlen : 1), tlen, nst, malloc((nst ? nst : 1) * sizeof(Stretch)),
               malloc(nst ? meta[4 * nst - 1] : 1), 0, 0, NULL};
    for (uint32_t i = 0; i < tlen; i++)
        e.nops += (unsigned char)tmpl[i] <= OP_LAST;
    e.seg = malloc((e.nops + 1) * sizeof(Seg));
    if (!e.tmpl || !e.st || !e.strs || !e.seg) {
        free(e.tmpl);
        free(e.st);
        free(e.strs);
        free(e.seg);
        return -1;
    }
    memcpy(e.tmpl, tmpl, tlen);
    uint32_t k = 0, run = 0;
    for (uint32_t i = 0; i < tlen; i++)
        if ((unsigned char)tmpl[i] <= OP_LAST) {
            Seg g = {run, i - run, (unsigned char)tmpl[i]};
            e.seg[k++] = g;
            run = i + 1;
        }
    Seg last = {run, tlen - run, 0};
    e.seg[k] = last;
    for (uint32_t i = 0; i < nst; i++) {
        const uint64_t *m = meta + 4 * i;
        uint32_t from = i ? (uint32_t)meta[4 * i - 1] : 0;
        Stretch s = {m[0], m[1], from, (uint32_t)m[3] - from, (int32_t)m[2]};
        e.st[i] = s;
        if (s.len > e.slen)
            e.slen = s.len;
    }
    if (nst)
        memcpy(e.strs, strs, meta[4 * nst - 1]);
    if (is_page && hash_put(c, lo >> c->shift, c->nent)) {
        free(e.tmpl);
        free(e.st);
        free(e.strs);
        free(e.seg);
        return -1;
    }
    if (!is_page)
        span_put(c, (uint32_t)pos, lo, hi, c->nent);
    c->ent[c->nent++] = e;
    return 0;
}

/* Another range of addresses answered by the entry added last (a hole's next run of entries).
   Returns 0, or -1 (out of memory, an overlap: nothing is added). */
int xl_span(void *ctx, uint64_t lo, uint64_t hi)
{
    Ctx *c = ctx;
    long pos = c->nent ? span_slot(c, lo, hi) : -1;
    if (pos < 0)
        return -1;
    span_put(c, (uint32_t)pos, lo, hi, c->nent - 1);
    return 0;
}

/* The entry added last answers a run of not-present entries at one walk level: OP_IDX is
   (linear >> kshift) & kmask; with a record template (rlen > 0, the compact format) each of the
   npid entries from `base` on is a page of its own, whose record (OP_PID, OP_IDX) is written
   before its first line; pids: the page numbers already given (-1: none yet). Returns 0 or -1. */
int xl_hole(void *ctx, int kshift, uint64_t kmask, uint64_t base, uint32_t npid, const int64_t *pids,
            const char *rec, uint32_t rlen)
{
    Ctx *c = ctx;
    if (!c->nent)
        return -1;
    Entry *e = &c->ent[c->nent - 1];
    e->kshift = kshift;
    e->kmask = kmask;
    e->base = base;
    if (!rlen)
        return 0;
    uint32_t nops = 0, k = 0, run = 0;
    for (uint32_t i = 0; i < rlen; i++)
        nops += (unsigned char)rec[i] <= OP_LAST;
    e->pids = malloc((npid ? npid : 1) * sizeof *e->pids);
    e->rec = malloc(rlen);
    e->rseg = malloc((nops + 1) * sizeof(Seg));
    if (!e->pids || !e->rec || !e->rseg) {
        free(e->pids);
        free(e->rec);
        free(e->rseg);
        e->pids = NULL, e->rec = NULL, e->rseg = NULL;
        return -1;
    }
    memcpy(e->pids, pids, npid * sizeof *e->pids);
    memcpy(e->rec, rec, rlen);
    for (uint32_t i = 0; i < rlen; i++)
        if ((unsigned char)rec[i] <= OP_LAST) {
            Seg g = {run, i - run, (unsigned char)rec[i]};
            e->rseg[k++] = g;
            run = i + 1;
        }
    Seg last = {run, rlen - run, 0};
    e->rseg[k] = last;
    e->npid = npid;
    e->rlen = rlen;
    e->rops = nops;
    return 0;
}

/* The entry added last answers addresses below a stack: OP_START is linear & smask, OP_SIZE
   send - that. */
void xl_stack(void *ctx, uint64_t smask, uint64_t send)
{
    Ctx *c = ctx;
    if (c->nent) {
        c->ent[c->nent - 1].smask = smask;
        c->ent[c->nent - 1].send = send;
    }
}

/* The compact format's next page number, for Python's records: one count for both loops. */
int64_t xl_next_id(void *ctx) { return ((Ctx *)ctx)->next_pid++; }

/* ASCII white space as Python's str.strip() removes it */
static inline int space(unsigned char ch) { return ch == ' ' || (ch >= 9 && ch <= 13) || (ch >= 28 && ch <= 31); }

static signed char HEX[256];                     /* a digit's value, -1: not a hex digit */

static void hex_table(void)
{
    memset(HEX, -1, sizeof HEX);
    for (int i = 0; i < 10; i++)
        HEX['0' + i] = (signed char)i;
    for (int i = 0; i < 6; i++)
        HEX['a' + i] = HEX['A' + i] = (signed char)(10 + i);
}

/* The value of s[0..n) when Python's int(s, 0) gives it and this is sure of it: 0x/0X and 1-16
   hex digits, or a decimal without a leading zero (or 0 itself), at most 19 digits. Else -1:
   Python decides (underscores, 0o/0b, leading zeros, signs, a symbol, a selector, garbage). */
static inline int parse(const char *s, size_t n, uint64_t *out)
{
    uint64_t v = 0;
    if (n > 2 && s[0] == '0' && (s[1] | 0x20) == 'x') {
        if (n - 2 > 16)
            return -1;
        int bad = 0;
        for (size_t i = 2; i < n; i++) {
            int d = HEX[(unsigned char)s[i]];
            bad |= d;
            v = v << 4 | (uint64_t)(d & 15);
        }
        if (bad < 0)
            return -1;
    } else {
        if (n == 0 || n > 19 || (s[0] == '0' && n > 1))
            return -1;
        for (size_t i = 0; i < n; i++) {
            unsigned d = (unsigned char)s[i] - '0';
            if (d > 9)
                return -1;
            v = v * 10 + d;
        }
    }
    *out = v;
    return 0;
}

static const char PAIRS[] =                     /* "00".."99": two digits per division */
    "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
    "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
    "8081828384858687888990919293949596979899";

static inline char *dec(char *p, uint64_t v)
{
    char buf[24], *q = buf + sizeof buf;
    while (v >= 100) {
        const char *d = PAIRS + 2 * (v % 100);
        v /= 100;
        *--q = d[1];
        *--q = d[0];
    }
    if (v >= 10) {
        *--q = PAIRS[2 * v + 1];
        *--q = PAIRS[2 * v];
    } else {
        *--q = (char)('0' + v);
    }
    size_t n = (size_t)(buf + sizeof buf - q);
    memcpy(p, q, n);
    return p + n;
}

static inline char *hex(char *p, uint64_t v)      /* Python's f"{v:#x}" */
{
    char buf[24];
    int n = 0;
    do {
        buf[n++] = "0123456789abcdef"[v & 15];
        v >>= 4;
    } while (v);
    *p++ = '0';
    *p++ = 'x';
    while (n)
        *p++ = buf[--n];
    return p;
}

static char *labels(const Entry *e, uint64_t lin, char *p)
{
    const Stretch *s = e->st;
    if (e->nst > 1) {                          /* the last stretch starting at or below lin */
        uint32_t n = upto(e->st, e->nst, sizeof(Stretch), lin);
        s = &e->st[n ? n - 1 : 0];
    }
    memcpy(p, e->strs + s->off, s->len);
    p += s->len;
    if (s->sym) {
        if (lin != s->at) {
            *p++ = '+';
            p = hex(p, lin - s->at);
        }
        *p++ = '"';
    }
    return p;
}

/* The record of a hole's page (its first line), the template's ops filled in. */
/* The value of an op that depends only on the address and the entry (and the page's number). */
static char *value(const Entry *e, int op, uint64_t pid, uint64_t lin, char *p)
{
    switch (op) {
    case OP_PID:
        return dec(p, pid);
    case OP_IDX:
        return dec(p, (lin >> e->kshift) & e->kmask);
    case OP_HEX:
        return hex(p, lin);
    case OP_START:
        return hex(p, lin & e->smask);
    default:
        return hex(p, e->send - (lin & e->smask));
    }
}

static char *record(const Entry *e, uint64_t pid, uint64_t lin, char *p)
{
    for (const Seg *g = e->rseg;; g++) {
        memcpy(p, e->rec + g->off, g->len);
        p += g->len;
        if (g->op == 0) {
            *p++ = '\n';
            return p;
        }
        p = value(e, g->op, pid, lin, p);
    }
}

static char *line(Ctx *c, Entry *e, const char *text, size_t tn, uint64_t lin, char *p)
{
    int64_t pid = -1;
    if (e->rec && !e->npid) {                 /* an address that is a page of its own */
        pid = c->next_pid++;
        p = record(e, (uint64_t)pid, lin, p);
    } else if (e->rec) {
        int64_t *slot = &e->pids[(lin - e->base) >> e->kshift];
        if (*slot < 0) {
            *slot = c->next_pid++;
            p = record(e, (uint64_t)*slot, lin, p);
        }
        pid = *slot;
    }
    static const char h1[] = "{\"input\":\"", h2[] = "\",\"virtual\":", h3[] = ",\"linear\":";
    memcpy(p, h1, sizeof h1 - 1);
    p += sizeof h1 - 1;
    memcpy(p, text, tn);
    p += tn;
    memcpy(p, h2, sizeof h2 - 1);
    p += sizeof h2 - 1;
    char *d = p;
    p = dec(p, lin);
    size_t dn = (size_t)(p - d);
    memcpy(p, h3, sizeof h3 - 1);
    p += sizeof h3 - 1;
    memcpy(p, d, dn);
    p += dn;
    uint64_t off = lin & e->mask;
    for (const Seg *g = e->seg;; g++) {
        memcpy(p, e->tmpl + g->off, g->len);
        p += g->len;
        switch (g->op) {
        case 0:
            memcpy(p, c->sep, c->seplen);
            return p + c->seplen;
        case OP_OFF:
            p = dec(p, off);
            break;
        case OP_PHYS:
            if (e->phys < 0) {
                memcpy(p, "null", 4);
                p += 4;
            } else {
                p = dec(p, (uint64_t)e->phys + off);
            }
            break;
        case OP_LABELS:
            p = labels(e, lin, p);
            break;
        default:
            p = value(e, g->op, (uint64_t)pid, lin, p);
        }
    }
}

/* Answer the lines of in[*pos..n) into out after its first *outlen bytes (at most cap bytes in
   all; *outlen: how many there are then). Blank lines and # comments give nothing. Stops at the
   end (RUN_DONE), at a line Python must answer (RUN_MISS, *pos: its first byte) or when out is
   full (RUN_FULL, *pos: the next line). */
int xl_run(void *ctx, const char *in, size_t n, size_t *pos, char *out, size_t cap, size_t *outlen)
{
    Ctx *c = ctx;
    size_t i = *pos;
    char *p = out + *outlen;
    int rc = RUN_DONE;
    while (i < n) {
        const char *nl = memchr(in + i, '\n', n - i);
        size_t end = nl ? (size_t)(nl - in) : n, a = i, b = end;
        while (a < b && space((unsigned char)in[a]))
            a++;
        while (b > a && space((unsigned char)in[b - 1]))
            b--;
        if (a == b || in[a] == '#') {
            i = end + 1;
            continue;
        }
        uint64_t lin;
        Entry *e;
        if (parse(in + a, b - a, &lin) || lin > c->limit || !(e = find(c, lin))) {
            rc = RUN_MISS;
            break;
        }
        /* the longest line: head, text, two decimals, the template (each op at most 24 bytes
           but the labels: their text and a hex offset) */
        size_t worst = 64 + (b - a) + 2 * 24 + e->tlen + (size_t)e->nops * (24 + e->slen) + c->seplen +
                       e->rlen + (size_t)e->rops * 24 + 1;
        if ((size_t)(p - out) + worst > cap) {
            rc = p == out ? RUN_MISS : RUN_FULL;      /* a line longer than out: Python's */
            break;
        }
        p = line(c, e, in + a, b - a, lin, p);
        i = end + 1;
    }
    *pos = i < n ? i : n;
    *outlen = (size_t)(p - out);
    return rc;
}

/* One line (and its page's record, the first time) for an address this knows, with `text` as
   its input (quoted, escaped): a line the loop does not read itself (an input it does not parse,
   a block that is not ASCII) on a page whose number is this loop's. Returns its length, 0: the
   address is not known here, -1: cap is too small. */
long xl_one(void *ctx, uint64_t lin, const char *text, size_t tn, char *out, size_t cap)
{
    Ctx *c = ctx;
    Entry *e = lin <= c->limit ? find(c, lin) : NULL;
    if (!e)
        return 0;
    size_t worst = 64 + tn + 2 * 24 + e->tlen + (size_t)e->nops * (24 + e->slen) + c->seplen + e->rlen +
                   (size_t)e->rops * 24 + 1;
    if (worst > cap)
        return -1;
    return (long)(line(c, e, text, tn, lin, out) - out);
}
