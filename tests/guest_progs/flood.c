/* A guest that prints N MiB to stdout (tests/test_emu_output.py): the host must not hold it. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    static char buf[1 << 20];
    int n = argc > 1 ? atoi(argv[1]) : 1;
    memset(buf, 'y', sizeof buf);
    for (int i = 0; i < n; i++)
        if (write(1, buf, sizeof buf) != sizeof buf)
            return 1;
    return 0;
}
