/* getdents64 on /proc directories: /proc/self/ (entry, d_type, what lstat says), its task/
 * and fd/ (each descriptor's link target), /proc itself (self, thread-self and this
 * process and its child among the numbered entries), and readlink of /proc/self. */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char kind(mode_t m)
{
    return S_ISDIR(m) ? 'd' : S_ISLNK(m) ? 'l' : S_ISREG(m) ? '-' : S_ISFIFO(m) ? 'p' : '?';
}

static void list(const char *dir, int links)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char path[512], target[512];
    struct stat st;

    if (!d) {
        printf("%s: cannot open\n", dir);
        return;
    }
    while ((e = readdir(d)) != NULL) {
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (lstat(path, &st) != 0) {
            printf("%s %d lstat failed\n", e->d_name, e->d_type);
            continue;
        }
        printf("%s %d %c %o", atoi(e->d_name) == getpid() ? "PID" : e->d_name, e->d_type,
               kind(st.st_mode), st.st_mode & 0777);
        if (links && S_ISLNK(st.st_mode)) {
            ssize_t n = readlink(path, target, sizeof target - 1);
            target[n < 0 ? 0 : n] = 0;
            if (strncmp(target, "pipe:[", 6) == 0)
                strcpy(target, "pipe");          /* pipe inode numbers are the kernel's */
            snprintf(path, sizeof path, "/proc/%d/", getpid());
            if (strncmp(target, path, strlen(path)) == 0)
                printf(" -> /proc/PID/%s", target + strlen(path));
            else
                printf(" -> %s", target);
            if (stat(path, &st) == 0)
                printf(" (%c)", kind(st.st_mode));
        }
        printf("\n");
    }
    closedir(d);
}

int main(int argc, char **argv)
{
    char buf[64], want[32];
    int p[2];
    pid_t child;
    ssize_t n;

    setvbuf(stdout, NULL, _IONBF, 0);
    if (argc > 1 && strcmp(argv[1], "self") == 0) {      /* the entries, one per line */
        list("/proc/self", 0);
        return 0;
    }
    pipe(p);
    open("/dev/null", O_RDONLY);
    open(argv[0], O_RDONLY);
    printf("== /proc/self/fd\n");
    list("/proc/self/fd", 1);
    snprintf(want, sizeof want, "/proc/%d/task", getpid());
    printf("== task\n");
    list(want, 0);
    n = readlink("/proc/self", buf, sizeof buf - 1);
    buf[n < 0 ? 0 : n] = 0;
    printf("readlink /proc/self is my pid: %d\n", atoi(buf) == getpid());
    child = fork();
    if (child == 0) {
        pause();
        _exit(0);
    }
    DIR *d = opendir("/proc");
    struct dirent *e;
    int me = 0, kid = 0, self = 0, tself = 0;
    while ((e = readdir(d)) != NULL) {
        me += atoi(e->d_name) == getpid() && e->d_type == DT_DIR;
        kid += atoi(e->d_name) == child && e->d_type == DT_DIR;
        self += strcmp(e->d_name, "self") == 0 && e->d_type == DT_LNK;
        tself += strcmp(e->d_name, "thread-self") == 0 && e->d_type == DT_LNK;
    }
    closedir(d);
    printf("/proc lists me %d, my child %d, self %d, thread-self %d\n", me, kid, self, tself);
    kill(child, SIGKILL);
    waitpid(child, NULL, 0);
    snprintf(want, sizeof want, "/proc/%d/stat", child);
    printf("reaped child's /proc entry gone: %d\n", access(want, F_OK) != 0);
    return 0;
}
