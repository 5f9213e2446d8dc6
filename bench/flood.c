/* A benchmark child that floods stdout: argv[2] bytes of 100-byte numbered lines, written
   in 64 KB writes (655 lines = 65,500 B), then waits. Just before its first write it appends
   "pid monotonic_ns" to argv[1] (like stamp.c), so throughput is measured from the child's
   first byte to the moment the log file holds the last one. Line k is "%09d " + 89 'x' +
   "\n", so a reader can tell lost lines from duplicated ones. C, so the writer is never the
   bottleneck. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define LINE 100
#define PER_WRITE 655

int main(int argc, char **argv) {
    if (argc < 3) { fprintf(stderr, "usage: flood STAMPFILE BYTES\n"); return 2; }
    long long lines = atoll(argv[2]) / LINE;
    static char block[LINE * PER_WRITE];
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    char buf[64];
    int n = snprintf(buf, sizeof buf, "%d %lld\n", (int)getpid(), (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec);
    int fd = open(argv[1], O_WRONLY | O_APPEND | O_CREAT, 0644);
    if (fd >= 0) { (void)!write(fd, buf, n); close(fd); }
    /* the 'x's, spaces and line ends never change: laid out once; per line only its 9 digits
       are written, from a decimal counter kept in ASCII (snprintf per line capped this child
       at ~700 MB/s, below what the capture paths under test reach) */
    for (int m = 0; m < PER_WRITE; m++) {
        char *l = block + m * LINE;
        l[9] = ' ';
        memset(l + 10, 'x', LINE - 11);
        l[LINE - 1] = '\n';
    }
    char digits[9];
    memset(digits, '0', sizeof digits);
    for (long long k = 0; k < lines;) {
        int m = 0;
        for (; m < PER_WRITE && k < lines; m++, k++) {
            memcpy(block + m * LINE, digits, 9);
            for (int d = 8; d >= 0; d--) {         /* digits += 1 */
                if (digits[d] != '9') { digits[d]++; break; }
                digits[d] = '0';
            }
        }
        size_t len = (size_t)m * LINE, off = 0;
        while (off < len) {
            ssize_t w = write(1, block + off, len - off);
            if (w < 0) { if (errno == EINTR) continue; return 1; }
            off += (size_t)w;
        }
    }
    for (;;) pause();
}
