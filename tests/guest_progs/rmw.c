/* One instruction per class on a page that is not present yet, then a write to that page.
 * A read-modify-write instruction takes one write fault (the #PF error code has W set), so
 * the later write takes none; a read takes a fault (the zero page) and the write a second
 * one (COW). tests/test_emu_rmw.py compares each page's faults with the live kernel's.
 *   rmw            every case, page i for case i
 *   rmw NAME       only that case (page 0), for the kernel's per-case count
 *   rmw none       no case: the write alone
 */
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

typedef void (*insn_fn)(char *p);

#define CASE(name, body) static void name(char *p) { __asm__ volatile(body : : "d"(p) : "eax", "ecx", "memory", "cc"); }
/* read-modify-write: one write fault */
CASE(add_mem_reg, "movl $1, %%eax; addl %%eax, (%%edx)")
CASE(lock_add_imm8, "lock addl $1, (%%edx)")
CASE(or_byte_imm, "orb $1, (%%edx)")
CASE(adc_imm8, "adcl $1, (%%edx)")
CASE(sbb_reg, "sbbl %%eax, (%%edx)")
CASE(and_imm32, "andl $0x12345678, (%%edx)")
CASE(sub_reg, "subl %%eax, (%%edx)")
CASE(xor_byte_reg, "xorb %%al, (%%edx)")
CASE(inc_long, "incl (%%edx)")
CASE(dec_word, "decw (%%edx)")
CASE(inc_byte, "incb (%%edx)")
CASE(not_long, "notl (%%edx)")
CASE(neg_byte, "negb (%%edx)")
CASE(shl_imm, "shll $3, (%%edx)")
CASE(ror_one, "rorl (%%edx)")
CASE(sar_cl, "movl $2, %%ecx; sarl %%cl, (%%edx)")
CASE(xchg_reg, "xchgl %%eax, (%%edx)")
CASE(cmpxchg_reg, "xorl %%eax, %%eax; movl $7, %%ecx; cmpxchgl %%ecx, (%%edx)")
CASE(cmpxchg_fails, "movl $5, %%eax; movl $7, %%ecx; cmpxchgl %%ecx, (%%edx)")
CASE(xadd_reg, "movl $1, %%eax; xaddl %%eax, (%%edx)")
CASE(bts_imm, "btsl $5, (%%edx)")
CASE(btr_reg, "movl $3, %%eax; btrl %%eax, (%%edx)")
CASE(btc_reg, "movl $3, %%eax; btcl %%eax, (%%edx)")
CASE(shld_imm, "shldl $4, %%eax, (%%edx)")
CASE(shrd_cl, "movl $1, %%ecx; shrdl %%cl, %%eax, (%%edx)")
CASE(cmpxchg8b_mem, "pushl %%ebx; pushl %%esi; movl %%edx, %%esi; xorl %%eax, %%eax; xorl %%ebx, %%ebx; xorl %%ecx, %%ecx; xorl %%edx, %%edx; cmpxchg8b (%%esi); movl %%esi, %%edx; popl %%esi; popl %%ebx")
CASE(add_ds_prefix, "movl $1, %%eax; .byte 0x3e; addl %%eax, 4(%%edx)")
/* reads: the zero page, then the write copies */
CASE(cmp_reg, "cmpl %%eax, (%%edx)")
CASE(test_reg, "testl %%eax, (%%edx)")
CASE(bt_imm, "btl $1, (%%edx)")
CASE(mov_load, "movl (%%edx), %%eax")
CASE(push_mem, "pushl (%%edx); popl %%eax")
/* the CPU reads one place and writes another: both faults, even on one page */
CASE(movs_same_page, "pushl %%esi; pushl %%edi; movl %%edx, %%esi; leal 2048(%%edx), %%edi; cld; movsl; popl %%edi; popl %%esi")
/* writes: one fault */
CASE(mov_store, "movl %%eax, (%%edx)")
CASE(setc_mem, "stc; setc (%%edx)")

static const struct { const char *name; insn_fn fn; } cases[] = {
#define C(n) {#n, n}
    C(add_mem_reg), C(lock_add_imm8), C(or_byte_imm), C(adc_imm8), C(sbb_reg), C(and_imm32),
    C(sub_reg), C(xor_byte_reg), C(inc_long), C(dec_word), C(inc_byte), C(not_long), C(neg_byte),
    C(shl_imm), C(ror_one), C(sar_cl), C(xchg_reg), C(cmpxchg_reg), C(cmpxchg_fails), C(xadd_reg),
    C(bts_imm), C(btr_reg), C(btc_reg), C(shld_imm), C(shrd_cl), C(cmpxchg8b_mem), C(add_ds_prefix),
    C(cmp_reg), C(test_reg), C(bt_imm), C(mov_load), C(push_mem), C(movs_same_page),
    C(mov_store), C(setc_mem),
};
#define NCASES (int)(sizeof cases / sizeof cases[0])

int main(int argc, char **argv)
{
    char *pages = mmap(0, NCASES * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    int n = 0;
    if (pages == MAP_FAILED)
        return 1;
    for (int i = 0; i < NCASES; i++) {
        if (argc < 2 || strcmp(argv[1], cases[i].name) == 0) {
            char *p = argc < 2 ? pages + i * 4096 : pages;
            cases[i].fn(p);
            p[100] = 1;
            n++;
        }
    }
    if (argc >= 2 && strcmp(argv[1], "none") == 0) {
        pages[100] = 1;
        n++;
    }
    if (argc < 2)
        for (int i = 0; i < NCASES; i++)
            printf("%s %p\n", cases[i].name, (void *)(pages + i * 4096));
    return n == 0 ? 2 : 0;
}
