/* elfvm's exact-mode reference hooks for Unicorn: UC_HOOK_CODE and UC_HOOK_MEM_READ|WRITE
 * callbacks in C (elfvm/emu/exactrefs.py), so that a reference Python has nothing to decide
 * about costs no Python call.
 *
 * --exact-tlb makes every instruction fetch and data access a reference of the paging model.
 * Almost all of them touch a page the CPU's TLB already holds, that the same process has
 * referenced since the TLB was last flushed, and that has no fault kind pending and no
 * deferred eviction: for those the Python hook (elfvm/emu/entry.py exact_ref) only appends
 * (process, page, flags) to the batch the model takes in one call (RefBatch). Python marks
 * such a page "fast" after it has handled a reference to it (fast_allow); these callbacks
 * append the references to fast pages themselves, into the same batch arrays, and hand every
 * other access (a page not fast, a write to a page the TLB holds read-only, a full batch)
 * to the Python hook unchanged, through the function pointer Unicorn would have called.
 * Python forgets every fast page whenever the state they stand for may change: a CPU TLB
 * flush, a refill of the page, a fault that leaves a kind pending, a deferred eviction.
 *
 * The tables are small open-addressing hashes whose entries belong to a generation:
 * forgetting everything is one increment. */
#include <stdint.h>
#include <string.h>

#define SLOTS 65536                      /* a power of two, per table */
#define LIMIT (SLOTS / 2)                /* entries before a table starts over */

typedef void (*code_fn)(void *uc, uint64_t addr, uint32_t size, void *data);
typedef void (*mem_fn)(void *uc, int type, uint64_t addr, int size, int64_t value, void *data);

#define UC_MEM_WRITE 17                  /* uc_mem_type of a data write (unicorn.h) */
#define F_READ 1                         /* a fast page: reads and fetches */
#define F_WRITE 2                        /* ... and writes (its TLB entry is writable) */

struct fastrefs {
    int64_t *count;                      /* RefBatch: references in the arrays */
    int64_t cap;
    int32_t *procs;
    int64_t *vpns;
    uint8_t *flags;
    int64_t mi;                          /* the model's number of the process the pages are of */
    uint64_t task_size;                  /* its TASK_SIZE: fetches above are not the program's */
    code_fn code_slow;                   /* the Python hooks */
    mem_fn mem_slow;
    int64_t fast;                        /* references appended here (statistics) */
    uint32_t fgen, nf, pgen, np;
    uint32_t fkey[SLOTS], fgens[SLOTS], fstate[SLOTS];      /* vpn -> F_READ|F_WRITE */
    uint32_t pkey[SLOTS], pgens[SLOTS], pvpn[SLOTS];        /* frame -> vpn (phys_to_vpn) */
};

long fast_struct_size(void) { return (long)sizeof(struct fastrefs); }

static inline uint32_t slot_of(uint32_t key) { return (key * 2654435761u) >> 16; }

void fast_forget(struct fastrefs *x)
{
    x->fgen++;
    x->pgen++;
    x->nf = x->np = 0;
    if (x->fgen == 0 || x->pgen == 0) {  /* wrapped: no stale entry may look current */
        memset(x->fgens, 0, sizeof x->fgens);
        memset(x->pgens, 0, sizeof x->pgens);
        x->fgen = x->pgen = 1;
    }
}

static uint32_t *find(uint32_t *key, uint32_t *gens, uint32_t gen, uint32_t k, int *found)
{
    uint32_t s = slot_of(k) & (SLOTS - 1);
    for (;;) {
        if (gens[s] != gen) { *found = 0; return &key[s]; }
        if (key[s] == k) { *found = 1; return &key[s]; }
        s = (s + 1) & (SLOTS - 1);
    }
}

/* Page vpn of process mi is fast (state F_READ or F_READ|F_WRITE), or not (0). */
void fast_allow(struct fastrefs *x, int64_t mi, uint64_t task_size, uint32_t vpn, uint32_t state)
{
    int found;
    if (mi != x->mi) { fast_forget(x); x->mi = mi; }
    x->task_size = task_size;
    if (x->nf >= LIMIT) { x->fgen++; x->nf = 0; if (x->fgen == 0) { memset(x->fgens, 0, sizeof x->fgens); x->fgen = 1; } }
    uint32_t *k = find(x->fkey, x->fgens, x->fgen, vpn, &found);
    size_t s = (size_t)(k - x->fkey);
    if (!found) { x->fkey[s] = vpn; x->fgens[s] = x->fgen; x->nf++; }
    x->fstate[s] = state;
}

/* The CPU's TLB maps physical page `frame` to `vpn` (the memory hook's physical address). */
void fast_phys(struct fastrefs *x, uint32_t frame, uint32_t vpn)
{
    int found;
    if (x->np >= LIMIT) { x->pgen++; x->np = 0; if (x->pgen == 0) { memset(x->pgens, 0, sizeof x->pgens); x->pgen = 1; } }
    uint32_t *k = find(x->pkey, x->pgens, x->pgen, frame, &found);
    size_t s = (size_t)(k - x->pkey);
    if (!found) { x->pkey[s] = frame; x->pgens[s] = x->pgen; x->np++; }
    x->pvpn[s] = vpn;
}

static inline uint32_t state_of(struct fastrefs *x, uint32_t vpn)
{
    int found;
    uint32_t *k = find(x->fkey, x->fgens, x->fgen, vpn, &found);
    return found ? x->fstate[k - x->fkey] : 0;
}

/* The references of [addr, addr + size) (a size of 0 is 1 byte) if every page is fast for
 * this access and the batch has room: 1, else 0 and nothing appended. */
static inline int append(struct fastrefs *x, uint64_t addr, uint64_t size, uint32_t need, uint8_t fl)
{
    uint64_t first = addr >> 12, last = (addr + (size ? size : 1) - 1) >> 12;
    int64_t n = *x->count;
    if (n + (int64_t)(last - first) + 1 > x->cap)
        return 0;
    for (uint64_t v = first; v <= last; v++)
        if ((state_of(x, (uint32_t)v) & need) != need)
            return 0;
    for (uint64_t v = first; v <= last; v++, n++) {
        x->procs[n] = (int32_t)x->mi;
        x->vpns[n] = (int64_t)v;
        x->flags[n] = fl;
    }
    x->fast += n - *x->count;
    *x->count = n;
    return 1;
}

void fast_code(void *uc, uint64_t addr, uint32_t size, struct fastrefs *x)
{
    if (addr < x->task_size && append(x, addr, size, F_READ, 2))
        return;
    x->code_slow(uc, addr, size, 0);
}

void fast_mem(void *uc, int type, uint64_t paddr, int size, int64_t value, struct fastrefs *x)
{
    int found;
    uint32_t *k = find(x->pkey, x->pgens, x->pgen, (uint32_t)(paddr >> 12), &found);
    if (found) {
        uint64_t addr = ((uint64_t)x->pvpn[k - x->pkey] << 12) | (paddr & 0xfff);
        int write = type == UC_MEM_WRITE;
        if (append(x, addr, (uint64_t)size, write ? F_READ | F_WRITE : F_READ, (uint8_t)write))
            return;
    }
    x->mem_slow(uc, type, paddr, size, value, 0);
}
