/* The one workload program every supervisor in bench/peers runs, so that they all supervise the same thing.
 *
 *   helper idle NAME DIR        create DIR/NAME (the "I am running" marker), then sleep forever
 *   helper crash FILE MS        append "S <CLOCK_MONOTONIC ns>" to FILE, sleep MS, append "E <ns>", exit 1
 *   helper flood N STAMPFILE [exit]  write "<ns>" to STAMPFILE, then N lines of 100 bytes + '\n' to stdout
 *                               (line i contains the rare word "quokka" when i % 200000 == 4321); last line
 *                               is "END-OF-FLOOD"; then sleep forever (so no supervisor restarts it), or exit 0 with `exit`
 *   helper wait GATE READY CMD...  create READY (the "I am up" marker), wait until the file GATE exists (polled
 *                               every 0.2 ms), then run as `helper CMD...` (several services start flooding at once)
 *
 * Built by bench/peers with `cc -O2`. Timestamps are CLOCK_MONOTONIC, the clock of Python's time.monotonic_ns.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static long long now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void append(const char *file, char tag) {
  char buf[64];
  int n = snprintf(buf, sizeof buf, "%c %lld\n", tag, now_ns());
  int fd = open(file, O_WRONLY | O_APPEND | O_CREAT, 0644);
  if (fd >= 0) {
    if (write(fd, buf, n) != n) { /* best effort */ }
    close(fd);
  }
}

int main(int argc, char **argv) {
  if (argc >= 5 && strcmp(argv[1], "wait") == 0) {
    int fd = open(argv[3], O_WRONLY | O_CREAT, 0644);
    if (fd >= 0) close(fd);
    struct timespec d = {0, 200000L};
    while (access(argv[2], F_OK) != 0) nanosleep(&d, NULL);
    argv[3] = argv[0];
    return main(argc - 3, argv + 3);
  }
  if (argc == 4 && strcmp(argv[1], "crash") == 0) {
    append(argv[2], 'S');
    long ms = atol(argv[3]);
    if (ms > 0) {
      struct timespec d = {ms / 1000, (ms % 1000) * 1000000L};
      nanosleep(&d, NULL);
    }
    append(argv[2], 'E');
    return 1;
  }
  if (argc == 4 && strcmp(argv[1], "idle") == 0) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", argv[3], argv[2]);
    int fd = open(path, O_WRONLY | O_CREAT, 0644);
    if (fd >= 0) close(fd);
    for (;;) pause();
  }
  if ((argc == 4 || argc == 5) && strcmp(argv[1], "flood") == 0) {
    long n = atol(argv[2]);
    FILE *st = fopen(argv[3], "w");
    if (st) { fprintf(st, "%lld\n", now_ns()); fclose(st); }
    static char out[1 << 16];
    setvbuf(stdout, out, _IOFBF, sizeof out);
    for (long i = 0; i < n - 1; i++) {
      /* 100 bytes before the newline */
      if (i % 200000 == 4321)
        printf("%09ld level=info msg=\"request served\" path=/api/items quokka spotted status=200 dur=3ms padding=x\n", i);
      else
        printf("%09ld level=info msg=\"request served\" path=/api/items/42 user=alice status=200 dur=3ms padding=x\n", i);
    }
    printf("END-OF-FLOOD\n");
    fflush(stdout);
    if (argc == 5) return 0;
    for (;;) pause();
  }
  fprintf(stderr, "usage: helper idle NAME DIR | crash FILE MS | flood N STAMPFILE [exit]\n");
  return 2;
}
