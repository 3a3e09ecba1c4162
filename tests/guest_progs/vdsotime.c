/* time(), gettimeofday() and clock_gettime() through glibc: calls into the vDSO where the
 * kernel's vDSO exports them. Prints whether the three clocks agree to the second; with an
 * argument, writes the [vdso] image (two pages from AT_SYSINFO_EHDR) to stdout instead.  With
 * VDSOTIME_NOCLOCK in the environment it reads no clock and prints the same line: the faults
 * the clock reads add are the difference between the two runs. */
#include <stdio.h>
#include <stdlib.h>
#include <sys/auxv.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc > 1) {
        const char *vdso = (const char *)getauxval(AT_SYSINFO_EHDR);
        return vdso && write(1, vdso, 8192) == 8192 ? 0 : 1;
    }
    struct timespec ts = {0, 0};
    struct timeval tv = {0, 0};
    time_t t = 0;
    if (!getenv("VDSOTIME_NOCLOCK")) {
        t = time(NULL);
        gettimeofday(&tv, NULL);
        clock_gettime(CLOCK_REALTIME, &ts);
    }
    long d1 = (long)(tv.tv_sec - t), d2 = (long)(ts.tv_sec - tv.tv_sec);
    printf("clocks agree: %s\n", d1 >= 0 && d1 <= 1 && d2 >= 0 && d2 <= 1 ? "yes" : "no");
    return 0;
}
