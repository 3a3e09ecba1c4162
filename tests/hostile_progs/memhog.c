/* Touch N MiB (argv[1]) of anonymous memory, one write per page, then read it all back. */
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
    long mib = argc > 1 ? atol(argv[1]) : 64;
    long pages = mib * 256;
    char *p = malloc(mib << 20);
    if (!p) { puts("malloc failed"); return 1; }
    for (long i = 0; i < pages; i++) p[i * 4096] = (char)i;
    long sum = 0;
    for (long i = 0; i < pages; i++) sum += p[i * 4096] == (char)i;
    printf("%ld of %ld pages intact\n", sum, pages);
    return 0;
}
