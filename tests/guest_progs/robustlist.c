/* The kernel's walk of a robust futex list at thread exit (exit_robust_list), on hand-made
 * lists registered with set_robust_list: words owned by the dying tid get FUTEX_OWNER_DIED
 * (FUTEX_WAITERS kept), others stay; list_op_pending is handled last (a 0 word stays 0);
 * the walk stops after ROBUST_LIST_LIMIT (2048) entries, at an unreadable next pointer, and
 * at a misaligned futex word. Prints the words after each thread has exited. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdint.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

struct rl { struct rl *next; };
struct head { struct rl list; long futex_offset; struct rl *pending; };
struct ent { struct rl l; uint32_t word; };      /* futex_offset = 4 */

#define N 3000
static struct ent ents[N];
static struct head h;
static uint32_t pend_word_at;
static int scenario;

static void *run(void *arg)
{
    uint32_t tid = syscall(SYS_gettid);
    int i;

    memset(&h, 0, sizeof h);
    memset(ents, 0, sizeof ents);
    h.futex_offset = 4;
    h.list.next = &h.list;
    switch (scenario) {
    case 0:   /* three entries: mine, another tid's, mine with FUTEX_WAITERS; a pending one */
        ents[0].word = tid;
        ents[1].word = 12345;
        ents[2].word = tid | 0x80000000u;
        ents[3].word = tid;
        ents[0].l.next = &ents[1].l;
        ents[1].l.next = &ents[2].l;
        ents[2].l.next = &h.list;
        h.list.next = &ents[0].l;
        h.pending = &ents[3].l;
        break;
    case 1:   /* longer than ROBUST_LIST_LIMIT */
        for (i = 0; i < N; i++) {
            ents[i].word = tid;
            ents[i].l.next = i + 1 < N ? &ents[i + 1].l : &h.list;
        }
        h.list.next = &ents[0].l;
        break;
    case 2:   /* a bad next pointer after two entries; the pending one (word 0) on the list */
        ents[0].word = tid;
        ents[1].word = tid;
        ents[0].l.next = &ents[1].l;
        ents[1].l.next = (struct rl *)0xdead0000;
        h.list.next = &ents[0].l;
        h.pending = &ents[1].l;
        break;
    case 3:   /* a circular list that never comes back to the head */
        for (i = 0; i < 10; i++) {
            ents[i].word = tid;
            ents[i].l.next = &ents[(i + 1) % 10].l;
        }
        h.list.next = &ents[0].l;
        break;
    case 4:   /* PI bit on a pointer, then a misaligned futex word: the walk stops there */
        ents[0].word = tid;
        ents[1].word = tid;
        ents[2].word = tid;
        ents[0].l.next = (struct rl *)((uintptr_t)&ents[1].l | 1);
        ents[1].l.next = (struct rl *)((char *)&ents[2].l + 2);
        ents[2].l.next = &h.list;
        h.list.next = &ents[0].l;
        break;
    }
    pend_word_at = tid;
    syscall(SYS_set_robust_list, &h, sizeof h);
    return arg;
}

int main(void)
{
    pthread_t t;
    int s, i, died;

    for (s = 0; s < 5; s++) {
        scenario = s;
        pthread_create(&t, NULL, run, NULL);
        pthread_join(t, NULL);
        died = 0;
        for (i = 0; i < N; i++)
            died += (ents[i].word & 0x40000000u) != 0;
        printf("scenario %d: owner-died %d; words", s, died);
        for (i = 0; i < 4; i++) {
            uint32_t w = ents[i].word;
            printf(" %s%s%s", w & 0x80000000u ? "W" : "", w & 0x40000000u ? "D" : "",
                   (w & 0x3fffffffu) == 0 ? "0" : (w & 0x3fffffffu) == pend_word_at ? "tid"
                   : (w & 0x3fffffffu) == 12345 ? "other" : "?");
        }
        printf("\n");
    }
    return 0;
}
