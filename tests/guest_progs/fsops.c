/* fsops: the name operations of a writable file system (mkdir, rename, symlink, link, chmod,
 * utimensat, truncate, unlink, rmdir, getdents) under argv[1]; prints what stat and readdir
 * then say. Natively it changes argv[1]; under elfvm only the overlay changes. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void show(const char *what, int r)
{
    printf("%-22s %d %s\n", what, r, r < 0 ? strerror(errno) : "");
}

static void list(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char *names[64];
    int n = 0;
    while (d && (e = readdir(d)) != NULL && n < 64)
        if (e->d_name[0] != '.')
            names[n++] = strdup(e->d_name);
    for (int i = 0; i < n; i++)           /* sorted: readdir order is the file system's */
        for (int j = i + 1; j < n; j++)
            if (strcmp(names[i], names[j]) > 0) {
                char *t = names[i]; names[i] = names[j]; names[j] = t;
            }
    printf("%s:", dir);
    for (int i = 0; i < n; i++)
        printf(" %s", names[i]);
    printf("\n");
    if (d)
        closedir(d);
}

int main(int argc, char **argv)
{
    if (argc < 2 || chdir(argv[1]) != 0)
        return 2;
    umask(022);
    show("mkdir a", mkdir("a", 0777));
    show("mkdir a again", mkdir("a", 0777));
    show("mkdir a/b", mkdir("a/b", 0700));
    int fd = open("a/b/f", O_CREAT | O_WRONLY | O_TRUNC, 0666);
    show("write", (int)write(fd, "hello world\n", 12));
    close(fd);
    show("rename f g", rename("a/b/f", "a/g"));
    show("rename missing", rename("a/b/f", "a/h"));
    show("symlink", symlink("g", "a/s"));
    show("link", link("a/g", "a/hard"));
    show("chmod 600", chmod("a/g", 0600));
    struct timespec ts[2] = {{1000000000, 0}, {1000000000, 0}};
    show("utimensat", utimensat(AT_FDCWD, "a/g", ts, 0));
    show("truncate 5", truncate("a/hard", 5));
    struct stat st;
    stat("a/g", &st);
    printf("g: mode %o size %ld mtime moved by truncate %d nlink %ld\n", st.st_mode & 07777,
           (long)st.st_size, st.st_mtime != 1000000000, (long)st.st_nlink);
    lstat("a/s", &st);
    char target[64] = {0};
    readlink("a/s", target, sizeof target - 1);
    printf("s: link %d -> %s\n", S_ISLNK(st.st_mode), target);
    stat("a/b", &st);
    printf("b: mode %o dir %d\n", st.st_mode & 07777, S_ISDIR(st.st_mode));
    list("a");
    show("rmdir a (not empty)", rmdir("a"));
    show("unlink g", unlink("a/g"));
    show("unlink s", unlink("a/s"));
    show("unlink hard", unlink("a/hard"));
    show("rmdir a/b", rmdir("a/b"));
    show("unlink a (a dir)", unlink("a"));
    show("rmdir a", rmdir("a"));
    list(".");
    return 0;
}
