// Load generator for the benchmarks (compiled by the test with cc):
//   storm threads RATE SECONDS  create-and-join threads at RATE/s, print how many
//   storm sleepers N            fork N children that only sleep, print "ready",
//                               kill them all when stdin closes
// A C helper, because Go cannot make a thread that only clone()s and exits,
// nor a process that costs the machine only a few pages.
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void *nothing(void *arg) { return arg; }

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int threads(double rate, double seconds)
{
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, 64 * 1024);
	double t0 = now();
	long n = 0;
	for (;;) {
		double t = now() - t0;
		if (t >= seconds)
			break;
		if (n >= rate * t) {
			usleep(1000);
			continue;
		}
		pthread_t th;
		if (pthread_create(&th, &attr, nothing, NULL) != 0)
			return 1;
		pthread_join(th, NULL);
		n++;
	}
	printf("%ld %.3f\n", n, now() - t0);
	return 0;
}

static int sleepers(long n)
{
	pid_t *pids = calloc(n, sizeof(pid_t));
	if (!pids)
		return 1;
	for (long i = 0; i < n; i++) {
		pid_t p = fork();
		if (p < 0) {
			fprintf(stderr, "fork %ld: %s\n", i, strerror(errno));
			n = i;
			break;
		}
		if (p == 0) {
			for (;;)
				pause();
		}
		pids[i] = p;
	}
	printf("ready %ld\n", n);
	fflush(stdout);
	char buf[64];
	while (read(0, buf, sizeof buf) > 0)
		;
	for (long i = 0; i < n; i++)
		kill(pids[i], SIGKILL);
	for (long i = 0; i < n; i++)
		waitpid(pids[i], NULL, 0);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 4 && strcmp(argv[1], "threads") == 0)
		return threads(atof(argv[2]), atof(argv[3]));
	if (argc == 3 && strcmp(argv[1], "sleepers") == 0)
		return sleepers(atol(argv[2]));
	fprintf(stderr, "usage: storm threads RATE SECONDS | storm sleepers N\n");
	return 2;
}
