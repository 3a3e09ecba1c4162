/* elfvm's instruction counter for Unicorn: a UC_HOOK_BLOCK callback (elfvm/emu/counter.py).
 *
 * A callback per instruction (UC_HOOK_CODE) makes Unicorn call a helper before every guest
 * instruction and slows the translated code ~3.5x; a callback per translated block costs
 * little. Each block adds its instruction count, which Unicorn's translator knows
 * (uc_ctl(UC_CTL_TB_REQUEST_CACHE): the block's uc_tb.icount), asked once per block and kept
 * in a small table (keyed by the block's address and size; emptied whenever the CPU's TLB is
 * flushed, since the code at an address may then change: exec, another process, munmap).
 * A block the CPU leaves early (a fault inside it) is settled from Python (counter.py). */
#include <stdint.h>
#include <string.h>

typedef struct { uint64_t pc; uint16_t icount; uint16_t size; } uc_tb;
typedef int (*uc_ctl_fn)(void *uc, int control, ...);

#define SLOTS 16384                      /* a power of two */
#define PROBES 8

struct icount {
    int64_t total;                       /* instructions of every block entered */
    uint64_t last_pc;                    /* the block entered last */
    int64_t last_size;                   /* its size in bytes; 0 once settled */
    int64_t last_icount;
    uc_ctl_fn ctl;                       /* uc_ctl, from the unicorn library Python loaded */
    int64_t request;                     /* UC_CTL_TB_REQUEST_CACHE, encoded for reading */
    int64_t errors;                      /* blocks Unicorn could not describe */
    uint64_t key[SLOTS];                 /* (size << 32 | pc) + 1; 0: empty */
    int64_t icnt[SLOTS];
};

long icount_struct_size(void) { return (long)sizeof(struct icount); }

void icount_clear(struct icount *c) { memset(c->key, 0, sizeof c->key); }

/* A block not in the table yet: ask Unicorn's translator, keep the answer. Out of line, so the
 * hit path below stays a leaf function with no registers to save. */
__attribute__((noinline, cold))
static int64_t icount_miss(void *uc, uint64_t pc, uint32_t size, struct icount *c, uint64_t key,
                           uint32_t h)
{
    for (int i = 0; i < PROBES; i++) {
        uint32_t s = (h + i) & (SLOTS - 1);
        if (c->key[s] == key) return c->icnt[s];
        if (c->key[s] == 0) break;
    }
    uc_tb tb;
    memset(&tb, 0, sizeof tb);
    if (c->ctl(uc, (int)c->request, pc, &tb) != 0 || tb.pc != pc || tb.size != size)
        c->errors++;
    int64_t n = tb.icount;
    uint32_t s = h;
    for (int i = 0; i < PROBES; i++) {
        if (c->key[(h + i) & (SLOTS - 1)] == 0) { s = (h + i) & (SLOTS - 1); break; }
    }
    c->key[s] = key;
    c->icnt[s] = n;
    return n;
}

void icount_block(void *uc, uint64_t pc, uint32_t size, struct icount *c)
{
    uint64_t key = (((uint64_t)size << 32) | (pc & 0xffffffffu)) + 1;
    uint32_t h = (uint32_t)(((pc & 0xffffffffu) * 2654435761u) >> 10) & (SLOTS - 1);
    int64_t n = __builtin_expect(c->key[h] == key, 1) ? c->icnt[h] : icount_miss(uc, pc, size, c, key, h);
    c->total += n;
    c->last_pc = pc;
    c->last_size = size;
    c->last_icount = n;
}
