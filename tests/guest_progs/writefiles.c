/* A guest that writes where an attacker hopes it will: /etc/passwd (truncated and rewritten),
   /tmp/PWNED_x (created), and a relative name; used by tests/test_writedir.py. */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static int put(const char *path, const char *text, int flags)
{
    int fd = open(path, O_WRONLY | flags, 0644);
    if (fd < 0) {
        printf("%s: open failed\n", path);
        return 1;
    }
    write(fd, text, strlen(text));
    close(fd);
    printf("%s: written\n", path);
    return 0;
}

int main(void)
{
    int bad = 0;
    bad += put("/etc/passwd", "root::0:0:pwned:/:/bin/sh\n", O_TRUNC);
    bad += put("/tmp/PWNED_x", "pwned\n", O_CREAT | O_TRUNC);
    bad += put("/tmp/../tmp/PWNED_y", "pwned\n", O_CREAT | O_TRUNC);
    return bad;
}
