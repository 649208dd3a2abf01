/*
 * kafka-peer: a tiny launcher around librdkafka's mock cluster, used by the
 * test suite as a Kafka "test peer" that speaks the real wire protocol.
 *
 *   kafka-peer [--brokers N] [--partitions P] [--replication R] [--topic NAME]...
 *
 * Prints "BOOTSTRAP host:port,..." on stdout once the cluster is up, then
 * reads one command per line from stdin and answers each with "OK <cmd>" or
 * "ERR <reason>":
 *
 *   down N      rd_kafka_mock_broker_set_down (N = broker id, -1 = all)
 *   up N        rd_kafka_mock_broker_set_up
 *   rtt N MS    rd_kafka_mock_broker_set_rtt
 *   quit        destroy the cluster and exit 0
 *
 * stdin EOF, SIGTERM and SIGINT also destroy the cluster and exit 0.
 *
 * The mock brokers listen on 127.0.0.1 (ephemeral ports) only; librdkafka's
 * mock binds its listeners to INADDR_LOOPBACK. The launcher double-checks the
 * bootstrap string and refuses to run if any listener is not on 127.0.0.1.
 *
 * Build: cc -O2 -o kafka-peer kafka-peer.c -lrdkafka
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#define MAX_TOPICS 64

static volatile sig_atomic_t stop_requested = 0;

static void on_signal(int sig) {
        (void)sig;
        stop_requested = 1;
}

static void usage(const char *argv0) {
        fprintf(stderr,
                "usage: %s [--brokers N] [--partitions P] [--replication R] "
                "[--topic NAME]...\n",
                argv0);
}

static int parse_int(const char *s, int min, int *out) {
        char *end = NULL;
        long v;
        errno = 0;
        v = strtol(s, &end, 10);
        if (errno || !end || *end != '\0' || end == s || v < min ||
            v > 1000000)
                return -1;
        *out = (int)v;
        return 0;
}

/* Every entry of the comma-separated bootstrap list must be 127.0.0.1:port. */
static int bootstraps_are_loopback(const char *bs) {
        const char *p = bs;
        if (!bs || !*bs)
                return 0;
        while (*p) {
                if (strncmp(p, "127.0.0.1:", 10) != 0)
                        return 0;
                p = strchr(p, ',');
                if (!p)
                        break;
                p++;
        }
        return 1;
}

static void reply(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void reply(const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        vfprintf(stdout, fmt, ap);
        va_end(ap);
        fputc('\n', stdout);
        fflush(stdout);
}

/* Returns 1 when the peer should quit. */
/* Broker ids are 1..broker_cnt, or -1 for all; anything else gets an ERR reply. */
static int broker_exists(int id, int broker_cnt) {
        if (id == -1 || (id >= 1 && id <= broker_cnt))
                return 1;
        reply("ERR no such broker %d (brokers are 1..%d, -1 = all)", id,
              broker_cnt);
        return 0;
}

static int handle_command(rd_kafka_mock_cluster_t *mc, int broker_cnt,
                          char *line) {
        char cmd[32];
        char extra[8];
        int id = 0, ms = 0, n;
        rd_kafka_resp_err_t err;
        size_t len = strlen(line);

        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r' ||
                           line[len - 1] == ' ' || line[len - 1] == '\t'))
                line[--len] = '\0';
        if (len == 0)
                return 0;

        n = sscanf(line, "%31s", cmd);
        if (n != 1) {
                reply("ERR empty command");
                return 0;
        }

        if (!strcmp(cmd, "quit")) {
                reply("OK %s", line);
                return 1;
        }

        if (!strcmp(cmd, "down") || !strcmp(cmd, "up")) {
                if (sscanf(line, "%31s %d %7s", cmd, &id, extra) != 2) {
                        reply("ERR usage: %s <broker-id>", cmd);
                        return 0;
                }
                if (!broker_exists(id, broker_cnt))
                        return 0;
                err = !strcmp(cmd, "down")
                          ? rd_kafka_mock_broker_set_down(mc, id)
                          : rd_kafka_mock_broker_set_up(mc, id);
                if (err)
                        reply("ERR %s", rd_kafka_err2str(err));
                else
                        reply("OK %s", line);
                return 0;
        }

        if (!strcmp(cmd, "rtt")) {
                if (sscanf(line, "%31s %d %d %7s", cmd, &id, &ms, extra) !=
                        3 ||
                    ms < 0) {
                        reply("ERR usage: rtt <broker-id> <ms>");
                        return 0;
                }
                if (!broker_exists(id, broker_cnt))
                        return 0;
                err = rd_kafka_mock_broker_set_rtt(mc, id, ms);
                if (err)
                        reply("ERR %s", rd_kafka_err2str(err));
                else
                        reply("OK %s", line);
                return 0;
        }

        reply("ERR unknown command: %s", cmd);
        return 0;
}

int main(int argc, char **argv) {
        int brokers = 1, partitions = 16, replication = 1;
        const char *topics[MAX_TOPICS];
        int topic_cnt = 0;
        char errstr[512];
        rd_kafka_conf_t *conf;
        rd_kafka_t *rk;
        rd_kafka_mock_cluster_t *mc;
        const char *bootstraps;
        struct sigaction sa;
        char line[1024];
        size_t used = 0;
        int i, done = 0;

        for (i = 1; i < argc; i++) {
                const char *a = argv[i];
                const char *v = i + 1 < argc ? argv[i + 1] : NULL;
                if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
                        usage(argv[0]);
                        return 0;
                }
                if (!v) {
                        fprintf(stderr, "kafka-peer: %s needs a value\n", a);
                        usage(argv[0]);
                        return 2;
                }
                if (!strcmp(a, "--brokers")) {
                        if (parse_int(v, 1, &brokers)) {
                                fprintf(stderr, "kafka-peer: bad --brokers %s\n", v);
                                return 2;
                        }
                } else if (!strcmp(a, "--partitions")) {
                        if (parse_int(v, 1, &partitions)) {
                                fprintf(stderr, "kafka-peer: bad --partitions %s\n", v);
                                return 2;
                        }
                } else if (!strcmp(a, "--replication")) {
                        if (parse_int(v, 1, &replication)) {
                                fprintf(stderr, "kafka-peer: bad --replication %s\n", v);
                                return 2;
                        }
                } else if (!strcmp(a, "--topic")) {
                        if (topic_cnt >= MAX_TOPICS || !*v) {
                                fprintf(stderr, "kafka-peer: bad or too many --topic\n");
                                return 2;
                        }
                        topics[topic_cnt++] = v;
                } else {
                        fprintf(stderr, "kafka-peer: unknown argument %s\n", a);
                        usage(argv[0]);
                        return 2;
                }
                i++;
        }
        if (topic_cnt == 0) {
                topics[topic_cnt++] = "vcam.events";
                topics[topic_cnt++] = "vcam.events.dlq";
        }
        if (replication > brokers) {
                fprintf(stderr,
                        "kafka-peer: --replication %d exceeds --brokers %d\n",
                        replication, brokers);
                return 2;
        }

        memset(&sa, 0, sizeof(sa));
        sa.sa_handler = on_signal;
        sigemptyset(&sa.sa_mask);
        sa.sa_flags = 0; /* no SA_RESTART: let poll() return EINTR */
        sigaction(SIGTERM, &sa, NULL);
        sigaction(SIGINT, &sa, NULL);
        signal(SIGPIPE, SIG_IGN);

        /* The mock cluster needs an rd_kafka_t for book keeping; like
         * librdkafka's own tests, use a producer with no bootstrap servers. */
        conf = rd_kafka_conf_new();
        if (rd_kafka_conf_set(conf, "client.id", "kafka-peer", errstr,
                              sizeof(errstr)) != RD_KAFKA_CONF_OK ||
            rd_kafka_conf_set(conf, "log_level", "3", errstr,
                              sizeof(errstr)) != RD_KAFKA_CONF_OK) {
                fprintf(stderr, "kafka-peer: conf: %s\n", errstr);
                return 1;
        }
        rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
        if (!rk) {
                fprintf(stderr, "kafka-peer: rd_kafka_new: %s\n", errstr);
                return 1;
        }

        mc = rd_kafka_mock_cluster_new(rk, brokers);
        if (!mc) {
                fprintf(stderr, "kafka-peer: rd_kafka_mock_cluster_new failed\n");
                rd_kafka_destroy(rk);
                return 1;
        }

        for (i = 0; i < topic_cnt; i++) {
                rd_kafka_resp_err_t err = rd_kafka_mock_topic_create(
                    mc, topics[i], partitions, replication);
                if (err) {
                        fprintf(stderr,
                                "kafka-peer: create topic %s: %s\n",
                                topics[i], rd_kafka_err2str(err));
                        rd_kafka_mock_cluster_destroy(mc);
                        rd_kafka_destroy(rk);
                        return 1;
                }
        }

        bootstraps = rd_kafka_mock_cluster_bootstraps(mc);
        if (!bootstraps_are_loopback(bootstraps)) {
                fprintf(stderr,
                        "kafka-peer: refusing to run, mock listeners are not "
                        "loopback-only: %s\n",
                        bootstraps ? bootstraps : "(null)");
                rd_kafka_mock_cluster_destroy(mc);
                rd_kafka_destroy(rk);
                return 1;
        }
        printf("BOOTSTRAP %s\n", bootstraps);
        fflush(stdout);

        while (!done && !stop_requested) {
                struct pollfd pfd = {.fd = STDIN_FILENO, .events = POLLIN};
                ssize_t r;
                char *nl;

                r = poll(&pfd, 1, 500);
                if (r < 0) {
                        if (errno == EINTR)
                                continue;
                        perror("kafka-peer: poll");
                        break;
                }
                if (r == 0)
                        continue;

                r = read(STDIN_FILENO, line + used, sizeof(line) - 1 - used);
                if (r < 0) {
                        if (errno == EINTR || errno == EAGAIN)
                                continue;
                        perror("kafka-peer: read");
                        break;
                }
                if (r == 0) /* EOF: parent went away */
                        break;
                used += (size_t)r;
                line[used] = '\0';

                while (!done && (nl = strchr(line, '\n'))) {
                        size_t consumed = (size_t)(nl - line) + 1;
                        *nl = '\0';
                        done = handle_command(mc, brokers, line);
                        memmove(line, line + consumed, used - consumed + 1);
                        used -= consumed;
                }
                if (used == sizeof(line) - 1) {
                        reply("ERR line too long");
                        used = 0;
                        line[0] = '\0';
                }
        }

        rd_kafka_mock_cluster_destroy(mc);
        rd_kafka_destroy(rk);
        return 0;
}
