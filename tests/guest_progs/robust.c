/* Robust mutexes: a thread that exits holding one leaves it owner-dead (the kernel walks the
 * robust list at thread exit: FUTEX_OWNER_DIED set, one waiter woken). Another thread's
 * pthread_mutex_lock then returns EOWNERDEAD, pthread_mutex_consistent repairs it.
 * Also: a waiter already asleep on the mutex when its owner dies, a process-shared robust
 * mutex in MAP_SHARED memory whose owner process exits, and get_robust_list. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static pthread_mutex_t m;
static pthread_mutex_t m2;
static volatile int holding;

static void *take_and_exit(void *arg)
{
    pthread_mutex_t *mx = arg;
    printf("owner lock: %d\n", pthread_mutex_lock(mx));
    holding = 1;
    usleep(20000);          /* a waiter, if any, goes to sleep on the futex meanwhile */
    return NULL;            /* exits holding it */
}

static void *waiter(void *arg)
{
    while (!holding)
        usleep(1000);
    int r = pthread_mutex_lock(&m2);
    printf("sleeping waiter lock: %s\n", r == EOWNERDEAD ? "EOWNERDEAD" : strerror(r));
    if (r == EOWNERDEAD) {
        printf("consistent: %d\n", pthread_mutex_consistent(&m2));
        printf("unlock: %d\n", pthread_mutex_unlock(&m2));
    }
    return arg;
}

static void init_robust(pthread_mutex_t *mx, int pshared)
{
    pthread_mutexattr_t a;
    pthread_mutexattr_init(&a);
    pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
    if (pshared)
        pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
    pthread_mutex_init(mx, &a);
    pthread_mutexattr_destroy(&a);
}

int main(void)
{
    pthread_t t, w;
    int r;

    setvbuf(stdout, NULL, _IONBF, 0);
    /* 1. the owner exits; the lock afterwards sees EOWNERDEAD */
    init_robust(&m, 0);
    pthread_create(&t, NULL, take_and_exit, &m);
    pthread_join(t, NULL);
    r = pthread_mutex_lock(&m);
    printf("lock after owner died: %s\n", r == EOWNERDEAD ? "EOWNERDEAD" : strerror(r));
    printf("consistent: %d\n", pthread_mutex_consistent(&m));
    printf("unlock: %d\n", pthread_mutex_unlock(&m));
    printf("lock again: %d\n", pthread_mutex_lock(&m));
    printf("unlock: %d\n", pthread_mutex_unlock(&m));

    /* 2. a waiter asleep in the futex when the owner dies is woken by the kernel */
    init_robust(&m2, 0);
    holding = 0;
    pthread_create(&w, NULL, waiter, NULL);
    pthread_create(&t, NULL, take_and_exit, &m2);
    pthread_join(t, NULL);
    pthread_join(w, NULL);

    /* 3. not made consistent: unlocking it makes it unrecoverable */
    pthread_create(&t, NULL, take_and_exit, &m);
    pthread_join(t, NULL);
    r = pthread_mutex_lock(&m);
    printf("lock: %s\n", r == EOWNERDEAD ? "EOWNERDEAD" : strerror(r));
    pthread_mutex_unlock(&m);
    r = pthread_mutex_lock(&m);
    printf("lock after unlock without consistent: %s\n",
           r == ENOTRECOVERABLE ? "ENOTRECOVERABLE" : strerror(r));

    /* 4. process-shared: the child process dies holding it */
    pthread_mutex_t *sm = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                               -1, 0);
    init_robust(sm, 1);
    pid_t pid = fork();
    if (pid == 0) {
        pthread_mutex_lock(sm);
        _exit(0);
    }
    waitpid(pid, NULL, 0);
    r = pthread_mutex_lock(sm);
    printf("shared lock after child died: %s\n", r == EOWNERDEAD ? "EOWNERDEAD" : strerror(r));

    /* 5. get_robust_list: the head glibc registered for this thread */
    void *head = NULL;
    size_t len = 0;
    long g = syscall(SYS_get_robust_list, 0, &head, &len);
    printf("get_robust_list: %ld len %zu head set %d\n", g, len, head != NULL);
    return 0;
}
