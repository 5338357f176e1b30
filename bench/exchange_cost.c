/* One thread plays an HTTP/1.1 client and server on a loopback TCP connection: write a request,
 * read it on the other end, write a response, read it back. Prints the nanoseconds per exchange
 * (two sends and two receives, plus loopback TCP) over N exchanges, after N/10 to warm up.
 * `exchange_cost N connections`: each exchange on a connection of its own instead (connect,
 * accept, the exchange, the server closes, the client reads the end and closes), so the figure
 * includes every TCP state change of both ends. A third argument `opaque` sends bytes of no protocol
 * the exporter knows instead, of the same lengths (as SSH or a TLS session would be, to its L7).
 * Built and run by bench/exchange_cost.py. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static const char *request = "GET /exchange HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: exchange_cost\r\n\r\n";
static const char *response = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello";

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec / 1e9;
}

/* Writes all of msg on `to`, reads as many bytes on `from`. */
static int pass(int to, int from, const char *msg, size_t len)
{
	char buf[512];
	size_t got = 0;

	if (write(to, msg, len) != (ssize_t)len)
		return -1;
	while (got < len) {
		ssize_t r = read(from, buf, sizeof(buf));
		if (r <= 0)
			return -1;
		got += r;
	}
	return 0;
}

/* One exchange on a new connection to the listener at `a`; 0 on success. */
static int connection(int lsn, const struct sockaddr_in *a)
{
	char buf[16];
	int cli = socket(AF_INET, SOCK_STREAM, 0), srv;

	if (cli < 0 || connect(cli, (const struct sockaddr *)a, sizeof(*a)) || (srv = accept(lsn, NULL, NULL)) < 0)
		return -1;
	if (pass(cli, srv, request, strlen(request)) || pass(srv, cli, response, strlen(response)))
		return -1;
	close(srv);
	if (read(cli, buf, sizeof(buf)) != 0) /* the end of file */
		return -1;
	close(cli);
	return 0;
}

int main(int argc, char **argv)
{
	long n = argc > 1 ? atol(argv[1]) : 100000;
	int connections = argc > 2 && strcmp(argv[2], "connections") == 0;
	static char opaque_request[128], opaque_response[128];

	if (argc > 3 && strcmp(argv[3], "opaque") == 0) {
		memset(opaque_request, 0x17, strlen(request)); /* a TLS application-data record type */
		memset(opaque_response, 0x17, strlen(response));
		request = opaque_request;
		response = opaque_response;
	}
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t alen = sizeof(a);
	int one = 1, lsn, cli, srv;
	double start = 0;

	lsn = socket(AF_INET, SOCK_STREAM, 0);
	cli = socket(AF_INET, SOCK_STREAM, 0);
	if (lsn < 0 || cli < 0 || bind(lsn, (struct sockaddr *)&a, sizeof(a)) || listen(lsn, 1) ||
	    getsockname(lsn, (struct sockaddr *)&a, &alen) || connect(cli, (struct sockaddr *)&a, sizeof(a)) ||
	    (srv = accept(lsn, NULL, NULL)) < 0) {
		perror("exchange_cost: loopback connection");
		return 1;
	}
	setsockopt(cli, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(srv, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connections) {
		listen(lsn, 16);
		for (long i = 0; i < n + n / 10; i++) {
			if (i == n / 10)
				start = now();
			if (connection(lsn, &a)) {
				perror("exchange_cost: connection");
				return 1;
			}
		}
		printf("%.1f\n", (now() - start) / n * 1e9);
		return 0;
	}
	for (long i = 0; i < n + n / 10; i++) {
		if (i == n / 10)
			start = now();
		if (pass(cli, srv, request, strlen(request)) || pass(srv, cli, response, strlen(response))) {
			perror("exchange_cost: exchange");
			return 1;
		}
	}
	printf("%.1f\n", (now() - start) / n * 1e9);
	return 0;
}
