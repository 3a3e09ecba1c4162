/* The name execve was given (AT_EXECFN, at the top of the stack), argv[0], and /proc/self/exe
 * (d_path of the file: absolute, symlinks resolved). A static glibc reads /proc/self/exe for
 * $ORIGIN (_dl_get_origin) and aborts unless the link is absolute. */
#include <stdio.h>
#include <sys/auxv.h>
#include <unistd.h>

int main(int argc, char **argv) {
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    exe[n > 0 ? n : 0] = 0;
    printf("execfn=%s argv0=%s exe=%s\n", (char *)getauxval(AT_EXECFN), argv[0],
           n > 0 ? exe : "?");
    return 0;
}
