/* A benchmark child: appends "pid monotonic_ns" to argv[1] the moment it starts, then waits.
   C, so the figure measures the supervisor and not an interpreter's start-up. */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    char buf[64];
    int n = snprintf(buf, sizeof buf, "%d %lld\n", (int)getpid(), (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec);
    int fd = open(argv[1], O_WRONLY | O_APPEND | O_CREAT, 0644);
    if (fd >= 0) { (void)!write(fd, buf, n); close(fd); }
    if (argc > 2) signal(SIGTERM, SIG_IGN);   /* "stubborn": only SIGKILL ends it */
    for (;;) pause();
}
